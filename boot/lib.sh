# SPDX-License-Identifier: GPL-2.0-or-later
#
# Shell functions shared by initramfs/build.sh and boot/build.sh. Source it;
# it defines functions only. Everything here works on files, without root
# and without mounting.

# appl_die MESSAGE: print "PROG: MESSAGE" and exit
appl_die() { echo "${0##*/}: $*" >&2; exit 1; }

# appl_load_config FILE: source the shell config that mk/appliance-config.py
# wrote from the kconfig; every CONFIG_APPLIANCE_* symbol is set (empty when
# a bool is off)
appl_load_config() {
	[ -r "$1" ] || appl_die "no config '$1' (run 'make NAME_defconfig' or 'make appliance')"
	# shellcheck disable=SC1090
	. "$1"
}

# appl_uuid SEED NAME: a stable UUID for NAME (RFC 4122 version 4 layout,
# its bits taken from SHA-256 of "SEED:NAME", the way systemd-repart derives
# its UUIDs from a seed), lowercase
appl_uuid() {
	local h
	h=$(printf '%s:%s' "$1" "$2" | sha256sum | cut -c1-32)
	printf '%s-%s-4%s-%x%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" \
		$(((16#${h:16:1} & 3) | 8)) "${h:17:3}" "${h:20:12}"
}

# appl_hex32 SEED NAME: 8 stable hex digits (for a FAT volume id)
appl_hex32() { printf '%s:%s' "$1" "$2" | sha256sum | cut -c1-8 | tr a-f A-F; }

# appl_le VALUE NBYTES: VALUE as NBYTES little-endian bytes on stdout
appl_le() {
	local v=$1 n=$2 i out=
	for ((i = 0; i < n; i++)); do
		out+=$(printf '\\x%02x' $(((v >> (8 * i)) & 0xff)))
	done
	printf "$out"
}

# appl_poke FILE OFFSET: write stdin at byte OFFSET of FILE
appl_poke() { dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# appl_u16 FILE OFFSET: the little-endian 16-bit value at OFFSET, in decimal
appl_u16() { od -An -v -t u2 --endian=little -j "$2" -N 2 "$1" | tr -d ' \n'; }

# appl_pin_times DIR EPOCH: every file, directory and link in DIR gets mtime
# and atime EPOCH
appl_pin_times() { find "$1" -exec touch -h -d "@$2" {} +; }

# appl_mkfat OUT SIZE_BYTES SECTOR_BYTES START_BYTES VOLID_HEX LABEL STAGE_DIR EPOCH
# A FAT32 file system in the file OUT (one sector per cluster), its volume id
# VOLID_HEX and its hidden-sector count START_BYTES/SECTOR_BYTES (what
# mkfs.fat writes on a partition device), filled from STAGE_DIR by mtools.
# All times are EPOCH, so the same inputs give the same bytes.
appl_mkfat() {
	local out=$1 size=$2 ss=$3 start=$4 volid=$5 label=$6 stage=$7 epoch=$8 bk
	rm -f "$out"
	# --invariant fixes the timestamps mkfs.fat would take from the clock,
	# but ignores -i: the volume id is patched below
	mkfs.fat --invariant -F 32 -s 1 -S "$ss" -h $((start / ss)) -n "$label" \
		-C "$out" $((size / 1024)) >/dev/null || appl_die "mkfs.fat failed for $out"
	# FAT32 BPB: volume id at 0x43 of the boot sector and of its backup,
	# whose sector number is at 0x32
	bk=$(appl_u16 "$out" $((0x32)))
	appl_le $((16#$volid)) 4 | appl_poke "$out" $((0x43))
	appl_le $((16#$volid)) 4 | appl_poke "$out" $((bk * ss + 0x43))
	appl_pin_times "$stage" "$epoch"
	# mcopy -m keeps the pinned mtimes; without it mtools takes the clock.
	# MTOOLS_SKIP_CHECK: the file is not a partitioned disk
	(cd "$stage" && LC_ALL=C MTOOLS_SKIP_CHECK=1 mcopy -s -m -Q -i "$out" ./* ::/) ||
		appl_die "mcopy into $out failed"
}

# appl_mkext4 OUT SIZE_BYTES STAGE_DIR UUID HASH_SEED LABEL EPOCH
# An ext4 file system (4 KiB blocks) in the file OUT holding STAGE_DIR, owned
# by root, every time EPOCH: `mke2fs -d` under E2FSPROGS_FAKE_TIME, then
# debugfs pins the times mke2fs copied from the staging files.
appl_mkext4() {
	local out=$1 size=$2 stage=$3 uuid=$4 seed=$5 label=$6 epoch=$7 cmds p f
	rm -f "$out"
	appl_pin_times "$stage" "$epoch"
	E2FSPROGS_FAKE_TIME=$epoch mke2fs -F -q -t ext4 -b 4096 -I 256 -U "$uuid" \
		-E "hash_seed=$seed,root_owner=0:0" -L "$label" -d "$stage" \
		"$out" $((size / 4096)) >/dev/null || appl_die "mke2fs failed for $out"
	cmds=$out.debugfs
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z) |
		while IFS= read -r -d '' p; do
			p=${p#.}
			for f in atime mtime ctime crtime; do
				printf 'sif "%s" %s @%s\n' "${p:-/}" "$f" "$epoch"
			done
		done >"$cmds"
	E2FSPROGS_FAKE_TIME=$epoch debugfs -w -f "$cmds" "$out" >/dev/null 2>"$cmds.err" ||
		{ cat "$cmds.err" >&2; appl_die "debugfs failed for $out"; }
	if grep -v '^debugfs ' "$cmds.err" | grep -q .; then
		cat "$cmds.err" >&2
		appl_die "debugfs could not pin the times in $out"
	fi
	rm -f "$cmds" "$cmds.err"
}

# appl_place DISK IMAGE OFFSET_BYTES: copy IMAGE into DISK at OFFSET_BYTES,
# leaving holes where IMAGE has zeros
appl_place() {
	dd if="$2" of="$1" bs=1M oflag=seek_bytes seek="$3" conv=notrunc,sparse status=none ||
		appl_die "cannot place $2 into $1"
}
