#!/usr/bin/env python3
"""make bench: each workload bare, guarded and (where one exists) under a
peer, interleaved A B C A B C ... after a warm-up; min/median/max of wall
and CPU time, peak memory, and the ratio to the bare run.

The kernel layer: the dynamic workloads also run under `agentguard run`
with the kernel layer (run+kernel) and without it (run), and the ratio of
the two is what the layer costs them (bar 1.03). A static busybox rm -rf
under a snapshot rule shows what it costs a program the library cannot
reach, as a ratio to bare.

PostgreSQL (a server of its own on a unix socket): ordinary statements
no rule matches through libpq and through node's pg, which speaks the
protocol itself and is read at the socket (bar 1.05 each), and a DROP
TABLE of a 100 MB table, whose ratio is what its pre-image adds.

Environment: BENCH_REPS (default 5), BENCH_ONLY (comma-separated workload
names). Results also go to build/bench/results.json."""
import atexit, json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
LIB = os.path.join(BUILD, "libagentguard.so")
AG = os.path.join(BUILD, "agentguard")
OUT = os.path.join(BUILD, "bench")
REPS = int(os.environ.get("BENCH_REPS", "5"))
ONLY = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w]
TMP = tempfile.mkdtemp(prefix="agbench.")
# The state dir sits outside /tmp, as the default one (~/.local/state) does:
# under the floor the ancestors of the state dir are restricted, and a /tmp
# restricted would send every compiler temp file through the supervisor.
STATE = os.environ.get("BENCH_STATE") or os.path.join(OUT, "state")
CALLS = 100000
# The system's python3, not whatever shim comes first on PATH (pyenv, a
# venv): a shell script in front of it would be measured too.
PY = "/usr/bin/python3"


def sh(cmd, **kw):
    subprocess.run(cmd, shell=True, check=True, **kw)


def snoopy_lib():
    """Debian's snoopy, downloaded and unpacked under build/ (never installed)."""
    d = os.path.join(OUT, "snoopy")
    for root, _, files in os.walk(d):
        if "libsnoopy.so" in files:
            return os.path.join(root, "libsnoopy.so")
    os.makedirs(d, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", "snoopy"], cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deb = [f for f in os.listdir(d) if f.endswith(".deb")][0]
        subprocess.run(["dpkg-deb", "-x", deb, "root"], cwd=d, check=True)
    except (subprocess.CalledProcessError, IndexError):
        print("bench: snoopy could not be downloaded; the peer column is skipped", file=sys.stderr)
        return None
    return snoopy_lib()


def run(argv, env, cwd):
    """Wall seconds, CPU seconds (user+sys), peak RSS KiB of one run."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {argv} failed ({status})")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def envs(rules=None, workspace=None):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("AGENTGUARD_") and k != "LD_PRELOAD"}
    state = STATE
    guard = dict(base, LD_PRELOAD=LIB, AGENTGUARD_STATE_DIR=state)
    if rules:
        guard["AGENTGUARD_RULES"] = rules
    if workspace:
        guard["AGENTGUARD_WORKSPACE"] = workspace
    out = {"bare": base, "agentguard": guard}
    snoopy = snoopy_lib()
    if snoopy:
        out["snoopy"] = dict(base, LD_PRELOAD=snoopy)
    return out


def run_variants(out, kernel_only=False, rules=None, workspace=None):
    """agentguard run with and without the kernel layer: (env, argv prefix)."""
    base = out["bare"]
    state = STATE
    pre = [AG, "run", "--state-dir", state]
    if rules:
        pre += ["--rules", rules]
    if workspace:
        pre += ["--workspace", workspace]
    if not kernel_only:
        out["run"] = (base, pre + ["--no-kernel", "--"])
    out["run+kernel"] = (base, pre + ["--require-kernel", "--"])
    return out


def reset_state():
    shutil.rmtree(STATE, ignore_errors=True)


def make_tree(d, n=10000):
    shutil.rmtree(d, ignore_errors=True)
    for i in range(100):
        sub = os.path.join(d, f"d{i:03}")
        os.makedirs(sub)
        for j in range(n // 100):
            with open(os.path.join(sub, f"f{j:03}.txt"), "w") as f:
                f.write("x" * 64)


def make_project(d, n=200):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    objs = []
    for i in range(n):
        with open(os.path.join(d, f"m{i}.c"), "w") as f:
            f.write(f"#include <stdio.h>\n#include <string.h>\n"
                    f"int f{i}(int x) {{ char b[64]; snprintf(b, sizeof b, \"%d\", x * {i});"
                    f" return (int)strlen(b) + x; }}\n")
        objs.append(f"m{i}.o")
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write("int main(void) { return 0; }\n")
    with open(os.path.join(d, "Makefile"), "w") as f:
        f.write(f"all: prog\nprog: main.o {' '.join(objs)}\n\t$(CC) -o $@ $^\n"
                "%.o: %.c\n\t$(CC) -O1 -c $< -o $@\nclean:\n\trm -f *.o prog\n")


def make_sources(d, n=500):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    body = "".join(f"int f{j}(int x) {{ return x * {j}; }}\n" for j in range(120))
    for i in range(n):
        with open(os.path.join(d, f"file{i}.c"), "w") as f:
            f.write(body)


def pg_server():
    """A PostgreSQL of the bench's own on a unix socket under TMP (as the
    e2e tests start theirs); its socket dir, or None when none is installed.
    As root, the server runs as the postgres account."""
    bins = sorted((d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int) \
        if os.path.isdir("/usr/lib/postgresql") else []
    if not bins:
        return None
    pgbin = f"/usr/lib/postgresql/{bins[-1]}/bin"
    d = os.path.join(TMP, "pg")
    os.makedirs(d)
    pre = []
    if os.geteuid() == 0:
        os.chmod(TMP, 0o711)
        shutil.chown(d, "postgres", "postgres")
        pre = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True,
                                                     text=True).stdout.strip()
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    subprocess.run(pre + [f"{pgbin}/initdb", "-D", f"{d}/data", "-U", user, "--auth=trust",
                          "--no-sync"], check=True, **quiet)
    subprocess.run(pre + [f"{pgbin}/pg_ctl", "-D", f"{d}/data", "-l", f"{d}/log", "-w", "-o",
                          f"-k {d} -c listen_addresses='' -c fsync=off", "start"],
                   check=True, **quiet)
    stop = pre + [f"{pgbin}/pg_ctl", "-D", f"{d}/data", "-m", "immediate", "stop"]
    # However the bench ends.
    atexit.register(lambda: subprocess.run(stop, **quiet))
    subprocess.run(["psql", "-X", "-q", "-h", d, "-d", "postgres", "-c", "CREATE DATABASE bench"],
                   check=True, **quiet)
    return d


def pg_sql(sock, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", sock, "-d", "bench",
                    "-c", sql], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))


def pg_workloads(ws):
    sock = pg_server()
    if not sock:
        return []
    pg_sql(sock, "CREATE TABLE acct(id int PRIMARY KEY, bal int); "
                 "INSERT INTO acct SELECT g, 0 FROM generate_series(1, 10000) g")
    # pgbench's simple-update shape, through libpq (psycopg2) and through
    # psql: statements no rule matches.
    stmts = ("import psycopg2, sys\n"
             "c = psycopg2.connect(host=sys.argv[1], dbname='bench'); c.autocommit = True\n"
             "k = c.cursor()\n"
             "for i in range(3000):\n"
             "    a = i * 7919 % 10000 + 1\n"
             "    k.execute('UPDATE acct SET bal = bal + 1 WHERE id = %s', (a,))\n"
             "    k.execute('SELECT bal FROM acct WHERE id = %s', (a,))\n"
             "    k.fetchone()\n")
    # The same through node's pg (no libpq: read on the wire), with
    # parameters: Parse, Bind, Execute for each.
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True,
                                                     text=True).stdout.strip()
    node_stmts = ("const {Client} = require('pg');\n"
                  "(async () => {\n"
                  "  const c = new Client({host: process.argv[1], database: 'bench', user: process.argv[2]});\n"
                  "  await c.connect();\n"
                  "  for (let i = 0; i < 3000; i++) {\n"
                  "    const a = i * 7919 % 10000 + 1;\n"
                  "    await c.query('UPDATE acct SET bal = bal + 1 WHERE id = $1', [a]);\n"
                  "    await c.query('SELECT bal FROM acct WHERE id = $1', [a]);\n"
                  "  }\n"
                  "  await c.end();\n"
                  "})().catch(e => { console.error(e); process.exit(1); });\n")
    node = shutil.which("node")
    mods = os.environ.get("AG_NODE_MODULES", "/opt/agentguard-test/node_modules")
    node_envs = {k: dict(v, NODE_PATH=mods) for k, v in envs(workspace=ws).items()}
    big = lambda: pg_sql(sock, "DROP TABLE IF EXISTS big; CREATE TABLE big(id int, pad text); "
                               "INSERT INTO big SELECT g, repeat('x', 90) FROM "
                               "generate_series(1, 850000) g")
    return [
        ("pg_stmts", "6,000 UPDATE/SELECT by key through libpq (psycopg2), no rule matches",
         1.05, ["/usr/bin/python3", "-c", stmts, sock], envs(workspace=ws), ws, None, False),
    ] + ([
        ("pg_node", "6,000 UPDATE/SELECT by key through node's pg (the wire), no rule matches",
         1.05, [node, "-e", node_stmts, sock, user], node_envs, ws, None, False),
    ] if node and os.path.isdir(os.path.join(mods, "pg")) else []) + [
        ("pg_drop100", "DROP TABLE of a 100 MB table: what its pre-image (pg_dump) adds",
         None, ["psql", "-X", "-q", "-h", sock, "-d", "bench", "-c", "DROP TABLE big"],
         envs(workspace=ws), ws, big, False),
    ]


def workloads():
    ws = os.path.join(TMP, "ws")
    os.makedirs(ws, exist_ok=True)
    allow_all = os.path.join(TMP, "allow.yaml")
    with open(allow_all, "w") as f:
        f.write("version: 1\nrules: []\n")
    callloop = os.path.join(OUT, "callloop")
    subprocess.run(["cc", "-O2", "-o", callloop, os.path.join(ROOT, "bench/callloop.c")], check=True)
    editloop = os.path.join(OUT, "editloop")
    subprocess.run(["cc", "-O2", "-o", editloop, os.path.join(ROOT, "bench/editloop.c")], check=True)
    src = os.path.join(ws, "src")
    tree = os.path.join(ws, "tree")
    proj = os.path.join(ws, "proj")
    scratch = os.path.join(TMP, "scratch")
    os.makedirs(scratch, exist_ok=True)
    busybox = shutil.which("busybox")
    return [
        ("spawn", "1,000 spawns of /bin/true from a shell loop", 1.15,
         ["sh", "-c", "i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done"],
         run_variants(envs(), workspace=ws), ws, None, True),
        ("rm_snapshot", "rm -rf of a 10,000-file tree, every file snapshotted", 2.0,
         ["rm", "-rf", tree], run_variants(envs(workspace=ws), workspace=ws), ws,
         lambda: make_tree(tree), False),
        ("rm_audit", "rm -rf of a 10,000-file tree, allow + audit only", 1.3,
         ["rm", "-rf", tree], run_variants(envs(rules=allow_all, workspace=ws), rules=allow_all,
                                            workspace=ws), ws, lambda: make_tree(tree), False),
        ("rm_static", "static busybox rm -rf of a 10,000-file tree, every file snapshotted",
         None, [busybox or "busybox", "rm", "-rf", tree],
         run_variants({"bare": envs()["bare"]}, kernel_only=True, workspace=ws), ws,
         lambda: make_tree(tree), False),
        ("build", "make -j2 of a generated 200-file C project", 1.03,
         ["make", "-s", "-j2"], run_variants(envs(workspace=ws), workspace=ws), proj,
         lambda: (make_project(proj) if not os.path.exists(proj) else None,
                  sh("make -s clean", cwd=proj)), False),
        ("edit", "editor saves: 4 passes of open-write-close over 500 existing 4 KiB "
         "sources (500 kept by 'write')", None,
         [editloop, "500", "4"], run_variants(envs(workspace=ws), workspace=ws), src,
         lambda: make_sources(src), False),
        ("calls", f"{CALLS:,} hooked calls no rule matches (unlink of a missing file)", None,
         # The workspace is elsewhere: in a temp dir no default rule matches.
         [callloop, str(CALLS)], envs(workspace=ws), scratch, None, False),
        ("rm_synced", "rm -rf of a 10,000-file tree already synced to disk, every file "
         "snapshotted", 1.0, ["rm", "-rf", tree], run_variants(envs(workspace=ws), workspace=ws),
         ws, lambda: (make_tree(tree), os.sync()), False),
        ("sqlite_distinct", "10,000 distinct SQLite statements through python3 (each text "
         "new: prepared, classified and judged once)", 1.05,
         [PY, "-c",
          "import sqlite3, os\n"
          "p = 'bench.db'\n"
          "os.path.exists(p) and os.remove(p)\n"
          "c = sqlite3.connect(p)\nc.execute('create table t(a, b)')\n"
          "for i in range(10000):\n    c.execute(f'insert into t values({i}, \\'x{i}\\')')\n"
          "    c.commit() if i % 100 == 0 else None\n"
          "c.commit()\n"], run_variants(envs(workspace=ws), workspace=ws), ws, None, False),
        ("sqlite", "10,000 SQLite INSERTs through python3's sqlite3 module", None,
         [PY, "-c",
          "import sqlite3, os\n"
          "p = 'bench.db'\n"
          "os.path.exists(p) and os.remove(p)\n"
          "c = sqlite3.connect(p)\nc.execute('create table t(a, b)')\n"
          "for i in range(10000):\n    c.execute('insert into t values(?, ?)', (i, 'x' * 20))\n"
          "    c.commit() if i % 100 == 0 else None\n"
          "c.commit()\n"], run_variants(envs(workspace=ws), workspace=ws), ws, None, False),
    ] + (pg_workloads(ws) if not ONLY or any(n.startswith("pg_") for n in ONLY) else [])


def summary(xs):
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


def callgrind_ir(argv, env, cwd):
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                       env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    for line in p.stderr.splitlines():
        if "refs:" in line:
            return int(line.split("refs:")[1].replace(",", ""))
    raise SystemExit(f"bench: no instruction count from valgrind for {argv}")


def strace_calls(argv, env, cwd, pre=()):
    """System calls argv makes; pre (agentguard run ... --) goes outside
    strace, so that only what the process itself makes is counted."""
    out = os.path.join(TMP, "strace.out")
    subprocess.run(list(pre) + ["strace", "-f", "-o", out] + argv, env=env, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        return sum(1 for _ in f)


def minor_faults(argv, env, reps=20):
    xs = []
    for _ in range(reps):
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
        _, _, ru = os.wait4(p.pid, 0)
        xs.append(ru.ru_minflt)
    return statistics.median(xs)


def counts():
    """What does not depend on load (the goals of the performance issue):
    instructions (callgrind) and system calls (strace) of a hooked call no
    rule matches and of a process's first decision under `run`, and the
    page faults /bin/true takes above an empty preload."""
    if not shutil.which("valgrind") or not shutil.which("strace"):
        print("counts         skipped: valgrind and strace are needed")
        return {}
    callloop = os.path.join(OUT, "callloop")
    scratch = os.path.join(TMP, "scratch")
    os.makedirs(scratch, exist_ok=True)
    st = os.path.join(TMP, "counts-state")
    e = envs(workspace=os.path.join(TMP, "ws"))
    g = dict(e["agentguard"], AGENTGUARD_STATE_DIR=st)
    per = lambda env: (callgrind_ir([callloop, "3000"], env, scratch) -
                       callgrind_ir([callloop, "1000"], env, scratch)) / 2000
    call_ir = per(g) - per(e["bare"])
    call_sys = ((strace_calls([callloop, "2000"], g, scratch) -
                 strace_calls([callloop, "1000"], g, scratch)) -
                (strace_calls([callloop, "2000"], e["bare"], scratch) -
                 strace_calls([callloop, "1000"], e["bare"], scratch))) / 1000
    run = [AG, "run", "--no-kernel", "--state-dir", st, "--workspace", os.path.join(TMP, "ws"), "--"]
    dec_ir = (callgrind_ir(run + ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                 callloop, "1"], e["bare"], scratch) -
              callgrind_ir(run + ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                  callloop, "0"], e["bare"], scratch))
    dec_sys = (strace_calls([callloop, "1"], e["bare"], scratch, pre=run) -
               strace_calls([callloop, "0"], e["bare"], scratch, pre=run))
    empty = os.path.join(OUT, "empty.so")
    with open(os.path.join(TMP, "empty.c"), "w") as f:
        f.write("void agentguard_bench_empty(void) {}\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", empty, os.path.join(TMP, "empty.c")], check=True)
    faults = (minor_faults(["/bin/true"], dict(e["bare"], LD_PRELOAD=LIB, AGENTGUARD_STATE_DIR=st)) -
              minor_faults(["/bin/true"], dict(e["bare"], LD_PRELOAD=empty)))
    # Page faults a hooked call takes (the spool's pages): perf counts the
    # traps; getrusage would also count the pages faulted in ahead, in
    # one call per 256 KiB (lib/spool.c populate).
    call_pf = None
    if shutil.which("perf"):
        def traps(n, env):
            shutil.rmtree(st, ignore_errors=True)
            p = subprocess.run(["perf", "stat", "-x,", "-e", "page-faults", callloop, str(n)],
                               env=env, cwd=scratch, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            for line in p.stderr.splitlines():
                if "page-faults" in line and line.split(",")[0].isdigit():
                    return int(line.split(",")[0])
            return None
        a, b = traps(10000, g), traps(110000, g)
        if a is not None and b is not None:
            call_pf = (b - a) / 100000
    shutil.rmtree(st, ignore_errors=True)
    rows = [("hooked call no rule matches: instructions", call_ir, 800),
            ("hooked call no rule matches: system calls of its own", call_sys, 0),
            ("a deciding process: instructions above one that decides nothing", dec_ir, 200000),
            ("a deciding process: system calls above one that decides nothing", dec_sys, 15),
            ("/bin/true: page faults above an empty preload", faults, 3)]
    if call_pf is not None:
        rows.insert(2, ("hooked call no rule matches: page faults (perf)", call_pf, 0.01))
    for title, v, goal in rows:
        shown = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"
        print(f"counts         {title}: {shown}   goal <= {goal:,}  "
              f"{'met' if v <= goal else 'MISSED'}")
    return {t: {"value": v, "goal": goal} for t, v, goal in rows}


AUDIT_EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "1000000"))


def audit_scale():
    """The log at scale: one session of AUDIT_EVENTS rows (hooked calls no
    rule matches, five processes), the rate at which ingest moves them into
    audit.db, then report and sessions of it (median of REPS), against the
    goals: ingest >= 250k events/s, report <= 0.5 s, sessions independent
    of the number of events (timed again on a session of a tenth)."""
    callloop = os.path.join(OUT, "callloop")
    scratch = os.path.join(TMP, "scratch")
    os.makedirs(scratch, exist_ok=True)
    out = {}
    for n in (AUDIT_EVENTS // 10, AUDIT_EVENTS):
        st = os.path.join(TMP, f"audit{n}")
        shutil.rmtree(st, ignore_errors=True)
        env = dict(os.environ, LD_PRELOAD=LIB, AGENTGUARD_STATE_DIR=st,
                   AGENTGUARD_WORKSPACE=os.path.join(TMP, "ws"))
        # One session: the guarded shell names it in its children's
        # environment.
        per = n // 5
        subprocess.run(["sh", "-c", f"for i in 1 2 3 4 5; do {callloop} {per}; done"],
                       env=env, cwd=scratch, check=True)
        plain = dict(os.environ, AGENTGUARD_STATE_DIR=st)
        t = time.monotonic()
        subprocess.run([AG, "sessions"], env=plain, stdout=subprocess.DEVNULL, check=True)
        ingest = time.monotonic() - t
        times = {}
        for cmd in ("report", "sessions"):
            xs = []
            for _ in range(REPS):
                t = time.monotonic()
                subprocess.run([AG, cmd], env=plain, stdout=subprocess.DEVNULL, check=True)
                xs.append(time.monotonic() - t)
            times[cmd] = statistics.median(xs)
        out[n] = {"ingest_s": ingest, "ingest_per_s": n / ingest, **times}
        shutil.rmtree(st, ignore_errors=True)
    big, small = out[AUDIT_EVENTS], out[AUDIT_EVENTS // 10]
    print(f"audit          ingest of {AUDIT_EVENTS:,} events: {big['ingest_s']:.2f} s, "
          f"{big['ingest_per_s']:,.0f} events/s   >= 250,000/s  "
          f"{'met' if big['ingest_per_s'] >= 250000 else 'MISSED'}")
    print(f"               report of them: {big['report']:.3f} s   <= 0.5 s  "
          f"{'met' if big['report'] <= 0.5 else 'MISSED'}")
    print(f"               sessions: {big['sessions']:.3f} s ({small['sessions']:.3f} s at a tenth)")
    return {str(k): v for k, v in out.items()}


def main():
    if not (os.path.exists(LIB) and os.path.exists(AG)):
        raise SystemExit("bench: build first (make)")
    os.makedirs(OUT, exist_ok=True)
    results = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "reps": REPS,
               "date": time.strftime("%Y-%m-%d %H:%M"), "workloads": []}
    print(f"agentguard bench: {REPS} interleaved runs after a warm-up, {os.cpu_count()} CPUs")
    print(f"{'workload':<14} {'variant':<11} {'wall s (min/med/max)':<26} "
          f"{'cpu s (min/med/max)':<26} {'peak MiB':>8} {'ratio':>7}  bar")
    for name, title, bar, argv, variants, cwd, setup, use_peer in workloads():
        if ONLY and name not in ONLY:
            continue
        names = [v for v in variants if v != "snoopy" or use_peer]
        samples = {v: [] for v in names}
        for rep in range(REPS + 1):
            for v in names:
                if setup:
                    setup()
                reset_state()
                env, pre = variants[v] if isinstance(variants[v], tuple) else (variants[v], [])
                s = run(pre + argv, env, cwd)
                if rep:
                    samples[v].append(s)
        base = statistics.median(s[0] for s in samples["bare"])
        entry = {"name": name, "title": title, "bar": bar, "variants": {}}
        for v in names:
            wall = [s[0] for s in samples[v]]
            cpu = [s[1] for s in samples[v]]
            rss = max(s[2] for s in samples[v])
            ratio = statistics.median(wall) / base
            entry["variants"][v] = {"wall": summary(wall), "cpu": summary(cpu),
                                    "peak_kib": rss, "ratio": ratio}
            w, c = summary(wall), summary(cpu)
            mark = ""
            if v == "agentguard" and bar:
                mark = f"<= {bar}  {'met' if ratio <= bar else 'MISSED'}"
            print(f"{name:<14} {v:<11} {w['min']:7.3f} {w['median']:7.3f} {w['max']:7.3f}    "
                  f"{c['min']:7.3f} {c['median']:7.3f} {c['max']:7.3f}    "
                  f"{rss / 1024:8.1f} {ratio:6.2f}x  {mark}")
        if "run" in entry["variants"] and "run+kernel" in entry["variants"]:
            k = (entry["variants"]["run+kernel"]["wall"]["median"] /
                 entry["variants"]["run"]["wall"]["median"])
            entry["kernel_ratio"] = k
            print(f"{'':<14} kernel layer: {k:.3f}x of the same run without it   "
                  f"<= 1.03  {'met' if k <= 1.03 else 'MISSED'}")
        if name == "calls":
            g = entry["variants"]["agentguard"]["wall"]["median"]
            per = (g - base) / CALLS * 1e9
            entry["per_call_ns"] = per
            print(f"{'':<14} per hooked call (audit row included): {per:.0f} ns   "
                  f"<= 1000 ns  {'met' if per <= 1000 else 'MISSED'}")
        results["workloads"].append(entry)
    if not ONLY or "audit" in ONLY:
        results["audit"] = audit_scale()
    if not ONLY or "counts" in ONLY:
        results["counts"] = counts()
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"results: {os.path.relpath(os.path.join(OUT, 'results.json'), ROOT)}")
    shutil.rmtree(TMP, ignore_errors=True)
    shutil.rmtree(STATE, ignore_errors=True)


if __name__ == "__main__":
    main()
