# PracticePost - top-level build.
# Each daemon folder's *.c files link against build/libppcommon.a.

CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
PKGS     = libzmq msgpack libcurl openssl libpq gmime-3.0 libical inih libxml-2.0 libmicrohttpd json-c

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
           -Wno-format-nonliteral -fno-common -Icommon $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lmsgpackc -lm
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif

STAGES      = composer sender sms fetcher watchdog
COMMON_SRC  = $(wildcard common/*.c)
COMMON_OBJ  = $(COMMON_SRC:%.c=$(BUILD)/%.o)
SQL_FILES   = $(wildcard common/sql/*.sql)
BINS        = $(STAGES:%=$(BUILD)/bin/practicepost-%) $(BUILD)/bin/practicepost
UNIT_SRC    = $(wildcard tests/unit/test_*.c)
UNIT_BINS   = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps check unit integration asan tsan tsan-check demo bench chaos chaos-short install format lint clean
all: $(BINS)

deps:
	@./scripts/install-deps

# -MMD -MP: every object depends on exactly the headers it includes.
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The migrations are embedded with .incbin; rebuild when any SQL changes.
$(BUILD)/common/pp_migrate.o: $(SQL_FILES)

$(BUILD)/libppcommon.a: $(COMMON_OBJ)
	@rm -f $@
	@echo "  AR    $@"
	@ar rcs $@ $^

define stage_rule
$(1)_OBJ = $$(patsubst %.c,$(BUILD)/%.o,$$(wildcard $(1)/*.c))
$(BUILD)/bin/practicepost-$(1): $$($(1)_OBJ) $(BUILD)/libppcommon.a
	@mkdir -p $$(dir $$@)
	@echo "  LD    $$@"
	@$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(STAGES),$(eval $(call stage_rule,$(s))))

CTL_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(wildcard ctl/*.c))
$(BUILD)/bin/practicepost: $(CTL_OBJ) $(BUILD)/libppcommon.a
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests named test_fetcher_* also link the fetcher's modules.
FETCHER_LIB_OBJ = $(filter-out $(BUILD)/fetcher/fetcher_main.o,$(fetcher_OBJ))
$(BUILD)/tests/test_fetcher_%: tests/unit/test_fetcher_%.c $(FETCHER_LIB_OBJ) $(BUILD)/libppcommon.a
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) -Ifetcher $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# Unit tests named test_sms_* also link the sms stage's modules.
SMS_LIB_OBJ = $(filter-out $(BUILD)/sms/sms_main.o,$(sms_OBJ))
$(BUILD)/tests/test_sms_%: tests/unit/test_sms_%.c $(SMS_LIB_OBJ) $(BUILD)/libppcommon.a
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) -Isms $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libppcommon.a
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; ./$$t; done

# PYTEST_JOBS: test files run this many at a time (pytest-xdist; each file's
# tests stay together on one worker, every server on its own free ports).
PYTEST_JOBS ?= 2
integration: all
	cd tests/integration && PP_BIN_DIR=$(CURDIR)/$(BUILD)/bin \
	    ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    /usr/bin/python3 -m pytest -q -ra \
	    $(if $(filter-out 1,$(PYTEST_JOBS)),-n $(PYTEST_JOBS) --dist loadfile) $(PYTEST_ARGS)

# make check: install what is missing, build, the unit tests of the plain
# and the ASan+UBSan builds, the integration suite against real servers
# with the ASan+UBSan daemons (a sanitizer report in any daemon's log fails
# the test that ran it), the threaded sender's tests with ThreadSanitizer,
# the short chaos run, then each fuzz target for a minute.
check:
	@./scripts/install-deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) BUILD=build-asan SAN=1 unit
	$(MAKE) BUILD=build-asan SAN=1 integration
	$(MAKE) tsan-check
	$(MAKE) chaos-short
	$(MAKE) fuzz-ci

asan:
	$(MAKE) BUILD=build-asan SAN=1 all

# make tsan: a ThreadSanitizer build (build-tsan/). make tsan-check runs the
# threaded sender's integration tests against it; any ThreadSanitizer report
# in a daemon's log fails the test (tests/tsan.supp lists the library false
# positives that are suppressed, each with its reason).
TSAN_TESTS ?= test_sender.py test_sender_rules.py test_sender_load.py test_account_test.py
tsan:
	$(MAKE) BUILD=build-tsan TSAN=1 all

tsan-check: tsan
	cd tests/integration && PP_BIN_DIR=$(CURDIR)/build-tsan/bin \
	    TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	    setarch $$(uname -m) -R /usr/bin/python3 -m pytest -q -ra $(PYTEST_ARGS) $(TSAN_TESTS)

demo:
	@./scripts/install-deps
	$(MAKE) all
	./scripts/demo

bench:
	@./scripts/install-deps
	$(MAKE) all
	./bench/run

# make chaos: stages killed, PostgreSQL restarted, SMTP and IMAP failing
# while mail and SMS flow (bench/chaos.py; CHAOS_SEED=N replays a run);
# make chaos-short: its short form (about three minutes).
chaos:
	$(MAKE) all
	PP_BIN_DIR=$(CURDIR)/$(BUILD)/bin /usr/bin/python3 bench/chaos.py

chaos-short:
	$(MAKE) all
	PP_BIN_DIR=$(CURDIR)/$(BUILD)/bin /usr/bin/python3 bench/chaos.py --short

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system \
	    $(DESTDIR)/etc/practicepost
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	sed 's,/usr/local/bin/,$(PREFIX)/bin/,g' systemd/practicepost.service \
	    > $(DESTDIR)$(PREFIX)/lib/systemd/system/practicepost.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/practicepost.service
	install -m 640 systemd/practicepost.conf.example $(DESTDIR)/etc/practicepost/

format:
	clang-format -i $(wildcard common/*.[ch] $(STAGES:%=%/*.[ch]) ctl/*.[ch] tests/unit/*.c)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --suppress=missingIncludeSystem --inline-suppr -Icommon \
	    common $(STAGES) ctl

clean:
	rm -rf build build-asan build-tsan

# make fuzz / fuzz-smoke: libFuzzer targets (see tests/fuzz/fuzz.mk).
include tests/fuzz/fuzz.mk
