#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='the appliance USB image boots from USB under SeaBIOS, OVMF and OVMF Secure Boot'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"
. "$TESTS_DIR/lib/qemu.sh"
. "$TESTS_DIR/lib/appliance.sh"

# The stick is plugged in as a USB disk (usb-storage on qemu-xhci, boot
# index 0) next to three blank disks on virtio, AHCI and NVMe, each with its
# serial. Each boot must reach /init's "IMAGER-READY" on the serial console,
# and before it the console must show:
#	IMAGER-GRUB menu pc|efi          GRUB's default entry, from the BIOS GRUB
#	                                 (core.img) or the UEFI GRUB
#	EFI stub: UEFI Secure Boot is enabled    the kernel, under Secure Boot
#	                                 only (and, if /init prints
#	                                 "IMAGER-BOOT-INFO firmware=F lockdown=L",
#	                                 L is "[integrity]" then, else "[none]")
#	the serials of the three disks   the disk list
# Boot-to-ready times go to $O/tests/t9590-boot-times.txt.

SERIALS="tgt-virtio tgt-ahci tgt-nvme"
TIMES=$O/tests/t9590-boot-times.txt

# boot_to_ready FIRMWARE: boots the stick with the three disks; LOG is
# FIRMWARE.log, cut at the first IMAGER-READY into FIRMWARE.ready
boot_to_ready() {
	local fw=$1
	qemu_disks_reset
	qemu_add_disk usb "$(cat stick.path)" imager-stick --snapshot --bootindex 0 &&
		qemu_add_disk virtio blank-virtio.img tgt-virtio --snapshot &&
		qemu_add_disk ahci blank-ahci.img tgt-ahci --snapshot &&
		qemu_add_disk nvme blank-nvme.img tgt-nvme --snapshot &&
		qemu_start --firmware "$fw" --log "$TRASH/$fw.log" || return 1
	if ! qemu_wait_for IMAGER-READY 240; then
		qemu_stop
		qemu_log_tail 60
		return 1
	fi
	qemu_stop
	echo "$fw $((QEMU_ELAPSED / 1000)).$((QEMU_ELAPSED % 1000 / 100))" >>"$TRASH/times"
	tr -d '\r' <"$fw.log" | awk '{ print } /IMAGER-READY/ { exit }' >"$fw.ready"
}

# assert_ready FIRMWARE GRUB_PLATFORM SECUREBOOT(yes|no)
assert_ready() {
	local fw=$1 platform=$2 sb=$3 s info lockdown=none
	grep -aq "IMAGER-GRUB menu $platform" "$fw.ready" ||
		{ echo "no 'IMAGER-GRUB menu $platform' before IMAGER-READY"; return 1; }
	# the kernel's EFI stub says so on the firmware console (OVMF copies it
	# to the serial port) when the firmware enforces Secure Boot
	if [ "$sb" = yes ]; then
		lockdown=integrity
		grep -aq "EFI stub: UEFI Secure Boot is enabled" "$fw.ready" ||
			{ echo "the kernel did not see Secure Boot enabled"; return 1; }
	else
		! grep -aq "Secure Boot is enabled" "$fw.ready" ||
			{ echo "Secure Boot enabled under $fw?"; return 1; }
	fi
	# /init may add the lockdown state: under Secure Boot Debian's kernel
	# locks itself down ("[integrity]"), otherwise "[none]"
	info=$(grep -a -o "IMAGER-BOOT-INFO .*" "$fw.ready" | head -1)
	case $info in
	"" | "IMAGER-BOOT-INFO firmware=${fw%%-*} "*"lockdown="*"[$lockdown]"*) ;;
	*) echo "boot info '$info': want firmware=${fw%%-*} and lockdown [$lockdown]"; return 1 ;;
	esac
	for s in $SERIALS; do
		grep -aq -- "$s" "$fw.ready" || { echo "serial '$s' not listed before IMAGER-READY"; return 1; }
	done
}

test_expect_success 'build the USB image (qemu_defconfig) and three blank disks' '
	appliance_build &&
	test -s "$APPLIANCE_DIR/imager-usb.img" &&
	echo "$APPLIANCE_DIR/imager-usb.img" >stick.path &&
	disk_sha "$APPLIANCE_DIR/imager-usb.img" >stick.sha &&
	for b in virtio ahci nvme; do make_blank_disk "$TRASH/blank-$b.img" 64M || exit 1; done
'

test_expect_success QEMU 'boots from USB under SeaBIOS to IMAGER-READY, disks listed' '
	boot_to_ready bios && assert_ready bios pc no
'

test_expect_success QEMU,OVMF 'boots from USB under OVMF to IMAGER-READY, disks listed' '
	boot_to_ready uefi && assert_ready uefi efi no
'

test_expect_success QEMU,OVMF 'boots from USB under OVMF with Secure Boot enforced (shim, signed GRUB and kernel)' '
	test -r /usr/share/OVMF/OVMF_CODE_4M.secboot.fd &&
	test -r /usr/share/OVMF/OVMF_VARS_4M.ms.fd &&
	boot_to_ready uefi-secboot && assert_ready uefi-secboot efi yes &&
	! grep -aq -e "Security Violation" -e "Access Denied" -e "bad shim signature" uefi-secboot.log
'

test_expect_success 'the boots did not write to the stick (snapshot=on)' '
	test "$(disk_sha "$(cat stick.path)")" = "$(cat stick.sha)"
'

if [ -s "$TRASH/times" ]; then
	cp "$TRASH/times" "$TIMES"
	while read -r fw s; do say "boot to IMAGER-READY under $fw: $s s"; done <"$TRASH/times"
fi
test_done
