# agentguard — see README.md. Everything is built into build/.
#
#   make            build/libagentguard.so and build/agentguard
#   make test       unit tests (Criterion) and end-to-end tests
#   make demo       a scripted agent damaging a scratch workspace, then its report
#   make bench      speed ratios against the bare run
#   make install    PREFIX=/usr/local DESTDIR=

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   := build
OPT     ?= -O2 -g
CFLAGS  += $(OPT) -std=gnu11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden \
           -D_GNU_SOURCE -pthread -Ilib
LDFLAGS += -pthread

# The core: pure parts plus what both the library and the CLI need.
CORE_SRC := lib/names.c lib/util.c lib/path.c lib/hash.c lib/match.c \
            lib/layers.c lib/policy.c lib/ruleindex.c lib/pimage.c lib/decide.c lib/cmdview.c lib/sqlclass.c lib/sqlconns.c lib/sqltargets.c lib/gitrefs.c lib/spool.c \
            lib/session.c lib/snapshot.c lib/launch.c
# Only in the preload library: the guard and the interposers.
PRELOAD_SRC := lib/real.c lib/gate.c lib/floor.c lib/guard.c lib/lazy.c $(sort $(wildcard lib/hooks/*.c))
# Only in the CLI and tests: the audit database.
AUDIT_SRC := lib/audit.c
CLI_SRC   := $(sort $(wildcard tools/*.c))
UNIT_SRC  := $(sort $(wildcard test/unit/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJ    := $(call obj,$(CORE_SRC)) $(BUILD)/obj/lib/default_rules.o
PRELOAD_OBJ := $(call obj,$(PRELOAD_SRC))
AUDIT_OBJ   := $(call obj,$(AUDIT_SRC))
CLI_OBJ     := $(call obj,$(CLI_SRC))
UNIT_OBJ    := $(call obj,$(UNIT_SRC))

# libyaml and nettle are loaded on first use (lib/lazy.c), not at every exec.
LIB_LIBS  := -ldl
CLI_LIBS  := -lyaml -lnettle -lsqlite3 -ljansson -ldl
TEST_LIBS := $(CLI_LIBS) -lcriterion

LIBSO := $(BUILD)/libagentguard.so
CLI   := $(BUILD)/agentguard
UNIT  := $(BUILD)/test/unit
DECIDELOOP := $(BUILD)/test/decideloop

all: deps-check $(LIBSO) $(CLI)

# One clear message naming the Debian packages when a build dependency is missing.
DEPS_HEADERS := yaml.h:libyaml-dev nettle/sha2.h:nettle-dev sqlite3.h:libsqlite3-dev \
                jansson.h:libjansson-dev
deps-check:
	@missing=""; for pair in $(DEPS_HEADERS); do h=$${pair%%:*}; p=$${pair##*:}; \
	  printf '#include <%s>\n' "$$h" | $(CC) -E -x c - >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; if [ -n "$$missing" ]; then \
	  echo "agentguard: missing build dependencies; install them with:" >&2; \
	  echo "  apt-get install$$missing" >&2; exit 1; fi

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# rules/default.yaml is compiled into the library and the CLI.
RULES_HASH = -DRULES_HASH="\"$$(sha256sum rules/default.yaml | cut -c1-64)\""
$(BUILD)/obj/lib/default_rules.o: lib/default_rules.S rules/default.yaml
	@mkdir -p $(dir $@)
	$(CC) -c -Ilib -DRULES_FILE='"rules/default.yaml"' $(RULES_HASH) $< -o $@

# A rules image (lib/pimage.c) is only mapped by a build with the same
# compiled layout.
LAYOUT_ID = -DAG_LAYOUT_ID=0x$$(cat lib/policy_internal.h lib/agentguard.h | sha256sum | cut -c1-16)ull
$(BUILD)/obj/lib/pimage.o: CFLAGS += $(LAYOUT_ID)

# --version: the commit built (with "-dirty" for local changes), when there is one.
GIT_HASH = -DAG_GIT_HASH="\"$$(git describe --always --dirty 2>/dev/null || echo unknown)\""
$(BUILD)/obj/tools/cli.o: CFLAGS += $(GIT_HASH)
$(BUILD)/obj/tools/cli.o: FORCE
FORCE:

# lib/interpose.def lists every interposed symbol once; from it come the
# version script (exactly those names leave the library), the list the
# export check compares against, and the renames that bind the core's own
# libc calls to the real functions (lib/real.c says why).
GEN := $(BUILD)/gen
INTERPOSE_NAMES = $(CC) -E -P -x c -D'AG_LIBC(r,n,p,a)=n' -D'AG_LIBC_VA(r,n,p)=n' \
	-D'AG_ENTRY(n)=n' -D'AG_CLIENT(n)=n' lib/interpose.def | tr -d ' \t' | grep -v '^$$'
$(GEN)/exports.txt: lib/interpose.def
	@mkdir -p $(dir $@)
	$(INTERPOSE_NAMES) > $@
$(GEN)/exports.map: $(GEN)/exports.txt
	{ echo '{'; echo '  global:'; sed 's/.*/    &;/' $<; echo '    agentguard_*;'; \
	  echo '  local: *;'; echo '};'; } > $@
$(GEN)/libc.syms: lib/interpose.def
	@mkdir -p $(dir $@)
	$(CC) -E -P -x c -D'AG_LIBC(r,n,p,a)=n ag_libc_##n' -D'AG_LIBC_VA(r,n,p)=n ag_libc_##n' \
	  -D'AG_ENTRY(n)=' -D'AG_CLIENT(n)=' lib/interpose.def | grep -v '^[[:space:]]*$$' > $@

# The core's objects as the library links them: calls to interposed names
# renamed to the real functions.
SO_CORE_OBJ := $(patsubst $(BUILD)/obj/%,$(BUILD)/obj-so/%,$(CORE_OBJ) \
               $(BUILD)/obj/lib/guard.o $(BUILD)/obj/lib/lazy.o)
# guard.o and lazy.o are only reached through the pattern below: keep them.
.SECONDARY: $(BUILD)/obj/lib/guard.o $(BUILD)/obj/lib/lazy.o
$(BUILD)/obj-so/%.o: $(BUILD)/obj/%.o $(GEN)/libc.syms
	@mkdir -p $(dir $@)
	objcopy --redefine-syms=$(GEN)/libc.syms $< $@
HOOK_OBJ := $(filter-out $(BUILD)/obj/lib/guard.o $(BUILD)/obj/lib/lazy.o,$(PRELOAD_OBJ))
# Each hook's frame size, for test/check-frames.sh (passthrough frames stay small).
$(HOOK_OBJ): CFLAGS += -fstack-usage

$(LIBSO): $(SO_CORE_OBJ) $(HOOK_OBJ) $(GEN)/exports.map
	$(CC) -shared -o $@ $(SO_CORE_OBJ) $(HOOK_OBJ) $(LDFLAGS) \
	  -Wl,--version-script=$(GEN)/exports.map -Wl,-z,noseparate-code $(LIB_LIBS)

$(CLI): $(CORE_OBJ) $(AUDIT_OBJ) $(CLI_OBJ)
	$(CC) -o $@ $^ $(LDFLAGS) $(CLI_LIBS)

# Decisions alone, for the counts test (test/e2e/t_counts.sh).
$(DECIDELOOP): $(BUILD)/obj/test/count/decideloop.o $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS) $(CLI_LIBS)

# The units also run the kernel layer's filter program (tools/kernel.o)
# with what it links (tools/floor.o).
$(UNIT): $(CORE_OBJ) $(AUDIT_OBJ) $(UNIT_OBJ) $(BUILD)/obj/tools/kernel.o $(BUILD)/obj/tools/floor.o
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS) $(TEST_LIBS)

# The tests: units, the exported-symbol check, then end-to-end runs of real
# programs. The last line is the total.
test: all $(UNIT) $(DECIDELOOP)
	@bash test/run-all.sh

test-unit: $(UNIT)
	AGENTGUARD_SYSCONFDIR=/nonexistent/agentguard $(UNIT)

demo: all
	@bash examples/demo.sh

bench: all
	@python3 bench/run.py

# Real agents from npm (into build/agents/) against a stand-in model API on
# 127.0.0.1: too heavy for `make test`. test/agents/run.sh says what it checks.
test-agents: all
	@bash test/agents/run.sh
.PHONY: test-agents

install: all install-data
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/agentguard
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/agentguard
	install -m 0755 tools/agentguard-container $(DESTDIR)$(PREFIX)/bin/agentguard-container
	install -m 0755 $(LIBSO) $(DESTDIR)$(PREFIX)/lib/agentguard/libagentguard.so

# What needs no build: the shipped rules, the manual pages, shell completion.
install-data:
	install -d $(DESTDIR)$(PREFIX)/share/agentguard/rules $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 0644 rules/*.yaml $(DESTDIR)$(PREFIX)/share/agentguard/rules/
	install -m 0644 man/agentguard.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 man/agentguard-rules.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 completion/agentguard.bash \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/agentguard
	install -m 0644 completion/_agentguard $(DESTDIR)$(PREFIX)/share/zsh/site-functions/

clean:
	rm -rf $(BUILD)

.PHONY: all deps-check test test-unit demo bench install install-data clean FORCE
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- sanitizers and fuzzing ----------------------------------------------
#
#   make asan         the units and the end-to-end suite with everything built
#                     with AddressSanitizer and UBSan into build-asan/
#   make fuzz         each libFuzzer harness in test/fuzz/ for FUZZ_SECONDS
#   make fuzz-smoke   the same, 10 s each (CI)

ASAN_BUILD  ?= build-asan
ASAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
# gcc: its shared libasan is what a preloaded library needs (clang's default
# static runtime cannot be loaded into programs that were not built with it).
ASAN_CC     ?= gcc

asan:
	$(MAKE) --no-print-directory CC=$(ASAN_CC) BUILD=$(ASAN_BUILD) \
	  OPT="-O1 -g $(ASAN_FLAGS)" LDFLAGS="-pthread $(ASAN_FLAGS)" \
	  $(ASAN_BUILD)/libagentguard.so $(ASAN_BUILD)/agentguard $(ASAN_BUILD)/test/unit
	@AG_BUILD=$(ASAN_BUILD) ASAN_RT=$$($(ASAN_CC) -print-file-name=libasan.so) \
	  bash test/asan.sh

FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_FLAGS   := $(FUZZ_SAN) -fsanitize=fuzzer
FUZZ_NAMES   := $(patsubst test/fuzz/fuzz_%.c,%,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_BINS    := $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_NAMES))
# The core once more, instrumented for libFuzzer, in its own objects.
FUZZ_OBJ     := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(CORE_SRC) $(AUDIT_SRC)) \
                $(FUZZ_BUILD)/obj/default_rules.o

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -std=gnu11 \
	  -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -Ilib -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/obj/default_rules.o: lib/default_rules.S rules/default.yaml
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -c -Ilib -DRULES_FILE='"rules/default.yaml"' $(RULES_HASH) $< -o $@

$(FUZZ_BUILD)/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz.h $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
	  -Ilib -o $@ $< $(FUZZ_OBJ) $(CLI_LIBS)

# Kept between runs (make would delete them as intermediates).
.SECONDARY: $(FUZZ_OBJ)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash test/fuzz/run.sh $(FUZZ_NAMES)

fuzz-smoke: fuzz-build
	@FUZZ_SECONDS=10 bash test/fuzz/run.sh $(FUZZ_NAMES)

.PHONY: asan fuzz fuzz-build fuzz-smoke
-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)

clean: clean-asan
clean-asan:
	rm -rf $(ASAN_BUILD)
.PHONY: clean-asan
