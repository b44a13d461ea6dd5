#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='capture golden disk image files and flash them onto files'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

export IMAGER_STORE=$TRASH/store

# sfdisk --dump without the lines that legitimately differ on a bigger disk
table_of() { sfdisk --dump "$1" | grep -vE '^(last-lba|device):' | sed "s#$1#DISK#"; }
# extract partition N of disk $1 into file $3 (sparse) for e2fsck
part_file() {
	local start size
	start=$(part_start_bytes "$1" "$2") size=$(part_size_bytes "$1" "$2")
	dd if="$1" of="$3" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$size" \
		conv=sparse status=none
}

test_expect_success 'capture a GPT disk (BIOS boot, ESP, ext4) into a new store' '
	make_gpt_disk gpt.img 256M &&
	"$IMAGER" capture gpt.img --image gpt-golden --description "golden GPT" \
		--label role=web --progress=json >capture.json &&
	jq -e "select(.phase == \"done\") | .image == \"gpt-golden\" and .new_chunks > 0" capture.json &&
	test -f "$IMAGER_STORE/images/gpt-golden.manifest"
'

test_expect_success 'images list and describe show the image and its partitions' '
	"$IMAGER" images list --json >list.json &&
	jq -e ".images[0].name == \"gpt-golden\" and .images[0].size == $((256 << 20))" list.json &&
	"$IMAGER" images describe gpt-golden --json >desc.json &&
	jq -e ".description == \"golden GPT\" and .labels == [\"role=web\"]" desc.json &&
	jq -e ".disks[0].pttype == \"gpt\" and (.disks[0].ptuuid | ascii_upcase) == \"$DISKS_GPT_ID\"" desc.json &&
	jq -r ".disks[0].partitions[] | \"\(.number) \(.method) \(.fstype)\"" desc.json >methods &&
	printf "1 bios-boot null\n2 fat-used vfat\n3 ext-used ext4\n" >methods.expected &&
	test_cmp methods.expected methods
'

test_expect_success 'only used blocks are stored: image far smaller than the disk' '
	used=$(jq .disks[0].used desc.json) &&
	stored=$(du -sb "$IMAGER_STORE/chunks" | cut -f1) &&
	echo "used $used stored $stored" &&
	[ "$used" -lt $((64 << 20)) ] && [ "$stored" -lt "$used" ]
'

test_expect_success 'flash onto a blank file of the same size: files, tables and boot code equal' '
	make_blank_disk same.img 256M &&
	"$IMAGER" flash gpt-golden same.img --yes >flash.out &&
	grep -q "verified" flash.out &&
	test_cmp <(table_of gpt.img) <(table_of same.img) &&
	cmp -n 440 gpt.img same.img &&
	cmp <(dd if=gpt.img bs=1M skip=1 count=1 status=none) <(dd if=same.img bs=1M skip=1 count=1 status=none) &&
	ext4_file_sums same.img 3 >root.sums && test_cmp gpt.img.root.sums root.sums &&
	fat_file_sums same.img 2 >esp.sums && test_cmp gpt.img.esp.sums esp.sums &&
	part_file same.img 3 root.part && e2fsck -fn root.part &&
	sgdisk -v same.img | grep -q "No problems found"
'

test_expect_success 'imager verify accepts the flashed file and names the offset of a changed byte' '
	"$IMAGER" verify gpt-golden same.img &&
	off=$(( $(part_start_bytes same.img 3) + 1024 + 0x78 )) &&
	printf "\x42" | dd of=same.img bs=1 seek=$off conv=notrunc status=none &&
	expect_exit 3 "$IMAGER" verify gpt-golden same.img 2>verify.err &&
	grep "differs from image" verify.err && grep -q "byte offset $off" verify.err
'

test_expect_success 'flash onto a larger file: backup GPT at the true end, last partition unchanged' '
	"$IMAGER" flash gpt-golden big.img --size 384M --yes &&
	[ $(stat -c %s big.img) -eq $((384 << 20)) ] &&
	sgdisk -v big.img | grep -q "No problems found" &&
	test_cmp <(table_of gpt.img) <(table_of big.img) &&
	ext4_file_sums big.img 3 >big.sums && test_cmp gpt.img.root.sums big.sums
'

test_expect_success ROOT '--grow extends the last partition and its ext4 to the end' '
	"$IMAGER" flash gpt-golden grown.img --size 384M --grow --yes &&
	sgdisk -v grown.img | grep -q "No problems found" &&
	size=$(part_size_bytes grown.img 3) && start=$(part_start_bytes grown.img 3) &&
	[ $((start + size)) -gt $((380 << 20)) ] &&
	part_file grown.img 3 grown.part && e2fsck -fn grown.part &&
	blocks=$(dumpe2fs -h grown.part 2>/dev/null | sed -n "s/^Block count: *//p") &&
	bs=$(dumpe2fs -h grown.part 2>/dev/null | sed -n "s/^Block size: *//p") &&
	[ $((size - blocks * bs)) -ge 0 ] && [ $((size - blocks * bs)) -lt "$bs" ] &&
	ext4_file_sums grown.img 3 >grown.sums && test_cmp gpt.img.root.sums grown.sums
'

test_expect_success 'MBR disk: post-MBR gap (GRUB core), ext4 and swap header survive' '
	make_mbr_disk mbr.img 256M &&
	"$IMAGER" capture mbr.img --image mbr-golden --progress=none &&
	"$IMAGER" images describe mbr-golden --json >mdesc.json &&
	jq -r ".disks[0].partitions[] | \"\(.number) \(.method) \(.fstype)\"" mdesc.json >m.methods &&
	printf "1 ext-used ext4\n2 swap-header swap\n" >m.expected && test_cmp m.expected m.methods &&
	"$IMAGER" flash mbr-golden mbr-out.img --yes &&
	cmp -n $((1 << 20)) mbr.img mbr-out.img &&
	test_cmp <(table_of mbr.img) <(table_of mbr-out.img) &&
	ext4_file_sums mbr-out.img 1 >m.sums && test_cmp mbr.img.root.sums m.sums &&
	off=$(part_start_bytes mbr-out.img 2) &&
	blkid -p -O "$off" -o export mbr-out.img >swap.id &&
	grep -qx "UUID=$DISKS_SWAP_UUID" swap.id && grep -qx TYPE=swap swap.id
'

test_expect_success 'a second capture of the same disk stores no new chunk (dedup)' '
	"$IMAGER" capture gpt.img --image gpt-again --progress=json >again.json &&
	jq -e "select(.phase == \"done\") | .new_chunks == 0 and .chunks > 0" again.json &&
	d1=$(jq -r .digest desc.json) &&
	d2=$("$IMAGER" images describe gpt-again --json | jq -r .digest) &&
	expect_eq "$d2" "$d1" "content digest"
'

test_expect_success 'bad input: existing name, invalid name, missing disk, not a disk' '
	expect_exit 4 "$IMAGER" capture gpt.img --image gpt-golden 2>e1 &&
	grep -q "already exists" e1 &&
	expect_exit 2 "$IMAGER" capture gpt.img --image Bad_Name 2>e2 &&
	grep -q "invalid image name" e2 &&
	expect_exit 5 "$IMAGER" capture nope.img --image x1 2>e3 &&
	grep -q "nope.img" e3 &&
	echo "hello" >text.txt &&
	expect_exit 7 "$IMAGER" capture text.txt --image x2 2>e4 &&
	grep -q "text.txt" e4 &&
	expect_exit 5 "$IMAGER" flash no-such-image same.img --yes 2>e5 &&
	grep -q "no-such-image" e5 &&
	! ls "$IMAGER_STORE/images" | grep -q "^x"
'

test_expect_success 'a target too small is refused with both sizes, untouched' '
	truncate -s 64M small.img && printf "keep" | dd of=small.img conv=notrunc status=none &&
	expect_exit 4 "$IMAGER" flash gpt-golden small.img --yes 2>small.err &&
	grep -q "$((64 << 20)) bytes" small.err && grep -q "needs" small.err &&
	[ "$(head -c 4 small.img)" = keep ] && [ $(stat -c %s small.img) -eq $((64 << 20)) ]
'

test_expect_success 'a dirty ext4 is refused naming the partition and --allow-dirty; allowed with it' '
	cp gpt.img dirty.img &&
	off=$(part_start_bytes dirty.img 3) &&
	debugfs -w -R "ssv state 0" "dirty.img?offset=$off" >/dev/null 2>&1 &&
	expect_exit 4 "$IMAGER" capture dirty.img --image dirty 2>dirty.err &&
	grep -q "partition 3" dirty.err && grep -q -- "--allow-dirty" dirty.err &&
	! "$IMAGER" images list | grep -q dirty &&
	"$IMAGER" capture dirty.img --image dirty --allow-dirty --progress=none &&
	"$IMAGER" images list | grep -q dirty
'

test_expect_success 'without --yes and without a terminal, an existing target is refused untouched' '
	make_blank_disk keep.img 256M && printf "mine" | dd of=keep.img conv=notrunc status=none &&
	expect_exit 4 "$IMAGER" flash gpt-golden keep.img </dev/null 2>yes.err &&
	grep -q -- "--yes" yes.err && grep -q "keep.img" yes.err &&
	[ "$(head -c 4 keep.img)" = mine ]
'

test_expect_success '--dry-run prints the plan and writes nothing' '
	"$IMAGER" flash gpt-golden keep.img --dry-run >plan.out &&
	grep -q "Would write" plan.out && grep -q "Partition table: gpt" plan.out &&
	grep -qE "^ +3 start +[0-9]+ size" plan.out &&
	[ "$(head -c 4 keep.img)" = mine ] && [ ! -e plan-target.img ]
'

test_expect_success '--report records a failed and a successful flash as JSON' '
	expect_exit 4 "$IMAGER" flash gpt-golden small.img --yes --report fail.json 2>/dev/null &&
	jq -e ".action == \"flash\" and .result == \"error\" and .exit_code == 4" fail.json &&
	jq -e ".error | test(\"too small\")" fail.json &&
	"$IMAGER" flash gpt-golden rep.img --yes --report ok.json >/dev/null &&
	jq -e ".result == \"ok\" and .disks[0].verify == \"ok\" and .disks[0].data_bytes > 0" ok.json &&
	jq -e ".image.digest == \"$(jq -r .digest desc.json)\"" ok.json
'

test_expect_success 'a corrupted chunk stops the flash before it is written; no partition table' '
	: "a store of this image only: with keyed chunk IDs the order of names says nothing" &&
	"$IMAGER" capture gpt.img --image gpt-golden --store store-bad --progress=none &&
	chunk=$(find store-bad/chunks -name "*.chunk" -size +8k | sort | head -1) &&
	size=$(stat -c %s "$chunk") &&
	printf "\xff" | dd of="$chunk" bs=1 seek=$((size / 2)) conv=notrunc status=none &&
	make_blank_disk victim.img 256M && printf "old!" | dd of=victim.img bs=1 seek=510 conv=notrunc status=none &&
	expect_exit 3 "$IMAGER" flash gpt-golden victim.img --store store-bad --yes 2>bad.err &&
	grep -qi "chunk\|verif\|damaged\|corrupt" bad.err &&
	! sfdisk --dump victim.img 2>/dev/null &&
	[ "$(blkid -p -o value -s PTTYPE victim.img || true)" = "" ]
'

test_expect_success 'a truncated or garbled manifest is refused with a clear error' '
	cp -a "$IMAGER_STORE" store-m &&
	m=store-m/images/gpt-golden.manifest &&
	truncate -s $(( $(stat -c %s $m) / 2 )) $m &&
	expect_exit 3 "$IMAGER" flash gpt-golden x.img --store store-m --yes 2>m1.err &&
	grep -q "damaged" m1.err && [ ! -s x.img ] &&
	cp "$IMAGER_STORE/images/gpt-golden.manifest" $m &&
	printf "\x55" | dd of=$m bs=1 seek=100 conv=notrunc status=none &&
	expect_exit 3 "$IMAGER" images describe gpt-golden --store store-m 2>m2.err &&
	grep -q "damaged" m2.err
'

test_expect_success 'kill -9 during capture: no image listed, the same name captures later' '
	make_gpt_disk big-src.img 1G &&
	dd if=/dev/urandom of=noise.bin bs=1M count=400 status=none &&
	off=$(part_start_bytes big-src.img 3) &&
	debugfs -w -R "write noise.bin noise.bin" "big-src.img?offset=$off" >/dev/null 2>&1 &&
	("$IMAGER" capture big-src.img --image killed --progress=json >kill.json & echo $! >pid) &&
	pid=$(cat pid) && register_pid "$pid" &&
	for i in $(seq 100); do grep -q capture kill.json 2>/dev/null && break; sleep 0.05; done &&
	kill -9 "$pid" && sleep 0.2 &&
	! "$IMAGER" images list | grep -q killed &&
	"$IMAGER" capture big-src.img --image killed --progress=none &&
	"$IMAGER" images list | grep -q killed
'

test_done
