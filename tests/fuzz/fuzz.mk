# tests/fuzz/fuzz.mk - the libFuzzer targets, included by the Makefile.
# Each tests/fuzz/fuzz_<area>.c is one target, built with clang and
# -fsanitize=fuzzer,address,undefined in $(FUZZ_BUILD) against the same
# common, fetcher and sms objects the daemons use (built there with the
# same sanitizers). tests/fuzz/run runs them on their corpora.
#   make fuzz        every target for FUZZ_SECONDS (60) each
#   make fuzz-smoke  every target for FUZZ_SMOKE_SECONDS (10) each
#   make fuzz-ci     every target for FUZZ_CI_SECONDS (60) each, FUZZ_JOBS (2)
#                    at a time (make check runs this)

FUZZ_BUILD         ?= build-fuzz
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_CI_SECONDS    ?= 60
FUZZ_JOBS          ?= 2
FUZZ_TARGETS        = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS           = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/%)

ifeq ($(FUZZ),1)
CC      = clang
CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
          -fno-sanitize-recover=undefined
endif

.PHONY: fuzz fuzz-smoke fuzz-ci fuzz-build
fuzz-build:
	@$(MAKE) -s --no-print-directory FUZZ=1 BUILD=$(FUZZ_BUILD) $(FUZZ_BINS)

fuzz: fuzz-build
	./tests/fuzz/run $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	./tests/fuzz/run $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

fuzz-ci: fuzz-build
	FUZZ_JOBS=$(FUZZ_JOBS) ./tests/fuzz/run $(FUZZ_BUILD) $(FUZZ_CI_SECONDS) $(FUZZ_TARGETS)

$(BUILD)/libppfetcher.a: $(FETCHER_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/libppsms.a: $(SMS_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_check.h $(BUILD)/libppfetcher.a \
                      $(BUILD)/libppsms.a $(BUILD)/libppcommon.a
	@mkdir -p $(dir $@)
	@echo "  FUZZ  $@"
	@$(CC) $(CFLAGS) -fsanitize=fuzzer -Ifetcher -Isms -o $@ $(filter-out %.h,$^) $(LDLIBS)
