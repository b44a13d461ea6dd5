#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='hostile imports: truncated and lying qcow2 files, a huge virtual size, a
backing file, damaged VMDK/VHD, tars that are not one disk.raw or end early. Each gives one
clear line and the documented exit code, and adds nothing to the store'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

export IMAGER_STORE=$TRASH/store
command -v qemu-img >/dev/null || skip_all "qemu-img (qemu-utils) is not installed"
[ -c /dev/fuse ] || skip_all "/dev/fuse is missing"

# py SCRIPT ARGS...: small binary patches of real qemu-img output
py() { python3 -c "$@"; }

# QCOW2_L1: print "l1_entries l1_offset first_l2_offset" of a qcow2 (big-endian header)
qcow2_tables() {
	py 'import struct, sys
f = open(sys.argv[1], "rb"); h = f.read(48)
n, off = struct.unpack(">IQ", h[36:48])
f.seek(off); l1 = struct.unpack(">%dQ" % n, f.read(8 * n))
print(n, off, l1[0] & 0x00fffffffffffe00)' "$1"
}

# patch_u64 FILE OFFSET VALUE: a big-endian 64-bit value at OFFSET
patch_u64() {
	py 'import struct, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); f.write(struct.pack(">Q", int(sys.argv[3], 0)))' "$1" "$2" "$3"
}

store_files() { find "$IMAGER_STORE" -type f | sort; }

# hostile EXIT PATTERN ARGS...: `imager images create ARGS` exits EXIT with one
# line on stderr matching PATTERN, and the store's files are as before
hostile() {
	local want=$1 pattern=$2
	shift 2
	store_files >store.before &&
	expect_exit "$want" "$IMAGER" images create "$@" --progress=none 2>err &&
	cat err &&
	[ "$(wc -l <err)" -eq 1 ] &&
	grep -q -e "$pattern" err &&
	! grep -qi "assert\|segfault\|core dumped" err &&
	store_files >store.after && test_cmp store.before store.after &&
	no_stale_mounts
}

no_stale_mounts() {
	local mp pid
	for mp in $(awk '$9 == "fuse.imager" { print $5 }' /proc/self/mountinfo); do
		pid=${mp##*/import-} pid=${pid%%-*}
		kill -0 "$pid" 2>/dev/null || { echo "stale import mount $mp" >&2; return 1; }
	done
}

test_expect_success 'a store with one image, and good qcow2, VMDK, VHD files to damage' '
	make_gpt_disk gpt.img 256M &&
	off=$(part_start_bytes gpt.img 3) &&
	_disks_prng hostile-noise $((24 << 20)) >noise.bin &&
	debugfs -w -R "write noise.bin noise.bin" "gpt.img?offset=$off" >/dev/null 2>&1 &&
	rm noise.bin &&
	"$IMAGER" capture gpt.img --image golden --progress=none &&
	qemu-img convert -O qcow2 gpt.img good.qcow2 &&
	qemu-img convert -c -O qcow2 gpt.img goodc.qcow2 &&
	qemu-img convert -O vmdk -o subformat=streamOptimized gpt.img good.vmdk &&
	qemu-img convert -O vpc -o subformat=dynamic gpt.img good.vhd &&
	store_files | grep -q "\.chunk$"
'

test_expect_success 'a truncated qcow2: the first cluster past the end is named' '
	head -c $(( $(stat -c %s good.qcow2) / 2 )) good.qcow2 >truncated.qcow2 &&
	hostile 3 "truncated.qcow2.*past the end of the file" bad1 --source-vdisk truncated.qcow2 &&
	head -c 4096 good.qcow2 >header-only.qcow2 &&
	hostile 3 "header-only.qcow2.*L1 table.*past the end" bad1 --source-vdisk header-only.qcow2
'

test_expect_success 'an L2 table entry pointing past the end of the file' '
	cp good.qcow2 l2past.qcow2 &&
	read -r n l1 l2 < <(qcow2_tables l2past.qcow2) &&
	py "import struct, sys
f = open(sys.argv[1], \"r+b\"); f.seek($l2)
t = struct.unpack(\">8192Q\", f.read(65536))
i = next(i for i, e in enumerate(t) if e)
f.seek($l2 + 8 * i); f.write(struct.pack(\">Q\", (t[i] & ~0x00fffffffffffe00) | (1 << 40)))" l2past.qcow2 &&
	hostile 3 "L2 entry [0-9]* of the table at byte $l2 points to a cluster at byte 1099511627776, past the end" \
		bad2 --source-vdisk l2past.qcow2
'

test_expect_success 'an L1 entry pointing past the end, and an unaligned one' '
	cp good.qcow2 l1past.qcow2 &&
	read -r n l1 l2 < <(qcow2_tables l1past.qcow2) &&
	patch_u64 l1past.qcow2 "$l1" 0x8000200000000000 &&
	hostile 3 "L1 entry 0 points to an L2 table at byte $((1 << 45)), past the end" \
		bad3 --source-vdisk l1past.qcow2 &&
	patch_u64 l1past.qcow2 "$l1" $(( l2 + 512 )) &&
	hostile 3 "L1 entry 0 .* not cluster-aligned" bad3 --source-vdisk l1past.qcow2
'

test_expect_success 'a huge virtual size: absurd is damage (3), merely too big is refused (4)' '
	cp good.qcow2 huge.qcow2 && patch_u64 huge.qcow2 24 $((1 << 62)) &&
	hostile 3 "absurd virtual size of $((1 << 62)) bytes" bad4 --source-vdisk huge.qcow2 &&
	cp good.qcow2 big.qcow2 && patch_u64 big.qcow2 24 $((1 << 50)) &&
	hostile 4 "Refusing to import .big.qcow2.*larger than" bad4 --source-vdisk big.qcow2
'

test_expect_success 'a qcow2 with a backing file is refused naming it' '
	qemu-img create -q -f qcow2 -b good.qcow2 -F qcow2 overlay.qcow2 &&
	hostile 4 "backing file .good.qcow2. (format qcow2).*--backing-file" bad5 \
		--source-vdisk overlay.qcow2 &&
	qemu-img create -q -f qcow2 -b overlay.qcow2 -F qcow2 chain.qcow2 &&
	hostile 4 "backing file .overlay.qcow2. has a backing file of its own; chains" bad5 \
		--source-vdisk chain.qcow2 --backing-file overlay.qcow2 &&
	hostile 2 "has none" bad5 --source-vdisk good.qcow2 --backing-file overlay.qcow2
'

test_expect_success ROOT 'a damaged compressed cluster is named when it is read' '
	cp goodc.qcow2 badz.qcow2 &&
	read -r n l1 l2 < <(qcow2_tables badz.qcow2) &&
	coff=$(py "import struct, sys
f = open(sys.argv[1], \"rb\"); f.seek($l2); e = struct.unpack(\">Q\", f.read(8))[0]
assert e & (1 << 62), hex(e)
print(e & ((1 << 54) - 1))" badz.qcow2) &&
	head -c 256 /dev/zero | tr "\0" "\377" |
		dd of=badz.qcow2 bs=1 seek="$coff" conv=notrunc status=none &&
	hostile 3 "compressed cluster at byte $coff .*cannot be decompressed" bad6 \
		--source-vdisk badz.qcow2
'

test_expect_success ROOT 'damaged VMDK and VHD (libvmdk, libvhdi): clear errors, nothing stored' '
	head -c $(( $(stat -c %s good.vmdk) / 2 )) good.vmdk >cut.vmdk &&
	hostile 3 "Cannot import .cut.vmdk.: .*libvmdk: " bad7 --source-vdisk cut.vmdk &&
	head -c $(( $(stat -c %s good.vhd) / 2 )) good.vhd >cut.vhd &&
	hostile 3 "Cannot import .cut.vhd.: not a readable VHD" bad7 --source-vdisk cut.vhd &&
	cp good.vhd badbat.vhd &&
	py "import struct, sys
f = open(sys.argv[1], \"r+b\"); f.seek(512 + 16); bat = struct.unpack(\">Q\", f.read(8))[0]
f.seek(bat); f.write(b\"\\x7f\\xff\\xff\\xf0\" * 64)" badbat.vhd &&
	hostile 3 "Cannot import .badbat.vhd.: " bad7 --source-vdisk badbat.vhd
'

test_expect_success 'not a disk at all: a text file as --source-vdisk' '
	echo "not a disk" >text.txt &&
	hostile 7 "text.txt" bad8 --source-vdisk text.txt
'

test_expect_success 'tars: a member that is not disk.raw, a second member, not a tar' '
	mkdir -p t1 && cp --sparse=always gpt.img t1/root.img &&
	tar -C t1 --sparse -czf wrong.tar.gz root.img &&
	hostile 3 "member .root.img. is not .disk.raw." bad9 --source-tar wrong.tar.gz &&
	mkdir -p t2 && cp --sparse=always gpt.img t2/disk.raw && echo x >t2/zz-extra &&
	tar -C t2 --format=oldgnu --sparse -czf two.tar.gz disk.raw zz-extra &&
	hostile 3 "another member, .zz-extra., after disk.raw" bad9 --source-tar two.tar.gz &&
	hostile 3 "not a readable tar archive" bad9 --source-tar good.qcow2
'

test_expect_success 'a tar.gz truncated mid-stream: the chunks it had stored are removed' '
	tar -C t2 --format=oldgnu --sparse -czf one.tar.gz disk.raw &&
	head -c $(( $(stat -c %s one.tar.gz) * 3 / 4 )) one.tar.gz >cut.tar.gz &&
	store_files >store.before &&
	expect_exit 3 "$IMAGER" --verbose images create bad10 --source-tar cut.tar.gz \
		--progress=none 2>verbose.err &&
	grep "Removed [1-9][0-9]* raw chunks of .cut.tar.gz." verbose.err &&
	store_files >store.after && test_cmp store.before store.after &&
	hostile 3 "cut.tar.gz.*truncated" bad10 --source-tar cut.tar.gz
'

test_expect_success 'a huge disk.raw in a tar header is refused before any data is read' '
	py "import tarfile, io
t = tarfile.TarInfo(\"disk.raw\"); t.size = 1 << 50
with open(\"huge.tar\", \"wb\") as f:
    f.write(t.tobuf(format=tarfile.GNU_FORMAT))" &&
	hostile 4 "larger than" bad11 --source-tar huge.tar
'

test_done
