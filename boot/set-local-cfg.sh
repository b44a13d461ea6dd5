#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# boot/set-local-cfg.sh IMAGE [--default ACTION] [--timeout S] [--] [KERNEL_ARGS...]
#
# Rewrites /imager/local.cfg on the ESP of an appliance image file (or a copy
# of it), without root or mounting (mtools at the ESP's offset): GRUB then
# appends KERNEL_ARGS to every entry's command line, boots entry ACTION
# (menu, capture, flash, shell) by default and waits S seconds. For tests
# and for preparing sticks for unattended runs, e.g.
#	boot/set-local-cfg.sh stick.img --default flash --timeout 0 -- \
#		imager.image=golden imager.target=all imager.after=poweroff
# Without options and arguments it restores a local.cfg that changes nothing.
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $prog IMAGE [--default ACTION] [--timeout S] [--] [KERNEL_ARGS...]"
image=$1
shift
default= timeout=
while [ $# -gt 0 ]; do
	case $1 in
	--default) default=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ -f "$image" ] && [ ! -L "$image" ] || die "'$image' is not a regular file"
case $default in '' | menu | capture | flash | shell) ;; *) die "unknown action '$default'" ;; esac
case $timeout in '' | [0-9] | [0-9][0-9] | [0-9][0-9][0-9]) ;; *) die "bad timeout '$timeout'" ;; esac
for a in "$@"; do
	case $a in *[\"\$\\\`]* | '') die "refusing kernel argument '$a' (quotes, \$, \\ or \`)" ;; esac
done

# the ESP: the partition named IMAGER-ESP in the GPT
start_sectors=$(sfdisk --json "$image" | jq -r '.partitiontable.partitions[] |
	select(.name == "IMAGER-ESP") | .start')
ss=$(sfdisk --json "$image" | jq -r '.partitiontable.sectorsize // 512')
[ -n "$start_sectors" ] || die "'$image' has no partition named IMAGER-ESP"
offset=$((start_sectors * ss))

cfg=$(mktemp)
trap 'rm -f "$cfg"' EXIT
{
	echo "# Local settings of this imager stick (written by boot/set-local-cfg.sh)."
	[ $# -eq 0 ] || echo "set imager_extra=\"\$imager_extra $*\""
	[ -z "$default" ] || echo "set default=$default"
	[ -z "$timeout" ] || echo "set timeout=$timeout"
} >"$cfg"
MTOOLS_SKIP_CHECK=1 mcopy -o -Q -i "$image@@$offset" "$cfg" ::/imager/local.cfg ||
	die "cannot write /imager/local.cfg into the ESP of '$image'"
