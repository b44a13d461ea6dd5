# SPDX-License-Identifier: GPL-2.0-or-later
#
# The one entry point. `make help` lists the targets.
#   O=DIR   put every output under DIR (default: ./output)
#   V=1     show the commands
#   CI=true turns warnings into errors

O ?= $(CURDIR)/output
override O := $(abspath $(O))
Q := $(if $(V),,@)
E := $(if $(V),@true,@printf '  %-8s %s\n')

VERSION := $(shell git -C $(CURDIR) describe --always --dirty 2>/dev/null || echo 0.0-dev)

PKGS := blkid fdisk smartcols ext2fs com_err libzstd libcrypto zlib
# imports (imager/lib/vdisk*.c)
PKGS += fuse3 libarchive libvmdk libvhdi libbfio
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))

CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wundef -Wpointer-arith -Wvla -Wimplicit-fallthrough \
	-Wno-unused-parameter -Wno-missing-field-initializers -Wno-format-nonliteral
ifeq ($(CI),true)
WARNINGS += -Werror
endif
IMAGER_CFLAGS := -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(WARNINGS) \
	-Iimager -Iimager/include -DIMAGER_VERSION='"$(VERSION)"' $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_IMAGER = $(PKG_LIBS) -lpthread -lm $(EXTRA_LDFLAGS)

UTIL_SRC := $(sort $(wildcard imager/util/*.c))
LIB_SRC := $(sort $(wildcard imager/lib/*.c))
CLI_SRC := $(sort $(wildcard imager/cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test-*.c))

obj = $(patsubst %.c,$(O)/obj/%.o,$(1))
LIBIMAGER := $(O)/libimager.a
IMAGER := $(O)/imager
UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/unit/%,$(UNIT_SRC))

.PHONY: all imager deps check check-unit check-image check-loop check-vm demo clean help \
	format bench
.DEFAULT_GOAL := all

all: imager
imager: $(IMAGER)

$(O)/obj/%.o: %.c
	$(E) CC $<
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(IMAGER_CFLAGS) -MMD -MP -c $< -o $@

$(LIBIMAGER): $(call obj,$(UTIL_SRC) $(LIB_SRC))
	$(E) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(IMAGER): $(call obj,$(CLI_SRC)) $(LIBIMAGER)
	$(E) LD $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_IMAGER)

$(O)/tests/unit/%: $(O)/obj/tests/unit/%.o $(LIBIMAGER)
	$(E) LD $@
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS_IMAGER)

$(O)/obj/tests/unit/%.o: IMAGER_CFLAGS += -Itests/unit

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)

deps:
	$(Q)bash mk/deps.sh mk/packages.txt

# Test tiers: unit, image (image files), loop (loop devices), vm (QEMU boots).
# TIERS= picks a subset, T= a glob of test names.
TIERS ?= unit image loop vm
check: deps
	$(Q)$(MAKE) --no-print-directory all units
	$(Q)O=$(O) IMAGER=$(IMAGER) bash tests/run $(TIERS)

units: $(UNIT_BINS)
check-unit check-image check-loop check-vm: deps
	$(Q)$(MAKE) --no-print-directory all units
	$(Q)O=$(O) IMAGER=$(IMAGER) bash tests/run $(patsubst check-%,%,$@)

demo: deps all
	$(Q)O=$(O) IMAGER=$(IMAGER) bash tests/demo.sh

bench: deps all
	$(Q)O=$(O) IMAGER=$(IMAGER) bash bench/run.sh

format:
	$(Q)clang-format -i $(UTIL_SRC) $(LIB_SRC) $(CLI_SRC) $(wildcard imager/*/*.h imager/include/imager/*.h)

clean:
	$(Q)rm -rf $(O)

help:
	@echo 'Targets:'
	@echo '  all (default)  build $(O)/imager'
	@echo '  deps           install the Debian packages in mk/packages.txt (idempotent)'
	@echo '  check          deps + build + every test tier (TIERS="unit image loop vm")'
	@echo '  check-TIER     one tier: unit, image, loop, vm'
	@echo '  demo           the main job on a built-in example'
	@echo '  appliance      the bootable USB image (make appliance-help: kconfig targets)'
	@echo '  bench          benchmarks against peers (bench/README.md)'
	@echo '  clean          remove $(O)'
	@echo 'Variables: O=DIR (output dir), V=1 (verbose), CI=true (-Werror)'

include mk/appliance.mk
include mk/fuzz.mk
