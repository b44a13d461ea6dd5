#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='images export: raw, gce-tar, qcow2, vhd and vmdk, read back by tools nobody here wrote'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

export IMAGER_STORE=$TRASH/store

# the temporaries an export may leave: none, ever
no_leftovers() { ! ls -a | grep -q '\.tmp\.'; }
# byte N of FILE as a decimal number
byte_at() { od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
# big-endian unsigned integer of LEN bytes at OFF in FILE
be_at() { echo $((16#$(od -An -v -t x1 -j "$2" -N "$3" "$1" | tr -d ' \n'))); }
# the VHD footer checksum recomputed: one's complement of the byte sum, bytes 64-67 left out
vhd_sum() {
	local i=0 sum=0 b
	for b in $(tail -c 512 "$1" | od -An -v -t u1); do
		[ $i -ge 64 ] && [ $i -lt 68 ] || sum=$((sum + b))
		i=$((i + 1))
	done
	echo $(((~sum) & 0xffffffff))
}
# sfdisk --dump without the lines that change with the disk's size
table_of() { sfdisk --dump "$1" | grep -vE '^(last-lba|device):' | sed "s#$1#DISK#"; }

test_expect_success 'capture a GPT and an MBR golden disk, and both as one two-disk image' '
	make_gpt_disk gpt.img 256M && make_mbr_disk mbr.img 256M &&
	"$IMAGER" capture gpt.img --image gpt-golden --progress=none &&
	"$IMAGER" capture mbr.img --image mbr-golden --progress=none &&
	"$IMAGER" capture gpt.img mbr.img --image pair --progress=none
'

for d in gpt mbr; do
test_expect_success "$d: export raw, qcow2, vhd and vmdk; each reports its sizes" '
	for f in raw qcow2 vhd vmdk; do
		"$IMAGER" images export $d-golden --format $f -o $d.$f --progress=json >$d.$f.json &&
		jq -e "select(.phase == \"done\") | .format == \"$f\" and .disk == 0 and
			.disk_bytes == $((256 << 20)) and .data_bytes > 0 and .chunks > 0 and
			.file_bytes == $(stat -c %s $d.$f)" $d.$f.json || return 1
	done &&
	no_leftovers
'

test_expect_success "$d: the raw export equals a flash of the image onto a new file" '
	"$IMAGER" flash $d-golden $d.flashed --yes >/dev/null &&
	cmp $d.raw $d.flashed &&
	[ $(stat -c %s $d.raw) -eq $((256 << 20)) ] &&
	[ $(du -k $d.raw | cut -f1) -lt $((64 << 10)) ]
'

test_expect_success "$d: qemu-img check is clean on qcow2 and vmdk; QEMU opens the VHD at its size" '
	qemu-img check -f qcow2 $d.qcow2 >check.q && grep -q "No errors were found" check.q &&
	qemu-img check -f vmdk $d.vmdk >check.v && grep -q "No errors were found" check.v &&
	qemu-img info -f vmdk --output=json $d.vmdk >info.v &&
	jq -e ".\"virtual-size\" == $((256 << 20)) and
		.\"format-specific\".data.\"create-type\" == \"streamOptimized\" and
		.\"format-specific\".data.extents[0].compressed == true" info.v &&
	qemu-img info -f qcow2 --output=json $d.qcow2 >info.q &&
	jq -e ".\"virtual-size\" == $((256 << 20)) and .\"format-specific\".data.compat == \"1.1\"" info.q &&
	qemu-img info -f vpc --output=json $d.vhd >info.h &&
	jq -e ".\"virtual-size\" == $((256 << 20))" info.h &&
	rc=0 && qemu-img check -f vpc $d.vhd 2>check.h || rc=$? &&
	{ [ $rc -eq 0 ] || { [ $rc -eq 63 ] && grep -q "does not support checks" check.h; }; }
'

test_expect_success "$d: qemu-img compare finds qcow2, vhd and vmdk identical to the raw export" '
	qemu-img compare -f raw -F qcow2 $d.raw $d.qcow2 &&
	qemu-img compare -f raw -F vpc $d.raw $d.vhd &&
	qemu-img compare -f raw -F vmdk $d.raw $d.vmdk &&
	qemu-img convert -f vmdk -O raw $d.vmdk $d.vmdk.raw && cmp $d.raw $d.vmdk.raw &&
	qemu-img convert -f qcow2 -O raw $d.qcow2 $d.qcow2.raw && cmp $d.raw $d.qcow2.raw
'

test_expect_success "$d: the VHD is fixed, MiB-aligned plus a 512-byte footer whose checksum verifies" '
	size=$(stat -c %s $d.vhd) &&
	[ $(( (size - 512) % (1 << 20) )) -eq 0 ] && [ $((size - 512)) -eq $((256 << 20)) ] &&
	[ "$(tail -c 512 $d.vhd | head -c 8)" = conectix ] &&
	expect_eq "$(be_at $d.vhd $((size - 512 + 60)) 4)" 2 "disk type (fixed)" &&
	expect_eq "$(be_at $d.vhd $((size - 512 + 48)) 8)" $((size - 512)) "current size" &&
	[ "$(tail -c 512 $d.vhd | od -An -t x1 -j 16 -N 8 | tr -d " \n")" = ffffffffffffffff ] &&
	expect_eq "$(be_at $d.vhd $((size - 512 + 64)) 4)" "$(vhd_sum $d.vhd)" "footer checksum" &&
	cmp -n $((size - 512)) $d.vhd $d.raw &&
	vhdiinfo $d.vhd >vhdi.out && grep -q "Disk type.*Fixed" vhdi.out &&
	grep -q "Media size.*($((256 << 20)) bytes)" vhdi.out
'

test_expect_success "$d: the VMDK is a streamOptimized sparse extent libvmdk reads" '
	[ "$(head -c 4 $d.vmdk)" = KDMV ] &&
	flags=$(od -An -t u4 --endian=little -j 8 -N 4 $d.vmdk | tr -d " ") &&
	expect_eq $((flags & 0x30001)) $((0x30001)) "header flags" &&
	expect_eq "$(od -An -t u8 --endian=little -j 56 -N 8 $d.vmdk | tr -d " ")" \
		18446744073709551615 "gdOffset (GD_AT_END)" &&
	dd if=$d.vmdk bs=512 skip=1 count=20 status=none | tr -d "\0" >desc.txt &&
	grep -qx "createType=\"streamOptimized\"" desc.txt &&
	grep -qx "RW $(((256 << 20) / 512)) SPARSE \"$d.vmdk\"" desc.txt &&
	[ "$(tail -c 512 $d.vmdk | tr -d "\0" | wc -c)" -eq 0 ] &&
	vmdkinfo $d.vmdk >vmdk.out && grep -q "Stream optimized" vmdk.out
'
done

if [ -c /dev/fuse ] && command -v vmdkmount >/dev/null && command -v vhdimount >/dev/null; then
test_expect_success 'libvmdk and libvhdi (FUSE mounts) read exactly the raw export' '
	mkdir -p mnt.v mnt.h && register_mount "$TRASH/mnt.v" && register_mount "$TRASH/mnt.h" &&
	{ vmdkmount gpt.vmdk mnt.v >/dev/null 2>&1 & register_pid $!; } &&
	{ vhdimount gpt.vhd mnt.h >/dev/null 2>&1 & register_pid $!; } &&
	for i in $(seq 100); do [ -e mnt.v/vmdk1 ] && [ -e mnt.h/vhdi1 ] && break; sleep 0.1; done &&
	cmp mnt.v/vmdk1 gpt.raw && cmp mnt.h/vhdi1 gpt.raw &&
	fusermount -u mnt.v && fusermount -u mnt.h
'
else
	test_count=$((test_count + 1))
	echo "ok $test_count # skip libvmdk/libvhdi FUSE read-back (no /dev/fuse or vmdkmount/vhdimount)"
fi

test_expect_success 'gce-tar: GNU tar lists one member disk.raw of 1 GiB; old-GNU sparse header' '
	"$IMAGER" images export gpt-golden --format gce-tar -o gpt.tar.gz --progress=none &&
	gzip -t gpt.tar.gz &&
	tar -tvzf gpt.tar.gz >list &&
	[ $(wc -l <list) -eq 1 ] &&
	[ "$(awk "{print \$3, \$6}" list)" = "$((1 << 30)) disk.raw" ] &&
	tar --list --verbose --sparse -zf gpt.tar.gz | grep -q " disk.raw$" &&
	gzip -dc gpt.tar.gz >gpt.tar && head -c 512 gpt.tar >hdr &&
	[ $(( $(stat -c %s gpt.tar) % 10240 )) -eq 0 ] &&
	[ "$(dd if=hdr bs=1 skip=156 count=1 status=none)" = S ] &&
	[ "$(dd if=hdr bs=1 skip=257 count=8 status=none | od -An -c | tr -s " ")" = " u s t a r \0" ] &&
	[ "$(head -c 8 hdr)" = disk.raw ] &&
	python3 -c "
import sys, tarfile
t = tarfile.open(\"gpt.tar.gz\")
m = t.getmembers()
assert len(m) == 1 and m[0].name == \"disk.raw\", m
assert m[0].type == tarfile.GNUTYPE_SPARSE and m[0].issparse(), m[0].type
assert m[0].size == 1 << 30, m[0].size
"
'

test_expect_success 'gce-tar: extracted with GNU tar --sparse, disk.raw is sparse, valid and has the files' '
	mkdir gx && tar --sparse -xzf gpt.tar.gz -C gx &&
	[ "$(ls gx)" = disk.raw ] &&
	[ $(stat -c %s gx/disk.raw) -eq $((1 << 30)) ] &&
	[ $(du -k gx/disk.raw | cut -f1) -lt $((64 << 10)) ] &&
	sgdisk -v gx/disk.raw | grep -q "No problems found" &&
	test_cmp <(table_of gpt.img) <(table_of gx/disk.raw) &&
	ext4_file_sums gx/disk.raw 3 >gx.root.sums && test_cmp gpt.img.root.sums gx.root.sums &&
	fat_file_sums gx/disk.raw 2 >gx.esp.sums && test_cmp gpt.img.esp.sums gx.esp.sums &&
	"$IMAGER" flash gpt-golden gpt.1g --size 1G --yes >/dev/null &&
	cmp gpt.1g gx/disk.raw
'

test_expect_success 'gce-tar of the MBR disk: sfdisk verifies, files and the flash at 1 GiB equal' '
	"$IMAGER" images export mbr-golden --format gce-tar -o mbr.tar.gz --progress=none &&
	[ "$(tar -tzf mbr.tar.gz)" = disk.raw ] &&
	mkdir mx && tar --sparse -xzf mbr.tar.gz -C mx &&
	[ $(stat -c %s mx/disk.raw) -eq $((1 << 30)) ] &&
	sfdisk --verify mx/disk.raw >verify.out && grep -q "No errors detected" verify.out &&
	ext4_file_sums mx/disk.raw 1 >mx.root.sums && test_cmp mbr.img.root.sums mx.root.sums &&
	"$IMAGER" flash mbr-golden mbr.1g --size 1G --yes >/dev/null &&
	cmp mbr.1g mx/disk.raw
'

test_expect_success 'round trip: every export imported back stores no new chunk and flashes equal' '
	for f in raw qcow2 vhd vmdk tar.gz; do
		if [ $f = tar.gz ]; then src="--source-tar gpt.tar.gz"; else src="--source-vdisk gpt.$f"; fi
		"$IMAGER" images create rt-${f%.gz} $src --progress=json >rt.json &&
		jq -e "select(.phase == \"done\") | .new_chunks == 0" rt.json &&
		"$IMAGER" flash rt-${f%.gz} rt.img --yes >/dev/null &&
		if [ $f = tar.gz ]; then cmp rt.img gpt.1g; else cmp rt.img gpt.raw; fi &&
		rm -f rt.img || return 1
	done
'

test_expect_success 'exports are reproducible: the same image gives the same bytes' '
	mkdir again &&
	for f in qcow2 vhd vmdk; do
		"$IMAGER" images export gpt-golden --format $f -o again/gpt.$f --progress=none &&
		cmp gpt.$f again/gpt.$f || return 1
	done &&
	"$IMAGER" images export gpt-golden --format gce-tar -o again/gpt.tar.gz --progress=none &&
	cmp gpt.tar.gz again/gpt.tar.gz
'

test_expect_success 'a two-disk image: --disk 1 exports the second disk' '
	"$IMAGER" images export pair --disk 1 --format raw -o pair1.raw --progress=none &&
	cmp pair1.raw mbr.raw &&
	"$IMAGER" images export pair --format raw -o pair0.raw --progress=none &&
	cmp pair0.raw gpt.raw &&
	expect_exit 2 "$IMAGER" images export pair --disk 2 --format raw -o pair2.raw 2>disk.err &&
	grep -q "no disk 2" disk.err && [ ! -e pair2.raw ]
'

# A 9 GiB + 1.5 MiB disk: mostly empty, not MiB-aligned, and past the 8 GiB that
# octal tar fields can hold (GNU base-256 numbers then).
test_expect_success 'big sparse disk: capture 9 GiB + 1.5 MiB' '
	make_gpt_disk big.img $(((9 << 30) + (3 << 19))) &&
	"$IMAGER" capture big.img --image big --progress=none
'

test_expect_success 'big disk: the qcow2 holds only used clusters and qemu-img check is clean' '
	"$IMAGER" images export big --format qcow2 -o big.qcow2 --progress=json >big.json &&
	data=$(jq -r "select(.phase == \"done\") | .data_bytes" big.json) &&
	size=$(stat -c %s big.qcow2) &&
	echo "data $data qcow2 $size" &&
	[ "$size" -lt $((data + (4 << 20))) ] && [ "$size" -lt $((32 << 20)) ] &&
	qemu-img check big.qcow2 >big.check && grep -q "No errors were found" big.check &&
	used=$(sed -n "s#^\([0-9]*\)/[0-9]* = .* allocated.*#\1#p" big.check) &&
	[ $((used * 65536)) -le "$data" ] &&
	"$IMAGER" images export big --format raw -o big.raw --progress=none &&
	qemu-img compare -f raw -F qcow2 big.raw big.qcow2
'

test_expect_success 'big disk: VHD rounded up to a whole MiB, backup GPT moved to its new end' '
	"$IMAGER" images export big --format vhd -o big.vhd --progress=none &&
	vsize=$(( ((9 << 30) + (3 << 19) + (1 << 20) - 1) / (1 << 20) * (1 << 20) )) &&
	[ $(stat -c %s big.vhd) -eq $((vsize + 512)) ] &&
	expect_eq "$(be_at big.vhd $((vsize + 48)) 8)" $vsize "current size" &&
	expect_eq "$(be_at big.vhd $((vsize + 64)) 4)" "$(vhd_sum big.vhd)" "footer checksum" &&
	qemu-img convert -f vpc -O raw big.vhd big.vhd.raw &&
	[ $(stat -c %s big.vhd.raw) -eq $vsize ] &&
	sgdisk -v big.vhd.raw | grep -q "No problems found" &&
	"$IMAGER" flash big big.flash --size $vsize --yes >/dev/null &&
	cmp big.flash big.vhd.raw
'

test_expect_success 'big disk: gce-tar of 10 GiB (base-256 sizes) lists and extracts with GNU tar' '
	"$IMAGER" images export big --format gce-tar -o big.tar.gz --progress=none &&
	[ "$(tar -tvzf big.tar.gz | awk "{print \$3, \$6}")" = "$((10 << 30)) disk.raw" ] &&
	gzip -dc big.tar.gz >big.tar && head -c 512 big.tar >bighdr &&
	expect_eq "$(byte_at bighdr 483)" 128 "realsize in base-256" &&
	mkdir bx && tar --sparse -xzf big.tar.gz -C bx &&
	[ $(stat -c %s bx/disk.raw) -eq $((10 << 30)) ] &&
	sgdisk -v bx/disk.raw | grep -q "No problems found" &&
	ext4_file_sums bx/disk.raw 3 >bx.sums && test_cmp big.img.root.sums bx.sums
'

test_expect_success 'big disk: the VMDK of an odd-sized disk checks clean and compares equal' '
	"$IMAGER" images export big --format vmdk -o big.vmdk --progress=none &&
	qemu-img check -f vmdk big.vmdk >bigv.check && grep -q "No errors were found" bigv.check &&
	qemu-img compare -f raw -F vmdk big.raw big.vmdk &&
	[ $(stat -c %s big.vmdk) -lt $((64 << 20)) ]
'

test_expect_success 'kill -TERM during an export: no output and no temporary left behind' '
	make_gpt_disk noisy.img 512M &&
	dd if=/dev/urandom of=noise.bin bs=1M count=200 status=none &&
	off=$(part_start_bytes noisy.img 3) &&
	debugfs -w -R "write noise.bin noise.bin" "noisy.img?offset=$off" >/dev/null 2>&1 &&
	"$IMAGER" capture noisy.img --image noisy --progress=none &&
	{ "$IMAGER" images export noisy --format vmdk -o noisy.vmdk --progress=none & pid=$!; } &&
	register_pid $pid &&
	for i in $(seq 200); do ls | grep -q "^noisy\.vmdk\.tmp\." && break; sleep 0.05; done &&
	ls | grep -q "^noisy\.vmdk\.tmp\." &&
	kill -TERM $pid && rc=0 && { wait $pid || rc=$?; } &&
	expect_eq $rc 143 "exit status (killed by SIGTERM)" &&
	[ ! -e noisy.vmdk ] && no_leftovers
'

test_expect_success 'a 4Kn image exports as raw and qcow2; VHD is refused (512-byte sectors)' '
	make_gpt_disk_4kn g4k.img 320M &&
	"$IMAGER" capture g4k.img --image g4k --progress=none &&
	"$IMAGER" images export g4k --format raw -o g4k.raw --progress=none &&
	"$IMAGER" flash g4k g4k.flashed --yes >/dev/null && cmp g4k.raw g4k.flashed &&
	"$IMAGER" images export g4k --format qcow2 -o g4k.qcow2 --progress=none &&
	qemu-img compare -f raw -F qcow2 g4k.raw g4k.qcow2 &&
	for f in vhd vmdk; do
		expect_exit 4 "$IMAGER" images export g4k --format $f -o g4k.$f 2>g4k.err &&
		grep -q "512-byte sectors" g4k.err && [ ! -e g4k.$f ] || return 1
	done &&
	expect_exit 4 "$IMAGER" images export g4k --format gce-tar -o g4k.tar.gz 2>/dev/null &&
	[ ! -e g4k.tar.gz ] && no_leftovers
'

test_expect_success 'bad input: unknown format, missing image, gce-tar not named .tar.gz' '
	expect_exit 2 "$IMAGER" images export gpt-golden --format vdi -o x.vdi 2>e1 &&
	grep -q "unknown format .vdi." e1 && [ ! -e x.vdi ] &&
	expect_exit 5 "$IMAGER" images export no-such-image --format raw -o x.raw 2>e2 &&
	grep -q "no-such-image" e2 && [ ! -e x.raw ] &&
	expect_exit 2 "$IMAGER" images export gpt-golden --format gce-tar -o x.tgz 2>e3 &&
	grep -q "\.tar\.gz" e3 && [ ! -e x.tgz ] &&
	expect_exit 2 "$IMAGER" images export gpt-golden -o x.raw 2>e4 &&
	grep -q -- "--format is required" e4 &&
	expect_exit 2 "$IMAGER" images export gpt-golden --format raw 2>e5 &&
	grep -q -- "-o FILE is required" e5 &&
	no_leftovers
'

test_expect_success 'an existing output is refused untouched without --force, replaced with it' '
	echo "keep me" >taken.qcow2 &&
	expect_exit 4 "$IMAGER" images export gpt-golden --format qcow2 -o taken.qcow2 2>e6 &&
	grep -q "already exists" e6 && grep -q -- "--force" e6 &&
	[ "$(cat taken.qcow2)" = "keep me" ] &&
	"$IMAGER" images export gpt-golden --format qcow2 -o taken.qcow2 --force --progress=none &&
	cmp taken.qcow2 gpt.qcow2 &&
	mkdir taken.dir &&
	expect_exit 4 "$IMAGER" images export gpt-golden --format raw -o taken.dir --force 2>e7 &&
	grep -q "not a regular file" e7 && [ -d taken.dir ] &&
	no_leftovers
'

test_expect_success 'a corrupted chunk stops the export: exit 3, nothing left behind' '
	"$IMAGER" capture gpt.img --image gpt-golden --store store-bad --progress=none &&
	chunk=$(find store-bad/chunks -name "*.chunk" -size +8k | sort | head -1) &&
	size=$(stat -c %s "$chunk") &&
	printf "\xff" | dd of="$chunk" bs=1 seek=$((size / 2)) conv=notrunc status=none &&
	for f in raw qcow2 vmdk gce-tar; do
		o=bad.$f && [ $f != gce-tar ] || o=bad.tar.gz
		expect_exit 3 "$IMAGER" images export gpt-golden --store store-bad --format $f -o $o 2>bad.err &&
		grep -q "damaged" bad.err && [ ! -e $o ] || return 1
	done &&
	no_leftovers
'

test_done
