# Wharf build. `make run` and `make test` install what they need first.
#
# Layout: every src/<module>/*.c is compiled into build/obj/; build/wharf
# links them all (server and CLI are one binary). Unit tests in
# tests/unit/test_<name>.c link every module object except main.
# `make test` runs every suite twice: on build/ and on build/sanitize/
# (ASan with leak checks, UBSan). mk/*.mk add libwharf and the examples.

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc -Iinclude -MMD -MP
LDLIBS  += -luv -lcurl -ljansson -lyajl -lsqlite3 -lssl -lcrypto -lz -lpthread -lm
# libnats (nats.c), the JetStream client of clustered mode (src/jetstream/).
# Asked lazily: on a fresh machine pkg-config knows it only after `deps`.
LDLIBS  += $(shell pkg-config --libs libnats 2>/dev/null || echo -lnats)

# SANITIZE=1: AddressSanitizer (leaks included) and UBSan, any report fatal.
ifeq ($(SANITIZE),1)
CFLAGS  += -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif

# TSAN=1: ThreadSanitizer (`make tsan-build`: build/tsan/), for the clustered
# mode's pool, libnats and maintenance threads. libnats and libuv are not
# instrumented: their own accesses are not seen, only Wharf's.
ifeq ($(TSAN),1)
CFLAGS  += -fno-omit-frame-pointer -fsanitize=thread
endif

# llhttp, the HTTP/1.1 parser: Debian's node-llhttp ships its C sources, not
# a library, so they are compiled here — strict (RFC 9112's "must reject"
# cases are refused) and without our warning flags (generated code).
LLHTTP_DIR    := /usr/share/llhttp
LLHTTP_NAMES  := api http llhttp
LLHTTP_CFLAGS := -w -DLLHTTP_STRICT_MODE=1
CFLAGS  += -I/usr/share/include/llhttp

BUILD   ?= build
SRCS    := $(wildcard src/*/*.c)
OBJS    := $(SRCS:%.c=$(BUILD)/obj/%.o) $(LLHTTP_NAMES:%=$(BUILD)/obj/llhttp/%.o)
MAIN_OBJ:= $(BUILD)/obj/src/server/main.o
LIB_OBJS:= $(filter-out $(MAIN_OBJ),$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Shared test helpers (tests/unit/helpers/*.c), linked into every unit test.
UNIT_HELPER_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/unit/helpers/*.c))
.SECONDARY: $(UNIT_HELPER_OBJS)
# nats_cluster.c starts nodes with deploy/nats/wharf-nats.conf of this tree.
$(UNIT_HELPER_OBJS): CFLAGS += -DWHARF_SOURCE_DIR='"$(CURDIR)"'

DEB_PACKAGES := libuv1-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev \
                libssl-dev node-llhttp libcmocka-dev zlib1g-dev pkg-config libyajl-dev \
                chromium nats-server libnats-dev curl

.PHONY: all run test unit unit-bins sanitize-build tsan-build blackbox bench bench-cluster bench-peers soak crash-long cluster-faults cluster-faults-long deps npm-deps clean cluster cluster-stop

all: $(BUILD)/wharf

# Install missing Debian packages (and Node.js if absent). Idempotent and quick
# when everything is there.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

npm-deps: deps
	@cd tests/blackbox && { [ -d node_modules/cloudflare ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(LLHTTP_NAMES:%=$(BUILD)/obj/llhttp/%.o): $(BUILD)/obj/llhttp/%.o: | deps
	@mkdir -p $(dir $@)
	@echo "  CC    $(LLHTTP_DIR)/$*.c"
	@$(CC) $(CFLAGS) $(LLHTTP_CFLAGS) -c $(LLHTTP_DIR)/$*.c -o $@

# dashboard.c embeds the page with .incbin, which -MMD does not see.
$(BUILD)/obj/src/api/dashboard.o $(BUILD)/fuzz/obj/src/api/dashboard.o: src/api/dashboard.html

$(BUILD)/wharf: $(OBJS)
	@echo "  LINK  $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(UNIT_HELPER_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

run: $(BUILD)/wharf npm-deps
	$(BUILD)/wharf serve --data-dir ./wharf-data

# Three local nats-server nodes with JetStream in one cluster and two
# `wharf serve --nats` nodes on them (deploy/cluster/run.sh).
cluster: deps $(BUILD)/wharf
	deploy/cluster/run.sh start

cluster-stop:
	deploy/cluster/run.sh stop

unit-bins: $(UNIT_BINS)

unit: $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

# The same code built with sanitizers, for `make test` to run every suite on.
sanitize-build:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/sanitize SANITIZE=1 all unit-bins examples

# Not in make test: the server and the unit tests with ThreadSanitizer.
tsan-build:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/tsan TSAN=1 $(BUILD)/tsan/wharf $(BUILD)/tsan/tests/test_jetstream

blackbox: $(BUILD)/wharf npm-deps
	@WHARF_BIN=$(abspath $(BUILD)/wharf) tests/run-node.sh blackbox tests/blackbox/*.test.mjs

# Produce/consume benchmarks against a fresh server (bench/RESULTS.md).
bench: $(BUILD)/wharf
	$(MAKE) -C bench && WHARF_BIN=$(abspath $(BUILD)/wharf) bench/run.sh

# The same workloads against 1, 2, 3 clustered nodes and the embedded store
# on a local 3-node JetStream cluster, CPU per message per process (issue 13).
bench-cluster: $(BUILD)/wharf
	$(MAKE) -C bench && WHARF_BIN=$(abspath $(BUILD)/wharf) bench/cluster.sh

# The same workloads against beanstalkd, NATS JetStream and Redis (issue 8).
bench-peers:
	$(MAKE) -C bench/peers && bench/peers/run.sh

# 30 minutes of mixed load; RSS, descriptors and p99 per minute (not in CI).
soak: $(BUILD)/wharf
	WHARF_BIN=$(abspath $(BUILD)/wharf) bench/soak.sh

# The crash tests' long mode, the randomised campaign and 200 cluster fault rounds included.
crash-long: $(BUILD)/wharf npm-deps
	@WHARF_BIN=$(abspath $(BUILD)/wharf) CRASH_ROUNDS=500 tests/run-node.sh crash tests/crash/*.test.mjs

# Clustered mode under kill -9 of nats and Wharf nodes (tests/cluster/; the
# default 4 rounds also run in `make test`'s plain pass).
cluster-faults: $(BUILD)/wharf npm-deps
	@WHARF_BIN=$(abspath $(BUILD)/wharf) tests/run-node.sh cluster-faults tests/cluster/*.test.mjs

cluster-faults-long: $(BUILD)/wharf npm-deps
	@WHARF_BIN=$(abspath $(BUILD)/wharf) CLUSTER_FAULT_ROUNDS=200 tests/run-node.sh cluster-faults tests/cluster/*.test.mjs

# Every suite on the plain build, then again on the sanitizer build.
test: $(BUILD)/wharf $(UNIT_BINS) npm-deps sanitize-build fuzz-build
	@tests/run-all.sh $(abspath $(BUILD)) $(abspath $(BUILD)/sanitize)

clean:
	rm -rf $(BUILD)

-include $(OBJS:.o=.d) $(UNIT_HELPER_OBJS:.o=.d)

include mk/libwharf.mk
include mk/reliability.mk
