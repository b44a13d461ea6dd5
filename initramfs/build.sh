#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# initramfs/build.sh --config CONFIG_SH --imager BIN --out FILE
#	[--rootfs DIR] [--files-list FILE]
#
# Builds the appliance's initramfs without root, reproducibly (STYLE.md C22):
#   - busybox (static, from busybox-static) with a link for every applet;
#   - `imager` and the shared libraries it needs (its ldd closure, loader too);
#   - the host files named in initramfs/files.list (one absolute path a line;
#     '#' comments), each with its ldd closure if it is an ELF program;
#   - the kernel modules the config selects (initramfs/modules.map) with their
#     dependency closure from the pinned Debian kernel package, then
#     `depmod -b` (modules.dep, modules.alias for modalias coldplug);
#   - /etc/modprobe.d/appliance.conf, /etc/imager/appliance.conf (the config
#     /init reads) and /etc/imager/trusted-keys/;
#   - last, initramfs/rootfs/ as it is (/init and everything it brings; its
#     files win over the above).
# The tree is merged-/usr (/bin, /sbin, /lib, /lib64 are links into /usr).
# It is packed from a sorted list by cpio --reproducible with owners 0:0, every
# mtime SOURCE_DATE_EPOCH (default 0), modes normalised to 0755/0644, and
# compressed by zstd -19 or gzip -n -9: the same inputs give the same bytes.
# No device nodes: the kernel's built-in initramfs provides /dev/console.
#
# Writes FILE and, beside it, FILE.files (a listing: mode, size or link target,
# sha256, path) and FILE.modules (the modules packed, one name a line).
set -euo pipefail
umask 022
export LC_ALL=C

TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/boot/lib.sh"

config= imager= out= rootfs=$TOP/initramfs/rootfs files_list=$TOP/initramfs/files.list
while [ $# -gt 0 ]; do
	case $1 in
	--config) config=$2; shift 2 ;;
	--imager) imager=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--rootfs) rootfs=$2; shift 2 ;;
	--files-list) files_list=$2; shift 2 ;;
	*) appl_die "unknown argument '$1' (see the header of $0)" ;;
	esac
done
[ -n "$config" ] && [ -n "$imager" ] && [ -n "$out" ] ||
	appl_die "usage: $0 --config CONFIG_SH --imager BIN --out FILE [--rootfs DIR] [--files-list FILE]"
appl_load_config "$config"
epoch=${SOURCE_DATE_EPOCH:-0}
kver=$CONFIG_APPLIANCE_KERNEL_ABI
[ -x "$imager" ] || appl_die "'$imager' is not an executable (make imager)"
[ -e "$rootfs/init" ] || appl_die "no $rootfs/init: the runtime's /init is missing"
PATH=$PATH:/usr/sbin:/sbin
for tool in busybox cpio depmod modprobe ldd; do
	command -v "$tool" >/dev/null || appl_die "'$tool' not found (make deps)"
done
# trusted keys before the slow steps: an unusable key would refuse every image at
# flash time, and a private key must never ship
for key in $CONFIG_APPLIANCE_TRUSTED_KEYS; do
	case $key in /*) ;; *) key=$TOP/$key ;; esac
	[ -f "$key" ] || appl_die "trusted key '$key' does not exist (CONFIG_APPLIANCE_TRUSTED_KEYS)"
	# /init passes each as one word to `imager flash --trust` (jobs.sh trust_opts)
	case ${key##*/} in
	*[!A-Za-z0-9._+-]*) appl_die "trusted key file name '${key##*/}': use letters, digits, '.', '_', '+', '-'" ;;
	esac
	id=$("$imager" keys id "$key" 2>&1) ||
		appl_die "trusted key '$key' is not an Ed25519 public key ('imager keys generate' writes NAME.pub): $id"
	case $id in *private*) appl_die "trusted key '$key' is a PRIVATE key: list its .pub file" ;; esac
done

out=$(realpath -m "$out")
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$out.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
S=$work/root

# --- layout ------------------------------------------------------------------

# map PATH: where a host path goes in the merged-/usr tree (relative to $S)
map() {
	local p=${1#/}
	case $p in
	bin/* | sbin/* | lib/* | lib64/*) p=usr/$p ;;
	esac
	echo "$p"
}

mkdir -p "$S"/usr/bin "$S"/usr/sbin "$S"/usr/lib "$S"/usr/lib64 \
	"$S"/dev "$S"/proc "$S"/sys "$S"/run "$S"/tmp "$S"/mnt "$S"/root "$S"/etc
for d in bin sbin lib lib64; do
	ln -s usr/$d "$S/$d"
done

# copy_host SRC: a host file (dereferenced) to its mapped place; ELF programs
# and libraries bring their ldd closure, the loader included
declare -A copied=()
copy_host() {
	local src=$1 dst lib
	[ -z "${copied[$src]:-}" ] || return 0
	copied[$src]=1
	[ -f "$src" ] || appl_die "'$src' is not a file on this machine (initramfs/files.list?)"
	dst=$S/$(map "$src")
	mkdir -p "$(dirname "$dst")"
	cp -L "$src" "$dst"
	# ELF: "\x7fELF"; a static program has no closure ("not a dynamic executable")
	if [ "$(head -c 4 "$src" | od -An -t x1 | tr -d ' ')" = 7f454c46 ]; then
		while read -r lib; do
			copy_host "$lib"
		done < <(ldd "$src" 2>/dev/null | sed -nE 's#.*=> (/[^ ]+) .*#\1#p; s#^[[:space:]]*(/[^ ]+) \(0x.*#\1#p')
	fi
}

# --- busybox -----------------------------------------------------------------

bb=$(command -v busybox)
ldd "$bb" >/dev/null 2>&1 && appl_die "$bb is not static (install busybox-static)"
cp -L "$bb" "$S/usr/bin/busybox"
while read -r applet; do
	dst=$S/$(map "/$applet")
	[ -e "$dst" ] || [ -L "$dst" ] || { mkdir -p "$(dirname "$dst")"; ln -s /usr/bin/busybox "$dst"; }
done < <("$S/usr/bin/busybox" --list-full)

# --- imager and host tools -----------------------------------------------------

install -m 0755 "$imager" "$S/usr/bin/imager"
copied[$(realpath "$imager")]=1
while read -r lib; do
	copy_host "$lib"
done < <(ldd "$imager" | sed -nE 's#.*=> (/[^ ]+) .*#\1#p; s#^[[:space:]]*(/[^ ]+) \(0x.*#\1#p')

if [ -r "$files_list" ]; then
	while read -r line; do
		line=${line%%#*}
		line=$(echo "$line" | tr -d '[:space:]')
		[ -n "$line" ] || continue
		case $line in /*) ;; *) appl_die "$files_list: '$line' is not an absolute path" ;; esac
		# a real tool replaces a busybox applet link of the same name
		rm -f "$S/$(map "$line")"
		copy_host "$line"
	done <"$files_list"
fi

# --- kernel modules ------------------------------------------------------------

kroot=$(bash "$TOP/mk/fetch-deb.sh" --hash "$TOP/boot/appliance.hash" --depmod "$kver" \
	"linux-image-$kver" "$CONFIG_APPLIANCE_KERNEL_VERSION")
kmods=$kroot/lib/modules/$kver

# wanted module names: "always", each enabled option's line in modules.map,
# and CONFIG_APPLIANCE_EXTRA_MODULES
wanted=()
while read -r sym mods; do
	case $sym in '' | '#'*) continue ;; esac
	if [ "$sym" != always ]; then
		var=CONFIG_$sym
		[ -n "${!var+set}" ] || appl_die "modules.map: $sym is not a kconfig symbol"
		[ -n "${!var}" ] || continue
	fi
	# shellcheck disable=SC2206
	wanted+=($mods)
done <"$TOP/initramfs/modules.map"
# shellcheck disable=SC2206
wanted+=($CONFIG_APPLIANCE_EXTRA_MODULES)

dst_mods=$S/usr/lib/modules/$kver
mkdir -p "$dst_mods"
: >"$work/modules"
for m in "${wanted[@]}"; do
	deps=$(modprobe -d "$kroot" -S "$kver" --show-depends "$m" 2>&1) ||
		appl_die "module '$m' is not in kernel $kver: $deps"
	while read -r kind path _; do
		case $kind in
		insmod)
			rel=${path#"$kmods"/}
			[ "$rel" != "$path" ] || appl_die "unexpected module path '$path'"
			if [ ! -e "$dst_mods/$rel" ]; then
				mkdir -p "$(dirname "$dst_mods/$rel")"
				cp "$kmods/$rel" "$dst_mods/$rel"
				echo "$rel" >>"$work/modules"
			fi
			;;
		builtin) ;;
		*) appl_die "modprobe --show-depends $m: unexpected '$kind $path'" ;;
		esac
	done <<<"$deps"
done
# modules.order in the kernel's order (depmod and modprobe use it to break
# ties); modules.builtin* so modprobe knows what needs no file
grep -Fxf "$work/modules" "$kmods/modules.order" >"$dst_mods/modules.order" || true
cp "$kmods/modules.builtin" "$kmods/modules.builtin.modinfo" "$dst_mods/"
depmod -b "$S" "$kver" || appl_die "depmod failed"
sed -e 's#.*/##' -e 's#\.ko$##' "$work/modules" | sort >"$out.modules.tmp"

mkdir -p "$S/etc/modprobe.d"
cat >"$S/etc/modprobe.d/appliance.conf" <<-'EOF'
	# initramfs/build.sh: USB disks appear at once instead of after 1 s
	options usb_storage delay_use=0
EOF

# --- the appliance's own configuration --------------------------------------------

consoles=() serial=
if [ -n "$CONFIG_APPLIANCE_CONSOLE_SERIAL" ]; then
	serial=ttyS$CONFIG_APPLIANCE_CONSOLE_SERIAL_PORT,$CONFIG_APPLIANCE_CONSOLE_SERIAL_SPEED
fi
if [ -n "${CONFIG_APPLIANCE_CONSOLE_PRIMARY_SERIAL:-}" ]; then
	consoles=(tty0 "ttyS$CONFIG_APPLIANCE_CONSOLE_SERIAL_PORT")
else
	[ -z "$serial" ] || consoles+=("ttyS$CONFIG_APPLIANCE_CONSOLE_SERIAL_PORT")
	[ -z "$CONFIG_APPLIANCE_CONSOLE_VGA" ] || consoles+=(tty0)
fi
mkdir -p "$S/etc/imager/trusted-keys"
{
	echo "# Generated by initramfs/build.sh from the appliance's kconfig: do not edit."
	echo "# Sourced by /init (POSIX sh)."
	printf "APPLIANCE_IMAGER_VERSION='%s'\n" "$("$imager" --version 2>/dev/null | head -1 | tr -d "'")"
	printf "APPLIANCE_KERNEL='%s'\n" "$kver"
	printf "APPLIANCE_DEFAULT_ACTION='%s'\n" "$CONFIG_APPLIANCE_DEFAULT_ACTION"
	printf "APPLIANCE_CONSOLES='%s'\n" "${consoles[*]}"
	printf "APPLIANCE_SERIAL='%s'\n" "$serial"
	printf "APPLIANCE_DATA_LABEL='IMAGER-DATA'\n"
	printf "APPLIANCE_ESP_LABEL='IMAGER-ESP'\n"
	printf "APPLIANCE_DISK_GUID='%s'\n" "$(appl_uuid "$CONFIG_APPLIANCE_IMAGE_SEED" disk)"
	printf "APPLIANCE_DATA_PARTUUID='%s'\n" "$(appl_uuid "$CONFIG_APPLIANCE_IMAGE_SEED" part-data)"
	printf "APPLIANCE_DATA_UUID='%s'\n" "$(appl_uuid "$CONFIG_APPLIANCE_IMAGE_SEED" fs-data)"
	printf "APPLIANCE_TRUSTED_KEYS_DIR='/etc/imager/trusted-keys'\n"
} >"$S/etc/imager/appliance.conf"
for key in $CONFIG_APPLIANCE_TRUSTED_KEYS; do
	case $key in /*) ;; *) key=$TOP/$key ;; esac
	[ -f "$key" ] || appl_die "trusted key '$key' does not exist (CONFIG_APPLIANCE_TRUSTED_KEYS)"
	name=$(basename "$key")
	[ ! -e "$S/etc/imager/trusted-keys/$name" ] || appl_die "two trusted keys named '$name'"
	install -m 0644 "$key" "$S/etc/imager/trusted-keys/$name"
done

# --- the runtime's tree -----------------------------------------------------------

(cd "$rootfs" && find . -mindepth 1 -print0 | sort -z) | while IFS= read -r -d '' p; do
	src=$rootfs/${p#./}
	dst=$S/$(map "/${p#./}")
	if [ -L "$src" ]; then
		rm -rf "$dst"
		ln -s "$(readlink "$src")" "$dst"
	elif [ -d "$src" ]; then
		mkdir -p "$dst"
	else
		rm -f "$dst"
		cp "$src" "$dst"
	fi
done

# --- pack ----------------------------------------------------------------------

# modes: directories 0755 (/tmp 1777), files 0755 if anyone may execute them,
# else 0644: the host's umask and the checkout's modes do not leak in
find "$S" -type d -exec chmod 0755 {} +
chmod 1777 "$S/tmp"
find "$S" -type f -perm /111 -exec chmod 0755 {} +
find "$S" -type f ! -perm /111 -exec chmod 0644 {} +
appl_pin_times "$S" "$epoch"

case ${CONFIG_APPLIANCE_INITRAMFS_GZIP:+gzip} in
gzip) compress=(gzip -n -9 -c) ;;
*) compress=(zstd -19 -T1 -q -c) ;;
esac
(cd "$S" && find . -mindepth 1 -print0 | sort -z |
	cpio --null --reproducible --quiet -o -H newc --owner=0:0) >"$work/initramfs.cpio"
"${compress[@]}" <"$work/initramfs.cpio" >"$out.tmp"

# the listing, for tests and for people: mode, size (or link target), sha256, path
(cd "$S" && find . -mindepth 1 -print0 | sort -z) | while IFS= read -r -d '' p; do
	if [ -L "$S/$p" ]; then
		printf '%s %s -> %s\n' "$(stat -c %A "$S/$p")" "${p#.}" "$(readlink "$S/$p")"
	elif [ -d "$S/$p" ]; then
		printf '%s %s/\n' "$(stat -c %A "$S/$p")" "${p#.}"
	else
		printf '%s %s %s %s\n' "$(stat -c %A "$S/$p")" "${p#.}" "$(stat -c %s "$S/$p")" \
			"$(sha256sum <"$S/$p" | cut -c1-64)"
	fi
done >"$out.files.tmp"

mv -f "$out.modules.tmp" "$out.modules"
mv -f "$out.files.tmp" "$out.files"
mv -f "$out.tmp" "$out"
echo "initramfs: $out ($(stat -c %s "$out") bytes, $(stat -c %s "$work/initramfs.cpio") unpacked," \
	"$(wc -l <"$out.modules") modules)" >&2
