#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='capture and flash real loop devices: 512 and 4Kn, grow, refusals, kill -9'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

export IMAGER_STORE=$TRASH/store
test_have_prereq LOOP || skip_all "needs root and loop devices"

table_of() { sfdisk --dump "$1" | grep -vE '^(last-lba|device):' | sed -e "s#$1p\?#DISK#"; }

test_expect_success LOOP 'capture a GPT golden disk from a loop device' '
	make_gpt_disk gpt.img 256M &&
	src=$(loop_attach gpt.img) && echo "$src" >src.dev &&
	"$IMAGER" capture "$src" --image gpt-loop --progress=none &&
	"$IMAGER" images describe gpt-loop --json | jq -e ".disks[0].logical_sector_size == 512"
'

test_expect_success LOOP 'flash onto a blank loop disk: tables, boot code, files and fsck equal' '
	make_blank_disk dst.img 256M && dst=$(loop_attach dst.img) && echo "$dst" >dst.dev &&
	"$IMAGER" flash gpt-loop "$dst" --yes &&
	test_cmp <(table_of "$(cat src.dev)") <(table_of "$dst") &&
	cmp -n 440 "$(cat src.dev)" "$dst" &&
	ext4_file_sums "$dst" 3 >root.sums && test_cmp gpt.img.root.sums root.sums &&
	e2fsck -fn "$dst?offset=$(part_start_bytes "$dst" 3)" &&
	"$IMAGER" verify gpt-loop "$dst"
'

test_expect_success LOOP 'a mounted target is refused and left untouched' '
	dst=$(cat dst.dev) && loop_partitions "$dst" && mkdir -p mnt &&
	mount -o ro "${dst}p3" mnt && register_mount "$TRASH/mnt" &&
	before=$(head -c 1M "$dst" | sha256sum) &&
	expect_exit 4 "$IMAGER" flash gpt-loop "$dst" --yes 2>mounted.err &&
	grep -q "mnt\|in use\|mounted" mounted.err &&
	after=$(head -c 1M "$dst" | sha256sum) && expect_eq "$after" "$before" &&
	umount mnt
'

test_expect_success LOOP 'a source with a mounted partition is refused' '
	src=$(cat src.dev) && loop_partitions "$src" && mkdir -p smnt &&
	mount "${src}p3" smnt && register_mount "$TRASH/smnt" &&
	expect_exit 4 "$IMAGER" capture "$src" --image never 2>busy.err &&
	grep -q "smnt" busy.err && umount smnt && partx -d "$src" &&
	! "$IMAGER" images list | grep -q never
'

test_expect_success LOOP '--freeze captures a mounted, live ext4 consistently' '
	make_gpt_disk live.img 256M && lv=$(loop_attach live.img) && loop_partitions "$lv" &&
	mkdir -p lmnt && mount "${lv}p3" lmnt && register_mount "$TRASH/lmnt" &&
	echo "written while mounted" >lmnt/live.txt && sync &&
	"$IMAGER" capture "$lv" --image frozen --freeze --progress=none &&
	echo "after" >lmnt/after.txt && umount lmnt && partx -d "$lv" &&
	"$IMAGER" flash frozen frozen.img --yes &&
	ext4_file_sums frozen.img 3 >f.sums &&
	grep -q "  /live.txt$" f.sums && ! grep -q "  /after.txt$" f.sums &&
	e2fsck -fn "frozen.img?offset=$(part_start_bytes frozen.img 3)"
'

test_expect_success LOOP 'stale signatures of the old layout are wiped' '
	make_blank_disk old.img 512M && old=$(loop_attach old.img) &&
	printf "label: dos\nstart=800000, size=100000, type=83\n" | sfdisk -q "$old" &&
	mkfs.ext4 -q -F -E offset=$((800000 * 512)) old.img 40M &&
	[ "$(blkid -p -O $((800000 * 512)) -o value -s TYPE "$old")" = ext4 ] &&
	"$IMAGER" flash gpt-loop "$old" --yes &&
	[ -z "$(blkid -p -O $((800000 * 512)) -o value -s TYPE "$old" || true)" ] &&
	ext4_file_sums "$old" 3 >old.sums && test_cmp gpt.img.root.sums old.sums
'

test_expect_success LOOP '--grow onto a larger loop disk: partition and ext4 fill it, fsck clean' '
	make_blank_disk big.img 512M && big=$(loop_attach big.img) &&
	"$IMAGER" flash gpt-loop "$big" --yes --grow &&
	sgdisk -v "$big" | grep -q "No problems found" &&
	end=$(( $(part_start_bytes "$big" 3) + $(part_size_bytes "$big" 3) )) &&
	[ "$end" -gt $((500 << 20)) ] &&
	e2fsck -fn "$big?offset=$(part_start_bytes "$big" 3)" &&
	ext4_file_sums "$big" 3 >big.sums && test_cmp gpt.img.root.sums big.sums
'

test_expect_success LOOP '4Kn: capture a 4096-byte-sector disk and flash it onto another' '
	make_gpt_disk_4kn k.img 512M && k=$(loop_attach k.img 4096) &&
	"$IMAGER" capture "$k" --image gpt-4kn --progress=none &&
	"$IMAGER" images describe gpt-4kn --json | jq -e ".disks[0].logical_sector_size == 4096" &&
	make_blank_disk k2.img 512M && k2=$(loop_attach k2.img 4096) &&
	"$IMAGER" flash gpt-4kn "$k2" --yes &&
	test_cmp <(table_of "$k") <(table_of "$k2") &&
	ext4_file_sums "$k2" 3 >k.sums && test_cmp k.img.root.sums k.sums
'

test_expect_success LOOP 'a 4Kn image onto a 512-byte disk is refused, untouched' '
	make_blank_disk k3.img 512M && k3=$(loop_attach k3.img) &&
	expect_exit 4 "$IMAGER" flash gpt-4kn "$k3" --yes 2>ss.err &&
	grep -q "sector size is 512 bytes, the image.s is 4096" ss.err &&
	[ -z "$(tr -d "\0" <k3.img | head -c 1)" ]
'

test_expect_success LOOP 'kill -9 during flash leaves no valid partition table' '
	make_gpt_disk src2.img 1G &&
	dd if=/dev/urandom of=noise.bin bs=1M count=500 status=none &&
	debugfs -w -R "write noise.bin noise.bin" "src2.img?offset=$(part_start_bytes src2.img 3)" >/dev/null 2>&1 &&
	"$IMAGER" capture src2.img --image big --progress=none &&
	make_gpt_disk prev.img 1G && v=$(loop_attach prev.img) &&
	[ "$(blkid -p -o value -s PTTYPE "$v")" = gpt ] &&
	("$IMAGER" flash big "$v" --yes --progress=json >fl.json & echo $! >pid) &&
	pid=$(cat pid) && register_pid "$pid" &&
	for i in $(seq 200); do grep -q "\"write\"" fl.json 2>/dev/null && break; sleep 0.05; done &&
	kill -9 "$pid" && sleep 0.3 &&
	! grep -q "\"done\"" fl.json &&
	[ -z "$(blkid -p -o value -s PTTYPE "$v" || true)" ] &&
	! sfdisk --dump "$v" >/dev/null 2>&1
'

test_done
