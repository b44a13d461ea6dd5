#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='appliance trust: APPLIANCE_TRUSTED_KEYS baked into the initramfs and passed to flash'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/appliance-build.sh"

# Reads files only: no root, no loop device, no QEMU. The pinned kernel package
# comes from the download cache (the first run fetches it).
TOP=$ABUILD_TOP
export IMAGER_STORE=$TRASH/store

# config_with_keys DIR KEYS...: qemu_defconfig with APPLIANCE_TRUSTED_KEYS set
config_with_keys() {
	local dir
	dir=$(realpath -m "$1")
	shift
	mkdir -p "$dir" &&
	{ cat "$TOP/configs/qemu_defconfig"; echo "CONFIG_APPLIANCE_TRUSTED_KEYS=\"$*\""; } >"$dir/defconfig" &&
	(cd "$TOP" && /usr/bin/python3 mk/appliance-config.py kconfig/Config.in "$dir/defconfig" "$dir")
}
build_initramfs() {
	SOURCE_DATE_EPOCH=$ABUILD_EPOCH bash "$TOP/initramfs/build.sh" --config "$1/config.sh" \
		--imager "$IMAGER" --rootfs "$(abuild_rootfs)" --out "$1/initramfs.img"
}
# the appliance's trust_opts, from the runtime tree packed in root/
trust_opts_of() {
	(
		APPLIANCE_TRUSTED_KEYS_DIR=$1 IMAGER_LIB_DIR=$TRASH/root/usr/lib/imager
		. "$IMAGER_LIB_DIR/common.sh" && . "$IMAGER_LIB_DIR/jobs.sh" && trust_opts
	)
}

test_expect_success 'a public key listed in APPLIANCE_TRUSTED_KEYS is in the initramfs' '
	"$IMAGER" keys generate --output fleet >/dev/null &&
	config_with_keys a "$TRASH/fleet.pub" &&
	grep -qx "CONFIG_APPLIANCE_TRUSTED_KEYS=.$TRASH/fleet.pub." a/config.sh &&
	build_initramfs a 2>build.log &&
	zstd -q -dc a/initramfs.img >initramfs.cpio &&
	cpio -tv --quiet <initramfs.cpio >cpio.tv &&
	grep -E "^-rw-r--r-- .* etc/imager/trusted-keys/fleet.pub$" cpio.tv &&
	test "$(grep -c " etc/imager/trusted-keys/" cpio.tv)" -eq 1 &&
	grep -q "^-rw-r--r-- /etc/imager/trusted-keys/fleet.pub $(stat -c %s fleet.pub) $(sha256sum <fleet.pub | cut -c1-64)$" \
		a/initramfs.img.files &&
	mkdir root && (cd root && cpio -id --quiet <../initramfs.cpio) &&
	cmp fleet.pub root/etc/imager/trusted-keys/fleet.pub &&
	! grep -q "PRIVATE" root/etc/imager/trusted-keys/fleet.pub &&
	(. root/etc/imager/appliance.conf && test "$APPLIANCE_TRUSTED_KEYS_DIR" = /etc/imager/trusted-keys)
'

test_expect_success 'the runtime passes --require-signed --trust for each baked key, none without' '
	test "$(trust_opts_of "$TRASH/root/etc/imager/trusted-keys")" = \
		"--require-signed --trust $TRASH/root/etc/imager/trusted-keys/fleet.pub" &&
	mkdir empty && test -z "$(trust_opts_of "$TRASH/empty")" &&
	# every flash the runtime runs (unattended and menu both go through job_flash) carries them
	grep -rn "\"\$IMAGER\" flash" root/init root/usr/lib/imager root/usr/bin/imager-run >calls || true &&
	test "$(grep -c . calls)" -ge 1 &&
	! grep -v "jobs.sh" calls &&
	test "$(grep -A1 "\"\$IMAGER\" flash" root/usr/lib/imager/jobs.sh | grep -c "\$(trust_opts)")" -eq \
		"$(grep -c . calls)"
'

test_expect_success 'with the baked key: a signed image flashes, an unsigned one is refused untouched' '
	mkdir -p src && echo fleet >src/motd &&
	truncate -s 64M disk.img &&
	printf "label: dos\nstart=1MiB, type=83\n" | sfdisk -q disk.img &&
	mkfs.ext4 -q -F -E offset=1048576 -d src disk.img 60M &&
	"$IMAGER" capture disk.img --image signed --sign-key fleet.key >/dev/null &&
	"$IMAGER" capture disk.img --image unsigned >/dev/null &&
	opts=$(trust_opts_of "$TRASH/root/etc/imager/trusted-keys") &&
	truncate -s 64M t.img && sha256sum <t.img >t.sum &&
	expect_exit 4 "$IMAGER" flash unsigned t.img --yes $opts 2>err &&
	grep -q "Refusing to flash .unsigned.: it is not signed by a trusted key." err &&
	sha256sum <t.img | cmp - t.sum &&
	"$IMAGER" flash signed t.img --yes --progress=none $opts >/dev/null 2>&1 &&
	"$IMAGER" verify signed t.img
'

test_expect_success 'the build refuses a private key, a non-key and an unsafe file name' '
	cp fleet.key leak.pub &&
	config_with_keys p "$TRASH/leak.pub" &&
	! build_initramfs p 2>err && grep -q "is a PRIVATE key" err && ! test -e p/initramfs.img &&
	echo junk >junk.pub &&
	config_with_keys j "$TRASH/junk.pub" &&
	! build_initramfs j 2>err && grep -q "is not an Ed25519 public key" err &&
	cp fleet.pub "odd;name.pub" &&
	config_with_keys n "$TRASH/odd;name.pub" &&
	! build_initramfs n 2>err && grep -q "trusted key file name" err
'

test_done
