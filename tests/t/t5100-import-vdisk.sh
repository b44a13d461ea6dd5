#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='images create --source-vdisk/--source-tar: disks made by qemu-img (qcow2 v2/v3
with and without compression, VMDK, VHD, VHDX, raw) and a GNU sparse tar import to images whose
flash equals qemu-img convert -O raw of the same file on every used block'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

export IMAGER_STORE=$TRASH/store
command -v qemu-img >/dev/null || skip_all "qemu-img (qemu-utils) is not installed"
# imports are served to the capture through FUSE, which needs root (and /dev/fuse)
[ -c /dev/fuse ] || skip_all "/dev/fuse is missing"

# free blocks of the root ext4 are filled with this much noise: an import that
# stored unused blocks would store it (it does not compress)
NOISE_BYTES=$((32 << 20))

# sfdisk --dump without the lines that legitimately differ (disk end, file name)
table_of() { sfdisk --dump "$1" | grep -vE '^(last-lba|device):' | sed "s#$1#DISK#"; }
range_sum() {
	dd if="$1" bs=64K iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none |
		sha256sum | cut -c1-64
}

# same_used_blocks REF OUT: partition table, MBR boot code, BIOS-boot partition
# bytes, and every file of the ESP and of the root are equal
same_used_blocks() {
	local ref=$1 out=$2 s n
	test_cmp <(table_of "$ref") <(table_of "$out") &&
	cmp -n 440 "$ref" "$out" &&
	s=$(part_start_bytes "$ref" 1) && n=$(part_size_bytes "$ref" 1) &&
	expect_eq "$(range_sum "$out" "$s" "$n")" "$(range_sum "$ref" "$s" "$n")" "BIOS boot bytes" &&
	ext4_file_sums "$ref" 3 >ref.root.sums && ext4_file_sums "$out" 3 >out.root.sums &&
	test_cmp ref.root.sums out.root.sums && test_cmp gpt.img.root.sums out.root.sums &&
	fat_file_sums "$ref" 2 >ref.esp.sums && fat_file_sums "$out" 2 >out.esp.sums &&
	test_cmp ref.esp.sums out.esp.sums && test_cmp gpt.img.esp.sums out.esp.sums
}

# check_import NAME FILE FORMAT: import FILE, flash it, compare with qemu-img's raw
check_import() {
	local name=$1 file=$2 fmt=$3
	"$IMAGER" images create "$name" --source-vdisk "$file" --progress=json >"$name.json" &&
	jq -e "select(.phase == \"done\") | .image == \"$name\"" "$name.json" >/dev/null &&
	qemu-img convert -O raw "$file" "$name.ref" &&
	"$IMAGER" flash "$name" "$name.flash" --yes >/dev/null &&
	same_used_blocks "$name.ref" "$name.flash" &&
	"$IMAGER" images describe "$name" --json >"$name.desc" &&
	jq -e ".source == {type: \"file\", name: \"$(basename "$file")\", format: \"$fmt\", digest: null, nodes: []}" "$name.desc" >/dev/null &&
	jq -e ".disks[0].used < $((48 << 20))" "$name.desc" >/dev/null &&
	rm -f "$name.ref" "$name.flash"
}

test_line_count_1() { [ "$(wc -l <"$1")" -eq 1 ] || { cat "$1" >&2; return 1; }; }

# no FUSE mount of an import is left behind by a process that has ended
no_stale_mounts() {
	local mp pid
	for mp in $(awk '$9 == "fuse.imager" { print $5 }' /proc/self/mountinfo); do
		pid=${mp##*/import-} pid=${pid%%-*}
		kill -0 "$pid" 2>/dev/null || { echo "stale import mount $mp" >&2; return 1; }
	done
}

test_expect_success 'a GPT test disk with noise in the free blocks of its ext4' '
	make_gpt_disk gpt.img 256M &&
	off=$(part_start_bytes gpt.img 3) &&
	dumpe2fs "gpt.img?offset=$off" 2>/dev/null | sed -n "s/^  Free blocks: //p" | tr , "\n" |
		awk -F- "NF == 2 && \$2 - \$1 + 1 >= $NOISE_BYTES / 4096 { print \$1; exit }" >free.start &&
	test -s free.start &&
	_disks_prng import-noise $NOISE_BYTES |
		dd of=gpt.img bs=1M oflag=seek_bytes seek=$((off + $(cat free.start) * 4096)) \
			conv=notrunc status=none &&
	ext4_file_sums gpt.img 3 >sums && test_cmp gpt.img.root.sums sums &&
	dd if=gpt.img of=root.part bs=1M iflag=skip_bytes skip=$off status=none &&
	e2fsck -fn root.part >/dev/null && rm -f root.part
'

test_expect_success ROOT 'qcow2 v3 (qemu-img convert): flash equals qemu-img raw; only used blocks stored' '
	qemu-img convert -O qcow2 gpt.img v3.qcow2 &&
	check_import q3 v3.qcow2 qcow2 &&
	stored=$(du -sb "$IMAGER_STORE/chunks" | cut -f1) &&
	echo "stored $stored bytes of a 256 MiB disk with $NOISE_BYTES bytes of noise" &&
	[ "$stored" -lt $((12 << 20)) ] &&
	jq -e "select(.phase == \"done\") | .new_stored_bytes < $((12 << 20))" q3.json >/dev/null &&
	no_stale_mounts
'

test_expect_success ROOT 'qcow2 v3 with compressed clusters (-c)' '
	qemu-img convert -c -O qcow2 gpt.img v3c.qcow2 &&
	check_import q3c v3c.qcow2 qcow2
'

test_expect_success ROOT 'qcow2 v2 (compat=0.10), plain and compressed' '
	qemu-img convert -O qcow2 -o compat=0.10 gpt.img v2.qcow2 &&
	qemu-img info v2.qcow2 | grep -q "compat: 0.10" &&
	check_import q2 v2.qcow2 qcow2 &&
	qemu-img convert -c -O qcow2 -o compat=0.10 gpt.img v2c.qcow2 &&
	check_import q2c v2c.qcow2 qcow2
'

test_expect_success ROOT 'qcow2 with zstd compression, extended L2 entries, 2 MiB clusters' '
	qemu-img convert -c -O qcow2 -o compression_type=zstd gpt.img zstd.qcow2 &&
	check_import qzstd zstd.qcow2 qcow2 &&
	qemu-img convert -O qcow2 -o extended_l2=on gpt.img extl2.qcow2 &&
	check_import qextl2 extl2.qcow2 qcow2 &&
	qemu-img convert -O qcow2 -o cluster_size=2M gpt.img big.qcow2 &&
	check_import qbig big.qcow2 qcow2
'

test_expect_success ROOT 'VMDK monolithicSparse and streamOptimized' '
	qemu-img convert -O vmdk -o subformat=monolithicSparse gpt.img sparse.vmdk &&
	check_import vmdk-sparse sparse.vmdk vmdk &&
	qemu-img convert -O vmdk -o subformat=streamOptimized gpt.img stream.vmdk &&
	grep -a -q "createType=\"streamOptimized\"" stream.vmdk &&
	check_import vmdk-stream stream.vmdk vmdk
'

test_expect_success ROOT 'VHD fixed and dynamic (qemu-img -O vpc), VHDX' '
	qemu-img convert -O vpc -o subformat=fixed gpt.img fixed.vhd &&
	check_import vhd-fixed fixed.vhd vhd &&
	qemu-img convert -O vpc -o subformat=dynamic gpt.img dynamic.vhd &&
	check_import vhd-dynamic dynamic.vhd vhd &&
	qemu-img convert -O vhdx gpt.img disk.vhdx &&
	check_import vhdx disk.vhdx vhdx
'

test_expect_success 'raw: captured directly, recorded as a raw file' '
	cp --sparse=always gpt.img plain.raw &&
	check_import raw plain.raw raw
'

test_expect_success ROOT 'qcow2 overlay with --backing-file: reads through to the base' '
	qemu-img create -q -f qcow2 -b v3.qcow2 -F qcow2 overlay.qcow2 &&
	bb=$(part_start_bytes gpt.img 1) &&
	qemu-io -f qcow2 -c "write -P 0x5a $((bb + 65536)) 65536" overlay.qcow2 >/dev/null &&
	"$IMAGER" images create overlay --source-vdisk overlay.qcow2 --backing-file v3.qcow2 \
		--progress=none &&
	qemu-img convert -O raw overlay.qcow2 overlay.ref &&
	"$IMAGER" flash overlay overlay.flash --yes >/dev/null &&
	same_used_blocks overlay.ref overlay.flash &&
	expect_eq "$(range_sum overlay.flash $((bb + 65536)) 65536)" \
		"$(head -c 65536 /dev/zero | tr "\0" "\132" | sha256sum | cut -c1-64)" "overlay data"
'

test_expect_success ROOT 'a 4Kn disk in a qcow2 keeps its 4096-byte sectors' '
	make_gpt_disk_4kn gpt4k.img 512M &&
	qemu-img convert -O qcow2 gpt4k.img 4k.qcow2 &&
	"$IMAGER" images create q4k --source-vdisk 4k.qcow2 --progress=none &&
	"$IMAGER" images describe q4k --json >q4k.desc &&
	jq -e ".disks[0].logical_sector_size == 4096 and .disks[0].pttype == \"gpt\"" q4k.desc &&
	"$IMAGER" flash q4k q4k.flash --yes >/dev/null &&
	ext4_file_sums q4k.flash 3 >q4k.sums && test_cmp gpt4k.img.root.sums q4k.sums
'

test_expect_success ROOT 'GNU sparse tar.gz (old-GNU format): streamed, raw chunks removed after' '
	mkdir -p tardir && cp --sparse=always gpt.img tardir/disk.raw &&
	tar -C tardir --format=oldgnu --sparse -czf disk.tar.gz disk.raw &&
	python3 -c "import sys, tarfile; m = tarfile.open(sys.argv[1]).getmembers(); \
		assert [(x.name, x.type) for x in m] == [(\"disk.raw\", tarfile.GNUTYPE_SPARSE)], m" \
		disk.tar.gz &&
	find "$IMAGER_STORE" -type f | sort >before.files &&
	"$IMAGER" images create from-tar --source-tar disk.tar.gz --progress=json >tar.json &&
	jq -s -e "map(select(.phase == \"import\")) | last | .done_bytes == $((256 << 20))" tar.json &&
	find "$IMAGER_STORE" -type f | sort >after.files &&
	echo "$IMAGER_STORE/images/from-tar.manifest" >expected.new &&
	comm -13 before.files after.files >new.files && test_cmp expected.new new.files &&
	"$IMAGER" flash from-tar tar.flash --yes >/dev/null &&
	same_used_blocks gpt.img tar.flash &&
	"$IMAGER" images describe from-tar --json |
		jq -e ".source.type == \"file\" and .source.name == \"disk.tar.gz\" and .source.format == \"tar\"" &&
	d1=$("$IMAGER" images describe q3 --json | jq -r .digest) &&
	d2=$("$IMAGER" images describe from-tar --json | jq -r .digest) &&
	expect_eq "$d2" "$d1" "content digest of the tar import" &&
	no_stale_mounts
'

test_expect_success ROOT 'a tar import into an empty store keeps only the used blocks' '
	"$IMAGER" images create fresh --source-tar disk.tar.gz --store fresh-store --progress=none &&
	stored=$(du -sb fresh-store/chunks | cut -f1) &&
	echo "stored $stored" && [ "$stored" -lt $((12 << 20)) ] &&
	n=$(find fresh-store/chunks -type f | wc -l) &&
	expect_eq "$n" "$(jq .disks[0].chunks q3.desc)" "chunk files" &&
	"$IMAGER" flash fresh fresh.flash --store fresh-store --yes >/dev/null &&
	same_used_blocks gpt.img fresh.flash
'

test_expect_success ROOT 'an uncompressed, non-sparse (ustar) tar imports too' '
	tar -C tardir --format=ustar -cf plain.tar disk.raw &&
	"$IMAGER" images create from-ustar --source-tar plain.tar --progress=none &&
	d=$("$IMAGER" images describe from-ustar --json | jq -r .digest) &&
	expect_eq "$d" "$(jq -r .digest q3.desc)" "content digest"
'

# The kernel waits for a FUSE direct read uninterruptibly, and an import's
# FUSE server is a thread of imager itself: one O_DIRECT read in flight when
# kill -9 comes, and the process can never exit (seen: the kill -9 test below
# hung for good). Captures read disks and ordinary files with O_DIRECT (the
# positive control), an import's FUSE source never.
test_expect_success ROOT 'an import never reads its FUSE source with O_DIRECT; a plain file capture does' '
	: "LeakSanitizer cannot run under ptrace: off for the traced runs of a sanitized build" &&
	asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" &&
	ASAN_OPTIONS=$asan strace -f -qq -e trace=openat -o direct-import.trace \
		"$IMAGER" images create traced --source-vdisk v3.qcow2 --progress=none &&
	grep -q "/run/imager/import-" direct-import.trace &&
	! grep "\"/proc/self/fd/[0-9]*\".*O_DIRECT" direct-import.trace &&
	ASAN_OPTIONS=$asan strace -f -qq -e trace=openat -o direct-file.trace \
		"$IMAGER" capture gpt.img --image traced-file --progress=none &&
	grep "\"/proc/self/fd/[0-9]*\", O_RDONLY|.*O_DIRECT" direct-file.trace
'

test_expect_success ROOT 'kill -9 during an import: the mount was private and is gone, the next run tidies up' '
	make_gpt_disk slow.img 1G &&
	off=$(part_start_bytes slow.img 3) &&
	_disks_prng import-slow 400M >noise.bin &&
	debugfs -w -R "write noise.bin noise.bin" "slow.img?offset=$off" >/dev/null 2>&1 &&
	rm noise.bin && qemu-img convert -O qcow2 slow.img slow.qcow2 && rm slow.img &&
	{ "$IMAGER" images create killed --source-vdisk slow.qcow2 --progress=json >kill.json &
	  pid=$!; } &&
	register_pid "$pid" &&
	for i in $(seq 200); do grep -q "\"capture\"" kill.json && break; sleep 0.05; done &&
	grep -q "\"capture\"" kill.json &&
	dir=$(ls -d /run/imager/import-$pid-*) &&
	! grep -q " $dir " /proc/self/mountinfo &&
	kill -9 "$pid" && { wait "$pid" || true; } &&
	! grep -q "import-$pid-" /proc/self/mountinfo &&
	"$IMAGER" images create after-kill --source-vdisk v3.qcow2 --progress=none &&
	! ls -d /run/imager/import-$pid-* 2>/dev/null &&
	! "$IMAGER" images list | grep -q killed &&
	no_stale_mounts && rm slow.qcow2
'

test_expect_success 'bad command lines: no source, two sources, --backing-file with a tar, existing name' '
	expect_exit 2 "$IMAGER" images create x1 2>e1 && grep -q "no source" e1 &&
	expect_exit 2 "$IMAGER" images create x1 --source-tar a --source-vdisk b 2>e2 &&
	grep -q "exactly one source" e2 &&
	expect_exit 2 "$IMAGER" images create x1 --source-tar disk.tar.gz --backing-file b 2>e3 &&
	grep -q -- "--backing-file" e3 &&
	expect_exit 2 "$IMAGER" images create Bad_Name --source-vdisk v3.qcow2 2>e4 &&
	grep -q "invalid image name" e4 &&
	expect_exit 4 "$IMAGER" images create q3 --source-tar disk.tar.gz 2>e5 &&
	grep -q "already exists" e5 && test_line_count_1 e5 &&
	expect_exit 5 "$IMAGER" images create x1 --source-vdisk nope.qcow2 2>e6 &&
	grep -q "nope.qcow2" e6
'

test_done
