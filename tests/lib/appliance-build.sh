# SPDX-License-Identifier: GPL-2.0-or-later
#
# Building the appliance inside a test (t0500; the runtime's vm tests through
# tests/lib/appliance.sh). Source it after test-lib.sh:
#
#	. "$TESTS_DIR/lib/appliance-build.sh"
#	abuild_image DIR [DEFCONFIG=qemu_defconfig]
#
# abuild_image writes DIR/config.sh (from configs/DEFCONFIG, checked by
# mk/appliance-config.py), DIR/initramfs.img (+ .files, .modules) and
# DIR/imager-usb.img (+ vmlinuz, grub.cfg, .bmap, SHA256SUMS) with the
# scripts `make appliance` runs, from $IMAGER (no second compile). Downloads
# go to ${IMAGER_CACHE:-$O/cache}, shared with tests/lib/disks.sh.
# SOURCE_DATE_EPOCH is fixed (ABUILD_EPOCH) so two builds compare.
#
# /init comes from initramfs/rootfs/ (the runtime's). APPLIANCE_TEST_ROOTFS=DIR
# replaces that tree, e.g. with a stand-in /init while the real one is being
# written. (tests/lib/appliance.sh is the runtime tests' library.)

: "${TRASH:?appliance-build.sh: source tests/lib/test-lib.sh first}"

ABUILD_TOP=$(cd "$TESTS_DIR/.." && pwd)
ABUILD_EPOCH=1700000000
export IMAGER_CACHE=${IMAGER_CACHE:-$O/cache}

# abuild_rootfs: the tree packed as the initramfs's rootfs/
abuild_rootfs() { echo "${APPLIANCE_TEST_ROOTFS:-$ABUILD_TOP/initramfs/rootfs}"; }

# abuild_config DIR [DEFCONFIG]: DIR/config.sh from configs/DEFCONFIG
abuild_config() {
	local dir defconfig=${2:-qemu_defconfig}
	dir=$(realpath -m "$1") &&
		mkdir -p "$dir" &&
		(cd "$ABUILD_TOP" && /usr/bin/python3 mk/appliance-config.py kconfig/Config.in \
			"configs/$defconfig" "$dir")
}

# abuild_image DIR [DEFCONFIG]
abuild_image() {
	local dir=$1 defconfig=${2:-qemu_defconfig}
	abuild_config "$dir" "$defconfig" || return 1
	SOURCE_DATE_EPOCH=$ABUILD_EPOCH bash "$ABUILD_TOP/initramfs/build.sh" \
		--config "$dir/config.sh" --imager "$IMAGER" --rootfs "$(abuild_rootfs)" \
		--out "$dir/initramfs.img" || return 1
	SOURCE_DATE_EPOCH=$ABUILD_EPOCH bash "$ABUILD_TOP/boot/build.sh" \
		--config "$dir/config.sh" --initramfs "$dir/initramfs.img" --out "$dir/imager-usb.img"
}

# abuild_part_offset IMAGE NAME: byte offset of the GPT partition NAME
abuild_part_offset() {
	sfdisk --json "$1" | jq -e -r --arg n "$2" \
		'.partitiontable as $t | $t.partitions[] | select(.name == $n) |
		 .start * ($t.sectorsize // 512)'
}
