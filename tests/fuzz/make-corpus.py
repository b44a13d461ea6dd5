#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Regenerates the seed corpus tests/fuzz/corpus/<target>/ of the libFuzzer
targets (tests/fuzz/README.md): small real inputs made with the real tools
(sfdisk, fdisk, mkfs.fat, mtools, mke2fs, qemu-img, tar, zstd, and imager
itself for manifests and chunk files), each wrapped in the parameter header
its target reads. Run it through `make fuzz-corpus` (IMAGER must be built).
Regression inputs (tests/fuzz/corpus/*/regress-*) are kept; everything else
in a target's directory is replaced. The whole corpus must stay under 2 MiB.
Running it twice gives the same bytes except where a tool takes random IDs
or the time (fdisk -b 4096, qemu-img's VMDK and VHD, the manifests' times).
"""

import glob
import gzip
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(TOP, 'tests', 'fuzz', 'corpus')
IMAGER = os.environ.get('IMAGER') or os.path.join(os.environ.get('O', os.path.join(TOP, 'output')), 'imager')
CORPUS_BYTES_MAX = 2 << 20
EPOCH = 1700000000
KIB, MIB = 1 << 10, 1 << 20
FAT_REGION_UNIT = 64 * KIB  # fuzz-fatfs.c / fuzz-extfs.c: region size unit

rng = random.Random(6)  # issue 6
work = tempfile.mkdtemp(prefix='fuzz-corpus-')
seeds = {}  # target -> {name: bytes}
env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH), E2FSPROGS_FAKE_TIME=str(EPOCH), LC_ALL='C',
           MTOOLS_SKIP_CHECK='1')


def path(name):
    return os.path.join(work, name)


def run(*cmd, stdin=None):
    subprocess.run(cmd, check=True, env=env, input=stdin, stdout=subprocess.DEVNULL)


def read(name):
    with open(path(name), 'rb') as f:
        return f.read()


def add(target, name, data):
    seeds.setdefault(target, {})[name] = data


def blank(name, size):
    with open(path(name), 'wb') as f:
        f.truncate(size)


def poke(name, offset, data):
    with open(path(name), 'r+b') as f:
        f.seek(offset)
        f.write(data)


def rstrip_zeros(data):
    return data.rstrip(b'\0')


def noise(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def stage(files):
    """A directory with @files {path: bytes}, all mtimes pinned."""
    d = tempfile.mkdtemp(dir=work)
    for p, data in files.items():
        full = os.path.join(d, p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'wb') as f:
            f.write(data)
    for root, dirs, names in os.walk(d):
        for n in dirs + names:
            os.utime(os.path.join(root, n), (EPOCH, EPOCH))
    return d


BOOT_FILES = {
    'EFI/BOOT/BOOTX64.EFI': b'MZ' + noise(700),
    'EFI/debian/grub.cfg': b'set timeout=0\n',
    'A long file name with spaces.txt': b'long\n',
    'deep/er/and/deeper/file.bin': noise(3000),
}

# --- bootcode: 440 bytes ----------------------------------------------------------


def gen_bootcode():
    for src, name in (('/usr/lib/grub/i386-pc/boot.img', 'grub'),
                      ('/usr/lib/syslinux/mbr/mbr.bin', 'syslinux-mbr'),
                      ('/usr/lib/syslinux/mbr/gptmbr.bin', 'syslinux-gptmbr'),
                      ('/usr/lib/syslinux/mbr/altmbr.bin', 'syslinux-altmbr')):
        if os.path.exists(src):
            with open(src, 'rb') as f:
                add('bootcode', name, f.read()[:440])
    # the three messages bootcode_classify() looks for in a Windows MBR
    msgs = b'Invalid partition table\0Error loading operating system\0Missing operating system\0'
    add('bootcode', 'windows-messages', (b'\x33\xc0' + noise(200) + msgs).ljust(440, b'\0'))
    add('bootcode', 'zero', b'\0')
    add('bootcode', 'noise', noise(440))

# --- ptable: [flags u8][gap u32 sectors][tail u16][head][tail] -----------------------


def ptable_seed(name, disk, ss, label_note=''):
    """Head up to the last non-zero sector of the first half, tail from the
    first non-zero sector of the second half; the gap between is zeros."""
    data = read(disk)
    n = len(data) // ss
    nonzero = [i for i in range(n) if any(data[i * ss:(i + 1) * ss])]
    head = [i for i in nonzero if i < n // 2]
    tail = [i for i in nonzero if i >= n // 2]
    head_n = (head[-1] + 1) if head else 0
    tail_first = tail[0] if tail else n
    tail_bytes = data[tail_first * ss:]
    assert len(tail_bytes) < 65536, name
    gap = tail_first - head_n
    hdr = struct.pack('<BIH', 1 if ss == 4096 else 0, gap, len(tail_bytes))
    add('ptable', name, hdr + data[:head_n * ss] + tail_bytes)


def gen_ptable():
    blank('gpt.img', 8 * MIB)
    run('sfdisk', '-q', path('gpt.img'), stdin=b'label: gpt\n'
        b'label-id: 0FC63DAF-8483-4772-8E79-3D69D8477DE4\n'
        b'start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System", '
        b'attrs="RequiredPartition LegacyBIOSBootable", uuid=F0220000-0006-4000-8000-000000000001\n'
        b'size=2048, type=21686148-6449-6E6F-744E-656564454649, '
        b'uuid=F0220000-0006-4000-8000-000000000002\n'
        b'type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root", '
        b'uuid=F0220000-0006-4000-8000-000000000003\n')
    ptable_seed('gpt-512', 'gpt.img', 512)

    # the primary header damaged: read from the backup
    shutil.copy(path('gpt.img'), path('gpt-bad.img'))
    poke('gpt-bad.img', 512 + 16, b'\xde\xad\xbe\xef')
    ptable_seed('gpt-primary-damaged', 'gpt-bad.img', 512)

    # the disk grew: the backup is no longer in the last sector
    blank('gpt-grown.img', 8 * MIB + 8 * KIB)
    with open(path('gpt.img'), 'rb') as f, open(path('gpt-grown.img'), 'r+b') as g:
        g.write(f.read())
    ptable_seed('gpt-backup-misplaced', 'gpt-grown.img', 512)

    # 4Kn: fdisk takes the sector size as an option, sfdisk does not
    blank('gpt4k.img', 16 * MIB)
    run('fdisk', '-b', '4096', path('gpt4k.img'),
        stdin=b'g\nn\n1\n\n+2M\nt\n1\nn\n2\n\n\nw\n')
    ptable_seed('gpt-4096', 'gpt4k.img', 4096)

    # dos with an old-style layout and logical partitions: EBRs early on
    blank('dos.img', 8 * MIB)
    run('sfdisk', '-q', path('dos.img'), stdin=b'label: dos\nlabel-id: 0x1234abcd\n'
        b'start=1, size=30, type=83, bootable\n'
        b'start=40, size=8000, type=5\n'
        b'start=42, size=10, type=83\n'
        b'start=54, size=10, type=82\n'
        b'start=66, size=7000, type=c\n'
        b'start=10000, size=2000, type=ef\n')
    ptable_seed('dos-logical', 'dos.img', 512)

    # a protective MBR in front of nothing
    blank('pmbr.img', 1 * MIB)
    mbr = bytearray(512)
    mbr[446:462] = struct.pack('<BBBBBBBBII', 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, 2047)
    mbr[510:512] = b'\x55\xaa'
    poke('pmbr.img', 0, bytes(mbr))
    ptable_seed('pmbr-only', 'pmbr.img', 512)

    # a FAT superfloppy: 55AA, but no table
    run('mkfs.fat', '--invariant', '-F', '12', '-C', path('floppy.img'), '1440')
    ptable_seed('superfloppy', 'floppy.img', 512)

# --- fatfs: [region u16 in 64 KiB][payload] ------------------------------------------


def fat_seed(name, img, region_bytes, payload_bytes=None):
    data = read(img)
    payload = rstrip_zeros(data if payload_bytes is None else data[:payload_bytes])
    assert region_bytes % FAT_REGION_UNIT == 0
    add('fatfs', name, struct.pack('<H', region_bytes // FAT_REGION_UNIT) + payload)


def mkfat(name, kib, *opts, files=BOOT_FILES):
    run('mkfs.fat', '--invariant', *opts, '-C', path(name), str(kib))
    if files:
        d = stage(files)
        subprocess.run('mcopy -s -m -Q -i %s ./* ::/' % path(name), shell=True, check=True,
                       cwd=d, env=env, stdout=subprocess.DEVNULL)


def gen_fatfs():
    mkfat('fat12.img', 1024, '-F', '12', '-n', 'SMALL')
    run('mdel', '-i', path('fat12.img'), '::/A long file name with spaces.txt')
    fat_seed('fat12', 'fat12.img', 1 * MIB)
    mkfat('fat16.img', 4096, '-F', '16', '-s', '1', '-n', 'ESP')
    fat_seed('fat16', 'fat16.img', 4 * MIB)
    mkfat('fat16-4k.img', 32768, '-F', '16', '-S', '4096', '-s', '1')
    fat_seed('fat16-4096', 'fat16-4k.img', 32 * MIB)
    # FAT32 needs 65525 clusters, so its FAT alone is 256 KiB: one FAT only
    mkfat('fat32.img', 33 * 1024, '-F', '32', '-s', '1', '-f', '1', '-n', 'FAT32')
    fat_seed('fat32-one-fat', 'fat32.img', 33 * MIB)
    # and the boot region of a two-FAT FAT32 (the rest reads as zeros)
    mkfat('fat32b.img', 33 * 1024, '-F', '32', '-s', '1', files=None)
    fat_seed('fat32-boot-region', 'fat32b.img', 33 * MIB, payload_bytes=20 * KIB)

# --- extfs: [region u16 in 64 KiB][payload] -----------------------------------------


def mkext(name, size, *opts, files=BOOT_FILES):
    d = stage(files)
    run('mke2fs', '-F', '-q', '-U', 'd6e5b3a8-6000-4000-8000-000000000006',
        '-E', 'hash_seed=d6e5b3a8-6000-4000-8000-000000000066,root_owner=0:0',
        *opts, '-d', d, path(name), str(size // 1024) + 'k')
    # mke2fs -d copies each file's ctime and atime and stamps crtime: pin them
    cmds = ''
    for root, dirs, names in os.walk(d):
        for n in dirs + names:
            p = '/' + os.path.relpath(os.path.join(root, n), d)
            cmds += ''.join('sif "%s" %s @%d\n' % (p, f, EPOCH)
                            for f in ('atime', 'ctime', 'crtime'))
    if cmds:
        subprocess.run(['debugfs', '-w', '-f', '-', path(name)], input=cmds.encode(), check=True,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def gen_extfs():
    mkext('ext2.img', 1 * MIB, '-t', 'ext2', '-b', '1024', '-N', '32', '-L', 'small')
    mkext('ext4.img', 4 * MIB, '-t', 'ext4', '-b', '4096', '-N', '32', '-O', '^has_journal',
          '-L', 'root')
    mkext('ext4-1k.img', 2 * MIB, '-t', 'ext4', '-b', '1024', '-N', '64', '-O',
          '^has_journal,^resize_inode,^metadata_csum')
    # with a journal (extents keep it contiguous), no files: those would
    # land after the journal's 1 MiB of zeros
    mkext('ext4-journal.img', 4 * MIB, '-t', 'ext4', '-b', '1024', '-N', '16', '-J', 'size=1',
          files={})
    for name, img, size in (('ext2', 'ext2.img', 1 * MIB), ('ext4', 'ext4.img', 4 * MIB),
                            ('ext4-1k', 'ext4-1k.img', 2 * MIB),
                            ('ext4-journal', 'ext4-journal.img', 4 * MIB)):
        add('extfs', name, struct.pack('<H', size // FAT_REGION_UNIT) + rstrip_zeros(read(img)))

# --- manifests and chunk files: captured by imager ------------------------------------


def chunk_file(payload, usize, compression):
    hdr = struct.pack('<8sIIIBBHII32s', b'IMGCHUNK', 1, 64, 0, compression, 0, 0, usize,
                      len(payload), bytes(32))
    return hdr + payload


def gen_manifest_and_chunk():
    # a 16 MiB GPT disk: FAT16 ESP and ext4 root; and an 8 MiB dos disk
    blank('disk.img', 16 * MIB)
    run('sfdisk', '-q', path('disk.img'), stdin=b'label: gpt\n'
        b'label-id: 8E5A3F00-0006-4000-8000-000000000006\n'
        b'start=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="ESP", '
        b'uuid=F0220000-0006-4000-8000-000000000011\n'
        b'start=10240, size=20480, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root", '
        b'uuid=F0220000-0006-4000-8000-000000000012\n')
    mkfat('esp.img', 4096, '-F', '16', '-s', '1')
    mkext('root.img', 10 * MIB, '-t', 'ext4', '-b', '4096', '-N', '64')
    for img, start in (('esp.img', 2048), ('root.img', 10240)):
        poke('disk.img', start * 512, read(img))

    blank('dos.img', 8 * MIB)
    run('sfdisk', '-q', path('dos.img'), stdin=b'label: dos\nlabel-id: 0x0600d15c\n'
        b'start=2048, size=4096, type=83, bootable\nstart=6144, size=2048, type=5\n'
        b'start=6200, size=1000, type=82\n')
    mkext('small.img', 2 * MIB, '-t', 'ext2', '-b', '1024', '-N', '32')
    poke('dos.img', 2048 * 512, read('small.img'))

    store = path('store')
    for img, name in (('disk.img', 'tiny-gpt'), ('dos.img', 'tiny-dos')):
        # a plain store: sealed (encrypted) manifests and chunks are another parser
        subprocess.run([IMAGER, '--no-encryption', 'capture', path(img), '--image', name,
                        '--store', store, '--progress=none', '--description', 'fuzz seed',
                        '--label', 'k=v'],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    # deprecation records: every field set, and a bare one
    for args in (['tiny-gpt', '--state', 'DEPRECATED', '--replacement', 'tiny-dos',
                  '--obsolete-on', '2030-01-01T00:00:00Z', '--delete-on', '2031-01-01T00:00:00Z'],
                 ['tiny-dos', '--state', 'ACTIVE', '--deprecate-on', '2029-06-01T00:00:00Z']):
        subprocess.run([IMAGER, 'images', 'deprecate', *args, '--store', store], check=True,
                       env=env, stdout=subprocess.DEVNULL)
    for f in sorted(glob.glob(os.path.join(store, 'images', '*.deprecation'))):
        with open(f, 'rb') as fd:
            add('deprecation', os.path.basename(f).split('.')[0], fd.read())
    for m in sorted(glob.glob(os.path.join(store, 'images', '*.manifest'))):
        with open(m, 'rb') as f:
            add('manifest', os.path.basename(m).split('.')[0], f.read())
    chunks = sorted(glob.glob(os.path.join(store, 'chunks', '*', '*')), key=os.path.getsize)
    for i, c in enumerate(chunks[:3]):
        if os.path.getsize(c) <= 32 * KIB:
            with open(c, 'rb') as f:
                add('chunk', 'captured-%d' % i, f.read())

    raw = noise(1000)
    add('chunk', 'raw', chunk_file(raw, len(raw), 0))
    text = b''.join(b'line %d of a compressible chunk\n' % i for i in range(600))
    with open(path('text'), 'wb') as f:
        f.write(text)
    run('zstd', '-q', '-f', '-19', path('text'), '-o', path('text.zst'))
    add('chunk', 'zstd', chunk_file(read('text.zst'), len(text), 1))

# --- virtual disks and tar -----------------------------------------------------------


def raw_disk(name, size):
    """A disk of @size with a few non-zero sectors and zero gaps."""
    blank(name, size)
    for off in (0, 4096, size // 2 + 512, size - 1024):
        poke(name, off, noise(1024))
    return path(name)


def qemu_img(*args):
    run('qemu-img', *args)


def gen_vdisk():
    src = raw_disk('v.raw', 1 * MIB)
    for name, opts in (('qcow2-512', ['-o', 'cluster_size=512']),
                       ('qcow2-v2', ['-o', 'compat=0.10,cluster_size=1024']),
                       ('qcow2-zlib', ['-c', '-o', 'cluster_size=4096']),
                       ('qcow2-zstd', ['-c', '-o', 'cluster_size=4096,compression_type=zstd']),
                       ('qcow2-extl2', ['-o', 'cluster_size=16384,extended_l2=on'])):
        qemu_img('convert', '-q', '-f', 'raw', '-O', 'qcow2', *opts, src, path(name))
        add('qcow2', name, read(name))
    # zero clusters (and subclusters), and an image with a backing file
    qemu_img('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=16384,extended_l2=on',
             path('zero.qcow2'), '256k')
    run('qemu-io', '-c', 'write -P 0x5a 0 4k', '-c', 'write -z 16k 16k', '-c',
        'write -z 36k 2k', path('zero.qcow2'))
    add('qcow2', 'qcow2-zero-clusters', read('zero.qcow2'))
    qemu_img('create', '-q', '-u', '-f', 'qcow2', '-o', 'cluster_size=512', '-b', 'base.raw', '-F',
             'raw', path('backed.qcow2'), '64k')
    add('qcow2', 'qcow2-backing', read('backed.qcow2'))

    small = raw_disk('s.raw', 64 * KIB)
    for name, fmt, opts in (('vmdk-sparse', 'vmdk', []),
                            ('vmdk-stream', 'vmdk', ['-o', 'subformat=streamOptimized']),
                            ('vhd-fixed', 'vpc', ['-o', 'subformat=fixed'])):
        qemu_img('convert', '-q', '-f', 'raw', '-O', fmt, *opts, small, path(name))
        data = read(name)
        if len(data) <= 320 * KIB:
            add('vdisk', name, data)
        else:
            print('make-corpus: %s is %d bytes, left out' % (name, len(data)), file=sys.stderr)
    # a dynamic VHD allocates 2 MiB blocks: an empty one (header, BAT, footer) only;
    # VHDX files start with 2 MiB of header and log regions: none
    qemu_img('create', '-q', '-f', 'vpc', path('empty.vhd'), '64k')
    add('vdisk', 'vhd-dynamic-empty', read('empty.vhd'))
    add('vdisk', 'qcow2-512', seeds['qcow2']['qcow2-512'])
    add('vdisk', 'raw', noise(4096))


def tar_fixed_sparse_name(data):
    """GNU tar names a pax sparse member GNUSparseFile.<pid>: fix the name
    (and the header checksum) so that the seed is the same on every run."""
    data = bytearray(data)
    for off in range(0, len(data) - 511, 512):
        if data[off:off + 16] == b'./GNUSparseFile.':
            data[off:off + 100] = b'./GNUSparseFile.0/disk.raw'.ljust(100, b'\0')
            data[off + 148:off + 156] = b' ' * 8
            data[off + 148:off + 156] = b'%06o\0 ' % sum(data[off:off + 512])
    return bytes(data)


def gen_tar():
    raw_disk('disk.raw', 1 * MIB)
    d = os.path.dirname(path('disk.raw'))
    common = ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@%d' % EPOCH, '-C', d]
    for name, opts in (('gnu-sparse', ['--format=gnu', '-S']),
                       ('pax-sparse', ['--format=pax', '-S', '--pax-option',
                                       'exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime']),
                       ('ustar', ['--format=ustar'])):
        run('tar', '-cf', path(name), *opts, *common, 'disk.raw')
    add('tar', 'gnu-sparse', read('gnu-sparse'))
    add('tar', 'pax-sparse', tar_fixed_sparse_name(read('pax-sparse')))
    add('tar', 'gnu-sparse.gz', gzip.compress(read('gnu-sparse'), 9, mtime=0))
    # a plain ustar member is 1 MiB of mostly zeros: only its gzip'ed form
    add('tar', 'ustar.gz', gzip.compress(read('ustar'), 9, mtime=0))
    with open(path('other'), 'wb') as f:
        f.write(b'not a disk\n')
    run('tar', '-cf', path('wrong.tar'), '--format=gnu', *common, 'other')
    add('tar', 'wrong-member', read('wrong.tar'))


def main():
    if not os.access(IMAGER, os.X_OK):
        sys.exit('make-corpus: no imager at %s (set IMAGER or run make first)' % IMAGER)
    try:
        gen_bootcode()
        gen_ptable()
        gen_fatfs()
        gen_extfs()
        gen_manifest_and_chunk()
        gen_vdisk()
        gen_tar()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = 0
    for target in sorted(seeds):
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if not f.startswith('regress-'):
                os.remove(os.path.join(d, f))
        for name, data in sorted(seeds[target].items()):
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)
    for f in glob.glob(os.path.join(CORPUS, '*', '*')):
        total += os.path.getsize(f)
    for target in sorted(os.listdir(CORPUS)):
        files = glob.glob(os.path.join(CORPUS, target, '*'))
        print('%-12s %3d inputs %8d bytes' % (target, len(files),
                                                sum(os.path.getsize(f) for f in files)))
    print('total %d bytes' % total)
    if total > CORPUS_BYTES_MAX:
        sys.exit('make-corpus: the corpus is larger than %d bytes' % CORPUS_BYTES_MAX)


if __name__ == '__main__':
    main()
