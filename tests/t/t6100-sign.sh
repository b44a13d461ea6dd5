#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='signed images: keys, signing, describe, and the trust policy of flash and verify'
. "$(dirname "$0")/../lib/test-lib.sh"

export IMAGER_STORE=$TRASH/store
# signatures carry the signer's clock: pin it
export IMAGER_NOW=2026-01-02T03:04:05Z
NOW=$(date -u -d "$IMAGER_NOW" +%s)

# a small MBR disk with an ext4 holding a few files
make_source() {
	mkdir -p src/etc && echo "golden $1" >src/etc/motd && head -c 300000 /dev/urandom >src/blob &&
	truncate -s 64M "$1" &&
	printf "label: dos\nlabel-id: 0x12345678\nstart=1MiB, type=83\n" | sfdisk -q "$1" &&
	mkfs.ext4 -q -F -E offset=1048576 -d src "$1" 60M
}
# a target file with recognisable content, and its hash
make_target() { head -c 1M /dev/urandom >"$1" && truncate -s 64M "$1" && sha256sum <"$1" >"$1.sum"; }
untouched() { sha256sum <"$1" | cmp -s - "$1.sum" || { echo "'$1' was written" >&2; return 1; }; }
# flip_byte FILE OFFSET: xor one byte with 0x01
flip_byte() {
	local b
	b=$(od -An -t u1 -j "$2" -N 1 "$1" | tr -d " ")
	printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# refix_checksum MANIFEST: recompute the header checksum (bytes 32..63, docs/FORMAT.md) as a
# forger would, so that only the signature can tell
refix_checksum() {
	local sum
	sum=$({ head -c 32 "$1"; head -c 32 /dev/zero; tail -c +65 "$1"; } | sha256sum | cut -c1-64)
	echo "$sum" | xxd -r -p | dd of="$1" bs=1 seek=32 conv=notrunc status=none
}

test_expect_success 'keys generate: a PEM pair, the private key 0600, same key ID for both' '
	"$IMAGER" keys generate --output alice >out &&
	test "$(stat -c %a alice.key)" = 600 &&
	test "$(stat -c %a alice.pub)" = 644 &&
	head -1 alice.key | grep -qx -- "-----BEGIN PRIVATE KEY-----" &&
	head -1 alice.pub | grep -qx -- "-----BEGIN PUBLIC KEY-----" &&
	openssl pkey -in alice.key -noout -text | grep -q "ED25519 Private-Key" &&
	openssl pkey -in alice.key -pubout | cmp - alice.pub &&
	id=$("$IMAGER" keys id alice.pub) && echo "$id" >alice.id &&
	echo "$id" | grep -qxE "[0-9a-f]{16}" &&
	test "$("$IMAGER" keys id alice.key)" = "$id (private key)" &&
	grep -q "Key $id: private key .alice.key." out &&
	openssl pkey -pubin -in alice.pub -outform DER | tail -c 32 | sha256sum | cut -c1-16 >id.expected &&
	test_cmp id.expected alice.id &&
	"$IMAGER" keys generate --output bob >/dev/null && "$IMAGER" keys id bob.pub >bob.id &&
	! cmp -s alice.id bob.id
'

test_expect_success 'keys generate refuses to overwrite either file, and leaves no half pair' '
	sha256sum alice.key alice.pub >before &&
	expect_exit 4 "$IMAGER" keys generate --output alice 2>err &&
	grep -q "alice.key. exists; refusing to overwrite it" err &&
	sha256sum -c --quiet before &&
	cp alice.pub carol.pub &&
	expect_exit 4 "$IMAGER" keys generate --output carol 2>err &&
	grep -q "carol.pub. exists" err && ! test -e carol.key &&
	expect_exit 2 "$IMAGER" keys generate 2>/dev/null
'

test_expect_success 'garbage and wrong-type key files: one clear error each, nothing captured' '
	make_source disk.img &&
	echo "not a key" >garbage.key &&
	expect_exit 3 "$IMAGER" capture disk.img --image junk --sign-key garbage.key 2>err &&
	grep -qx "imager: Signing key .garbage.key. is not an unencrypted Ed25519 private key in PEM form (a .key file from .imager keys generate.)." err &&
	test "$(wc -l <err)" -eq 1 &&
	expect_exit 3 "$IMAGER" capture disk.img --image junk --sign-key alice.pub 2>err &&
	grep -q "is not an unencrypted Ed25519 private key" err &&
	expect_exit 5 "$IMAGER" capture disk.img --image junk --sign-key nope.key 2>err &&
	grep -q "Signing key .nope.key. does not exist" err &&
	openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:x -out locked.key 2>/dev/null &&
	expect_exit 3 "$IMAGER" capture disk.img --image junk --sign-key locked.key </dev/null 2>err &&
	openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null &&
	expect_exit 3 "$IMAGER" capture disk.img --image junk --sign-key ec.key 2>err &&
	! test -e "$IMAGER_STORE/images/junk.manifest"
'

test_expect_success 'capture --sign-key: describe shows a valid signature by the key' '
	"$IMAGER" capture disk.img --image web --description golden-AAAA --sign-key alice.key >/dev/null &&
	test -f "$IMAGER_STORE/images/web.sig" &&
	"$IMAGER" images describe web >desc &&
	grep -x "Signature:   signed by $(cat alice.id) (valid), 2026-01-02T03:04:05Z" desc &&
	"$IMAGER" images describe web --json >desc.json &&
	jq -c .signatures desc.json >sigs &&
	echo "[{\"key_id\":\"$(cat alice.id)\",\"valid\":true,\"time\":$NOW,\"problem\":null}]" >sigs.expected &&
	test_cmp sigs.expected sigs
'

test_expect_success 'the signature is plain Ed25519 over the message of docs/FORMAT.md (openssl verifies it)' '
	s=$IMAGER_STORE/images/web.sig &&
	test "$(head -c 8 "$s")" = IMGSIGNS &&
	test "$(stat -c %s "$s")" -eq $((32 + 160)) &&
	{ printf "imager-manifest-signature-v1\0\003web" &&
	  sha256sum <"$IMAGER_STORE/images/web.manifest" | cut -c1-64 | xxd -r -p &&
	  printf "%016x" "$NOW" | fold -w2 | tac | tr -d "\n" | xxd -r -p; } >msg &&
	dd if="$s" of=sig bs=1 skip=$((32 + 88)) count=64 status=none &&
	openssl pkeyutl -verify -pubin -inkey alice.pub -rawin -in msg -sigfile sig &&
	printf "imager-manifest-signature-v1\0\003wex" | cat - <(tail -c +34 msg) >msg2 &&
	! openssl pkeyutl -verify -pubin -inkey alice.pub -rawin -in msg2 -sigfile sig
'

test_expect_success 'flash --trust the signing key: flashed and verified' '
	make_target ok.img &&
	"$IMAGER" flash web ok.img --yes --trust alice.pub --progress=none >out 2>err &&
	grep -q "^Flashed .web. onto" out &&
	grep -qx "Image .web. is signed by trusted key $(cat alice.id) (signed 2026-01-02T03:04:05Z)." err &&
	"$IMAGER" verify web ok.img --trust alice.pub &&
	"$IMAGER" verify web ok.img --require-signed --trust bob.pub --trust alice.pub
'

test_expect_success 'an unsigned image under a trust policy: refused, exit 4, target untouched' '
	"$IMAGER" capture disk.img --image plain >/dev/null &&
	! test -e "$IMAGER_STORE/images/plain.sig" &&
	"$IMAGER" images describe plain | grep -x "Signature:   none (unsigned)" &&
	make_target t.img &&
	expect_exit 4 "$IMAGER" flash plain t.img --yes --require-signed --trust alice.pub 2>err &&
	grep -qx "imager: Refusing to flash .plain.: it is not signed by a trusted key." err &&
	grep -qx "Image .plain. has no signature." err &&
	untouched t.img &&
	expect_exit 4 "$IMAGER" flash plain new.img --yes --trust alice.pub 2>/dev/null &&
	! test -e new.img &&
	expect_exit 4 "$IMAGER" flash plain t.img --dry-run --trust alice.pub 2>/dev/null &&
	expect_exit 4 "$IMAGER" verify plain ok.img --trust alice.pub 2>err &&
	grep -q "Refusing to verify .plain.: it is not signed by a trusted key." err &&
	untouched t.img
'

test_expect_success '--require-signed without --trust is a usage error; a bad --trust file refuses' '
	make_target t.img &&
	expect_exit 2 "$IMAGER" flash web t.img --yes --require-signed 2>err &&
	grep -q "needs at least one --trust" err &&
	expect_exit 3 "$IMAGER" flash web t.img --yes --trust garbage.key 2>err &&
	grep -qx "imager: Trusted key .garbage.key. is not an Ed25519 public key in PEM form (a .pub file from .imager keys generate.)." err &&
	expect_exit 3 "$IMAGER" flash web t.img --yes --trust alice.key 2>/dev/null &&
	expect_exit 5 "$IMAGER" flash web t.img --yes --trust nope.pub 2>/dev/null &&
	untouched t.img
'

test_expect_success 'signed by another key: refused, the valid but untrusted signature is named' '
	make_target t.img &&
	expect_exit 4 "$IMAGER" flash web t.img --yes --trust bob.pub 2>err &&
	grep -qx "The signature by $(cat alice.id) is valid, but that key is not trusted." err &&
	grep -qx "imager: Refusing to flash .web.: it is not signed by a trusted key." err &&
	untouched t.img
'

test_expect_success 'images sign adds a second signature; both listed; either key is trusted' '
	"$IMAGER" images sign web --key bob.key >out &&
	grep -qx "Signed image .web. with key $(cat bob.id); it has 2 signatures." out &&
	"$IMAGER" images describe web --json >desc.json &&
	jq -r ".signatures[] | \"\(.key_id) \(.valid)\"" desc.json | sort >sigs &&
	printf "%s true\n" "$(cat alice.id)" "$(cat bob.id)" | sort >sigs.expected &&
	test_cmp sigs.expected sigs &&
	test "$("$IMAGER" images describe web | grep -c "^Signature:   signed by .* (valid)")" -eq 2 &&
	make_target t.img &&
	"$IMAGER" flash web t.img --yes --trust bob.pub --progress=none >/dev/null 2>&1 &&
	! untouched t.img &&
	"$IMAGER" verify web t.img &&
	"$IMAGER" images sign web --key bob.key >out &&
	grep -q "it has 2 signatures" out &&
	expect_exit 3 "$IMAGER" images sign web --key bob.pub 2>/dev/null &&
	expect_exit 5 "$IMAGER" images sign nope --key bob.key 2>/dev/null
'

test_expect_success 'a flipped byte in the manifest: refused before any write' '
	m=$IMAGER_STORE/images/web.manifest &&
	cp "$m" web.manifest.orig &&
	flip_byte "$m" $(($(stat -c %s "$m") / 2)) &&
	make_target t.img &&
	expect_exit 3 "$IMAGER" flash web t.img --yes --trust alice.pub 2>err &&
	grep -q "is damaged" err &&
	untouched t.img &&
	cp web.manifest.orig "$m" &&
	"$IMAGER" flash web t.img --yes --dry-run --trust alice.pub >/dev/null 2>&1
'

test_expect_success 'an unencrypted store: a manifest changed and re-checksummed by a forger is refused' '
	export IMAGER_STORE=$TRASH/plain &&
	"$IMAGER" --no-encryption capture disk.img --image web --description golden-AAAA \
		--sign-key alice.key >/dev/null &&
	m=$IMAGER_STORE/images/web.manifest &&
	off=$(grep -obUa golden-AAAA "$m" | cut -d: -f1) &&
	flip_byte "$m" $((off + 8)) &&
	make_target t.img &&
	expect_exit 3 "$IMAGER" flash web t.img --yes --trust alice.pub 2>err &&
	grep -q "is damaged (its manifest does not verify)" err &&
	refix_checksum "$m" &&
	"$IMAGER" images describe web >desc &&
	grep -qx "Description: golden-A@AA" desc &&
	grep -qx "Signature:   INVALID signature by $(cat alice.id) (signs a different manifest), 2026-01-02T03:04:05Z" desc &&
	expect_exit 4 "$IMAGER" flash web t.img --yes --trust alice.pub 2>err &&
	grep -qx "INVALID signature by $(cat alice.id): signs a different manifest." err &&
	grep -qx "imager: Refusing to flash .web.: it is not signed by a trusted key." err &&
	untouched t.img &&
	"$IMAGER" flash web t.img --yes --progress=none >/dev/null 2>&1 &&
	! untouched t.img
'

test_expect_success 'a flipped byte in the .sig: refused before any write' '
	s=$IMAGER_STORE/images/web.sig &&
	cp "$s" web.sig.orig &&
	make_target t.img &&
	# record 0 is alice'"'"'s: its time (signed), two bytes of its signature
	for at in 8 120 150; do
		cp web.sig.orig "$s" &&
		flip_byte "$s" $((32 + at)) &&
		expect_exit 4 "$IMAGER" flash web t.img --yes --trust alice.pub 2>err &&
		grep -qx "INVALID signature by $(cat alice.id): does not verify." err &&
		grep -qx "The signature by $(cat bob.id) is valid, but that key is not trusted." err &&
		untouched t.img || exit 1
	done &&
	cp web.sig.orig "$s" && flip_byte "$s" $((32 + 16)) &&
	expect_exit 4 "$IMAGER" flash web t.img --yes --trust alice.pub 2>err &&
	grep -q "key ID does not match its key" err &&
	cp web.sig.orig "$s" && flip_byte "$s" $((32 + 30)) &&
	expect_exit 4 "$IMAGER" flash web t.img --yes --trust alice.pub 2>/dev/null &&
	cp web.sig.orig "$s" && flip_byte "$s" 2 &&
	expect_exit 4 "$IMAGER" flash web t.img --yes --trust alice.pub 2>err &&
	grep -qx "imager: Refusing to flash .web.: its signature file is damaged." err &&
	"$IMAGER" images describe web | grep -x "Signature:   the signature file is damaged" &&
	"$IMAGER" images describe web --json | jq -e ".signatures == null" &&
	untouched t.img &&
	cp web.sig.orig "$s" &&
	"$IMAGER" verify web ok.img --trust bob.pub
'

test_expect_success 'a key made by openssl signs; images delete takes the .sig with the image' '
	openssl genpkey -algorithm ed25519 -out ossl.key &&
	openssl pkey -in ossl.key -pubout -out ossl.pub &&
	"$IMAGER" images sign plain --key ossl.key >/dev/null &&
	make_target t.img &&
	"$IMAGER" flash plain t.img --yes --trust ossl.pub --progress=none >/dev/null 2>&1 &&
	"$IMAGER" images delete plain >/dev/null &&
	! test -e "$IMAGER_STORE/images/plain.sig" &&
	"$IMAGER" capture disk.img --image plain >/dev/null &&
	"$IMAGER" images describe plain | grep -x "Signature:   none (unsigned)" &&
	echo stale >"$IMAGER_STORE/images/fresh.sig" &&
	"$IMAGER" capture disk.img --image fresh --sign-key bob.key >/dev/null &&
	"$IMAGER" images describe fresh --json | jq -e ".signatures | length == 1 and .[0].valid"
'

test_done
