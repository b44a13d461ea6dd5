# SPDX-License-Identifier: GPL-2.0-or-later
#
# Golden disk fixtures for the shell tests. Source it after test-lib.sh:
#
#	. "$(dirname "$0")/../lib/test-lib.sh"
#	. "$TESTS_DIR/lib/disks.sh"
#
#	make_gpt_disk [--bootable] [--sector-size 512|4096] FILE [SIZE=512M]
#	make_gpt_disk_4kn [--bootable] FILE [SIZE=512M]
#	make_mbr_disk [--bootable] FILE [SIZE=512M]
#	make_blank_disk FILE SIZE
#	damage_primary_gpt FILE
#	ext4_file_sums IMAGE_OR_DEV PARTNO|--offset BYTES   (no mount, no root)
#	fat_file_sums IMAGE_OR_DEV PARTNO|--offset BYTES    (no mount, no root)
#	part_start_bytes / part_size_bytes DISK PARTNO, disk_sector_size DISK
#
# Every disk is a sparse file built without root and without mounting: the
# partition table by sfdisk (fdisk -b 4096 for 4Kn), the ESP as a FAT file
# filled by mtools, the root by `mke2fs -d` from a staging directory, each
# dd'ed into place, and GRUB laid down the way grub-install would (see
# grub_pc_install). Identities (GPT/MBR ids, partition UUIDs, file-system
# UUIDs and serials, hash seed) and all timestamps are fixed, so the same
# inputs give byte-identical disks (t0100 checks this).
#
# GPT layout (512-byte sectors):            MBR layout:
#	p1 BIOS boot   1 MiB at 1 MiB            p1 ext4 "root", bootable, at 1 MiB
#	p2 ESP FAT32  64 MiB at 2 MiB            p2 swap, 64 MiB, at the end
#	p3 ext4 root  the rest at 66 MiB         GRUB core.img in sectors 1..2047
# 4Kn GPT: the same, but the ESP is 260 MiB (FAT32 needs 65525 clusters of
# 4 KiB) and p1 stays empty (GRUB's BIOS boot code cannot use 4 KiB sectors).
#
# Beside each disk FILE the builders write what a test compares against:
#	FILE.root.sums    the root file system's files, as ext4_file_sums prints them
#	FILE.esp.sums     the ESP's files, as fat_file_sums prints them (GPT only)
#	FILE.payload.sha256  (--bootable) the hash the booted initramfs must print:
#	                  the guest prints "IMAGER-BOOT-OK <that hash>" on ttyS0
#
# --bootable adds /boot/vmlinuz (Debian's kernel, pinned in
# tests/fixtures/kernel.version, downloaded once into ${IMAGER_CACHE:-$O/cache})
# and /boot/initrd.img (busybox + tests/fixtures/initramfs-init + a payload)
# and a grub.cfg that boots them. Without it grub.cfg prints
# "IMAGER-GRUB-OK <platform> root=..." and halts.

: "${TRASH:?disks.sh: source tests/lib/test-lib.sh first}"
: "${TESTS_DIR:?disks.sh: TESTS_DIR is not set}"

DISKS_FIXTURES=$TESTS_DIR/fixtures
# every timestamp in a fixture (2023-11-14T22:13:20Z)
DISKS_EPOCH=1700000000

# Fixed identities (STYLE C22). "6e1d0a6e" marks them as the imager fixtures'.
DISKS_GPT_ID=6E1D0A6E-0000-4000-8000-000000000000
DISKS_GPT_4KN_ID=6E1D0A6E-4096-4000-8000-000000000000
DISKS_GPT_PART_UUID_PREFIX=6E1D0A6E-0000-4000-8000-00000000000   # + partition number
DISKS_GPT_4KN_PART_UUID_PREFIX=6E1D0A6E-4096-4000-8000-00000000000
DISKS_MBR_ID=0x6e1d0a6e
DISKS_GPT_ROOT_UUID=6e1d0a6e-e4e4-4000-8000-000000000003
DISKS_GPT_4KN_ROOT_UUID=6e1d0a6e-e4e4-4000-8000-000000004096
DISKS_MBR_ROOT_UUID=6e1d0a6e-e4e4-4000-8000-000000000001
DISKS_EXT4_HASH_SEED=6e1d0a6e-4a54-4000-8000-000000000000
DISKS_SWAP_UUID=6e1d0a6e-5a5a-4000-8000-000000000002
DISKS_FAT_SERIAL=6E1D0E5F

DISKS_TYPE_BIOS_BOOT=21686148-6449-6E6F-744E-656564454649
DISKS_TYPE_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
DISKS_TYPE_LINUX=0FC63DAF-8483-4772-8E79-3D69D8477DE4

# GRUB images: the modules needed to find the ext4 root on the boot disk, read
# grub.cfg and boot Linux (plus serial for SeaBIOS and halt for no-kernel disks).
DISKS_GRUB_DIR_PC=/usr/lib/grub/i386-pc
DISKS_GRUB_DIR_EFI=/usr/lib/grub/x86_64-efi
DISKS_GRUB_MODULES_PC="biosdisk part_gpt part_msdos ext2 normal configfile echo test
	linux gzio search search_fs_uuid serial terminal halt"
DISKS_GRUB_MODULES_EFI="part_gpt part_msdos fat ext2 normal configfile echo test
	linux gzio search search_fs_uuid efi_gop serial terminal halt"

_disks_err() { echo "disks.sh: $*" >&2; return 1; }

# FILE must be (or become) a plain file under $TRASH: never a device.
_disks_own_path() {
	local p
	p=$(realpath -m "$1")
	case $p in
	"$TRASH"/*) [ ! -b "$p" ] && return 0 ;;
	esac
	_disks_err "refusing '$1': fixtures are built only under \$TRASH ($TRASH)"
}

# _disks_bytes SIZE: "512M", "1G", "1GiB", "4096" -> bytes
_disks_bytes() {
	local s=${1%B}
	s=${s%i}
	numfmt --from=iec "$s" 2>/dev/null || _disks_err "bad size '$1'"
}

# _disks_le VALUE NBYTES: VALUE as NBYTES little-endian bytes on stdout
_disks_le() {
	local v=$1 n=$2 i out=
	for ((i = 0; i < n; i++)); do
		out+=$(printf '\\x%02x' $(((v >> (8 * i)) & 0xff)))
	done
	printf "$out"
}

# _disks_poke FILE OFFSET: write stdin at byte OFFSET of FILE
_disks_poke() { dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# _disks_u64/_disks_u32 FILE OFFSET: little-endian integer at OFFSET, in decimal
_disks_u64() { od -An -v -t u8 --endian=little -j "$2" -N 8 "$1" | tr -d ' \n'; }
_disks_u32() { od -An -v -t u4 --endian=little -j "$2" -N 4 "$1" | tr -d ' \n'; }

# _disks_prng SEED BYTES: deterministic pseudo-random bytes (AES-256-CTR of
# zeros, keyed by sha256(SEED)), so fixture contents do not compress or dedup
# by accident
_disks_prng() {
	local key
	key=$(printf '%s' "$1" | sha256sum | cut -c1-64)
	head -c "$2" /dev/zero |
		openssl enc -aes-256-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000
}

# --- partition tables, read back without libfdisk ------------------------------
# A small independent reader (the code under test uses libfdisk): it knows the
# primary GPT header and the four MBR entries, which is all the fixtures use.

# _disks_hex FILE OFFSET COUNT: COUNT bytes at OFFSET as lowercase hex
_disks_hex() { od -An -v -t x1 -j "$2" -N "$3" "$1" | tr -d ' \n'; }

DISKS_GPT_SIGNATURE=4546492050415254 # "EFI PART"

# disk_sector_size DISK: the device's logical sector size; for an image file
# 4096 if a GPT header sits at byte 4096 (and not at 512), else 512
disk_sector_size() {
	if [ -b "$1" ]; then
		blockdev --getss "$1"
	elif [ "$(_disks_hex "$1" 512 8)" = $DISKS_GPT_SIGNATURE ]; then
		echo 512
	elif [ "$(_disks_hex "$1" 4096 8)" = $DISKS_GPT_SIGNATURE ]; then
		echo 4096
	else
		echo 512
	fi
}

# disk_label DISK: gpt, dos or none (by the primary GPT header and 55AA)
disk_label() {
	local ss
	ss=$(disk_sector_size "$1") || return 1
	if [ "$(_disks_hex "$1" "$ss" 8)" = $DISKS_GPT_SIGNATURE ]; then
		echo gpt
	elif [ "$(_disks_hex "$1" 510 2)" = 55aa ]; then
		echo dos
	else
		echo none
	fi
}

# _disks_part DISK PARTNO: prints "START_BYTES SIZE_BYTES", fails if absent
_disks_part() {
	local disk=$1 n=$2 ss label ent first last start size
	ss=$(disk_sector_size "$disk") || return 1
	label=$(disk_label "$disk") || return 1
	case $label in
	gpt)
		local lba nent entsz
		lba=$(_disks_u64 "$disk" $((ss + 72)))
		nent=$(_disks_u32 "$disk" $((ss + 80)))
		entsz=$(_disks_u32 "$disk" $((ss + 84)))
		[ "$n" -ge 1 ] && [ "$n" -le "$nent" ] || _disks_err "$disk: no partition $n" || return 1
		ent=$((lba * ss + (n - 1) * entsz))
		first=$(_disks_u64 "$disk" $((ent + 32)))
		last=$(_disks_u64 "$disk" $((ent + 40)))
		[ "$first" -gt 0 ] || _disks_err "$disk: no partition $n" || return 1
		start=$((first * ss)) size=$(((last - first + 1) * ss))
		;;
	dos)
		[ "$n" -ge 1 ] && [ "$n" -le 4 ] || _disks_err "$disk: no primary partition $n" || return 1
		ent=$((0x1BE + (n - 1) * 16))
		start=$(($(_disks_u32 "$disk" $((ent + 8))) * ss))
		size=$(($(_disks_u32 "$disk" $((ent + 12))) * ss))
		[ "$size" -gt 0 ] || _disks_err "$disk: no partition $n" || return 1
		;;
	*) _disks_err "$disk: no partition table"; return 1 ;;
	esac
	echo "$start $size"
}

part_start_bytes() { local p; p=$(_disks_part "$@") && echo "${p% *}"; }
part_size_bytes() { local p; p=$(_disks_part "$@") && echo "${p#* }"; }

# --- file systems ----------------------------------------------------------------

# _disks_dir_sums DIR: one line per regular file "SHA256  /path" and per symlink
# "symlink:TARGET  /path", sorted by path (the format of ext4_file_sums)
_disks_dir_sums() {
	(
		set -e -o pipefail
		cd "$1"
		find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z |
			while IFS= read -r -d '' p; do
				if [ -L "$p" ]; then
					printf 'symlink:%s  %s\n' "$(readlink "$p")" "${p#.}"
				else
					printf '%s  %s\n' "$(sha256sum <"$p" | cut -c1-64)" "${p#.}"
				fi
			done
	)
}

# _disks_mkext4 OUT SIZE_BYTES STAGE_DIR UUID LABEL: a reproducible ext4
# (4 KiB blocks, 256-byte inodes) holding STAGE_DIR, without mounting
_disks_mkext4() {
	local out=$1 size=$2 stage=$3 uuid=$4 label=$5 cmds
	find "$stage" -exec touch -h -d "@$DISKS_EPOCH" {} + || return 1
	rm -f "$out"
	E2FSPROGS_FAKE_TIME=$DISKS_EPOCH mke2fs -F -q -t ext4 -b 4096 -I 256 -U "$uuid" \
		-E "hash_seed=$DISKS_EXT4_HASH_SEED,root_owner=0:0" -L "$label" \
		-d "$stage" "$out" $((size / 4096)) >/dev/null ||
		_disks_err "mke2fs failed for $out" || return 1
	# mke2fs -d copies each file's ctime (and stamps crtime): pin them all
	cmds=$out.debugfs
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z) |
		while IFS= read -r -d '' p; do
			p=${p#.}
			for f in atime mtime ctime crtime; do
				printf 'sif "%s" %s @%s\n' "${p:-/}" "$f" "$DISKS_EPOCH"
			done
		done >"$cmds"
	E2FSPROGS_FAKE_TIME=$DISKS_EPOCH debugfs -w -f "$cmds" "$out" >/dev/null 2>"$cmds.err" ||
		{ cat "$cmds.err" >&2; _disks_err "debugfs failed for $out"; return 1; }
	if grep -v '^debugfs ' "$cmds.err" | grep -q .; then
		cat "$cmds.err" >&2
		_disks_err "debugfs could not pin times in $out"
		return 1
	fi
	rm -f "$cmds" "$cmds.err"
}

# _disks_mkfat OUT SIZE_BYTES SECTOR_SIZE STAGE_DIR START_BYTES: FAT32, one
# sector per cluster, fixed serial, hidden sectors = the partition's start (as
# mkfs.fat writes it on a partition device), filled from STAGE_DIR by mtools
_disks_mkfat() {
	local out=$1 size=$2 ss=$3 stage=$4 start=$5 id bk
	rm -f "$out"
	# --invariant pins the label's timestamp but ignores -i: patch the serial
	# (FAT32 BPB offset 0x43) in the boot sector and in its backup copy
	mkfs.fat --invariant -F 32 -s 1 -S "$ss" -h $((start / ss)) -n ESP -C "$out" $((size / 1024)) >/dev/null ||
		_disks_err "mkfs.fat failed for $out" || return 1
	id=$((16#$DISKS_FAT_SERIAL))
	bk=$(od -An -t u2 --endian=little -j $((0x32)) -N 2 "$out" | tr -d ' ')
	_disks_le "$id" 4 | _disks_poke "$out" $((0x43)) || return 1
	_disks_le "$id" 4 | _disks_poke "$out" $((bk * ss + 0x43)) || return 1
	find "$stage" -exec touch -h -d "@$DISKS_EPOCH" {} + || return 1
	# -m keeps the (pinned) mtimes, which mtools would otherwise take from the clock
	(cd "$stage" && LC_ALL=C && mcopy -s -m -Q -i "$out" ./* ::/) ||
		_disks_err "mcopy into $out failed"
}

# _disks_place DISK IMAGE OFFSET_BYTES: dd IMAGE into DISK, keeping holes
_disks_place() {
	dd if="$2" of="$1" bs=1M oflag=seek_bytes seek="$3" conv=notrunc,sparse status=none
}

# _disks_fs_offset DISK PARTNO|--offset BYTES -> byte offset
_disks_fs_offset() {
	if [ "$2" = --offset ]; then
		echo "$3"
	else
		part_start_bytes "$1" "$2"
	fi
}

# ext4_file_sums IMAGE_OR_DEV PARTNO|--offset BYTES: sha256 of every file in
# the ext4 at that place (format of FILE.root.sums), read with debugfs through
# e2fsprogs' "?offset=" (no loop device, no mount, no root)
ext4_file_sums() {
	local disk=$1 off dir
	off=$(_disks_fs_offset "$@") || return 1
	dir=$(mktemp -d "$TRASH/.ext4sums.XXXXXX") || return 1
	debugfs -R "rdump / $dir" "$disk?offset=$off" >/dev/null 2>"$dir.err" ||
		{ cat "$dir.err" >&2; rm -rf "$dir" "$dir.err"; return 1; }
	if grep -v '^debugfs ' "$dir.err" | grep -q .; then
		cat "$dir.err" >&2
		rm -rf "$dir" "$dir.err"
		return 1
	fi
	_disks_dir_sums "$dir"
	local rc=$?
	rm -rf "$dir" "$dir.err"
	return $rc
}

# fat_file_sums IMAGE_OR_DEV PARTNO|--offset BYTES: the same for a FAT file
# system, through mtools' IMAGE@@OFFSET (mtools refuses block devices: those
# are copied to a scratch file first)
fat_file_sums() {
	local disk=$1 off dir img rc=0 size
	off=$(_disks_fs_offset "$@") || return 1
	dir=$(mktemp -d "$TRASH/.fatsums.XXXXXX") || return 1
	img=$disk
	if [ -b "$disk" ]; then
		[ "$2" != --offset ] || _disks_err "fat_file_sums: use a partition number on a device" || return 1
		size=$(part_size_bytes "$disk" "$2") || return 1
		img=$dir.img
		dd if="$disk" of="$img" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$size" \
			status=none || return 1
		off=0
	fi
	mkdir "$dir/fs"
	mcopy -s -n -m -Q -i "$img@@$off" '::*' "$dir/fs/" 2>"$dir/err" ||
		{ cat "$dir/err" >&2; rc=1; }
	[ $rc -ne 0 ] || _disks_dir_sums "$dir/fs" || rc=1
	rm -rf "$dir" "$dir.img"
	return $rc
}

# --- GRUB ------------------------------------------------------------------------

# grub_efi_image OUT PREFIX: the x86_64-efi GRUB that becomes EFI/BOOT/BOOTX64.EFI
grub_efi_image() {
	# shellcheck disable=SC2086 # the module list is a word list
	grub-mkimage -O x86_64-efi -d "$DISKS_GRUB_DIR_EFI" -p "$2" -o "$1" $DISKS_GRUB_MODULES_EFI
}

# grub_pc_core OUT PREFIX: the i386-pc core.img, as grub-mkimage writes it
grub_pc_core() {
	# shellcheck disable=SC2086
	grub-mkimage -O i386-pc -d "$DISKS_GRUB_DIR_PC" -p "$2" -o "$1" $DISKS_GRUB_MODULES_PC
}

# grub_pc_install DISK CORE_IMG CORE_LBA: what grub-install does for BIOS, with
# dd (it cannot work on these files): CORE_IMG at 512-byte sector CORE_LBA,
# its first block-list entry pointed at the sector after, and boot.img in
# sector 0 pointed at CORE_LBA. Only for 512-byte sectors. The appliance's
# image builder uses the same script (boot/grub-pc-install.sh).
grub_pc_install() {
	bash "$TESTS_DIR/../boot/grub-pc-install.sh" "$1" "$2" "$3" "$DISKS_GRUB_DIR_PC/boot.img"
}

# --- the bootable payload: kernel and initramfs ---------------------------------

# disks_kernel_root: prints the directory into which the pinned Debian kernel
# package is unpacked (boot/vmlinuz-$KERNEL_ABI, lib/modules/$KERNEL_ABI with
# modules.dep). mk/fetch-deb.sh downloads it once into
# ${IMAGER_CACHE:-$O/cache} (shared with the appliance build), checks it
# against KERNEL_DEB_SHA256 and unpacks it; parallel callers serialise on a
# lock. Never installs the package.
disks_kernel_root() {
	# shellcheck source=../fixtures/kernel.version
	. "$DISKS_FIXTURES/kernel.version" || return 1
	bash "$TESTS_DIR/../mk/fetch-deb.sh" --cache "${IMAGER_CACHE:-$O/cache}" \
		--sha256 "$KERNEL_DEB_SHA256" --depmod "$KERNEL_ABI" \
		"linux-image-$KERNEL_ABI" "$KERNEL_PKG_VERSION" ||
		{ echo "disks.sh: cannot get linux-image-$KERNEL_ABI: bump tests/fixtures/kernel.version (see its header)" >&2; return 1; }
}

# disks_kernel: path of the pinned kernel image (downloads it if needed)
disks_kernel() {
	local root
	root=$(disks_kernel_root) || return 1
	. "$DISKS_FIXTURES/kernel.version"
	echo "$root/boot/vmlinuz-$KERNEL_ABI"
}

# make_fixture_initramfs OUT: the boot fixtures' initramfs (gzip'd newc cpio,
# reproducible, built without root): static busybox, /init from
# tests/fixtures/initramfs-init, a 1 MiB /payload.bin. Writes the payload's
# sha256 to OUT.payload.sha256.
make_fixture_initramfs() {
	local out=$1 dir
	dir=$(mktemp -d "$TRASH/.initramfs.XXXXXX") || return 1
	(
		set -e -o pipefail
		mkdir -p "$dir/bin" "$dir/proc" "$dir/sys" "$dir/dev"
		cp /bin/busybox "$dir/bin/busybox"
		# a dynamic busybox would die in the guest without a word
		! ldd "$dir/bin/busybox" >/dev/null 2>&1 ||
			{ echo "disks.sh: /bin/busybox is not static (install busybox-static)" >&2; exit 1; }
		ln -s busybox "$dir/bin/sh"
		install -m 0755 "$DISKS_FIXTURES/initramfs-init" "$dir/init"
		_disks_prng initramfs-payload 1048576 >"$dir/payload.bin"
		sha256sum <"$dir/payload.bin" | cut -c1-64 >"$out.payload.sha256"
		find "$dir" -exec touch -h -d "@$DISKS_EPOCH" {} +
		(cd "$dir" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
			cpio --null --reproducible --quiet -o -H newc --owner=0:0) |
			gzip -n -9 >"$out"
	)
	local rc=$?
	rm -rf "$dir"
	return $rc
}

# --- staging ---------------------------------------------------------------------

# _disks_stage_root DIR ROOT_UUID: the root file system's contents: a grub.cfg
# (no kernel), small files, an empty file, a symlink, a sparse file, a name
# with spaces, and 4 MiB of incompressible data
_disks_stage_root() {
	local d=$1 i
	(
		set -e -o pipefail
		mkdir -p "$d/boot/grub" "$d/etc" "$d/data/small"
		cp "$DISKS_FIXTURES/grub-noboot.cfg" "$d/boot/grub/grub.cfg"
		echo imager-golden >"$d/etc/hostname"
		printf 'UUID=%s / ext4 defaults 0 1\n' "$2" >"$d/etc/fstab"
		_disks_prng root-payload 4194304 >"$d/payload.bin"
		for i in $(seq -w 1 40); do
			printf 'imager fixture small file %s\n' "$i" >"$d/data/small/file-$i.txt"
		done
		: >"$d/data/empty"
		echo "a name with spaces" >"$d/data/name with spaces.txt"
		ln -s ../payload.bin "$d/data/payload.link"
		truncate -s 8M "$d/data/sparse.bin"
		_disks_prng sparse 65536 | dd of="$d/data/sparse.bin" bs=64K seek=64 conv=notrunc status=none
	)
}

# _disks_stage_boot DIR SHA_OUT: turns a staged root into a bootable one;
# writes the expected payload hash to SHA_OUT
_disks_stage_boot() {
	local d=$1 kernel sum
	kernel=$(disks_kernel) || return 1
	cp "$kernel" "$d/boot/vmlinuz" || return 1
	make_fixture_initramfs "$d/boot/initrd.img" || return 1
	sum=$(cat "$d/boot/initrd.img.payload.sha256")
	mv "$d/boot/initrd.img.payload.sha256" "$2"
	sed "s/@EXPECT@/$sum/" "$DISKS_FIXTURES/grub-boot.cfg.in" >"$d/boot/grub/grub.cfg"
}

# --- disks -----------------------------------------------------------------------

# make_blank_disk FILE SIZE: an all-zero sparse disk image
make_blank_disk() {
	[ $# -eq 2 ] || _disks_err "usage: make_blank_disk FILE SIZE" || return 1
	_disks_own_path "$1" || return 1
	local bytes
	bytes=$(_disks_bytes "$2") || return 1
	rm -f "$1" && truncate -s "$bytes" "$1"
}

# make_gpt_disk [--bootable] [--sector-size 512|4096] FILE [SIZE]
make_gpt_disk() {
	local bootable= ss=512
	while [ $# -gt 0 ]; do
		case $1 in
		--bootable) bootable=1; shift ;;
		--sector-size) ss=$2; shift 2 ;;
		--sector-size=*) ss=${1#*=}; shift ;;
		--) shift; break ;;
		-*) _disks_err "make_gpt_disk: unknown option '$1'"; return 1 ;;
		*) break ;;
		esac
	done
	[ $# -ge 1 ] && [ $# -le 2 ] ||
		_disks_err "usage: make_gpt_disk [--bootable] [--sector-size 512|4096] FILE [SIZE]" || return 1
	local file=$1 size=${2:-512M} bytes esp_mib label_id uuid_prefix root_uuid work rc
	case $ss in
	512) esp_mib=64 label_id=$DISKS_GPT_ID uuid_prefix=$DISKS_GPT_PART_UUID_PREFIX
	     root_uuid=$DISKS_GPT_ROOT_UUID ;;
	4096) esp_mib=260 label_id=$DISKS_GPT_4KN_ID uuid_prefix=$DISKS_GPT_4KN_PART_UUID_PREFIX
	      root_uuid=$DISKS_GPT_4KN_ROOT_UUID ;;
	*) _disks_err "make_gpt_disk: sector size must be 512 or 4096, not '$ss'"; return 1 ;;
	esac
	_disks_own_path "$file" || return 1
	bytes=$(_disks_bytes "$size") || return 1
	[ "$bytes" -ge $(((esp_mib + 2 + 32) * 1048576)) ] ||
		_disks_err "make_gpt_disk: $size is too small" || return 1
	work=$(mktemp -d "$TRASH/.gpt.XXXXXX") || return 1
	rm -f "$file" "$file".*.sums "$file.payload.sha256"
	(
		set -e -o pipefail
		truncate -s "$bytes" "$file"
		cat >"$work/table" <<-EOF
		label: gpt
		label-id: $label_id
		start=1MiB, size=1MiB, type=$DISKS_TYPE_BIOS_BOOT, uuid=${uuid_prefix}1, name="bios"
		start=2MiB, size=${esp_mib}MiB, type=$DISKS_TYPE_ESP, uuid=${uuid_prefix}2, name="esp"
		start=$((esp_mib + 2))MiB, type=$DISKS_TYPE_LINUX, uuid=${uuid_prefix}3, name="root"
		EOF
		if [ "$ss" = 512 ]; then
			sfdisk -q --no-reread --no-tell-kernel "$file" <"$work/table" >/dev/null
		else
			# sfdisk (2.38) cannot be told the sector size of a file; fdisk
			# can, and its "I" command applies an sfdisk script
			printf 'I\n%s\nw\n' "$work/table" | fdisk -b 4096 "$file" >"$work/fdisk.log" 2>&1 ||
				{ cat "$work/fdisk.log" >&2; exit 1; }
		fi
		[ "$(disk_sector_size "$file")" = "$ss" ]

		# ESP: GRUB for x86_64 UEFI, reading its config from the ext4 root
		mkdir -p "$work/esp/EFI/BOOT"
		grub_efi_image "$work/esp/EFI/BOOT/BOOTX64.EFI" '(,gpt3)/boot/grub'
		echo "imager fixture ESP" >"$work/esp/imager-fixture.txt"
		_disks_mkfat "$work/esp.fat" "$(part_size_bytes "$file" 2)" "$ss" "$work/esp" \
			"$(part_start_bytes "$file" 2)"
		_disks_place "$file" "$work/esp.fat" "$(part_start_bytes "$file" 2)"
		_disks_dir_sums "$work/esp" >"$file.esp.sums"
		rm -f "$work/esp.fat"

		# root
		_disks_stage_root "$work/root" "$root_uuid"
		[ -z "$bootable" ] || _disks_stage_boot "$work/root" "$work/payload.sha256"
		_disks_mkext4 "$work/root.ext4" "$(part_size_bytes "$file" 3)" "$work/root" \
			"$root_uuid" root
		_disks_place "$file" "$work/root.ext4" "$(part_start_bytes "$file" 3)"
		_disks_dir_sums "$work/root" >"$file.root.sums"
		[ -z "$bootable" ] || mv "$work/payload.sha256" "$file.payload.sha256"

		# BIOS: core.img in the BIOS boot partition (512-byte sectors only)
		if [ "$ss" = 512 ]; then
			grub_pc_core "$work/core.img" '(,gpt3)/boot/grub'
			grub_pc_install "$file" "$work/core.img" $(($(part_start_bytes "$file" 1) / 512))
		fi
	)
	rc=$?
	rm -rf "$work"
	[ $rc -eq 0 ] || { _disks_err "make_gpt_disk $file failed"; return 1; }
}

# make_gpt_disk_4kn [--bootable] FILE [SIZE]: make_gpt_disk for 4096-byte sectors
make_gpt_disk_4kn() {
	local opts=()
	while [ $# -gt 0 ]; do
		case $1 in --bootable) opts+=("$1"); shift ;; *) break ;; esac
	done
	make_gpt_disk "${opts[@]}" --sector-size 4096 "$@"
}

# make_mbr_disk [--bootable] FILE [SIZE]
make_mbr_disk() {
	local bootable=
	while [ $# -gt 0 ]; do
		case $1 in
		--bootable) bootable=1; shift ;;
		--) shift; break ;;
		-*) _disks_err "make_mbr_disk: unknown option '$1'"; return 1 ;;
		*) break ;;
		esac
	done
	[ $# -ge 1 ] && [ $# -le 2 ] ||
		_disks_err "usage: make_mbr_disk [--bootable] FILE [SIZE]" || return 1
	local file=$1 size=${2:-512M} bytes work rc swap_mib=64
	_disks_own_path "$file" || return 1
	bytes=$(_disks_bytes "$size") || return 1
	[ "$bytes" -ge $(((swap_mib + 1 + 32) * 1048576)) ] ||
		_disks_err "make_mbr_disk: $size is too small" || return 1
	work=$(mktemp -d "$TRASH/.mbr.XXXXXX") || return 1
	rm -f "$file" "$file".*.sums "$file.payload.sha256"
	(
		set -e -o pipefail
		truncate -s "$bytes" "$file"
		cat >"$work/table" <<-EOF
		label: dos
		label-id: $DISKS_MBR_ID
		start=1MiB, size=$((bytes / 1048576 - 1 - swap_mib))MiB, type=83, bootable
		start=$((bytes / 1048576 - swap_mib))MiB, size=${swap_mib}MiB, type=82
		EOF
		sfdisk -q --no-reread --no-tell-kernel "$file" <"$work/table" >/dev/null

		_disks_stage_root "$work/root" "$DISKS_MBR_ROOT_UUID"
		[ -z "$bootable" ] || _disks_stage_boot "$work/root" "$work/payload.sha256"
		_disks_mkext4 "$work/root.ext4" "$(part_size_bytes "$file" 1)" "$work/root" \
			"$DISKS_MBR_ROOT_UUID" root
		_disks_place "$file" "$work/root.ext4" "$(part_start_bytes "$file" 1)"
		_disks_dir_sums "$work/root" >"$file.root.sums"
		[ -z "$bootable" ] || mv "$work/payload.sha256" "$file.payload.sha256"
		rm -f "$work/root.ext4"

		truncate -s "$(part_size_bytes "$file" 2)" "$work/swap"
		mkswap -q -U "$DISKS_SWAP_UUID" -L swap "$work/swap" >/dev/null 2>&1
		_disks_place "$file" "$work/swap" "$(part_start_bytes "$file" 2)"

		# BIOS: core.img in the gap between the MBR and the first partition
		grub_pc_core "$work/core.img" '(,msdos1)/boot/grub'
		[ $(($(stat -c %s "$work/core.img") + 512)) -le "$(part_start_bytes "$file" 1)" ]
		grub_pc_install "$file" "$work/core.img" 1
	)
	rc=$?
	rm -rf "$work"
	[ $rc -eq 0 ] || { _disks_err "make_mbr_disk $file failed"; return 1; }
}

# damage_primary_gpt FILE: zero the primary GPT header (LBA 1); the backup
# header at the end of the disk stays intact
damage_primary_gpt() {
	_disks_own_path "$1" || return 1
	local ss
	ss=$(disk_sector_size "$1") || return 1
	[ "$(disk_label "$1")" = gpt ] || _disks_err "$1 has no primary GPT" || return 1
	dd if=/dev/zero of="$1" bs="$ss" seek=1 count=1 conv=notrunc status=none
}
