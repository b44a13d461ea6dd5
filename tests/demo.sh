#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# `make demo`: the main job on a built-in example. Builds a bootable golden
# disk (GPT: BIOS-boot partition, ESP with GRUB, ext4 root with Debian's
# kernel), captures it into a store, flashes it onto a blank, larger disk
# file with --grow, and boots the flashed disk in QEMU (SeaBIOS) to its
# marker. Everything lives under $O/tests/trash/demo and is removed at the end
# unless DEMO_KEEP=1.
set -euo pipefail
test_description='imager demo: capture a golden disk, flash it, boot the flash'
. "$(dirname "$0")/lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"
. "$TESTS_DIR/lib/qemu.sh"
TEST_KEEP_TRASH=${DEMO_KEEP:-}
export IMAGER_STORE=$TRASH/store
step() { printf '\n==> %s\n' "$*"; }

step "Building a bootable golden disk (GPT, BIOS boot, ESP, ext4 root with a kernel)"
make_gpt_disk --bootable golden.img 512M
"$IMAGER" disks golden.img

step "Capturing it into the store $IMAGER_STORE"
"$IMAGER" capture golden.img --image demo-golden --description "imager demo" --progress=none
"$IMAGER" images describe demo-golden

step "Flashing it onto a blank 1 GiB disk, growing the root file system, verifying"
"$IMAGER" flash demo-golden flashed.img --size 1G --grow --yes --progress=none

step "Booting the flashed disk in QEMU (SeaBIOS, software CPU; 20-60 s)"
sum=$(cat golden.img.payload.sha256)
if qemu_boot_disk flashed.img --firmware bios --snapshot --log boot.log --expect "IMAGER-BOOT-OK $sum"; then
	grep -a "IMAGER-BOOT-OK" boot.log | head -1
	booted=yes
else
	echo "demo: the flashed disk did not boot; serial log:" >&2
	tail -n 30 boot.log >&2
	booted=no
fi

step "Summary"
used=$("$IMAGER" images describe demo-golden --json | jq .disks[0].used)
stored=$(du -sb "$IMAGER_STORE" | cut -f1)
printf 'golden disk:   %s bytes (sparse file)\n' "$(stat -c %s golden.img)"
printf 'used data:     %s bytes\n' "$used"
printf 'store on disk: %s bytes (zstd, deduplicated)\n' "$stored"
printf 'boot:          %s after %s ms (QEMU, TCG)\n' "$booted" "${QEMU_ELAPSED:-?}"
[ "$booted" = yes ]
test_cleanup
[ -n "$TEST_KEEP_TRASH" ] || rm -rf "$TRASH"
