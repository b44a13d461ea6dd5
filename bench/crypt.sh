# SPDX-License-Identifier: GPL-2.0-or-later
#
# The cost of encryption at rest (docs/FORMAT.md, "Encryption"): imager
# capture and flash of the bench disk into and from an encrypted store (the
# default) and a --no-encryption store, in the same rounds, on the same
# loop devices. Sourced by bench/run.sh (group "crypt" of BENCH_ONLY); uses
# its measure, owned, check_target, SRC, TGT, WORK and RUNS. The target is
# under 10% slower with encryption on.
#
# The encrypted store is unlocked with a passphrase ($IMAGER_PASSPHRASE, or
# "imager-bench") under the default scrypt cost, so every "on" run includes
# one key derivation (about 0.3-0.5 s), as a user's run would.

export IMAGER_PASSPHRASE=${IMAGER_PASSPHRASE:-imager-bench}
unset IMAGER_KDF_FAST IMAGER_KEY_FILE # measure the real default

CRYPT_STORE_ON=$WORK/store-crypt-on
CRYPT_STORE_OFF=$WORK/store-crypt-off

# crypt_capture RUN on|off
crypt_capture() {
	local store=$CRYPT_STORE_ON opt=
	[ "$2" = off ] && store=$CRYPT_STORE_OFF opt=--no-encryption
	rm -rf "$store"
	measure "crypt-capture-$2" "$1" \
		"find '$store' -type f -printf '%s\n' | awk '{ s += \$1 } END { print s }'" \
		"'$IMAGER' $opt capture '$SRC' --store '$store' --image bench --progress=json" \
		"> '$WORK/crypt-capture-$2.json'"
	if [ "$2" = on ]; then
		grep -qx "encryption=aes-256-gcm" "$store/config" || die "crypt-capture-on: store not encrypted"
	else
		grep -qx "encryption=none" "$store/config" || die "crypt-capture-off: store encrypted"
	fi
}

# crypt_flash RUN on|off: with read-back verification, imager's default
crypt_flash() {
	local store=$CRYPT_STORE_ON
	[ "$2" = off ] && store=$CRYPT_STORE_OFF
	owned "$TGT" "$TARGET"
	partx -d "$TGT" 2>/dev/null || true
	measure "crypt-flash-$2" "$1" \
		"sed -n 's/.*\"written_bytes\":\([0-9]*\).*/\1/p' '$WORK/crypt-flash.json'" \
		"'$IMAGER' flash bench '$TGT' --store '$store' --yes --progress=json" \
		"> '$WORK/crypt-flash.json'"
	if [ "$1" = 1 ]; then check_target "crypt-flash-$2"; fi
}

# Rounds: on and off back to back, alternating which goes first, so that a
# change in the machine's load hits both alike.
crypt_runs() {
	local r a b
	for r in $(seq 1 "$RUNS"); do
		if [ $((r % 2)) = 1 ]; then a=on b=off; else a=off b=on; fi
		crypt_capture "$r" "$a"
		crypt_capture "$r" "$b"
	done
	for r in $(seq 1 "$RUNS"); do
		if [ $((r % 2)) = 1 ]; then a=on b=off; else a=off b=on; fi
		crypt_flash "$r" "$a"
		crypt_flash "$r" "$b"
	done
	rm -rf "$CRYPT_STORE_ON" "$CRYPT_STORE_OFF"
	# for the report's header when the capture group did not run
	[ -n "${USED_BYTES:-}" ] || USED_BYTES=$(sed -n 's/.*"used_bytes":\([0-9]*\).*/\1/p' \
		"$WORK/crypt-capture-on.json" 2>/dev/null | head -1)
}

# crypt_report: rows and the on/off ratios, for results.txt (uses run.sh's med/calc/have)
crypt_report() {
	local t w used x
	have crypt-capture-on || return 0
	used=${USED_BYTES:-}
	[ -n "$used" ] || used=$(sed -n 's/.*"used_bytes":\([0-9]*\).*/\1/p' \
		"$WORK/crypt-capture-on.json" 2>/dev/null | head -1)
	echo
	echo "encryption at rest (AES-256-GCM, keyed chunk IDs) on vs off, same runs:"
	printf '  %-22s %9s %9s %9s %14s %10s\n' test wall_s cpu_s rss_MiB bytes MB/s
	for t in crypt-capture-on crypt-capture-off crypt-flash-on crypt-flash-off; do
		have "$t" || continue
		w=$(med "$t" 3)
		printf '  %-22s %9.2f %9.2f %9.0f %14s %10s\n' "$t" "$w" "$(med "$t" 4)" \
			"$(calc %.0f "$(med "$t" 5) / 1024")" "$(med "$t" 6)" \
			"$(calc %.0f "${used:-0} / $w / 1e6")"
	done
	for t in capture flash; do
		have "crypt-$t-on" && have "crypt-$t-off" || continue
		x=$(calc %.1f "100 * ($(med "crypt-$t-on" 3) / $(med "crypt-$t-off" 3) - 1)")
		printf '  %-7s with encryption: %+6s%% wall time vs off   (target < +10%%)  %s\n' \
			"$t" "$x" "$(verdict "$x < 10")"
		# CPU time (user + sys) is what encryption adds; wall time also carries
		# the machine's load and the device, which vary between runs
		x=$(calc %.1f "100 * ($(med "crypt-$t-on" 4) / $(med "crypt-$t-off" 4) - 1)")
		printf '  %-7s with encryption: %+6s%% CPU time vs off\n' "$t" "$x"
	done
}
