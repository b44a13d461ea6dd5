# SPDX-License-Identifier: GPL-2.0-or-later
#
# crypt.sh: the key of an encrypted store on the appliance (docs/APPLIANCE.md,
# "Encrypted stores"). Sourced by jobs.sh (POSIX sh for busybox ash).
#
# Unattended: imager.keyfile=SPEC:PATH names a key file on a medium; /init
# mounts that partition read-only, copies the file into $RUN (tmpfs, mode
# 0600), unmounts it, and exports IMAGER_KEY_FILE for every imager it, the
# menus and imager-run start. SPEC is what imager.data= takes: LABEL=X,
# PARTUUID=X, UUID=X or a partition node, e.g.
#	imager.keyfile=LABEL=KEYS:/imager.key
# Interactive: the menu asks for the passphrase of an encrypted store once
# (or twice, for a new store), checks it, and exports IMAGER_PASSPHRASE to
# the imager runs of that menu only; it is never written anywhere.

# keyfile_fetch: imager.keyfile= into $RUN/store.key; IMAGER_KEY_FILE set and exported
keyfile_fetch() {
	local spec path part mnt=$RUN/keymnt rc=0
	[ -n "${OPT_KEYFILE:-}" ] || return 0
	case $OPT_KEYFILE in
	*:/*) spec=${OPT_KEYFILE%:/*} path=/${OPT_KEYFILE##*:/} ;;
	*) warn "imager.keyfile=$OPT_KEYFILE: want SPEC:/PATH (e.g. LABEL=KEYS:/imager.key)"; return 1 ;;
	esac
	disks_refresh
	part=$(find_data_partitions "$spec" | awk '{ print $1 }')
	if [ -z "$part" ]; then
		warn "imager.keyfile: no partition $spec: encrypted stores stay locked"
		return 1
	fi
	# a key is never taken from a medium picked by chance: one match or none
	if [ "$(echo "$part" | grep -c .)" -gt 1 ]; then
		warn "imager.keyfile: $spec matches $(echo "$part" | grep -c .) partitions" \
			"($(echo "$part" | tr '\n' ' ' | sed 's/ $//')): encrypted stores stay locked" \
			"(name one, e.g. imager.keyfile=PARTUUID=...:$path)"
		return 1
	fi
	mkdir -p "$mnt"
	if ! mount -o ro "$part" "$mnt" 2>/dev/null; then
		warn "imager.keyfile: cannot mount $part read-only: encrypted stores stay locked"
		return 1
	fi
	(umask 077 && cp "$mnt$path" "$RUN/store.key") || rc=1
	umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
	if [ $rc -ne 0 ]; then
		rm -f "$RUN/store.key"
		warn "imager.keyfile: no file $path on $part: encrypted stores stay locked"
		return 1
	fi
	IMAGER_KEY_FILE=$RUN/store.key
	export IMAGER_KEY_FILE
	say "imager: key file $path read from $part (the medium is unmounted again)"
}

# ask_secret PROMPT: one line without echo into ANSWER
ask_secret() {
	printf '%s: ' "$1"
	stty -echo 2>/dev/null
	IFS= read -r ANSWER || ANSWER=
	stty echo 2>/dev/null
	printf '\n'
	ANSWER=$(printf '%s' "$ANSWER" | tr -d '\r')
}

# store_encryption STORE: "aes-256-gcm", "none", or "" (no store there yet)
store_encryption() {
	"$IMAGER" store info --store "$1" --json </dev/null 2>/dev/null | json_flat |
		awk -F '\t' '$1 == "encryption" { print $2 }'
}

# menu_unlock STORE [new]: asks for the passphrase of an encrypted store
# until it opens it (3 tries); with "new", a store not made yet gets one
# typed twice (the capture about to run makes it encrypted). Nothing to do
# with a key file (imager.keyfile=) or a passphrase already given.
menu_unlock() {
	local store=$1 enc tries=0 rc first
	[ -n "$store" ] || return 0
	[ -z "${IMAGER_KEY_FILE:-}" ] && [ -z "${IMAGER_PASSPHRASE:-}" ] || return 0
	enc=$(store_encryption "$store")
	case $enc in
	none) return 0 ;;
	"")
		[ "${2:-}" = new ] || return 0
		say "The store $store is new: it will be encrypted. Choose its passphrase"
		say "(there is no way to read the images without it)."
		while :; do
			ask_secret "New passphrase"
			first=$ANSWER
			[ -n "$first" ] || { say "An empty passphrase is not allowed."; continue; }
			ask_secret "Repeat it"
			[ "$ANSWER" = "$first" ] && break
			say "The two differ; again."
		done
		IMAGER_PASSPHRASE=$first
		export IMAGER_PASSPHRASE
		return 0
		;;
	esac
	while [ $tries -lt 3 ]; do
		ask_secret "Passphrase of the encrypted store $store"
		rc=0
		IMAGER_PASSPHRASE=$ANSWER "$IMAGER" images list --store "$store" </dev/null >/dev/null 2>&1 || rc=$?
		if [ $rc -eq 0 ]; then
			IMAGER_PASSPHRASE=$ANSWER
			export IMAGER_PASSPHRASE
			return 0
		fi
		[ $rc -eq 6 ] || { say "The store cannot be read (imager exit $rc)."; return 1; }
		say "Wrong passphrase."
		tries=$((tries + 1))
	done
	say "The store stays locked: capture and flash will fail until the menu is restarted."
	return 1
}
