# SPDX-License-Identifier: GPL-2.0-or-later
#
# jobs.sh: capture and flash as the appliance runs them, for the kernel
# command line (unattended), the menu and `imager-run` alike. Sourced after
# common.sh and load_env. Non-interactive: the menu asks and confirms first.
#
# Each job resolves what it was given, refuses (a clear console line, a
# report, nothing written) when that does not name exactly what it must, runs
# imager with --report into $DATA_DIR/reports/, and ends with one line
#	IMAGER-RESULT ok|error action=... image=... source=|target=... report=...
# The resolution results go through globals (sh has no out-parameters):
#	R_NODES (disk nodes, one per line), R_IMAGE, R_ERROR, R_CODE
# and the last job's outcome through J_STATUS (ok/error), J_SUMMARY, J_REPORT.

EXIT_REFUSED=4
EXIT_NOT_FOUND=5

# the key of an encrypted store: imager.keyfile=, the menu's passphrase
. "$LIB/crypt.sh"

# image_name_ok NAME: imager's image-name rule [a-z]([-a-z0-9]*[a-z0-9])?, at most 63
image_name_ok() {
	case $1 in
	"" | *[!a-z0-9-]* | [!a-z]* | *-) return 1 ;;
	esac
	[ ${#1} -le 63 ]
}

# store_dir: the store this run uses: imager.store= (absolute, or relative
# to the data partition), default store/ on the data partition
store_dir() {
	case ${OPT_STORE:-} in
	/*) echo "$OPT_STORE" ;;
	"") [ -n "${DATA_DIR:-}" ] && echo "$DATA_DIR/store" ;;
	*) [ -n "${DATA_DIR:-}" ] && echo "$DATA_DIR/$OPT_STORE" ;;
	esac
}

# job_lock / job_unlock: one capture or flash at a time across consoles
job_lock() {
	if mkdir "$RUN/job.lock" 2>/dev/null; then
		echo "$1" >"$RUN/job.lock/what"
		return 0
	fi
	warn "another console is running a job: $(cat "$RUN/job.lock/what" 2>/dev/null); try again when it ends"
	return 1
}
job_unlock() { rm -rf "$RUN/job.lock"; }

# trust_opts: "--require-signed --trust KEY..." for the public keys the build
# baked in (kconfig APPLIANCE_TRUSTED_KEYS), nothing when there are none; then
# `imager flash` refuses unsigned and untrusted images before any write. Key
# file names are plain words (initramfs/build.sh refuses others), so the
# output splits safely; a name that is not is left out while --require-signed
# stays: such a key is not trusted, nothing more.
trust_opts() {
	local dir=${APPLIANCE_TRUSTED_KEYS_DIR:-/etc/imager/trusted-keys} k any=
	for k in "$dir"/*; do
		[ -f "$k" ] || continue
		[ -n "$any" ] || printf '%s' --require-signed
		any=1
		case ${k##*/} in *[!A-Za-z0-9._+-]*) continue ;; esac
		printf ' --trust %s' "$k"
	done
}

# refuse ACTION CODE MESSAGE IMAGE REQUEST...: the refusal line, its report, the marker
refuse() {
	local action=$1 code=$2 msg=$3 image=$4 report=
	shift 4
	say ""
	say "REFUSED: $msg"
	say "Nothing was written."
	if [ -n "${DATA_DIR:-}" ] && [ -d "$DATA_DIR/reports" ]; then
		report=$(report_path "$action") &&
			write_sh_report "$report" "$action" "$code" "$msg" "$image" "$(store_dir)" "$@"
	fi
	J_STATUS=error J_REPORT=$report J_SUMMARY="REFUSED: $msg"
	result_marker error "$action" "exit=$code" "image=$image" "report=${report#"${DATA_DIR:-}"/}"
	return "$code"
}

# resolve_disks ROLE SPEC ALL: SPEC is a device path or hints (imager select);
# empty SPEC means "any disk but the appliance's own medium". Sets R_NODES,
# or R_ERROR/R_CODE and returns non-zero.
resolve_disks() {
	local role=$1 spec=$2 all=$3 rc=0 n
	R_NODES= R_ERROR= R_CODE=0
	set --
	[ -z "${OWN_DISK:-}" ] || set -- --exclude "$OWN_DISK"
	[ "$all" != 1 ] || set -- "$@" --all
	case $spec in
	/*)
		if is_own_disk "$spec"; then
			R_ERROR="$spec is the appliance's own medium (it holds the $DATA_LABEL partition); it cannot be the $role"
			R_CODE=$EXIT_REFUSED
			return $R_CODE
		fi
		;;
	all)
		# every disk but the appliance's own medium
		"$IMAGER" select size=1- --all "$@" >"$W/select.out" 2>"$W/select.err" || rc=$?
		R_NODES=$(cat "$W/select.out")
		[ $rc -ne 0 ] || return 0
		R_ERROR="${role}=all: there is no disk other than the appliance's own medium"
		R_CODE=$EXIT_REFUSED
		return $R_CODE
		;;
	"")
		# no hints: every disk matches "size=1-"; the messages below say what that means
		"$IMAGER" select size=1- "$@" >"$W/select.out" 2>"$W/select.err" || rc=$?
		R_NODES=$(cat "$W/select.out")
		if [ $rc -eq 0 ]; then
			return 0
		fi
		n=$(grep -c '^  /dev/' "$W/select.err")
		if [ "$n" -gt 1 ]; then
			R_ERROR="no ${role} was named (imager.${role}=) and $n disks could be it: $(grep '^  /dev/' "$W/select.err" | awk '{ print $1 }' | tr '\n' ' ')"
		else
			R_ERROR="no ${role} was named (imager.${role}=) and there is no disk other than the appliance's own medium"
		fi
		R_CODE=$EXIT_REFUSED
		return $R_CODE
		;;
	esac
	"$IMAGER" select "$spec" "$@" >"$W/select.out" 2>"$W/select.err" || rc=$?
	R_NODES=$(cat "$W/select.out")
	[ $rc -ne 0 ] || return 0
	# imager's own message names the hints and the disks; keep it on one line
	R_ERROR="$role '$spec': $(sed -e 's/^imager[a-z ]*: //' -e 's/^Refusing: //' \
		-e "s|^  ${OWN_DISK:-/nonexistent}: it is excluded| ${OWN_DISK:-}: the appliance's own medium|" \
		-e "s/^Refusing '\([^']*\)': /\1: /" -e 's/with --all/with --all (imager.target_all=1)/' \
		-e 's/^  */ /' "$W/select.err" | grep -v '^Try ' | tr '\n' ' ' | tr -s ' ' | sed 's/ *$//')"
	R_CODE=$rc
	return $rc
}

# resolve_image STORE IMAGE FAMILY: sets R_IMAGE (the image to flash), or R_ERROR/R_CODE
resolve_image() {
	local store=$1 image=$2 family=$3 n rc=0
	R_IMAGE= R_ERROR= R_CODE=0
	if [ -n "$image" ]; then
		if image_name_ok "$image"; then
			"$IMAGER" images describe "$image" --store "$store" >/dev/null 2>"$W/image.err" || rc=$?
			[ $rc -ne 0 ] || { R_IMAGE=$image; return 0; }
			if [ $rc -eq 6 ]; then
				# an encrypted store without its key (crypt.sh): imager says why
				R_ERROR=$(sed -e 's/^imager[a-z ]*: //' "$W/image.err" | head -n 1)
				R_CODE=6
				return $R_CODE
			fi
		fi
		R_ERROR="there is no image '$image' in $store"
		R_CODE=$EXIT_NOT_FOUND
		return $R_CODE
	fi
	if [ -n "$family" ]; then
		R_IMAGE=$(newest_of_family "$store" "$family")
		[ -n "$R_IMAGE" ] && return 0
		R_ERROR="no image in $store is labelled family=$family"
		R_CODE=$EXIT_NOT_FOUND
		return $R_CODE
	fi
	images_rows "$store" >"$W/images.rows"
	n=$(grep -c . "$W/images.rows")
	if [ "$n" -eq 1 ]; then
		R_IMAGE=$(cut -f1 "$W/images.rows")
		return 0
	fi
	if [ "$n" -eq 0 ]; then
		R_ERROR="the store $store holds no image"
		R_CODE=$EXIT_NOT_FOUND
	else
		R_ERROR="no image was named (imager.image= or imager.family=) and $store holds $n: $(words "$(cut -f1 "$W/images.rows")")"
		R_CODE=$EXIT_REFUSED
	fi
	return $R_CODE
}

# need_store ACTION: the store directory exists (created on the data partition)
need_store() {
	STORE=$(store_dir)
	if [ -z "$STORE" ]; then
		R_ERROR="no data partition labelled $DATA_LABEL was found, and imager.store= does not name a directory"
		R_CODE=$EXIT_NOT_FOUND
		return $R_CODE
	fi
	mkdir -p "$STORE" 2>/dev/null || {
		R_ERROR="cannot create the store directory $STORE"
		R_CODE=1
		return 1
	}
}

# finish ACTION RC REPORT IMAGE KEY=VALUE...: the result line after imager ran
finish() {
	local action=$1 rc=$2 report=$3 image=$4 err
	shift 4
	if [ ! -s "$report" ]; then
		# imager ended before it could write its report (it was killed, or
		# rejected its command line): record that much
		err="imager $action ended with exit status $rc before writing a report"
		write_sh_report "$report" "$action" "$rc" "$err" "$image" "$STORE" "$@"
	fi
	sync
	if [ "$rc" -eq 0 ]; then
		J_STATUS=ok
		result_marker ok "$action" "image=$image" "$@" "report=${report#"$DATA_DIR"/}"
	else
		J_STATUS=error
		err=$(sed -n 's/.*"error": *"\(.*\)",*$/\1/p' "$report" | head -n 1)
		say "FAILED: imager $action exited with status $rc${err:+: $err}"
		result_marker error "$action" "exit=$rc" "image=$image" "$@" \
			"report=${report#"$DATA_DIR"/}"
	fi
	J_REPORT=$report
	return "$rc"
}

# job_capture SOURCE IMAGE FAMILY: capture one disk into the store
job_capture() {
	local spec=$1 image=$2 family=$3 src report rc=0 desc
	set -- "source=$spec" "image=$image" "family=$family" "store=${OPT_STORE:-}"
	J_STATUS= J_SUMMARY= J_REPORT=
	if [ -n "$family" ] && ! image_name_ok "$family"; then
		refuse capture 2 "family '$family' is not a valid name (a-z, 0-9 and '-', starting with a letter)" "$image" "$@"
		return
	fi
	if [ -n "$image" ] && ! image_name_ok "$image"; then
		refuse capture 2 "image name '$image' is not valid (a-z, 0-9 and '-', starting with a letter, at most 63)" "$image" "$@"
		return
	fi
	need_store || { refuse capture "$R_CODE" "$R_ERROR" "$image" "$@"; return; }
	resolve_disks source "$spec" 0 || { refuse capture "$R_CODE" "$R_ERROR" "$image" "$@"; return; }
	src=$R_NODES
	if [ "$(echo "$src" | grep -c .)" -ne 1 ]; then
		refuse capture $EXIT_REFUSED "source '$spec' names $(echo "$src" | grep -c .) disks ($(words "$src")); a capture reads one" "$image" "$@"
		return
	fi
	[ -n "$image" ] || image=${family:-capture}-$(date -u +%Y%m%d-%H%M%S)
	if "$IMAGER" images describe "$image" --store "$STORE" >/dev/null 2>&1; then
		refuse capture $EXIT_REFUSED "an image named '$image' already exists in $STORE" "$image" "$@"
		return
	fi
	job_lock "capture $src" || { refuse capture $EXIT_REFUSED "another job is running" "$image" "$@"; return; }
	disks_refresh
	desc=$(disk_describe "$src")
	say ""
	say "Capturing $desc into image '$image'${family:+ (family $family)} in $STORE"
	report=$(report_path capture)
	set -- --image "$image" --store "$STORE" --progress=tty --report "$report" \
		--description "Captured by the imager appliance from $desc"
	if [ -n "$family" ]; then
		# an imager with image families takes --family; before them the
		# family was the label family=NAME (images_rows reads both)
		if "$IMAGER" capture --help 2>&1 | grep -q -- '--family'; then
			set -- "$@" --family "$family"
		else
			set -- "$@" --label "family=$family"
		fi
	fi
	"$IMAGER" capture "$src" "$@" || rc=$?
	job_unlock
	finish capture "$rc" "$report" "$image" "source=$src" && J_SUMMARY="Captured $desc into image '$image'${family:+ (family $family)}." ||
		J_SUMMARY="Capture of $desc into '$image' FAILED (exit $rc)."
	return "$rc"
}

# job_flash IMAGE FAMILY TARGET ALL GROW: write an image onto the target disk(s)
job_flash() {
	local image=$1 family=$2 spec=$3 all=$4 grow=$5 report rc=0 t ndisks ntargets targets worst=0
	set -- "image=$image" "family=$family" "target=$spec" "target_all=$all" "store=${OPT_STORE:-}"
	J_STATUS= J_SUMMARY= J_REPORT=
	need_store || { refuse flash "$R_CODE" "$R_ERROR" "$image" "$@"; return; }
	resolve_image "$STORE" "$image" "$family" || { refuse flash "$R_CODE" "$R_ERROR" "$image" "$@"; return; }
	image=$R_IMAGE
	resolve_disks target "$spec" "$all" || { refuse flash "$R_CODE" "$R_ERROR" "$image" "$@"; return; }
	targets=$R_NODES
	ntargets=$(echo "$targets" | grep -c .)
	ndisks=$("$IMAGER" images describe "$image" --json --store "$STORE" | json_flat | awk -F '\t' '$1 == "disks#" { print $2 }')
	if [ "${ndisks:-1}" -gt 1 ] && [ "$ntargets" -ne "$ndisks" ]; then
		refuse flash $EXIT_REFUSED "image '$image' has $ndisks disks, but $ntargets target(s) were selected ($(words "$targets")); select exactly $ndisks with imager.target_all=1" "$image" "$@"
		return
	fi
	job_lock "flash $image onto $(words "$targets")" || { refuse flash $EXIT_REFUSED "another job is running" "$image" "$@"; return; }
	disks_refresh
	if [ "${ndisks:-1}" -gt 1 ]; then
		# one run writes the image's disks onto the targets in node order
		# shellcheck disable=SC2086 # one argument per target
		set -- $targets
		targets=$(echo "$targets" | tr '\n' ',' | sed 's/,$//')
		say ""
		say "Flashing image '$image' ($ndisks disks) onto $*"
		report=$(report_path flash)
		# shellcheck disable=SC2046 # trust_opts: words without blanks
		"$IMAGER" flash "$image" "$@" --store "$STORE" --yes --progress=tty --report "$report" \
			${grow:+--grow} $(trust_opts) || rc=$?
		job_unlock
		finish flash "$rc" "$report" "$image" "target=$targets"
		J_SUMMARY="Flashed '$image' onto $targets: $J_STATUS."
		return "$rc"
	fi
	# a one-disk image onto each target in turn
	J_SUMMARY=
	for t in $targets; do
		rc=0
		say ""
		say "Flashing image '$image' onto $(disk_describe "$t")${grow:+, growing the last partition}"
		report=$(report_path flash)
		# shellcheck disable=SC2046 # trust_opts: words without blanks
		"$IMAGER" flash "$image" "$t" --store "$STORE" --yes --progress=tty --report "$report" \
			${grow:+--grow} $(trust_opts) || rc=$?
		finish flash "$rc" "$report" "$image" "target=$t" || true
		J_SUMMARY="${J_SUMMARY:+$J_SUMMARY
}Flashed '$image' onto $(disk_describe "$t"): $J_STATUS."
		[ "$rc" -eq 0 ] || worst=$rc
	done
	job_unlock
	[ "$worst" -eq 0 ] && J_STATUS=ok || J_STATUS=error
	return "$worst"
}

# job_from_opts: the job the OPT_* variables ask for (kernel command line or imager-run)
job_from_opts() {
	case ${OPT_ACTION:-} in
	capture) job_capture "${OPT_SOURCE:-${OPT_TARGET:-}}" "${OPT_IMAGE:-}" "${OPT_FAMILY:-}" ;;
	flash)
		local grow=
		[ "${OPT_GROW:-0}" = 1 ] && grow=1
		job_flash "${OPT_IMAGE:-}" "${OPT_FAMILY:-}" "${OPT_TARGET:-}" "${OPT_TARGET_ALL:-0}" "$grow"
		;;
	*) warn "no job in imager.action=${OPT_ACTION:-}"; return 2 ;;
	esac
}

# parse_opt KEY=VALUE: one imager.* option into OPT_*; returns 1 for an unknown key
parse_opt() {
	local k=${1%%=*} v=
	case $1 in *=*) v=${1#*=} ;; esac
	case $k in
	imager.action) OPT_ACTION=$v ;;
	imager.image) OPT_IMAGE=$v ;;
	imager.family) OPT_FAMILY=$v ;;
	imager.source) OPT_SOURCE=$v ;;
	imager.target) OPT_TARGET=$v ;;
	imager.target_all) OPT_TARGET_ALL=$v ;;
	imager.store) OPT_STORE=$v ;;
	imager.after) OPT_AFTER=$v ;;
	imager.grow) OPT_GROW=$v ;;
	imager.data) OPT_DATA=$v ;;
	imager.settle) OPT_SETTLE=$v ;;
	imager.debug) OPT_DEBUG=${v:-1} ;;
	imager.keyfile) OPT_KEYFILE=$v ;; # crypt.sh
	imager.*) return 1 ;;
	esac
	return 0
}

# check_opts: complains about values that cannot work; returns 2 if one is wrong
check_opts() {
	local bad=0
	case ${OPT_ACTION:-menu} in capture | flash | menu | shell) ;; *)
		warn "imager.action=$OPT_ACTION: want capture, flash, menu or shell"; bad=2 ;; esac
	case ${OPT_AFTER:-menu} in poweroff | reboot | shell | menu) ;; *)
		warn "imager.after=$OPT_AFTER: want poweroff, reboot, shell or menu"; bad=2 ;; esac
	case ${OPT_TARGET_ALL:-0} in 0 | 1) ;; *) warn "imager.target_all=$OPT_TARGET_ALL: want 0 or 1"; bad=2 ;; esac
	case ${OPT_GROW:-0} in 0 | 1) ;; *) warn "imager.grow=$OPT_GROW: want 0 or 1"; bad=2 ;; esac
	case ${OPT_SETTLE:-20} in *[!0-9]* | "") warn "imager.settle=$OPT_SETTLE: want seconds"; bad=2 ;; esac
	return $bad
}

# cmdline_split: the kernel command line on stdin, one argument per line,
# with the kernel's double quotes removed (imager.target="model=QEMU HARDDISK")
cmdline_split() {
	awk 'BEGIN { RS = "\001" } {
		arg = ""; q = 0; have = 0
		for (i = 1; i <= length($0); i++) {
			c = substr($0, i, 1)
			if (c == "\"") { q = !q; have = 1; continue }
			if (!q && (c == " " || c == "\n" || c == "\t")) {
				if (have) print arg
				arg = ""; have = 0; continue
			}
			arg = arg c; have = 1
		}
		if (have) print arg
	}'
}

# power ACTION: poweroff or reboot, after the data partition is unmounted
power() {
	say "imager: $1 ..."
	sync
	if [ -n "${DATA_DIR:-}" ] && grep -q " $DATA_DIR " /proc/mounts; then
		umount "$DATA_DIR" 2>/dev/null || mount -o remount,ro "$DATA_DIR" 2>/dev/null
	fi
	sync
	case $1 in
	reboot) reboot -f ;;
	*) poweroff -f ;;
	esac
}
