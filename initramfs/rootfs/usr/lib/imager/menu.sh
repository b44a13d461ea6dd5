#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# menu.sh [--shell-first]: the appliance's console menu. /init runs one on
# each console (serial and screen), as the session leader of that tty. Plain
# lines and `read`, so it works on any terminal, and a test can drive it
# through the serial port: every question ends in ": " and waits for one line.
#
# Jobs run through jobs.sh, as the kernel command line's would; the menu only
# asks, and confirms by naming the disk's model, serial and size.

. "${IMAGER_LIB_DIR:-/usr/lib/imager}/common.sh"
. "$LIB/jobs.sh"
load_env
STORE=$(store_dir)
# an encrypted store: its passphrase, once (crypt.sh)
[ "${1:-}" = --shell-first ] || menu_unlock "$STORE" || true

# ^C stops what the menu runs (imager, a shell command), not the menu
trap 'say ""; say "(interrupted)"' INT

# ask PROMPT [DEFAULT]: one answer line in ANSWER; on a closed console the
# menu waits (it may come back: a serial cable)
ask() {
	if [ -n "${2:-}" ]; then
		printf '%s [%s]: ' "$1" "$2"
	else
		printf '%s: ' "$1"
	fi
	while ! IFS= read -r ANSWER; do
		sleep 1
	done
	# a serial terminal may send CR LF
	ANSWER=$(printf '%s' "$ANSWER" | tr -d '\r')
	[ -n "$ANSWER" ] || ANSWER=${2:-}
}

pause() { ask "Press Enter to return to the menu"; }

header() {
	say ""
	say "=== imager appliance ==="
	if [ -n "${DATA_DIR:-}" ]; then
		say "Store: $STORE on $DATA_PART ($(df -h "$DATA_DIR" | awk 'NR == 2 { print $4 }') free); reports in $DATA_DIR/reports"
	else
		say "Store: none (no data partition labelled $DATA_LABEL): capture and flash are not available"
	fi
}

actions() {
	say ""
	say "  c) Capture a disk into an image      f) Flash an image onto a disk"
	say "  i) List the images                   d) Disk details (imager disks)"
	say "  r) Rescan the disks                  s) Shell (type 'exit' to come back)"
	say "  p) Power off                         b) Reboot"
}

# selectable_disks: the disks a job may use: not the appliance's medium, not unreadable
selectable_disks() {
	disk_rows | awk -F '\t' -v own="${OWN_DISK:-}" '$1 != own && $8 != "true" { print $1 }'
}

# pick_disk ROLE: numbered list, then PICKED=node; non-zero if cancelled
pick_disk() {
	local n=0 node ans
	disks_refresh
	selectable_disks >"$W/pick"
	if [ ! -s "$W/pick" ]; then
		say "There is no disk to use as the $1 (the appliance's own medium is never offered)."
		return 1
	fi
	say ""
	say "Disks that can be the $1:"
	while IFS= read -r node; do
		n=$((n + 1))
		printf '  %d) %s, %s\n' "$n" "$(disk_describe "$node")" \
			"$(disk_rows | awk -F '\t' -v d="$node" '$1 == d { print $6 "; boots: " $7 }')"
	done <"$W/pick"
	[ -z "${OWN_DISK:-}" ] || say "  (not offered: $OWN_DISK, the appliance's own medium)"
	while :; do
		case $1 in
		source) ask "Source disk number (q to cancel)" ;;
		*) ask "Target disk number (q to cancel)" ;;
		esac
		case $ANSWER in
		q | Q) return 1 ;;
		*[!0-9]* | "") ;;
		*)
			if [ "$ANSWER" -ge 1 ] && [ "$ANSWER" -le $n ]; then
				PICKED=$(sed -n "${ANSWER}p" "$W/pick")
				return 0
			fi
			;;
		esac
		say "Please type a number from 1 to $n, or q."
	done
}

result_screen() {
	say ""
	say "=================================================================="
	if [ "$J_STATUS" = ok ]; then
		say " RESULT: OK"
	else
		say " RESULT: FAILED"
	fi
	printf '%s\n' "$J_SUMMARY" | sed 's/^/ /'
	[ -z "$J_REPORT" ] || say " Report: $J_REPORT"
	say "=================================================================="
	pause
}

confirm() {
	ask "Type yes to $1"
	[ "$ANSWER" = yes ] && return 0
	say "Not confirmed: nothing was done."
	return 1
}

menu_capture() {
	local src name family def
	[ -n "$STORE" ] || { say "No store: capture is not available."; return; }
	pick_disk source || return
	src=$PICKED
	def=capture-$(date -u +%Y%m%d-%H%M%S)
	while :; do
		ask "Image name" "$def"
		name=$ANSWER
		image_name_ok "$name" && ! "$IMAGER" images describe "$name" --store "$STORE" >/dev/null 2>&1 && break
		if image_name_ok "$name"; then
			say "An image named '$name' exists already."
		else
			say "Names use a-z, 0-9 and '-', start with a letter, at most 63 characters."
		fi
	done
	while :; do
		ask "Family (a label family=NAME, empty for none)" ""
		family=$ANSWER
		[ -z "$family" ] || image_name_ok "$family" && break
		say "Families use a-z, 0-9 and '-', and start with a letter."
	done
	# a new store is made encrypted: its passphrase first (crypt.sh)
	menu_unlock "$STORE" new || { pause; return; }
	say ""
	say "Capture $(disk_describe "$src")"
	say "   into image '$name'${family:+ (family $family)} in $STORE."
	say "The disk is only read."
	confirm capture || { pause; return; }
	job_capture "$src" "$name" "$family" || true
	result_screen
}

menu_flash() {
	local image= family= n=0 target grow= name created fam ndisks used status state
	[ -n "$STORE" ] || { say "No store: flash is not available."; return; }
	images_rows "$STORE" >"$W/images.rows"
	if [ ! -s "$W/images.rows" ]; then
		say "The store $STORE holds no image: capture one first."
		return
	fi
	say ""
	say "Images in $STORE (oldest first):"
	while IFS='	' read -r name created fam ndisks used status state; do
		n=$((n + 1))
		printf '  %d) %-28s family %-12s %s, %s disk(s), %s used%s%s\n' "$n" "$name" "$fam" \
			"$created" "$ndisks" "$(human "$used")" \
			"$([ "$status" = READY ] || echo ", $status")" \
			"$([ "$state" = ACTIVE ] || [ "$state" = - ] || echo ", $state")"
	done <"$W/images.rows"
	while :; do
		ask "Image number, or @FAMILY for the newest of a family (q to cancel)"
		case $ANSWER in
		q | Q) return ;;
		@?*)
			family=${ANSWER#@}
			image=$(newest_of_family "$STORE" "$family")
			[ -n "$image" ] && break
			say "No image is labelled family=$family."
			;;
		*[!0-9]* | "") say "Please type a number from 1 to $n, @FAMILY or q." ;;
		*)
			if [ "$ANSWER" -ge 1 ] && [ "$ANSWER" -le $n ]; then
				image=$(sed -n "${ANSWER}p" "$W/images.rows" | cut -f1)
				break
			fi
			say "Please type a number from 1 to $n, @FAMILY or q."
			;;
		esac
	done
	say "Image: $image${family:+ (newest of family $family)}"
	pick_disk target || return
	target=$PICKED
	ask "Grow the last partition to fill the disk? [y/N]" ""
	case $ANSWER in y | Y | yes) grow=1 ;; esac
	say ""
	say "WARNING: this erases everything on $(disk_describe "$target")"
	say "         and writes image '$image' onto it${grow:+, growing its last partition}."
	confirm flash || { pause; return; }
	job_flash "$image" "" "$target" 0 "$grow" || true
	result_screen
}

menu_images() {
	[ -n "$STORE" ] || { say "No store."; return; }
	images_rows "$STORE" >"$W/images.rows"
	say ""
	if [ ! -s "$W/images.rows" ]; then
		say "The store $STORE holds no image."
	else
		"$IMAGER" images list --store "$STORE"
	fi
	pause
}

run_shell() {
	say ""
	say "Shell: 'exit' returns to the menu. imager is the tool ('imager --help');"
	say "'imager-run imager.action=flash imager.image=NAME imager.target=HINTS' runs a job"
	say "as the kernel command line would. The store is $STORE."
	PS1='imager-shell# ' sh -i
}

first=1
[ "${1:-}" = --shell-first ] && run_shell
while :; do
	if [ $first = 1 ]; then
		# /init has just printed the disk list on this console
		first=0
		header
	else
		disks_refresh
		header
		say ""
		print_disks
	fi
	actions
	ask "Choice"
	case $ANSWER in
	c | C) menu_capture ;;
	f | F) menu_flash ;;
	i | I) menu_images ;;
	d | D) "$IMAGER" disks; pause ;;
	r | R) say "Rescanning ..." ;;
	s | S) run_shell ;;
	p | P) ask "Power off now? [y/N]" ""; case $ANSWER in y | Y | yes) power poweroff ;; esac ;;
	b | B) ask "Reboot now? [y/N]" ""; case $ANSWER in y | Y | yes) power reboot ;; esac ;;
	"") ;;
	*) say "Unknown choice '$ANSWER'." ;;
	esac
done
