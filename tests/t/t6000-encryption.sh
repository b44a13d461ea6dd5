#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='encryption at rest: on by default, keys and key slots, tampering, no plaintext in a store'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

# test-lib.sh exports IMAGER_PASSPHRASE (and the test-only fast KDF)
export IMAGER_STORE=$TRASH/store
SECRET=IMAGER-SECRET-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

# A GPT disk whose ext4 holds $SECRET in a compressible text file and in an
# incompressible one; the partition name holds it too.
make_secret_disk() {
	rm -rf root && mkdir -p root/etc &&
	for i in $(seq 2000); do echo "line $i: the password is $SECRET"; done >root/etc/notes.txt &&
	{ head -c 8M /dev/urandom; printf "%s" "$SECRET"; head -c 8M /dev/urandom; } >root/blob.bin &&
	truncate -s 64M "$1" &&
	printf 'label: gpt\nstart=1MiB, type=%s, name="%s"\n' "$DISKS_TYPE_LINUX" "$SECRET" |
		sfdisk -q --no-reread --no-tell-kernel "$1" >/dev/null &&
	mke2fs -q -F -t ext4 -b 4096 -L secretfs -d root part.ext4 62M &&
	dd if=part.ext4 of="$1" bs=1M seek=1 conv=notrunc status=none &&
	rm -f part.ext4
}

# every file of a store (or of a disk), with its hash: compared before and after
tree_sums() { (cd "$1" && find . -type f ! -name lock -print0 | sort -z | xargs -0 sha256sum); }

# prints the number of files under $1 that contain $SECRET: raw, or after
# decompressing a chunk's zstd payload (a chunk file's header is 64 bytes)
secret_hits() {
	local f n=0
	while IFS= read -r -d '' f; do
		if grep -q -a -F "$SECRET" "$f" ||
		   { case $f in *.chunk) tail -c +65 "$f" | zstd -dcq 2>/dev/null | grep -q -a -F "$SECRET" ;; *) false ;; esac; }; then
			n=$((n + 1))
		fi
	done < <(find "$1" -type f -print0)
	echo "$n"
}

flip_byte() { # FILE OFFSET
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 0x20)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

test_expect_success 'the source disk holds the secret in clear (the checks below can fail)' '
	make_secret_disk src.img &&
	[ "$(grep -c -a -F "$SECRET" src.img)" -ge 2 ] &&
	sfdisk --dump src.img | grep -q "name=\"$SECRET\""
'

test_expect_success 'a store made implicitly by capture is encrypted; config, info and describe say so' '
	"$IMAGER" capture src.img --image sec --progress=json >cap.json &&
	jq -e "select(.phase == \"done\") | .new_chunks > 0" cap.json &&
	grep -qx "encryption=aes-256-gcm" store/config &&
	grep -qx "chunk-ids=hmac-sha256" store/config &&
	grep -q "^key-slot=[0-9a-f]\{8\} passphrase scrypt-n=1024 " store/config &&
	! grep -q "^encryption=none" store/config &&
	"$IMAGER" store info >info.txt &&
	key=$(sed -n "s/^key-id=//p" store/config) &&
	grep -qx "Encryption:  aes-256-gcm, chunk IDs hmac-sha256 (store key $key)" info.txt &&
	"$IMAGER" images describe sec >desc.txt &&
	grep -qx "Encryption:  aes-256-gcm (store key $key)" desc.txt &&
	"$IMAGER" images describe sec --json >desc.json &&
	jq -e ".encryption.cipher == \"aes-256-gcm\" and .encryption.key_id == \"$key\"" desc.json
'

test_expect_success 'chunk files and manifests are marked encrypted for other readers' '
	chunk=$(find store/chunks -name "*.chunk" | head -1) &&
	[ "$(od -An -tu1 -j 21 -N1 "$chunk" | tr -d " ")" = 1 ] &&
	[ "$(od -An -tu4 -j 16 -N4 store/images/sec.manifest | tr -d " ")" = 1 ] &&
	: "random data is stored raw: 64-byte header, 4 MiB, 16-byte tag" &&
	find store/chunks -name "*.chunk" -size $((64 + 4194304 + 16))c | grep -q .
'

test_expect_success 'the secret is in no file of the encrypted store, raw or decompressed' '
	[ "$(secret_hits store)" = 0 ] &&
	! grep -r -a -q -F secretfs store &&
	! grep -r -a -q -F "line 1: the password" store
'

test_expect_success 'the same search finds the secret in a --no-encryption store' '
	"$IMAGER" --no-encryption capture src.img --image sec --store plain --progress=none &&
	grep -qx "encryption=none" plain/config &&
	"$IMAGER" images describe sec --store plain | grep -qx "Encryption:  none" &&
	"$IMAGER" store info --store plain --json | jq -e ".encryption == \"none\" and .key_id == null" &&
	[ "$(secret_hits plain)" -ge 2 ] &&
	grep -r -a -q -F secretfs plain/images
'

test_expect_success 'flash from the encrypted store restores the disk; verify and store verify pass' '
	make_blank_disk out.img 64M &&
	"$IMAGER" flash sec out.img --yes >flash.out &&
	cmp <(dd if=src.img bs=1M skip=1 count=62 status=none) \
		<(dd if=out.img bs=1M skip=1 count=62 status=none) &&
	"$IMAGER" verify sec out.img &&
	"$IMAGER" store verify >sv.out && grep -q "no problems" sv.out
'

test_expect_success 'dedup: a second capture of the same disk stores no new chunk, same digest' '
	"$IMAGER" capture src.img --image sec2 --progress=json >cap2.json &&
	jq -e "select(.phase == \"done\") | .new_chunks == 0 and .chunks > 0" cap2.json &&
	d1=$(jq -r .digest desc.json) &&
	d2=$("$IMAGER" images describe sec2 --json | jq -r .digest) &&
	[ "$d1" = "$d2" ]
'

test_expect_success 'a wrong passphrase: one clear line, exit 6, nothing written' '
	tree_sums store >before &&
	make_blank_disk target.img 64M && printf "mine" | dd of=target.img conv=notrunc status=none &&
	sha256sum target.img >target.sum &&
	IMAGER_PASSPHRASE=wrong expect_exit 6 "$IMAGER" flash sec target.img --yes 2>wrong.err &&
	cat wrong.err &&
	[ "$(wc -l <wrong.err)" = 1 ] &&
	grep -q "does not unlock store" wrong.err &&
	IMAGER_PASSPHRASE=wrong expect_exit 6 "$IMAGER" capture src.img --image nope 2>wrong2.err &&
	[ "$(wc -l <wrong2.err)" = 1 ] &&
	IMAGER_PASSPHRASE=wrong expect_exit 6 "$IMAGER" images list 2>/dev/null &&
	sha256sum -c target.sum &&
	tree_sums store >after && test_cmp before after
'

test_expect_success 'a wrong key file: one clear line, exit 6, nothing written' '
	"$IMAGER" store make-key-file wrong.key &&
	[ "$(stat -c "%a %s" wrong.key)" = "600 64" ] &&
	expect_exit 6 "$IMAGER" flash sec target.img --yes --key-file wrong.key 2>wk.err &&
	[ "$(wc -l <wk.err)" = 1 ] && grep -q "key file does not unlock store" wk.err &&
	IMAGER_KEY_FILE=$TRASH/wrong.key expect_exit 6 "$IMAGER" images describe sec 2>wk2.err &&
	[ "$(wc -l <wk2.err)" = 1 ] &&
	head -c 16 /dev/urandom >short.key &&
	expect_exit 2 "$IMAGER" --key-file short.key images list 2>short.err &&
	grep -q "must hold 32 to 4096 bytes" short.err &&
	sha256sum -c target.sum &&
	tree_sums store >after && test_cmp before after
'

test_expect_success 'no key and no terminal: one clear error, exit 6' '
	(unset IMAGER_PASSPHRASE; expect_exit 6 "$IMAGER" images list </dev/null 2>nokey.err) &&
	[ "$(wc -l <nokey.err)" = 1 ] && grep -q "is encrypted: give --key-file" nokey.err &&
	(unset IMAGER_PASSPHRASE; expect_exit 6 "$IMAGER" capture src.img --image x \
		--store new-store </dev/null 2>nokey2.err) &&
	grep -q "or choose --no-encryption" nokey2.err && ! test -e new-store/config
'

test_expect_success 'add-key: a key file opens the store alone, given anywhere on the line' '
	"$IMAGER" store make-key-file good.key &&
	"$IMAGER" store add-key --new-key-file good.key >add.out &&
	grep -q "^Added key slot [0-9a-f]\{8\} (key-file)" add.out &&
	[ "$(grep -c "^key-slot=" store/config)" = 2 ] &&
	(unset IMAGER_PASSPHRASE;
	 "$IMAGER" images describe sec --key-file good.key | grep -q "^Encryption:  aes-256-gcm" &&
	 "$IMAGER" --key-file=good.key images list | grep -q sec2 &&
	 IMAGER_KEY_FILE=$TRASH/good.key "$IMAGER" verify sec out.img)
'

test_expect_success 'passwd: the old passphrase stops working, the new one works, chunks unchanged' '
	cp -a store rot &&
	tree_sums rot/chunks >chunks.before && tree_sums rot/images >images.before &&
	IMAGER_NEW_PASSPHRASE=second "$IMAGER" store passwd --store rot >pw.out &&
	grep -q "^Replaced the key: new key slot" pw.out &&
	expect_exit 6 "$IMAGER" images describe sec --store rot 2>old.err &&
	grep -q "does not unlock" old.err &&
	IMAGER_PASSPHRASE=second "$IMAGER" images describe sec --store rot >rot.txt &&
	grep -q "^Encryption:  aes-256-gcm" rot.txt &&
	IMAGER_PASSPHRASE=second "$IMAGER" flash sec --store rot rot.img --yes >/dev/null &&
	cmp out.img rot.img &&
	tree_sums rot/chunks >chunks.after && tree_sums rot/images >images.after &&
	test_cmp chunks.before chunks.after && test_cmp images.before images.after
'

test_expect_success 'remove-key: not the key in use, not the last; a removed key stops working' '
	slot=$("$IMAGER" store info --store rot --json |
		jq -r ".key_slots[] | select(.kind == \"passphrase\") | .id") &&
	IMAGER_PASSPHRASE=second expect_exit 4 "$IMAGER" store remove-key --store rot "$slot" 2>rm1.err &&
	grep -q "unlock with another key" rm1.err &&
	"$IMAGER" --key-file good.key store remove-key --store rot "$slot" >rm.out &&
	grep -qx "Removed key slot $slot." rm.out &&
	[ "$(grep -c "^key-slot=" rot/config)" = 1 ] &&
	IMAGER_PASSPHRASE=second expect_exit 6 "$IMAGER" images list --store rot 2>/dev/null &&
	kf=$("$IMAGER" store info --store rot --json | jq -r ".key_slots[0].id") &&
	IMAGER_NEW_PASSPHRASE=third "$IMAGER" --key-file good.key store add-key --store rot >/dev/null &&
	IMAGER_PASSPHRASE=third "$IMAGER" store remove-key --store rot "$kf" >/dev/null &&
	expect_exit 6 "$IMAGER" --key-file good.key images list --store rot 2>/dev/null &&
	only=$("$IMAGER" store info --store rot --json | jq -r ".key_slots[0].id") &&
	IMAGER_PASSPHRASE=third expect_exit 4 "$IMAGER" store remove-key --store rot "$only" 2>/dev/null &&
	IMAGER_PASSPHRASE=third expect_exit 5 "$IMAGER" store remove-key --store rot 00000000 2>rm2.err &&
	grep -q "has no key slot" rm2.err &&
	IMAGER_PASSPHRASE=third "$IMAGER" images describe sec --store rot >/dev/null
'

test_expect_success 'a flipped byte in a chunk: authentication error, no partition table on the target' '
	cp -a store flip &&
	chunk=$(find flip/chunks -name "*.chunk" -size +64k | sort | head -1) &&
	flip_byte "$chunk" $(( $(stat -c %s "$chunk") / 2 )) &&
	make_blank_disk victim.img 64M &&
	expect_exit 3 "$IMAGER" flash sec victim.img --store flip --yes 2>flip.err &&
	cat flip.err &&
	grep -q "failed authentication" flip.err &&
	! sfdisk --dump victim.img >/dev/null 2>&1 &&
	expect_exit 3 "$IMAGER" store verify --store flip >fv.out 2>&1 &&
	grep -q "chunk .*damaged" fv.out
'

# Whichever chunk is damaged, the flash authenticates every chunk before it
# writes: the target keeps every byte (without the pass, the chunks before
# the damaged one in disk order, or on other workers, would be written).
test_expect_success 'a flipped byte in any one chunk: refused before anything reaches the target' '
	make_blank_disk keep.img 64M &&
	printf "\x5a%.0s" $(seq 1 4096) | dd of=keep.img bs=1M seek=8 conv=notrunc status=none &&
	sha256sum keep.img >keep.sum &&
	n=0 && for c in $(cd store && find chunks -name "*.chunk" | sort); do
		rm -rf one && cp -a store one &&
		flip_byte "one/$c" $(( $(stat -c %s "one/$c") / 2 )) &&
		expect_exit 3 "$IMAGER" flash sec keep.img --store one --yes 2>one.err &&
		grep -q "Refusing to flash image .sec.: chunk .* failed authentication" one.err &&
		sha256sum -c --quiet keep.sum || return 1
		n=$((n + 1))
	done &&
	test "$n" -ge 3
'

test_expect_success 'a flipped byte in every chunk (header or payload): the target is not touched' '
	cp -a store flip-all &&
	i=0 && for c in $(find flip-all/chunks -name "*.chunk" | sort); do
		case $((i % 3)) in
		0) flip_byte "$c" 40 ;;           # the nonce
		1) flip_byte "$c" 70 ;;           # the ciphertext
		2) flip_byte "$c" $(( $(stat -c %s "$c") - 1 )) ;; # the tag
		esac; i=$((i + 1)); done &&
	make_blank_disk untouched.img 64M && sha256sum untouched.img >untouched.sum &&
	expect_exit 3 "$IMAGER" flash sec untouched.img --store flip-all --yes 2>/dev/null &&
	sha256sum -c untouched.sum &&
	[ "$(grep -c -a -F "$SECRET" untouched.img)" = 0 ]
'

test_expect_success 'a chunk file moved under another chunk ID is refused' '
	cp -a store swap &&
	set -- $(find swap/chunks -name "*.chunk" -printf "%s %p\n" | sort -n | tail -2 | cut -d" " -f2) &&
	[ $# = 2 ] &&
	cp "$1" "$2" &&
	make_blank_disk swap.img 64M &&
	expect_exit 3 "$IMAGER" flash sec swap.img --store swap --yes 2>swap.err &&
	grep -q "failed authentication" swap.err
'

test_expect_success 'a flipped byte in a manifest: authentication error, nothing written' '
	cp -a store mflip &&
	m=mflip/images/sec.manifest &&
	flip_byte $m 200 &&
	expect_exit 3 "$IMAGER" flash sec target.img --store mflip --yes 2>mf.err &&
	grep -q "damaged (its manifest does not verify: authentication failed)" mf.err &&
	sha256sum -c target.sum &&
	: "the same with the file checksum made right again: the AEAD tag still refuses it" &&
	sum=$( { head -c 32 $m; head -c 32 /dev/zero; tail -c +65 $m; } | sha256sum | cut -c1-64) &&
	echo "$sum" | xxd -r -p | dd of=$m bs=1 seek=32 conv=notrunc status=none &&
	expect_exit 3 "$IMAGER" flash sec target.img --store mflip --yes 2>mf2.err &&
	grep -q "authentication failed" mf2.err &&
	sha256sum -c target.sum
'

test_expect_success 'store init: encrypted by default, --no-encryption on request, never twice' '
	"$IMAGER" store init s-enc >/dev/null && grep -qx "encryption=aes-256-gcm" s-enc/config &&
	"$IMAGER" store init --store s-plain --no-encryption >/dev/null &&
	grep -qx "encryption=none" s-plain/config &&
	expect_exit 4 "$IMAGER" store init s-enc 2>twice.err && grep -q "already exists" twice.err &&
	(unset IMAGER_PASSPHRASE; "$IMAGER" store init s-key --key-file good.key >/dev/null &&
	 "$IMAGER" store info --store s-key | grep -q "key file")
'

test_done
