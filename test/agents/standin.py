#!/usr/bin/env python3
"""A stand-in for the model APIs that coding agents talk to, on 127.0.0.1.

It speaks the wire protocols the agents really use, with streaming:
  POST .../responses                       OpenAI Responses API (Codex CLI)
  POST .../chat/completions                OpenAI Chat Completions (opencode)
  POST .../messages                        Anthropic Messages (Claude Code)
  POST .../models/M:streamGenerateContent  Gemini (Gemini CLI), also
       .../models/M:generateContent and :countTokens

Instead of a model it follows a plan (a JSON list of steps, see run.sh):
each turn of the conversation gets the next step as a call of the agent's
own tool for it, found by name and argument schema in the tools list the
agent sent. Which step is next is counted from the tool results already in
the conversation, not kept in the server, so retries and side requests
(titles, summaries, routing) do not shift the plan. After the last step it
answers with plain text and the agent ends its turn.

Every request body is written to the log directory, so what an agent sent
(its tools, its prompts) can be read after a run.

Usage: standin.py --plan FILE --port-file FILE [--log DIR] [--port N]
"""
import argparse
import json
import os
import re
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FINAL_TEXT = "All requested file changes are done."

PATH_KEYS = ["file_path", "filePath", "absolute_path", "path", "filename"]
OLD_KEYS = ["old_string", "oldString", "old_str"]
NEW_KEYS = ["new_string", "newString", "new_str"]
CONTENT_KEYS = ["content", "contents", "file_text", "text"]
CMD_KEYS = ["command", "cmd"]
DIR_KEYS = ["workdir", "cwd", "dir_path", "directory", "working_directory"]

# Tool names per abstract operation, in order of preference.
TOOL_NAMES = {
    "read": ["Read", "read", "read_file"],
    "edit": ["Edit", "edit", "replace", "str_replace_based_edit_tool"],
    "write": ["Write", "write", "write_file"],
    "shell": ["Bash", "bash", "run_shell_command", "exec_command", "shell_command",
              "shell", "local_shell"],
    "patch": ["apply_patch"],
}


class Tool:
    """One tool as offered by the agent: name, JSON schema, kind."""

    def __init__(self, name, schema, kind="function"):
        self.name = name
        self.schema = schema or {}
        self.kind = kind  # function, custom (free-form text input), local_shell

    @property
    def props(self):
        return self.schema.get("properties") or {}

    @property
    def required(self):
        return self.schema.get("required") or []

    def key(self, candidates):
        for k in candidates:
            if k in self.props:
                return k
        return None


def find_tool(tools, op):
    by_name = {t.name: t for t in tools}
    for n in TOOL_NAMES[op]:
        if n in by_name:
            return by_name[n]
    return None


def fill_required(tool, args):
    """Give every required argument the plan does not name a harmless value."""
    for k in tool.required:
        if k in args:
            continue
        t = (tool.props.get(k) or {}).get("type")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), "string")
        if t == "boolean":
            args[k] = False
        elif t in ("integer", "number"):
            args[k] = 1
        elif t == "array":
            args[k] = []
        elif t == "object":
            args[k] = {}
        else:
            args[k] = "stand-in step"
    return args


def step_call(step, tools, cwd):
    """The tool call (name, kind, args-or-text) that carries out one step.

    Raises LookupError when the agent offered no tool for it."""
    op = step["op"]
    if op in ("patch_update", "patch_add", "patch_delete"):
        tool = find_tool(tools, "patch")
        if tool is None:
            raise LookupError("no apply_patch tool")
        rel = step["file"]
        if op == "patch_update":
            body = (f"*** Update File: {rel}\n@@\n-{step['old']}\n+{step['new']}\n")
        elif op == "patch_add":
            body = f"*** Add File: {rel}\n" + "".join(
                "+" + line + "\n" for line in step["content"].splitlines())
        else:
            body = f"*** Delete File: {rel}\n"
        patch = "*** Begin Patch\n" + body + "*** End Patch"
        if tool.kind == "custom":
            return tool.name, "custom", patch
        key = tool.key(["input", "patch"]) or "input"
        return tool.name, "function", fill_required(tool, {key: patch})

    kind = {"read": "read", "edit": "edit", "write": "write", "shell": "shell"}[op]
    tool = find_tool(tools, kind)
    if tool is None:
        raise LookupError(f"no tool for {op}")
    if tool.kind == "local_shell":
        return tool.name, "local_shell", {"command": ["bash", "-lc", step["command"]],
                                          "workdir": cwd}
    args = {}
    if op == "shell":
        k = tool.key(CMD_KEYS) or "command"
        ctype = (tool.props.get(k) or {}).get("type")
        args[k] = ["bash", "-lc", step["command"]] if ctype == "array" else step["command"]
        d = tool.key(DIR_KEYS)
        if d and cwd:
            args[d] = cwd
        if "description" in tool.props:
            args["description"] = "Run a shell command for the user"
    else:
        args[tool.key(PATH_KEYS) or "file_path"] = step["path"]
        if op == "edit":
            args[tool.key(OLD_KEYS) or "old_string"] = step["old"]
            args[tool.key(NEW_KEYS) or "new_string"] = step["new"]
        elif op == "write":
            args[tool.key(CONTENT_KEYS) or "content"] = step["content"]
    return tool.name, "function", fill_required(tool, args)


class Plan:
    def __init__(self, path):
        with open(path) as f:
            doc = json.load(f)
        self.steps = doc["steps"]
        self.cwd = doc.get("cwd")
        self.final = doc.get("final", FINAL_TEXT)
        self.lock = threading.Lock()
        self.noted = set()
        self.offers = {}
        self.calls_file = None

    def next_call(self, tools, done):
        """The next call after `done` tool results, or None for the final text.

        A step the agent has no tool for is skipped. Each step handed out is
        noted once in calls.jsonl (with the tool it went to), so run.sh
        knows which operations the agent was asked to do, and how."""
        i = 0
        self.note_offers(tools)
        for n, step in enumerate(self.steps):
            try:
                call = step_call(step, tools, self.cwd)
            except LookupError:
                continue
            if i == done:
                self.note(n, step, call)
                return call
            i += 1
        return None

    def note_offers(self, tools):
        """offers.json: per label, the tool the agent offers for it (or null)."""
        if not self.calls_file:
            return
        with self.lock:
            for step in self.steps:
                label = step.get("label")
                if not label:
                    continue
                try:
                    name = step_call(step, tools, self.cwd)[0]
                except LookupError:
                    name = None
                if name or label not in self.offers:
                    self.offers[label] = name or self.offers.get(label)
            path = os.path.join(os.path.dirname(self.calls_file), "offers.json")
            with open(path + ".tmp", "w") as f:
                json.dump(self.offers, f)
            os.rename(path + ".tmp", path)

    def note(self, n, step, call):
        with self.lock:
            if n in self.noted or not self.calls_file:
                return
            self.noted.add(n)
            with open(self.calls_file, "a") as f:
                f.write(json.dumps({"step": n, "op": step["op"], "label": step.get("label"),
                                    "tool": call[0], "kind": call[1]}) + "\n")


_ids = iter(range(1, 1 << 30))
_ids_lock = threading.Lock()


def new_id(prefix):
    with _ids_lock:
        return f"{prefix}{next(_ids):04d}"


def sse(events):
    """Server-sent events; each is (event name or None, JSON object or raw string)."""
    out = []
    for name, data in events:
        if name:
            out.append(f"event: {name}\n")
        out.append("data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n")
    return "".join(out).encode()


# ---- OpenAI Responses (Codex) ---------------------------------------------

def responses_tools(body):
    tools = []
    for t in body.get("tools") or []:
        ty = t.get("type")
        if ty == "function":
            tools.append(Tool(t.get("name"), t.get("parameters")))
        elif ty == "custom":
            tools.append(Tool(t.get("name"), {}, "custom"))
        elif ty == "local_shell":
            tools.append(Tool("local_shell", {}, "local_shell"))
        elif ty == "namespace":
            for sub in t.get("tools") or []:
                if sub.get("type") == "function":
                    tools.append(Tool(sub.get("name"), sub.get("parameters")))
    return tools


def responses_done(body):
    items = body.get("input") or []
    if isinstance(items, str):
        return 0
    return sum(1 for it in items if isinstance(it, dict) and it.get("type") in (
        "function_call_output", "custom_tool_call_output", "local_shell_call_output"))


def responses_reply(plan, body):
    tools = responses_tools(body)
    call = plan.next_call(tools, responses_done(body)) if tools else None
    rid = new_id("resp_")
    model = body.get("model", "stand-in")
    if call is None:
        item = {"type": "message", "id": new_id("msg_"), "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": plan.final, "annotations": []}]}
    else:
        name, kind, args = call
        cid = new_id("call_")
        if kind == "custom":
            item = {"type": "custom_tool_call", "id": new_id("ctc_"), "status": "completed",
                    "call_id": cid, "name": name, "input": args}
        elif kind == "local_shell":
            item = {"type": "local_shell_call", "id": new_id("lsc_"), "status": "completed",
                    "call_id": cid, "action": {"type": "exec", **args}}
        else:
            item = {"type": "function_call", "id": new_id("fc_"), "status": "completed",
                    "call_id": cid, "name": name, "arguments": json.dumps(args)}
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 10, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 20}
    resp = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model,
            "status": "in_progress", "output": []}
    events = [("response.created", {"type": "response.created", "response": resp})]
    added = dict(item)
    if item["type"] == "message":
        added["content"] = []
        added["status"] = "in_progress"
    events.append(("response.output_item.added",
                   {"type": "response.output_item.added", "output_index": 0, "item": added}))
    if item["type"] == "message":
        events.append(("response.output_text.delta",
                       {"type": "response.output_text.delta", "item_id": item["id"],
                        "output_index": 0, "content_index": 0, "delta": plan.final}))
    events.append(("response.output_item.done",
                   {"type": "response.output_item.done", "output_index": 0, "item": item}))
    done = dict(resp, status="completed", output=[item], usage=usage)
    events.append(("response.completed", {"type": "response.completed", "response": done}))
    return sse(events), "text/event-stream"


# ---- OpenAI Chat Completions (opencode) -----------------------------------

def chat_tools(body):
    return [Tool((t.get("function") or {}).get("name"), (t.get("function") or {}).get("parameters"))
            for t in body.get("tools") or [] if t.get("type") == "function"]


def chat_reply(plan, body):
    tools = chat_tools(body)
    done = sum(1 for m in body.get("messages") or [] if m.get("role") == "tool")
    call = plan.next_call(tools, done) if tools else None
    cid, model, now = new_id("chatcmpl-"), body.get("model", "stand-in"), int(time.time())

    def chunk(delta, finish=None, usage=None):
        c = {"id": cid, "object": "chat.completion.chunk", "created": now, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage:
            c["usage"] = usage
        return (None, c)

    usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    if call is None:
        text = plan.final if tools else "Stand-in answer"
        msg = {"role": "assistant", "content": text}
        events = [chunk({"role": "assistant", "content": ""}), chunk({"content": text}),
                  chunk({}, "stop")]
        finish = "stop"
    else:
        name, _, args = call
        tc = {"index": 0, "id": new_id("call_"), "type": "function",
              "function": {"name": name, "arguments": json.dumps(args)}}
        msg = {"role": "assistant", "content": None, "tool_calls": [dict(tc)]}
        del msg["tool_calls"][0]["index"]
        events = [chunk({"role": "assistant", "content": None, "tool_calls": [tc]}),
                  chunk({}, "tool_calls")]
        finish = "tool_calls"
    if not body.get("stream"):
        return json.dumps({"id": cid, "object": "chat.completion", "created": now, "model": model,
                           "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                           "usage": usage}).encode(), "application/json"
    events.append((None, {"id": cid, "object": "chat.completion.chunk", "created": now,
                          "model": model, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return sse(events), "text/event-stream"


# ---- Anthropic Messages (Claude Code) -------------------------------------

def anthropic_reply(plan, body):
    tools = [Tool(t.get("name"), t.get("input_schema")) for t in body.get("tools") or []
             if t.get("name")]
    done = 0
    for m in body.get("messages") or []:
        if m.get("role") == "user" and isinstance(m.get("content"), list):
            done += sum(1 for b in m["content"] if b.get("type") == "tool_result")
    # Claude Code's side requests (titles, summaries) carry no tools.
    call = plan.next_call(tools, done) if find_tool(tools, "shell") else None
    model = body.get("model", "stand-in")
    mid = new_id("msg_")
    usage = {"input_tokens": 10, "output_tokens": 10, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0}
    if call is None:
        text = plan.final if tools else "Stand-in answer"
        block = {"type": "text", "text": text}
        stop = "end_turn"
    else:
        name, _, args = call
        block = {"type": "tool_use", "id": new_id("toolu_"), "name": name, "input": args}
        stop = "tool_use"
    if not body.get("stream"):
        return json.dumps({"id": mid, "type": "message", "role": "assistant", "model": model,
                           "content": [block], "stop_reason": stop, "stop_sequence": None,
                           "usage": usage}).encode(), "application/json"
    start = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
             "stop_reason": None, "stop_sequence": None, "usage": dict(usage, output_tokens=1)}
    events = [("message_start", {"type": "message_start", "message": start})]
    if block["type"] == "text":
        events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}}))
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta",
                                                         "text": block["text"]}}))
    else:
        events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": dict(block, input={})}))
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "input_json_delta",
                                                         "partial_json": json.dumps(block["input"])}}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": 10}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return sse(events), "text/event-stream"


# ---- Gemini (Gemini CLI) --------------------------------------------------

def gemini_tools(body):
    tools = []
    for t in body.get("tools") or []:
        for fd in t.get("functionDeclarations") or []:
            schema = fd.get("parametersJsonSchema") or fd.get("parameters") or {}
            tools.append(Tool(fd.get("name"), lower_types(schema)))
    return tools


def lower_types(schema):
    """Gemini schemas may spell types in capitals (STRING, OBJECT)."""
    if isinstance(schema, dict):
        out = {k: lower_types(v) for k, v in schema.items()}
        if isinstance(out.get("type"), str):
            out["type"] = out["type"].lower()
        return out
    if isinstance(schema, list):
        return [lower_types(x) for x in schema]
    return schema


def from_schema(schema, name=""):
    """A small value that fits a JSON schema: the user speaks next, the task
    is simple, nothing loops (the lowest number, the first choice)."""
    t = schema.get("type")
    if schema.get("enum"):
        return "user" if "user" in schema["enum"] else schema["enum"][0]
    if t == "object":
        return {k: from_schema(v, k) for k, v in (schema.get("properties") or {}).items()}
    if t == "array":
        return []
    if t == "boolean":
        return False
    if t in ("integer", "number"):
        return schema.get("minimum", 1 if t == "integer" else 0.0)
    if name == "next_speaker":
        return "user"
    return "stand-in"


def gemini_reply(plan, body, stream):
    tools = gemini_tools(body)
    done = sum(1 for c in body.get("contents") or [] for p in c.get("parts") or []
               if "functionResponse" in p)
    gc = body.get("generationConfig") or {}
    call = plan.next_call(tools, done) if tools else None
    if call is not None:
        name, _, args = call
        parts = [{"functionCall": {"name": name, "args": args}}]
    elif gc.get("responseMimeType") == "application/json":
        # Gemini CLI's own checks (which model to route to, who speaks next,
        # loop detection) want JSON of a given schema.
        schema = lower_types(gc.get("responseJsonSchema") or gc.get("responseSchema") or {})
        parts = [{"text": json.dumps(from_schema(schema))}]
    else:
        parts = [{"text": plan.final if tools else "Stand-in answer"}]
    resp = {"candidates": [{"content": {"role": "model", "parts": parts},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 10,
                              "totalTokenCount": 20},
            "modelVersion": "stand-in", "responseId": new_id("gem_")}
    if stream:
        return sse([(None, resp)]), "text/event-stream"
    return json.dumps(resp).encode(), "application/json"


# ---- HTTP -------------------------------------------------------------------

# Codex's metadata for the stand-in model: its shell tool is exec_command,
# its file edits go through apply_patch as a free-form (custom) tool.
CODEX_MODEL = {
    "slug": "stand-in", "display_name": "stand-in", "description": "agentguard stand-in",
    "default_reasoning_level": "low",
    "supported_reasoning_levels": [{"effort": "low", "description": "low"}],
    "shell_type": "unified_exec", "visibility": "list", "supported_in_api": True,
    "priority": 1, "upgrade": None, "base_instructions": "You are a coding agent.",
    "supports_reasoning_summaries": False, "default_reasoning_summary": "none",
    "support_verbosity": False, "default_verbosity": None,
    "apply_patch_tool_type": "freeform", "web_search_tool_type": "text",
    "truncation_policy": {"mode": "bytes", "limit": 10000},
    "supports_parallel_tool_calls": False, "supports_image_detail_original": False,
    "context_window": 200000, "max_context_window": 200000,
    "auto_compact_token_limit": None, "effective_context_window_percent": 95,
    "experimental_supported_tools": [], "input_modalities": ["text"],
    "supports_search_tool": False,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentguard-standin/1"

    def log_message(self, fmt, *a):
        sys.stderr.write("standin: " + (fmt % a) + "\n")

    def _send(self, code, data, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if ctype == "text/event-stream":
            self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        enc = (self.headers.get("Content-Encoding") or "").lower()
        if enc in ("gzip", "deflate"):
            raw = zlib.decompress(raw, 47)
        elif enc == "zstd":
            raise ValueError("zstd request bodies are not supported by the stand-in")
        return raw

    def _log(self, raw):
        d = self.server.log_dir
        if not d:
            return
        n = self.server.next_seq()
        name = re.sub(r"[^A-Za-z0-9]+", "_", self.path.split("?")[0]).strip("_")[:60]
        os.makedirs(os.path.join(d, "requests"), exist_ok=True)
        with open(os.path.join(d, "requests", f"{n:03d}-{self.command}-{name}.json"), "wb") as f:
            f.write(raw or b"{}")

    def do_GET(self):
        self._log(b"")
        path = self.path.split("?")[0]
        if path.endswith("/models"):
            # Codex and others may list models: offer the one the plan uses.
            # Codex reads "models" (its model metadata, which decides which
            # tools it offers: apply_patch only where apply_patch_tool_type
            # says so); OpenAI-style clients read "data".
            data = {"object": "list", "data": [{"id": "stand-in", "object": "model",
                                                "created": 0, "owned_by": "agentguard"}],
                    "models": [CODEX_MODEL]}
            return self._send(200, json.dumps(data).encode(), "application/json")
        self._send(404, b'{"error":{"message":"not here"}}', "application/json")

    def do_HEAD(self):
        self._send(200, b"", "text/plain")

    def do_POST(self):
        try:
            raw = self._body()
        except Exception as e:  # a body the stand-in cannot read is a 400, said why
            return self._send(400, json.dumps({"error": {"message": str(e)}}).encode(),
                              "application/json")
        self._log(raw)
        path = self.path.split("?")[0]
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._send(400, b'{"error":{"message":"not JSON"}}', "application/json")
        plan = self.server.plan
        if path.endswith("/responses"):
            data, ctype = responses_reply(plan, body)
        elif path.endswith("/chat/completions"):
            data, ctype = chat_reply(plan, body)
        elif path.endswith("/messages/count_tokens"):
            data, ctype = b'{"input_tokens": 10}', "application/json"
        elif path.endswith("/messages"):
            data, ctype = anthropic_reply(plan, body)
        elif path.endswith(":countTokens"):
            data, ctype = b'{"totalTokens": 10}', "application/json"
        elif path.endswith(":streamGenerateContent"):
            data, ctype = gemini_reply(plan, body, True)
        elif path.endswith(":generateContent"):
            data, ctype = gemini_reply(plan, body, False)
        else:
            # Telemetry and the like: accept and drop.
            data, ctype = b"{}", "application/json"
        self._send(200, data, ctype)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, plan, log_dir):
        super().__init__(addr, Handler)
        self.plan = plan
        self.log_dir = log_dir
        self._seq = 0
        self._lock = threading.Lock()

    def next_seq(self):
        with self._lock:
            self._seq += 1
            return self._seq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=900,
                    help="exit after this many seconds whatever happens")
    a = ap.parse_args()
    if a.log:
        os.makedirs(a.log, exist_ok=True)
    plan = Plan(a.plan)
    if a.log:
        plan.calls_file = os.path.join(a.log, "calls.jsonl")
    srv = Server(("127.0.0.1", a.port), plan, a.log)
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, a.port_file)
    # Never outlive a test run that forgot it.
    t = threading.Timer(a.lifetime, lambda: os._exit(0))
    t.daemon = True
    t.start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
