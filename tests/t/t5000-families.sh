#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='image families and every deprecation transition, scheduled ones included'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

export IMAGER_STORE=$TRASH/store
unset IMAGER_NOW
T1=2026-01-01T00:00:00Z T2=2026-02-01T00:00:00Z T3=2026-03-01T00:00:00Z
T4=2026-04-01T00:00:00Z T5=2026-05-01T00:00:00Z T6=2026-06-01T00:00:00Z

# small_disk FILE SEED: a 48 MiB GPT disk whose one ext4 partition holds a few
# files made from SEED; FILE.sums lists them as ext4_file_sums prints them
small_disk() {
	local f=$1 seed=$2 d
	d=$(mktemp -d "$TRASH/.stage.XXXXXX")
	_disks_prng "$seed-a" 3145728 >"$d/a.bin"
	_disks_prng "$seed-b" 1048576 >"$d/b.bin"
	echo "$seed" >"$d/name.txt"
	truncate -s 48M "$f"
	printf 'label: gpt\nlabel-id: %s\nstart=1MiB, type=L, uuid=%s1\n' \
		"$DISKS_GPT_ID" "$DISKS_GPT_PART_UUID_PREFIX" |
		sfdisk -q --no-reread --no-tell-kernel "$f" >/dev/null
	_disks_mkext4 "$f.part" $((46 << 20)) "$d" "$DISKS_GPT_ROOT_UUID" root
	_disks_place "$f" "$f.part" $((1 << 20))
	_disks_dir_sums "$d" >"$f.sums"
	rm -rf "$d" "$f.part"
}
chunks() { find "$IMAGER_STORE/chunks" -name '*.chunk' | wc -l; }
# flashes and prints the ext4 sums of the result: flash_sums ARGS... (target is out.img)
flash_sums() {
	rm -f out.img
	"$IMAGER" flash "$@" out.img --yes --progress=none >flash.out 2>flash.err &&
		ext4_file_sums out.img 1
}

test_expect_success 'three images of family web, created at distinct times; create copies no chunk' '
	small_disk a.img alpha && small_disk b.img beta && small_disk c.img gamma &&
	IMAGER_NOW=$T1 "$IMAGER" capture a.img --image web-v1 --family web --progress=none &&
	n1=$(chunks) &&
	IMAGER_NOW=$T2 "$IMAGER" images create web-v2 --source-image web-v1 --family web \
		--description "same bytes as v1" >create.out &&
	n=$(jq ".disks[0].chunks" <("$IMAGER" images describe web-v1 --json)) &&
	echo "Created image '\''web-v2'\'' from image '\''web-v1'\'': 1 disk, $(grep -o "[0-9.]* MiB used" create.out), no chunk data copied ($n chunks shared)." >create.expected &&
	test_cmp create.expected create.out &&
	expect_eq "$(chunks)" "$n1" "chunk files after images create" &&
	IMAGER_NOW=$T3 "$IMAGER" capture b.img --image web-v3 --family web --progress=none &&
	IMAGER_NOW=$T4 "$IMAGER" capture c.img --image db-v1 --family db --progress=none &&
	IMAGER_NOW=$T4 "$IMAGER" images create loose --source-image web-v1 &&
	"$IMAGER" images list --family web --json >list.json &&
	jq -r ".images[] | \"\(.name) \(.family) \(.created) \(.state) \(.status)\"" list.json >list &&
	printf "%s\n" "web-v1 web $T1 ACTIVE READY" "web-v2 web $T2 ACTIVE READY" \
		"web-v3 web $T3 ACTIVE READY" >list.expected &&
	test_cmp list.expected list &&
	"$IMAGER" images list --json | jq -r ".images[] | \"\(.name) \(.family)\"" >all &&
	printf "%s\n" "db-v1 db" "loose null" "web-v1 web" "web-v2 web" "web-v3 web" >all.expected &&
	test_cmp all.expected all
'

test_expect_success 'describe: family, source image and digest, storage, state' '
	"$IMAGER" images describe web-v2 --json >v2.json &&
	d1=$("$IMAGER" images describe web-v1 --json | jq -r .digest) &&
	jq -e ".family == \"web\" and .kind == \"image\" and .source.type == \"image\" and
		.source.name == \"web-v1\" and .source.digest == \"$d1\" and .digest == \"$d1\" and
		.description == \"same bytes as v1\" and .deprecation.state == \"ACTIVE\" and
		.deprecation.replacement == null and .created == $(date -d $T2 +%s)" v2.json &&
	jq -e ".storage.logical == .disks[0].used and .storage.unique == 0 and
		.storage.stored > 0 and .storage.chunks == .disks[0].chunks" v2.json &&
	"$IMAGER" images describe web-v3 --json >v3.json &&
	jq -e ".source.type == \"disk\" and .source.nodes == [\"b.img\"] and
		.storage.unique == .storage.stored and .storage.unique > 0" v3.json &&
	"$IMAGER" images describe web-v2 >v2.txt &&
	grep -qx "Family:      web" v2.txt &&
	grep -qx "Source:      image '\''web-v1'\'' (digest ${d1:0:16}...)" v2.txt &&
	grep -qx "State:       ACTIVE" v2.txt &&
	grep -q "^Storage:     .* logical, .* stored, 0 B unique to this image$" v2.txt
'

test_expect_success 'flash --family picks the newest ACTIVE image and says which' '
	IMAGER_NOW=$T5 flash_sums --family web >sums &&
	echo "Using image '\''web-v3'\'', the newest active image of family '\''web'\''." >err.expected &&
	test_cmp err.expected flash.err &&
	grep -q "^Flashed '\''web-v3'\'' onto out.img: " flash.out &&
	test_cmp b.img.sums sums
'

test_expect_success 'ACTIVE -> DEPRECATED: a warning naming the replacement; still flashes; the family rolls back' '
	IMAGER_NOW=$T5 "$IMAGER" images deprecate web-v3 --state DEPRECATED --replacement web-v2 >out &&
	echo "Image '\''web-v3'\'' is now DEPRECATED; use '\''web-v2'\'' instead." >expected &&
	test_cmp expected out &&
	IMAGER_NOW=$T5 flash_sums web-v3 >sums &&
	echo "imager: warning: image '\''web-v3'\'' is deprecated; use '\''web-v2'\'' instead." >expected &&
	test_cmp expected flash.err && test_cmp b.img.sums sums &&
	IMAGER_NOW=$T5 flash_sums --family web >sums &&
	echo "Using image '\''web-v2'\'', the newest active image of family '\''web'\''." >expected &&
	test_cmp expected flash.err && test_cmp a.img.sums sums &&
	"$IMAGER" images list --json | jq -r ".images[].name" >names &&
	! grep -qx web-v3 names &&
	"$IMAGER" images list --show-deprecated --json |
		jq -e ".images[] | select(.name == \"web-v3\") | .state == \"DEPRECATED\"" &&
	"$IMAGER" images describe web-v3 --json |
		jq -e ".deprecation.state == \"DEPRECATED\" and .deprecation.replacement == \"web-v2\""
'

test_expect_success 'DEPRECATED -> OBSOLETE: new uses refused with exit 4 naming the replacement' '
	"$IMAGER" images deprecate web-v3 --state OBSOLETE --replacement web-v2 >out &&
	echo "Image '\''web-v3'\'' is now OBSOLETE; use '\''web-v2'\'' instead." >expected &&
	test_cmp expected out &&
	echo "imager: Image '\''web-v3'\'' is obsolete; use '\''web-v2'\'' instead." >refusal &&
	rm -f obs.img &&
	expect_exit 4 "$IMAGER" flash web-v3 obs.img --yes 2>err && test_cmp refusal err &&
	test ! -e obs.img &&
	expect_exit 4 "$IMAGER" images create child --source-image web-v3 2>err &&
	test_cmp refusal err &&
	expect_exit 4 "$IMAGER" images export web-v3 --format raw -o obs.raw 2>err &&
	test_cmp refusal err && test ! -e obs.raw &&
	! "$IMAGER" images list --show-deprecated --json | jq -e ".images[] | select(.name == \"child\")"
'

test_expect_success 'OBSOLETE: verify of a disk made from it still works, with a warning' '
	rm -f v1.img && "$IMAGER" flash web-v1 v1.img --yes --progress=none >/dev/null &&
	"$IMAGER" verify web-v1 v1.img >/dev/null &&
	"$IMAGER" images deprecate web-v1 --state OBSOLETE >/dev/null &&
	"$IMAGER" verify web-v1 v1.img >out 2>err &&
	echo "imager: warning: image '\''web-v1'\'' is obsolete." >expected && test_cmp expected err &&
	grep -q "matches image" out &&
	"$IMAGER" images deprecate web-v1 --state ACTIVE >out &&
	echo "Image '\''web-v1'\'' is now ACTIVE." >expected && test_cmp expected out
'

test_expect_success 'OBSOLETE -> DELETED: refused; the data stays until images delete and gc' '
	n=$(chunks) &&
	"$IMAGER" images deprecate web-v3 --state DELETED >out &&
	echo "Image '\''web-v3'\'' is now DELETED." >expected && test_cmp expected out &&
	expect_exit 4 "$IMAGER" flash web-v3 del.img --yes 2>err &&
	echo "imager: Image '\''web-v3'\'' is deleted and has no replacement." >expected &&
	test_cmp expected err &&
	"$IMAGER" store gc >gc.out &&
	expect_eq "$(chunks)" "$n" "chunk files after gc of a DELETED image" &&
	grep -q "^Removed 0 unreferenced chunks (0 B); kept $n chunks" gc.out &&
	"$IMAGER" images list --show-deprecated --json |
		jq -e ".images[] | select(.name == \"web-v3\") | .state == \"DELETED\""
'

test_expect_success 'DELETED -> ACTIVE: usable again, the newest of its family again' '
	"$IMAGER" images deprecate web-v3 --state ACTIVE >out &&
	echo "Image '\''web-v3'\'' is now ACTIVE." >expected && test_cmp expected out &&
	test ! -e "$IMAGER_STORE/images/web-v3.deprecation" &&
	flash_sums --family web >sums && test_cmp b.img.sums sums &&
	grep -q "'\''web-v3'\''" flash.err
'

test_expect_success 'scheduled: --deprecate-on in the past takes effect at once' '
	IMAGER_NOW=$T5 "$IMAGER" images deprecate web-v3 --state ACTIVE --deprecate-on $T4 \
		--replacement web-v2 >out &&
	echo "Image '\''web-v3'\'' is now DEPRECATED; use '\''web-v2'\'' instead." >expected &&
	test_cmp expected out &&
	IMAGER_NOW=$T5 flash_sums web-v3 >sums && test_cmp b.img.sums sums &&
	echo "imager: warning: image '\''web-v3'\'' is deprecated; use '\''web-v2'\'' instead." >expected &&
	test_cmp expected flash.err &&
	IMAGER_NOW=$T5 "$IMAGER" images describe web-v3 --json |
		jq -e ".deprecation.state == \"DEPRECATED\" and .deprecation.set_state == \"ACTIVE\" and
		      .deprecation.deprecate_on == $(date -d $T4 +%s) and .deprecation.obsolete_on == null" &&
	IMAGER_NOW=$T3 "$IMAGER" images describe web-v3 --json | jq -e ".deprecation.state == \"ACTIVE\""
'

test_expect_success 'scheduled: --obsolete-on in the future waits until its time has come' '
	IMAGER_NOW=$T5 "$IMAGER" images deprecate web-v2 --state ACTIVE --obsolete-on $T6 \
		--replacement web-v1 >out &&
	printf "%s\n" "Image '\''web-v2'\'' is now ACTIVE." \
		"Image '\''web-v2'\'' becomes OBSOLETE on $T6." >expected &&
	test_cmp expected out &&
	before=$(($(date -d $T6 +%s) - 1)) &&
	IMAGER_NOW=$before flash_sums web-v2 >sums && test_cmp a.img.sums sums &&
	test ! -s flash.err &&
	IMAGER_NOW=$before flash_sums --family web >/dev/null && grep -q "'\''web-v2'\''" flash.err &&
	IMAGER_NOW=$T6 expect_exit 4 "$IMAGER" flash web-v2 late.img --yes 2>err &&
	echo "imager: Image '\''web-v2'\'' is obsolete; use '\''web-v1'\'' instead." >expected &&
	test_cmp expected err &&
	IMAGER_NOW=$T6 flash_sums --family web >sums && test_cmp a.img.sums sums &&
	echo "Using image '\''web-v1'\'', the newest active image of family '\''web'\''." >expected &&
	test_cmp expected flash.err &&
	IMAGER_NOW=$T6 "$IMAGER" images list --family web --json | jq -r ".images[].name" >names &&
	echo web-v1 >expected && test_cmp expected names &&
	IMAGER_NOW=$before "$IMAGER" images list --family web --json | jq -r ".images[].name" >names &&
	echo web-v1 >expected && echo web-v2 >>expected && test_cmp expected names
'

test_expect_success 'a family with no active image, and bad requests, are refused clearly' '
	"$IMAGER" images deprecate db-v1 --state DEPRECATED >/dev/null &&
	expect_exit 5 "$IMAGER" flash --family db x.img --yes 2>err &&
	echo "imager: Family '\''db'\'' has no active image (1 deprecated, obsolete or deleted)." >expected &&
	test_cmp expected err &&
	expect_exit 5 "$IMAGER" flash --family nope x.img --yes 2>err &&
	echo "imager: No image of family '\''nope'\'' in store '\''$IMAGER_STORE'\''." >expected &&
	test_cmp expected err && test ! -e x.img &&
	expect_exit 5 "$IMAGER" images deprecate web-v1 --state DEPRECATED --replacement nope 2>err &&
	echo "imager: Replacement image '\''nope'\'' does not exist in store '\''$IMAGER_STORE'\''." >expected &&
	test_cmp expected err &&
	expect_exit 2 "$IMAGER" images deprecate web-v1 --state RETIRED 2>err &&
	grep -q "unknown --state '\''RETIRED'\''" err &&
	expect_exit 2 "$IMAGER" images deprecate web-v1 --state ACTIVE --obsolete-on $T5 --deprecate-on $T6 2>err &&
	grep -q "the times must come in order" err &&
	expect_exit 2 "$IMAGER" images deprecate web-v1 --state ACTIVE --delete-on tomorrow 2>err &&
	grep -q "invalid --delete-on '\''tomorrow'\''" err &&
	expect_exit 2 "$IMAGER" images deprecate web-v1 --state DEPRECATED --replacement web-v1 2>err &&
	IMAGER_NOW=yesterday expect_exit 2 "$IMAGER" flash web-v1 x.img --yes 2>err &&
	grep -q "Invalid \$IMAGER_NOW '\''yesterday'\''" err &&
	test ! -e "$IMAGER_STORE/images/web-v1.deprecation"
'

test_expect_success 'images delete, then gc frees exactly the chunks no other image uses' '
	unique=$("$IMAGER" images describe web-v3 --json | jq .storage.unique_chunks) &&
	[ "$unique" -gt 0 ] &&
	n=$(chunks) &&
	"$IMAGER" images delete web-v3 >out &&
	echo "Deleted image '\''web-v3'\''; chunks no other image or snapshot uses are freed by '\''imager store gc'\''." >expected &&
	test_cmp expected out &&
	test ! -e "$IMAGER_STORE/images/web-v3.manifest" &&
	test ! -e "$IMAGER_STORE/images/web-v3.deprecation" &&
	expect_eq "$(chunks)" "$n" "chunk files before gc" &&
	"$IMAGER" store gc --json >gc.json &&
	jq -e ".removed_chunks == $unique" gc.json &&
	expect_eq "$(chunks)" "$((n - unique))" "chunk files after gc" &&
	"$IMAGER" store verify &&
	flash_sums web-v1 >sums && test_cmp a.img.sums sums &&
	expect_exit 5 "$IMAGER" images delete web-v3 2>err &&
	echo "imager: Image '\''web-v3'\'' does not exist in store '\''$IMAGER_STORE'\''." >expected &&
	test_cmp expected err
'

test_done
