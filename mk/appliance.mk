# SPDX-License-Identifier: GPL-2.0-or-later
#
# The appliance: configuration (Kconfig, read by python3-kconfiglib), the
# initramfs and the bootable USB image. Included from the top Makefile.
#
#   make NAME_defconfig   $(O)/.config from configs/NAME_defconfig
#   make menuconfig       edit $(O)/.config (created from the defaults)
#   make olddefconfig     fill in new symbols of an old $(O)/.config
#   make savedefconfig    minimal config to $(O)/defconfig
#                         (DEFCONFIG=configs/NAME_defconfig writes there instead)
#   make appliance        $(O)/appliance/imager-usb.img, with vmlinuz and
#                         initramfs.img beside it; without a .config it
#                         starts from configs/$(APPLIANCE_DEFCONFIG)
#   make appliance-initramfs   only the initramfs
#
# Downloads (the pinned Debian packages) are cached in $(IMAGER_CACHE),
# default $(O)/cache. SOURCE_DATE_EPOCH (default: the last commit's time)
# is every timestamp in the outputs.

KCONFIG := kconfig/Config.in
KCONFIG_CONFIG := $(O)/.config
# kconfiglib is a Debian package: use Debian's python, not one from $PATH
KCONFIG_PYTHON ?= /usr/bin/python3
APPLIANCE_DEFCONFIG ?= x86_64_defconfig
APPLIANCE_DIR := $(O)/appliance
IMAGER_CACHE ?= $(O)/cache
# expanded only in the appliance recipes below
SOURCE_DATE_EPOCH ?= $(shell git -C $(CURDIR) log -1 --format=%ct 2>/dev/null || echo 0)
appliance_env = IMAGER_CACHE=$(IMAGER_CACHE) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)

kconfiglib = $(Q)mkdir -p $(O) && KCONFIG_CONFIG=$(KCONFIG_CONFIG) $(KCONFIG_PYTHON) -m $(1)

.PHONY: menuconfig olddefconfig savedefconfig appliance appliance-config appliance-initramfs \
	appliance-help

%_defconfig: configs/%_defconfig
	$(E) DEFCONFIG $<
	$(Q)$(KCONFIG_PYTHON) mk/appliance-config.py $(KCONFIG) $< $(APPLIANCE_DIR)
	$(call kconfiglib,defconfig) --kconfig $(KCONFIG) $< >/dev/null

menuconfig:
	$(call kconfiglib,menuconfig) $(KCONFIG)

olddefconfig:
	$(call kconfiglib,olddefconfig) $(KCONFIG) >/dev/null

savedefconfig: $(KCONFIG_CONFIG)
	$(E) SAVEDEF $(or $(DEFCONFIG),$(O)/defconfig)
	$(call kconfiglib,savedefconfig) --kconfig $(KCONFIG) --out $(or $(DEFCONFIG),$(O)/defconfig) >/dev/null

$(KCONFIG_CONFIG):
	$(E) DEFCONFIG configs/$(APPLIANCE_DEFCONFIG) "(no $(KCONFIG_CONFIG) yet)"
	$(call kconfiglib,defconfig) --kconfig $(KCONFIG) configs/$(APPLIANCE_DEFCONFIG) >/dev/null

# config.sh and autoconf.h, refreshed from .config on every build (cheap, and
# rewritten only when they change). mk/appliance-config.py also refuses a
# defconfig or .config that sets unknown symbols or values that do not stick.
appliance-config: $(KCONFIG_CONFIG)
	$(call kconfiglib,olddefconfig) $(KCONFIG) >/dev/null
	$(Q)$(KCONFIG_PYTHON) mk/appliance-config.py $(KCONFIG) $(KCONFIG_CONFIG) $(APPLIANCE_DIR)

appliance-initramfs: appliance-config $(IMAGER)
	$(E) INITRAMFS $(APPLIANCE_DIR)/initramfs.img
	$(Q)$(appliance_env) bash initramfs/build.sh --config $(APPLIANCE_DIR)/config.sh --imager $(IMAGER) \
		--out $(APPLIANCE_DIR)/initramfs.img

appliance: appliance-initramfs
	$(E) IMAGE $(APPLIANCE_DIR)/imager-usb.img
	$(Q)$(appliance_env) bash boot/build.sh --config $(APPLIANCE_DIR)/config.sh \
		--initramfs $(APPLIANCE_DIR)/initramfs.img --out $(APPLIANCE_DIR)/imager-usb.img

appliance-help:
	@echo 'Appliance targets (docs/APPLIANCE.md):'
	@echo '  NAME_defconfig  $(O)/.config from configs/NAME_defconfig ($(notdir $(wildcard configs/*_defconfig)))'
	@echo '  menuconfig      edit $(O)/.config'
	@echo '  olddefconfig    update $(O)/.config for new options'
	@echo '  savedefconfig   minimal config to $(O)/defconfig (or DEFCONFIG=FILE)'
	@echo '  appliance       $(APPLIANCE_DIR)/imager-usb.img (+ vmlinuz, initramfs.img)'
