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
#   fuzz-smoke   the same for FUZZ_SMOKE_SECONDS (default 10) each; `make
#                test` runs it (tests/fuzz/run.sh does the running)
#   bench-parsers  times the send/batch/ack fast paths against the jansson
#                path they replaced (tests/fuzz/bench_parsers.c), plain build
#
# The fuzz build is a second build of every module except main with clang,
# -fsanitize=fuzzer-no-link,address,undefined (libFuzzer itself is linked
# into the targets only), in $(BUILD)/fuzz/obj. A crash leaves its input in
# $(BUILD)/fuzz/crash-*; copy it into tests/fuzz/corpus/<target>/ once fixed.

FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := $(filter-out -O2 -O3,$(CFLAGS)) -O1 -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_TARGETS := http api lease segment graphql parsers
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_LIB_OBJS:= $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(filter-out src/server/main.c,$(SRCS))) \
                $(LLHTTP_NAMES:%=$(FUZZ_DIR)/obj/llhttp/%.o)
FUZZ_HELPER  := $(FUZZ_DIR)/obj/tests/fuzz/fuzz_loopback.o
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10

.PHONY: fuzz fuzz-build fuzz-smoke bench-parsers

fuzz-build: $(FUZZ_BINS)

# The objects are not intermediate files to delete after linking.
.SECONDARY: $(FUZZ_LIB_OBJS) $(FUZZ_HELPER) $(FUZZ_TARGETS:%=$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o)

$(FUZZ_DIR)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -Itests/fuzz -c $< -o $@

$(LLHTTP_NAMES:%=$(FUZZ_DIR)/obj/llhttp/%.o): $(FUZZ_DIR)/obj/llhttp/%.o: | deps
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $(LLHTTP_DIR)/$*.c"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(LLHTTP_CFLAGS) -fsanitize=fuzzer-no-link -c $(LLHTTP_DIR)/$*.c -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_HELPER) $(FUZZ_LIB_OBJS)
	@echo "  LINK  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# The differential target's oracle: the jansson path (message_reference.h).
FUZZ_REFERENCE := $(FUZZ_DIR)/obj/tests/fuzz/message_reference.o
$(FUZZ_DIR)/fuzz_parsers: $(FUZZ_REFERENCE)
.SECONDARY: $(FUZZ_REFERENCE)

$(BUILD)/bench_parsers: tests/fuzz/bench_parsers.c tests/fuzz/message_reference.c $(LIB_OBJS)
	@echo "  LINK  $@"
	@$(CC) $(CFLAGS) -Itests/fuzz -o $@ $^ $(LDLIBS)

bench-parsers: $(BUILD)/bench_parsers
	@$(BUILD)/bench_parsers

fuzz: $(FUZZ_BINS)
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(abspath $(FUZZ_DIR))

fuzz-smoke: $(FUZZ_BINS)
	@tests/fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(abspath $(FUZZ_DIR))

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_BINS:$(FUZZ_DIR)/%=$(FUZZ_DIR)/obj/tests/fuzz/%.d)
