#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='the appliance and an encrypted store: unattended with a key file named on
the kernel command line (imager.keyfile=LABEL=KEYS:/imager.key), and locked when that names
no single medium'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"
. "$TESTS_DIR/lib/qemu.sh"
. "$TESTS_DIR/lib/appliance.sh"

# 2 boots: a flash with the key file on a second USB stick, then one where two
# sticks match imager.keyfile=.
# (The menu's passphrase prompts are driven by t9510.)

test_expect_success 'build the appliance image (qemu_defconfig)' '
	appliance_build &&
	test -s "$APPLIANCE_DIR/imager-usb.img"
'

test_expect_success 'an encrypted store holding golden-k, a key stick labelled KEYS, two targets' '
	make_gpt_disk golden.img 256M &&
	"$IMAGER" store make-key-file store.key &&
	(unset IMAGER_PASSPHRASE &&
	 "$IMAGER" --key-file store.key capture golden.img --image golden-k --store host-store \
		--progress=none) &&
	grep -qx "encryption=aes-256-gcm" host-store/config &&
	grep -q "^key-slot=[0-9a-f]* key-file " host-store/config &&
	! grep -q "^key-slot=[0-9a-f]* passphrase " host-store/config &&
	: "the key stick: one FAT partition labelled KEYS holding /imager.key" &&
	make_blank_disk keys.img 64M &&
	printf "label: gpt\nstart=1MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=keys\n" |
		sfdisk -q --no-reread --no-tell-kernel keys.img >/dev/null &&
	rm -f keys.fat && mkfs.fat -F 16 -n KEYS -C keys.fat $((60 * 1024)) >/dev/null &&
	mcopy -i keys.fat store.key ::/imager.key &&
	dd if=keys.fat of=keys.img bs=1M seek=1 conv=notrunc status=none && rm -f keys.fat &&
	appliance_copy stick.img --default flash -- \
		imager.image=golden-k imager.target=serial=tgt-k \
		imager.keyfile=LABEL=KEYS:/imager.key imager.after=poweroff &&
	data_put stick.img host-store /store &&
	for t in k n; do
		make_blank_disk tgt-$t.img 256M &&
		_disks_prng "target-$t" 4194304 | dd of=tgt-$t.img conv=notrunc status=none &&
		disk_sha tgt-$t.img >tgt-$t.sha || return 1
	done &&
	disk_sha keys.img >keys.sha
'

test_expect_success QEMU 'boot 1: the key file from the KEYS stick unlocks the store; the flash verifies' '
	test -s stick.img &&
	appliance_boot stick.img --log key.log -- \
		usb:keys.img:keys-stick virtio:tgt-k.img:tgt-k &&
	qemu_wait_for IMAGER-READY "$APPLIANCE_BOOT_TIMEOUT" &&
	qemu_wait_exit 300 &&
	grep -a "imager: key file /imager.key read from /dev/sd" key.log &&
	grep -a "IMAGER-RESULT" key.log >result.txt &&
	cat result.txt &&
	grep -q "^IMAGER-RESULT ok action=flash image=golden-k target=/dev/vda report=reports/" result.txt &&
	(unset IMAGER_PASSPHRASE && "$IMAGER" --key-file store.key verify golden-k tgt-k.img \
		--store host-store) &&
	ext4_file_sums tgt-k.img 3 >root.sums && test_cmp golden.img.root.sums root.sums &&
	expect_eq "$(disk_sha keys.img)" "$(cat keys.sha)"
'

# Two sticks labelled KEYS, both holding the right key: picking one by chance
# would unlock the store and flash. A key comes from the one medium named, or
# from none: the store stays locked, as without imager.keyfile= at all.
test_expect_success QEMU 'boot 2: imager.keyfile= matching two sticks is refused: exit 6, nothing written' '
	test -s root.sums &&
	cp keys.img keys2.img &&
	bash "$APPLIANCE_TOP/boot/set-local-cfg.sh" stick.img --default flash --timeout 0 -- \
		imager.image=golden-k imager.target=serial=tgt-n \
		imager.keyfile=LABEL=KEYS:/imager.key imager.after=poweroff >/dev/null &&
	appliance_boot stick.img --log nokey.log -- \
		usb:keys.img:keys-stick usb:keys2.img:keys-stick2 virtio:tgt-n.img:tgt-n &&
	qemu_wait_for IMAGER-READY "$APPLIANCE_BOOT_TIMEOUT" &&
	qemu_wait_exit 300 &&
	grep -a "imager.keyfile: LABEL=KEYS matches 2 partitions (/dev/sd.* /dev/sd.*): encrypted stores stay locked" nokey.log &&
	! grep -a "imager: key file /imager.key read from" nokey.log &&
	grep -a "IMAGER-RESULT" nokey.log >result2.txt &&
	cat result2.txt &&
	grep -q "^IMAGER-RESULT error action=flash exit=6 image=golden-k" result2.txt &&
	grep -aq "is encrypted: give --key-file" nokey.log &&
	expect_eq "$(disk_sha tgt-n.img)" "$(cat tgt-n.sha)"
'

test_done
