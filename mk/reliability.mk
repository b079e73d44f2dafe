# reliability.mk — fuzzing (tests/fuzz/, issue 7).
#
# Included by the top-level Makefile (`include mk/reliability.mk`); uses its
# $(BUILD), $(CFLAGS), $(SRCS), $(LDLIBS) and `deps`, and defines only FUZZ_*
# names and these targets:
#
#   fuzz-build   every libFuzzer target into $(BUILD)/fuzz/
#   fuzz         runs each target for FUZZ_SECONDS (default 60) from its seed
#                corpus; new inputs go to $(BUILD)/fuzz/corpus/<target>, never
#                into the committed corpus
#   fuzz-smoke   the same for FUZZ_SMOKE_SECONDS (default 10) each: part of
#                `make test`
#   fuzz-regress replays each committed corpus once (every past crash is in
#                it): fast, deterministic
#
# The fuzz build is a second build of every module except main with clang,
# -fsanitize=fuzzer-no-link,address,undefined (libFuzzer itself is linked
# into the targets only), in $(BUILD)/fuzz/obj. A crash leaves its input in
# $(BUILD)/fuzz/crash-*; copy it into tests/fuzz/corpus/<target>/ once fixed.

FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := $(filter-out -O2 -O3,$(CFLAGS)) -O1 -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_TARGETS := http api lease segment
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_LIB_OBJS:= $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(filter-out src/server/main.c,$(SRCS)))
FUZZ_HELPER  := $(FUZZ_DIR)/obj/tests/fuzz/fuzz_loopback.o
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_MAX_LEN ?= 65536
# Leaks are checked per run by LeakSanitizer at exit; the server objects a
# target keeps for the whole run are reachable, not leaked.
FUZZ_RUN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
                WHARF_LOG_LEVEL=error

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-regress

fuzz-build: $(FUZZ_BINS)

# The objects are not intermediate files to delete after linking.
.SECONDARY: $(FUZZ_LIB_OBJS) $(FUZZ_HELPER) $(FUZZ_TARGETS:%=$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o)

$(FUZZ_DIR)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -Itests/fuzz -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_HELPER) $(FUZZ_LIB_OBJS)
	@echo "  LINK  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# $(1): seconds per target.
define FUZZ_RUN_ALL
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  echo "=== fuzz $$t ($(1) s)"; \
	  (cd $(FUZZ_DIR) && $(FUZZ_RUN_ENV) ./fuzz_$$t -max_total_time=$(1) -max_len=$(FUZZ_MAX_LEN) \
	    -timeout=30 -print_final_stats=1 -artifact_prefix=$(abspath $(FUZZ_DIR))/crash-$$t- \
	    corpus/$$t $(abspath tests/fuzz/corpus/$$t) 2>&1 | grep -E '^(#|Done|INFO: seed|==|SUMMARY|stat::number_of_executed_units)' | tail -5); \
	done
endef

fuzz: $(FUZZ_BINS)
	$(call FUZZ_RUN_ALL,$(FUZZ_SECONDS))

fuzz-smoke: $(FUZZ_BINS)
	$(call FUZZ_RUN_ALL,$(FUZZ_SMOKE_SECONDS))

fuzz-regress: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "=== fuzz-regress $$t"; \
	  $(FUZZ_RUN_ENV) $(FUZZ_DIR)/fuzz_$$t -runs=0 tests/fuzz/corpus/$$t 2>&1 | tail -1; \
	done

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_BINS:$(FUZZ_DIR)/%=$(FUZZ_DIR)/obj/tests/fuzz/%.d)
