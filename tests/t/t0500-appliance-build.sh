#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='appliance build: kconfig, initramfs and USB image layout, reproducibility'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/appliance-build.sh"
. "$ABUILD_TOP/boot/lib.sh"

# Everything here reads files: no root, no loop device, no QEMU
# (tests/vm/t9590 boots the image). The pinned Debian packages come from the
# download cache; the first run fetches them.
TOP=$ABUILD_TOP
KV() { (. "$TRASH/a/config.sh" && eval "echo \"\$CONFIG_APPLIANCE_$1\""); }
# pkgroot PACKAGE VERSION: the unpacked pinned package (from the cache)
pkgroot() { bash "$TOP/mk/fetch-deb.sh" --hash "$TOP/boot/appliance.hash" "$1" "$2"; }

test_expect_success 'defconfigs are savedefconfig output; a typo is refused' '
	for f in "$TOP"/configs/*_defconfig; do
		(cd "$TOP" && KCONFIG_CONFIG=$TRASH/dot /usr/bin/python3 -m defconfig \
			--kconfig kconfig/Config.in "$f" >/dev/null &&
		 KCONFIG_CONFIG=$TRASH/dot /usr/bin/python3 -m savedefconfig \
			--kconfig kconfig/Config.in --out "$TRASH/saved" >/dev/null)
		test_cmp "$f" saved
	done &&
	{ cat "$TOP/configs/qemu_defconfig"; echo CONFIG_APPLIANCE_MOD_NO_SUCH=y; } >typo_defconfig &&
	! (cd "$TOP" && /usr/bin/python3 mk/appliance-config.py kconfig/Config.in \
		"$TRASH/typo_defconfig" "$TRASH/typo") 2>err &&
	grep -q "undefined symbol APPLIANCE_MOD_NO_SUCH" err &&
	printf "%s\n" "# CONFIG_APPLIANCE_BOOT_UEFI is not set" \
		"CONFIG_APPLIANCE_SHIM_VERSION=\"1.0\"" >dep_defconfig &&
	! (cd "$TOP" && /usr/bin/python3 mk/appliance-config.py kconfig/Config.in \
		"$TRASH/dep_defconfig" "$TRASH/dep") 2>err &&
	grep -q "CONFIG_APPLIANCE_SHIM_VERSION is set to .1.0. but is" err
'

test_expect_success 'make NAME_defconfig, savedefconfig and the generated config' '
	make -s -C "$TOP" O="$TRASH/mk" qemu_defconfig >/dev/null &&
	make -s -C "$TOP" O="$TRASH/mk" savedefconfig >/dev/null &&
	test_cmp "$TOP/configs/qemu_defconfig" mk/defconfig &&
	grep -qx "CONFIG_APPLIANCE_KERNEL_ABI=.6.1.0-[0-9]*-amd64." mk/appliance/config.sh &&
	grep -qx "CONFIG_APPLIANCE_MOD_MPT3SAS=.." mk/appliance/config.sh &&
	grep -qx "#define CONFIG_APPLIANCE_MOD_NVME 1" mk/appliance/autoconf.h &&
	grep -qx "#define CONFIG_APPLIANCE_DATA_SIZE_MIB 512" mk/appliance/autoconf.h
'

test_expect_success 'build the appliance twice (qemu_defconfig)' '
	abuild_image a && abuild_image b &&
	test -s a/imager-usb.img && test -s a/initramfs.img && test -s a/vmlinuz
'

test_expect_success 'the two initramfs builds are bit-identical' '
	cmp a/initramfs.img b/initramfs.img &&
	test_cmp a/initramfs.img.files b/initramfs.img.files &&
	say "initramfs: $(stat -c %s a/initramfs.img) bytes, $(wc -l <a/initramfs.img.modules) modules"
'

test_expect_success 'the two USB images are bit-identical' '
	cmp a/imager-usb.img b/imager-usb.img &&
	cmp a/imager-usb.img.bmap b/imager-usb.img.bmap &&
	test_cmp a/SHA256SUMS b/SHA256SUMS &&
	say "USB image: $(stat -c %s a/imager-usb.img) bytes, $(du -B1 a/imager-usb.img | cut -f1) allocated"
'

test_expect_success 'initramfs: cpio owners 0, one mtime, busybox, imager and its libraries' '
	zstd -q -dc a/initramfs.img >initramfs.cpio &&
	cpio -tv --numeric-uid-gid --quiet <initramfs.cpio >cpio.tv &&
	awk "\$3 != 0 || \$4 != 0 { print; bad = 1 } END { exit bad }" cpio.tv &&
	test "$(awk "{ print \$6, \$7, \$8 }" cpio.tv | sort -u | wc -l)" -eq 1 &&
	mkdir root && (cd root && cpio -id --quiet <../initramfs.cpio) &&
	test -x root/init && test -x root/usr/bin/imager && test -x root/usr/bin/busybox &&
	test "$(readlink root/bin)" = usr/bin && test "$(readlink root/usr/bin/sh)" = /usr/bin/busybox &&
	! ldd root/usr/bin/busybox >/dev/null 2>&1 &&
	cmp "$IMAGER" root/usr/bin/imager &&
	ldd "$IMAGER" | sed -nE "s#.*=> (/[^ ]+) .*#\1#p; s#^[[:space:]]*(/[^ ]+) \(0x.*#\1#p" >libs &&
	test -s libs &&
	while read -r lib; do
		p=${lib#/} && case $p in usr/*) ;; *) p=usr/$p ;; esac &&
		cmp "$lib" "root/$p" || { echo "missing or different: $lib"; exit 1; }
	done <libs &&
	grep -q "^options usb_storage delay_use=0" root/etc/modprobe.d/appliance.conf &&
	test -d root/etc/imager/trusted-keys && test -z "$(ls root/etc/imager/trusted-keys)"
'

test_expect_success 'initramfs: the selected modules, their closure and modalias map' '
	kver=$(KV KERNEL_ABI) &&
	mods=root/usr/lib/modules/$kver &&
	for m in virtio_blk virtio_pci ahci nvme usb-storage xhci-pci ext4 vfat nls_cp437 sd_mod; do
		test -n "$(find "$mods" -name "$m.ko")" || { echo "no $m.ko"; exit 1; }
	done &&
	for m in mpt3sas megaraid_sas uas vmd virtio_net; do
		test -z "$(find "$mods" -name "$m.ko")" || { echo "$m.ko is not in qemu_defconfig"; exit 1; }
	done &&
	test "$(find "$mods" -name "*.ko" | wc -l)" -eq "$(wc -l <a/initramfs.img.modules)" &&
	grep -q "^alias virtio:d00000002v\* virtio_blk$" "$mods/modules.alias" &&
	grep -q " ahci$" "$mods/modules.alias" && grep -q " nvme$" "$mods/modules.alias" &&
	while read -r m; do
		modprobe -d root -S "$kver" --show-depends "$m" >dep ||
			{ echo "$m does not resolve in the initramfs"; exit 1; }
		! grep -v -e "^insmod $TRASH/root/lib/modules/$kver/" -e "^builtin " dep
	done <a/initramfs.img.modules
'

test_expect_success 'initramfs: /etc/imager/appliance.conf matches the config and the image' '
	(. root/etc/imager/appliance.conf &&
	 test "$APPLIANCE_CONSOLES" = "ttyS0 tty0" &&
	 test "$APPLIANCE_SERIAL" = "ttyS0,115200" &&
	 test "$APPLIANCE_DEFAULT_ACTION" = menu &&
	 test "$APPLIANCE_KERNEL" = "$(KV KERNEL_ABI)" &&
	 test "$APPLIANCE_DATA_LABEL" = IMAGER-DATA &&
	 sfdisk --json a/imager-usb.img >pt.json &&
	 test "$(jq -r .partitiontable.id pt.json)" = "$(echo "$APPLIANCE_DISK_GUID" | tr a-f A-F)" &&
	 test "$(jq -r ".partitiontable.partitions[2].uuid" pt.json)" = \
		"$(echo "$APPLIANCE_DATA_PARTUUID" | tr a-f A-F)" &&
	 dumpe2fs -h "a/imager-usb.img?offset=$(abuild_part_offset a/imager-usb.img IMAGER-DATA)" \
		2>/dev/null | grep -qx "Filesystem UUID: *$APPLIANCE_DATA_UUID")
'

test_expect_success 'USB image: GPT layout and sizes from the config' '
	seed=$(KV IMAGE_SEED) &&
	sfdisk --json a/imager-usb.img >pt.json &&
	jq -r ".partitiontable | .label, .sectorsize, (.partitions[] | \"\(.start) \(.size) \(.type) \(.name)\")" \
		pt.json >layout &&
	esp=$(($(KV ESP_SIZE_MIB) * 2048)) data=$(($(KV DATA_SIZE_MIB) * 2048)) &&
	printf "%s\n" gpt 512 "2048 2048 21686148-6449-6E6F-744E-656564454649 bios" \
		"4096 $esp C12A7328-F81F-11D2-BA4B-00A0C93EC93B IMAGER-ESP" \
		"$((4096 + esp)) $data 0FC63DAF-8483-4772-8E79-3D69D8477DE4 IMAGER-DATA" >expect &&
	test_cmp expect layout &&
	test "$(stat -c %s a/imager-usb.img)" -eq $(((4096 + esp + data + 2048) * 512)) &&
	test "$(jq -r .partitiontable.id pt.json)" = "$(appl_uuid "$seed" disk | tr a-f A-F)"
'

test_expect_success 'USB image: GRUB boot.img in the protective MBR, core.img in p1' '
	pc=$(pkgroot grub-pc-bin "$(KV GRUB_VERSION)")/usr/lib/grub/i386-pc &&
	img=a/imager-usb.img &&
	cmp -n 3 "$img" "$pc/boot.img" &&
	cmp -i $((0x5A)):$((0x5A)) -n 2 "$img" "$pc/boot.img" &&
	cmp -i $((0x68)):$((0x68)) -n $((0x1B8 - 0x68)) "$img" "$pc/boot.img" &&
	test "$(od -An -t u8 -j $((0x5C)) -N 8 "$img" | tr -d " ")" = 2048 &&
	test "$(od -An -t x1 -j $((0x66)) -N 2 "$img" | tr -d " ")" = 9090 &&
	test "$(od -An -t x1 -j 510 -N 2 "$img" | tr -d " ")" = 55aa &&
	test "$(od -An -t x1 -j $((0x1BE)) -N 1 "$img" | tr -d " ")" = 00 &&
	test "$(od -An -t x1 -j $((0x1C2)) -N 1 "$img" | tr -d " ")" = ee &&
	cmp -i $((2048 * 512)):0 -n $((0x1F4)) "$img" "$pc/diskboot.img" &&
	test "$(od -An -t u8 -j $((2048 * 512 + 0x1F4)) -N 8 "$img" | tr -d " ")" = 2049 &&
	cmp -i $((2049 * 512)):0 -n 8 "$img" "$pc/lzma_decompress.img"
'

test_expect_success 'USB image: the ESP holds the signed chain, grub.cfg, kernel and initramfs' '
	off=$(abuild_part_offset a/imager-usb.img IMAGER-ESP) &&
	mkdir esp && MTOOLS_SKIP_CHECK=1 mcopy -s -n -m -Q -i "a/imager-usb.img@@$off" "::*" esp/ &&
	(cd esp && find . -type f | sort) >esp.files &&
	printf "%s\n" ./EFI/BOOT/BOOTX64.EFI ./EFI/BOOT/grubx64.efi ./EFI/BOOT/mmx64.efi \
		./EFI/debian/grub.cfg ./imager/initrd.img ./imager/local.cfg ./imager/vmlinuz >expect &&
	test_cmp expect esp.files &&
	cmp esp/EFI/BOOT/BOOTX64.EFI "$(pkgroot shim-signed "$(KV SHIM_VERSION)")/usr/lib/shim/shimx64.efi.signed" &&
	cmp esp/EFI/BOOT/mmx64.efi \
		"$(pkgroot shim-helpers-amd64-signed "$(KV SHIM_HELPERS_VERSION)")/usr/lib/shim/mmx64.efi.signed" &&
	cmp esp/EFI/BOOT/grubx64.efi "$(pkgroot grub-efi-amd64-signed \
		"$(KV GRUB_SIGNED_VERSION)")/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" &&
	kroot=$(pkgroot "linux-image-$(KV KERNEL_ABI)" "$(KV KERNEL_VERSION)") &&
	cmp esp/imager/vmlinuz "$kroot/boot/vmlinuz-$(KV KERNEL_ABI)" && cmp esp/imager/vmlinuz a/vmlinuz &&
	cmp esp/imager/initrd.img a/initramfs.img &&
	cmp esp/EFI/debian/grub.cfg a/grub.cfg &&
	sbverify --list esp/EFI/BOOT/BOOTX64.EFI 2>/dev/null | grep -q "Microsoft Corporation UEFI CA 2011" &&
	sbverify --list esp/EFI/BOOT/grubx64.efi 2>/dev/null | grep -q "CN=Debian Secure Boot CA" &&
	sbverify --list esp/imager/vmlinuz 2>/dev/null | grep -q "CN=Debian Secure Boot CA" &&
	volid=$(od -An -t x4 --endian=little -j $((off + 0x43)) -N 4 a/imager-usb.img | tr -d " ") &&
	test "$volid" = "$(appl_hex32 "$(KV IMAGE_SEED)" fs-esp | tr A-F a-f)" &&
	MTOOLS_SKIP_CHECK=1 mlabel -s -i "a/imager-usb.img@@$off" :: | grep -q IMAGER-ESP
'

test_expect_success 'grub.cfg: menu (default), capture, flash, shell; serial and VGA consoles' '
	cfg=a/grub.cfg &&
	sed -n "s/^menuentry .* --id \([a-z]*\) {$/\1/p" "$cfg" >ids &&
	printf "%s\n" menu capture flash shell >expect && test_cmp expect ids &&
	grep -c "^	linux /imager/vmlinuz \$imager_cmdline imager.action=[a-z]* \$imager_extra$" "$cfg" >n &&
	test "$(cat n)" -eq 4 &&
	for a in menu capture flash shell; do
		sed -n "/--id $a {/,/^}/p" "$cfg" | grep -q "imager.action=$a " || exit 1
	done &&
	grep -qx "set default=menu" "$cfg" && grep -qx "set timeout=1" "$cfg" &&
	grep -qx "set imager_cmdline=\"console=ttyS0,115200 console=tty0\"" "$cfg" &&
	grep -qx "set imager_extra=\"loglevel=4 panic=-1\"" "$cfg" &&
	grep -qx "if serial --unit=0 --speed=115200; then" "$cfg" &&
	grep -qx "	terminal_input serial console" "$cfg" &&
	grep -qx "	terminal_output serial console" "$cfg" &&
	grep -qx "	initrd /imager/initrd.img" "$cfg" &&
	grep -qx "export imager_cmdline imager_extra" "$cfg"
'

test_expect_success 'USB image: the data partition is ext4 IMAGER-DATA with empty store/ and reports/' '
	off=$(abuild_part_offset a/imager-usb.img IMAGER-DATA) &&
	dumpe2fs -h "a/imager-usb.img?offset=$off" 2>/dev/null >sb &&
	grep -qx "Filesystem volume name: *IMAGER-DATA" sb &&
	grep -qx "Filesystem state: *clean" sb &&
	test "$(sed -n "s/^Block count: *//p" sb)" -eq $(($(KV DATA_SIZE_MIB) * 256)) &&
	debugfs -R "ls -p /" "a/imager-usb.img?offset=$off" 2>/dev/null |
		awk -F/ "NF > 6 { print \$6 }" | sort >root.ls &&
	printf "%s\n" . .. lost+found reports store >expect && test_cmp expect root.ls &&
	for d in store reports; do
		debugfs -R "ls -p /$d" "a/imager-usb.img?offset=$off" 2>/dev/null |
			awk -F/ "NF > 6 { print \$6 }" | sort >d.ls &&
		printf "%s\n" . .. >expect && test_cmp expect d.ls || exit 1
	done &&
	debugfs -R "stat /store" "a/imager-usb.img?offset=$off" 2>/dev/null | grep -q "User: *0 *Group: *0"
'

test_expect_success 'set-local-cfg.sh rewrites /imager/local.cfg of an image copy' '
	cp --sparse=always a/imager-usb.img local.img &&
	bash "$TOP/boot/set-local-cfg.sh" local.img --default flash --timeout 0 -- \
		imager.image=golden imager.after=poweroff &&
	off=$(abuild_part_offset local.img IMAGER-ESP) &&
	MTOOLS_SKIP_CHECK=1 mtype -i "local.img@@$off" ::/imager/local.cfg >local.cfg &&
	grep -qx "set imager_extra=\"\$imager_extra imager.image=golden imager.after=poweroff\"" local.cfg &&
	grep -qx "set default=flash" local.cfg && grep -qx "set timeout=0" local.cfg &&
	! bash "$TOP/boot/set-local-cfg.sh" local.img -- "imager.image=\$(reboot)" 2>err &&
	grep -q refusing err && cmp a/imager-usb.img b/imager-usb.img
'

test_expect_success 'a changed or unpinned package archive is refused' '
	ver=$(KV SHIM_VERSION) &&
	mkdir -p cache/dl && deb=$(ls "$IMAGER_CACHE"/dl/shim-signed_*.deb | head -1) &&
	cp "$deb" cache/dl/ && printf x >>"cache/dl/$(basename "$deb")" &&
	! IMAGER_OFFLINE=1 bash "$TOP/mk/fetch-deb.sh" --cache cache --hash "$TOP/boot/appliance.hash" \
		shim-signed "$ver" 2>err &&
	grep -q "does not match its pinned sha256" err &&
	cp "$deb" cache/dl/ && grep -v shim-signed "$TOP/boot/appliance.hash" >nohash &&
	! IMAGER_OFFLINE=1 bash "$TOP/mk/fetch-deb.sh" --cache cache --hash nohash shim-signed "$ver" 2>err &&
	grep -q "no .sha256. line for shim-signed_" err &&
	IMAGER_OFFLINE=1 bash "$TOP/mk/fetch-deb.sh" --cache cache --hash "$TOP/boot/appliance.hash" \
		shim-signed "$ver" >root.path &&
	test -s "$(cat root.path)/usr/lib/shim/shimx64.efi.signed"
'

test_expect_success 'the build refuses a missing /init and an unknown module' '
	mkdir emptyroot &&
	! SOURCE_DATE_EPOCH=0 bash "$TOP/initramfs/build.sh" --config a/config.sh --imager "$IMAGER" \
		--rootfs emptyroot --out bad/initramfs.img 2>err &&
	grep -q "no emptyroot/init" err &&
	sed "s/^CONFIG_APPLIANCE_EXTRA_MODULES=.*/CONFIG_APPLIANCE_EXTRA_MODULES=\"no_such_mod\"/" \
		a/config.sh >bad.sh &&
	! SOURCE_DATE_EPOCH=0 bash "$TOP/initramfs/build.sh" --config bad.sh --imager "$IMAGER" \
		--rootfs "$(abuild_rootfs)" --out bad/initramfs.img 2>err &&
	grep -q "module .no_such_mod. is not in kernel" err && test ! -e bad/initramfs.img
'

test_done
