# SPDX-License-Identifier: GPL-2.0-or-later
#
# Hostile input: libFuzzer targets and the sanitizer run of the test suite.
# Included from the top Makefile. tests/fuzz/README.md has the details.
#
#   make fuzz              build every tests/fuzz/fuzz-*.c with libFuzzer, ASan
#                          and UBSan into $(O)/fuzz, run each for FUZZ_SECONDS
#                          over its seed corpus; any crash, leak, UB or timeout
#                          fails, the input is saved in $(O)/fuzz/crashes
#   make fuzz FUZZ_SECONDS=0   replay the seed corpus only (regression run)
#   make fuzz-build        only build the targets
#   make fuzz-corpus       regenerate tests/fuzz/corpus (tests/fuzz/make-corpus.py)
#   make check-sanitize    build imager and the unit tests with ASan + UBSan into
#                          $(O)/sanitize, then run the SANITIZE_TIERS with them
#                          (image tier: t[1-9]*, see SANITIZE_IMAGE_T; vm tier:
#                          t9[1-9]*, see SANITIZE_VM_T)
#
# Variables: FUZZ_SECONDS (default 20), FUZZ_TARGETS (default: all),
# FUZZ_ARGS (extra libFuzzer options, e.g. -seed=1), FUZZ_CC (clang),
# SANITIZE_CC (default $(CC)), SANITIZE_TIERS (default "unit image loop").

FUZZ_CC ?= clang
FUZZ_O := $(O)/fuzz
FUZZ_SECONDS ?= 20
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz-%.c,%,$(sort $(wildcard tests/fuzz/fuzz-*.c)))
FUZZ_ARGS ?=

# UB aborts (no recovery), so libFuzzer records it as a crash like ASan's
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# clang warns where gcc does not (unused static inline cleanup helpers); the
# gcc build is the -Werror gate, the fuzz build only shows warnings
FUZZ_CFLAGS := -O1 -g $(SANITIZE_FLAGS) -fsanitize=fuzzer-no-link -Wno-unused-function
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_O)/obj/%.o,$(UTIL_SRC) $(LIB_SRC))
FUZZ_BINS := $(addprefix $(FUZZ_O)/fuzz-,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-build fuzz-corpus check-sanitize

$(FUZZ_O)/obj/%.o: %.c
	$(E) FUZZCC $<
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(IMAGER_CFLAGS) -Wno-error -MMD -MP -c $< -o $@

$(FUZZ_O)/libimager.a: $(FUZZ_LIB_OBJ)
	$(E) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(FUZZ_O)/fuzz-%: $(FUZZ_O)/obj/tests/fuzz/fuzz-%.o $(FUZZ_O)/libimager.a
	$(E) FUZZLD $@
	$(Q)$(FUZZ_CC) $(SANITIZE_FLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_IMAGER)

-include $(shell find $(FUZZ_O)/obj -name '*.d' 2>/dev/null)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)FUZZ_O=$(FUZZ_O) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_ARGS="$(FUZZ_ARGS)" \
		bash tests/fuzz/run.sh $(FUZZ_TARGETS)

fuzz-corpus: all
	$(Q)IMAGER=$(IMAGER) O=$(O) /usr/bin/python3 tests/fuzz/make-corpus.py

# A separate output directory: nothing instrumented mixes with the normal build.
SANITIZE_O := $(O)/sanitize
SANITIZE_CC ?= $(CC)
SANITIZE_TIERS ?= unit image loop
# abort_on_error: a report is a failure even where a test only checks for "non-zero"
# (UBSan keeps its own flags: it needs it too, and print_summary for its SUMMARY line);
# the LSan suppressions name library-internal leaks only (each is justified there).
# log_path: every report also lands in a file under SANITIZE_REPORTS, and any file
# there fails the run, so a test that expects imager to fail ("! imager ...", exit
# code checks) cannot pass a run the sanitizer aborted.
SANITIZE_REPORTS = $(SANITIZE_O)/reports
SANITIZE_ENV = \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:suppressions=$(CURDIR)/tests/sanitize/asan.supp:log_path=$(SANITIZE_REPORTS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1:print_summary=1:log_path=$(SANITIZE_REPORTS)/ubsan \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize/lsan.supp:print_suppressions=0 \
	IMAGER_CACHE=$(IMAGER_CACHE)

# The same options, and the suppression files, compiled in
# (tests/sanitize/default-options.c): the vm tier runs imager inside the
# appliance, where SANITIZE_ENV does not reach. Only check-sanitize's sub-make
# (SANITIZE_DEFAULTS=1) links it; the normal build never compiles it.
ifeq ($(SANITIZE_DEFAULTS),1)
SANITIZE_DEFAULTS_OBJ := $(O)/obj/tests/sanitize/default-options.o
$(IMAGER) $(UNIT_BINS): $(SANITIZE_DEFAULTS_OBJ)
# .incbin: the assembler reads these, so -MMD does not list them
$(SANITIZE_DEFAULTS_OBJ): tests/sanitize/asan.supp tests/sanitize/lsan.supp
$(SANITIZE_DEFAULTS_OBJ): IMAGER_CFLAGS += -DSANITIZE_SUPP_DIR='"$(CURDIR)/tests/sanitize"'
endif

# CI= for the build only: the normal build is the -Werror gate, and gcc's
# warnings change with -fsanitize (false -Wmaybe-uninitialized and the like)
# The image tier's t0* scripts build the fixtures and the appliance (kconfig,
# cpio, zstd -19: minutes) and run no imager code: left out unless T= is given.
SANITIZE_IMAGE_T ?= t[1-9]*
# The vm tier without t9000 (boots the golden fixtures: no imager code). The
# appliance is built from the sanitized imager (its ldd closure brings
# libasan and libubsan). A report inside a VM aborts that imager run, and
# also goes to the serial console as IMAGER-SANITIZER-REPORT (the runtime
# discards some of imager's stderr and exit statuses): the scripts keep
# their scratch dirs, any such line in their *.log fails the run, and the
# dirs are removed after a clean pass.
SANITIZE_VM_T ?= t9[1-9]*
check-sanitize: deps
	$(Q)$(MAKE) --no-print-directory O=$(SANITIZE_O) CC=$(SANITIZE_CC) CI= \
		CFLAGS="-O1 -g $(SANITIZE_FLAGS)" LDFLAGS="$(SANITIZE_FLAGS)" SANITIZE_DEFAULTS=1 \
		all units
	$(Q)rm -rf $(SANITIZE_REPORTS) && mkdir -p $(SANITIZE_REPORTS)
	$(Q)rc=0; for tier in $(SANITIZE_TIERS); do \
		t='$(or $(T),*)'; [ "$$tier" != image ] || t='$(or $(T),$(SANITIZE_IMAGE_T))'; \
		[ "$$tier" != vm ] || t='$(or $(T),$(SANITIZE_VM_T))'; \
		trc=0; $(SANITIZE_ENV) O=$(SANITIZE_O) IMAGER=$(SANITIZE_O)/imager T="$$t" \
			TEST_KEEP_TRASH=$$([ "$$tier" != vm ] || echo 1) bash tests/run $$tier || trc=1; \
		[ $$trc -eq 0 ] || rc=1; \
		[ "$$tier" = vm ] || continue; \
		dirs=; for s in tests/vm/$$t.sh; do [ ! -e "$$s" ] || \
			dirs="$$dirs $(SANITIZE_O)/tests/trash/$$(basename "$$s" .sh)"; done; \
		[ -n "$$dirs" ] || continue; \
		hits=$$(grep -rlaF --include='*.log' IMAGER-SANITIZER-REPORT $$dirs 2>/dev/null); \
		if [ -n "$$hits" ]; then rc=1; echo "check-sanitize: sanitizer reports inside the VMs:"; \
			grep -aF IMAGER-SANITIZER-REPORT $$hits; \
		elif [ $$trc -eq 0 ]; then rm -rf $$dirs; fi; \
	done; \
	if [ -n "$$(ls -A $(SANITIZE_REPORTS))" ]; then rc=1; \
		echo "check-sanitize: sanitizer reports (whatever the tests said):"; \
		head -n 40 $(SANITIZE_REPORTS)/*; fi; \
	exit $$rc
