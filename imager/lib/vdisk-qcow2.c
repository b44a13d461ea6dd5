/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A read-only qcow2 reader (QEMU's docs/interop/qcow2.txt): versions 2 and
 * 3, zlib and zstd compressed clusters, extended L2 entries (subclusters),
 * zero clusters, and a backing file given explicitly by the caller.
 *
 * Why not libqcow (Debian's libqcow 20201213): it refuses zstd compression
 * and extended L2 entries, cannot name a backing file nor take a raw one,
 * and reports a damaged table only as "unable to read buffer" when a read
 * reaches it. Here every L1 and L2 entry is checked against the file's size
 * when the image is opened, so a hostile table is refused before anything
 * is stored, with a reason that names the entry.
 */
#include <endian.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "imager/vdisk.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

#define QCOW2_MAGIC UINT32_C(0x514649fb) /* "QFI\xfb" */
#define QCOW2_HEADER_V2_BYTES 72u
#define QCOW2_HEADER_V3_BYTES 104u
#define QCOW2_CLUSTER_BITS_MIN 9u   /* qemu: MIN_CLUSTER_BITS */
#define QCOW2_CLUSTER_BITS_MAX 21u  /* qemu: MAX_CLUSTER_BITS (2 MiB clusters) */
/* extended L2: 32 subclusters of at least 512 bytes, so clusters of 16 KiB or more */
#define QCOW2_EXTL2_CLUSTER_BITS_MIN 14u
#define QCOW2_SUBCLUSTERS 32u
#define QCOW2_L1_BYTES_MAX (UINT64_C(32) << 20) /* qemu: QCOW_MAX_L1_SIZE */
#define QCOW2_BACKING_NAME_MAX 1023u          /* qemu refuses longer names */
#define QCOW2_COMPRESSED_SECTOR_BYTES 512u     /* unit of a compressed cluster's size field */

#define QCOW2_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define QCOW2_L1E_RESERVED UINT64_C(0x7f000000000001ff)
#define QCOW2_L2E_STD_RESERVED UINT64_C(0x3f000000000001fe)
#define QCOW2_OFLAG_COMPRESSED (UINT64_C(1) << 62)
#define QCOW2_OFLAG_ZERO UINT64_C(1)

#define QCOW2_INCOMPAT_DIRTY (UINT64_C(1) << 0)
#define QCOW2_INCOMPAT_CORRUPT (UINT64_C(1) << 1)
#define QCOW2_INCOMPAT_DATA_FILE (UINT64_C(1) << 2)
#define QCOW2_INCOMPAT_COMPRESSION (UINT64_C(1) << 3)
#define QCOW2_INCOMPAT_EXTL2 (UINT64_C(1) << 4)
#define QCOW2_INCOMPAT_KNOWN                                                                       \
	(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DATA_FILE |                \
	 QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_EXTL2)

#define QCOW2_EXT_END UINT32_C(0)
#define QCOW2_EXT_BACKING_FORMAT UINT32_C(0xe2792aca)
#define QCOW2_EXT_CRYPTO UINT32_C(0x0537be77)
#define QCOW2_EXT_DATA_FILE UINT32_C(0x44415441)

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* L2 tables kept in memory: about 16 MiB worth, 2 to 64 of them */
#define QCOW2_L2_CACHE_BYTES (UINT64_C(16) << 20)
#define QCOW2_L2_CACHE_SLOTS_MAX 64u

struct header_v3 {
	uint32_t magic, version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size, cluster_bits;
	uint64_t size;
	uint32_t crypt_method, l1_size;
	uint64_t l1_table_offset, refcount_table_offset;
	uint32_t refcount_table_clusters, nb_snapshots;
	uint64_t snapshots_offset;
	/* v3 */
	uint64_t incompatible_features, compatible_features, autoclear_features;
	uint32_t refcount_order, header_length;
} __attribute__((packed));
_Static_assert(sizeof(struct header_v3) == QCOW2_HEADER_V3_BYTES, "qcow2 header layout");

struct l2_slot {
	uint64_t offset_bytes; /* host offset of the table, 0 = empty slot */
	uint64_t used;         /* LRU clock */
	uint64_t *table;       /* big-endian entries as on disk */
};

struct qcow2 {
	struct vdisk v;
	int fd;
	uint64_t file_bytes;
	unsigned version, cluster_bits;
	uint64_t cluster_bytes;
	bool extended_l2;
	unsigned l2_bits;          /* log2 of the entries per L2 table */
	unsigned csize_shift;      /* compressed descriptor: where the sector count starts */
	uint64_t csize_mask;
	int compression;
	uint64_t *l1;              /* host byte order */
	uint32_t l1_entries;
	struct vdisk *backing;

	pthread_mutex_t lock;      /* protects everything below */
	struct l2_slot *l2_cache;
	unsigned l2_slots;
	uint64_t clock;
	uint64_t zcache_entry;     /* L2 entry of the cluster in zbuf, 0 = none */
	uint8_t *zbuf, *cbuf;      /* decompressed cluster, compressed input */
	z_stream zs;
	bool zs_ready;
	ZSTD_DCtx *zstd;
};

static void qcow2_close(struct vdisk *v)
{
	struct qcow2 *q = (struct qcow2 *) v;

	if (!q)
		return;
	safe_close(q->fd);
	vdisk_free(q->backing);
	free(q->l1);
	if (q->l2_cache)
		for (unsigned i = 0; i < q->l2_slots; i++)
			free(q->l2_cache[i].table);
	free(q->l2_cache);
	free(q->zbuf);
	free(q->cbuf);
	if (q->zs_ready)
		inflateEnd(&q->zs);
	ZSTD_freeDCtx(q->zstd);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static uint64_t l2_entry_bytes(const struct qcow2 *q)
{
	return q->extended_l2 ? 16 : 8;
}

/* Replaces non-printable bytes so a hostile name cannot mess up a terminal. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
			*s = '?';
}

/*
 * Checks one L2 entry (and its subcluster bitmap) against the rules and
 * the file's size. @where describes the entry for the reason.
 */
static int check_l2_entry(const struct qcow2 *q, uint64_t e, uint64_t bitmap, const char *where,
			  char **ret_reason)
{
	if (e & QCOW2_OFLAG_COMPRESSED) {
		uint64_t off = e & ((UINT64_C(1) << q->csize_shift) - 1);

		if (q->extended_l2 && bitmap != 0)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "%s: a compressed cluster with a subcluster bitmap", where);
		if (off == 0 || off >= q->file_bytes)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "%s points to compressed data at byte %llu, past the end "
					    "of the file (%llu bytes)",
					    where, (unsigned long long) off,
					    (unsigned long long) q->file_bytes);
		return 0;
	}
	uint64_t host = e & QCOW2_OFFSET_MASK;
	/*
	 * The bytes of the cluster the entry uses. With extended L2 entries
	 * that is up to its last allocated subcluster: qemu writes no more, so
	 * a qcow2 (qemu-img check: clean) may end inside its last cluster.
	 */
	uint64_t used = q->cluster_bytes;
	if (q->extended_l2)
		used = (uint32_t) bitmap == 0 ? 0
					      : (uint64_t) (32 - __builtin_clz((uint32_t) bitmap)) *
							(q->cluster_bytes / QCOW2_SUBCLUSTERS);
	if (e & QCOW2_L2E_STD_RESERVED & ~(q->extended_l2 ? QCOW2_OFLAG_ZERO : 0))
		return vdisk_reason(ret_reason, -EBADMSG, "%s has reserved bits set (0x%016llx)",
				    where, (unsigned long long) e);
	if (host & (q->cluster_bytes - 1))
		return vdisk_reason(ret_reason, -EBADMSG,
				    "%s points to byte %llu, which is not cluster-aligned", where,
				    (unsigned long long) host);
	if (host != 0 && (host > q->file_bytes || q->file_bytes - host < used))
		return vdisk_reason(ret_reason, -EBADMSG,
				    "%s points to a cluster at byte %llu, past the end of the file "
				    "(%llu bytes)",
				    where, (unsigned long long) host, (unsigned long long) q->file_bytes);
	if (q->extended_l2) {
		uint32_t alloc = (uint32_t) bitmap, zero = (uint32_t) (bitmap >> 32);
		if (alloc & zero)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "%s marks subclusters both allocated and zero", where);
		if (alloc && host == 0)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "%s marks subclusters allocated but has no cluster", where);
	}
	return 0;
}

static int read_l2_table(struct qcow2 *q, uint64_t offset_bytes, uint64_t *table)
{
	int r = pread_all(q->fd, table, q->cluster_bytes, offset_bytes);

	if (r == -EIO)
		return -EBADMSG; /* the file shrank under us */
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

/*
 * Reads every distinct L2 table once and checks every entry, so that no
 * read later meets an entry pointing outside the file.
 */
static int check_tables(struct qcow2 *q, char **ret_reason)
{
	_cleanup_free_ uint64_t *offs = NULL, *table = NULL;
	uint64_t entries = q->cluster_bytes / l2_entry_bytes(q);
	size_t n = 0;
	char where[128];
	int r;

	offs = malloc(MAX((size_t) q->l1_entries, (size_t) 1) * sizeof(uint64_t));
	table = malloc(q->cluster_bytes);
	if (!offs || !table)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->l1_entries; i++) {
		uint64_t e = q->l1[i], off = e & QCOW2_OFFSET_MASK;

		if (e & QCOW2_L1E_RESERVED)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "L1 entry %u has reserved bits set (0x%016llx)", i,
					    (unsigned long long) e);
		if (off == 0)
			continue;
		if (off & (q->cluster_bytes - 1))
			return vdisk_reason(ret_reason, -EBADMSG,
					    "L1 entry %u points to an L2 table at byte %llu, which is "
					    "not cluster-aligned",
					    i, (unsigned long long) off);
		if (off > q->file_bytes || q->file_bytes - off < q->cluster_bytes)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "L1 entry %u points to an L2 table at byte %llu, past the "
					    "end of the file (%llu bytes)",
					    i, (unsigned long long) off,
					    (unsigned long long) q->file_bytes);
		offs[n++] = off;
	}
	qsort(offs, n, sizeof(uint64_t), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && offs[i] == offs[i - 1])
			continue;
		r = read_l2_table(q, offs[i], table);
		if (r < 0)
			return vdisk_reason(ret_reason, r, "cannot read the L2 table at byte %llu",
					    (unsigned long long) offs[i]);
		for (uint64_t j = 0; j < entries; j++) {
			uint64_t e, bitmap = 0;

			if (q->extended_l2) {
				e = be64toh(table[2 * j]);
				bitmap = be64toh(table[2 * j + 1]);
			} else
				e = be64toh(table[j]);
			if (e == 0 && bitmap == 0)
				continue;
			snprintf(where, sizeof(where), "L2 entry %llu of the table at byte %llu",
				 (unsigned long long) j, (unsigned long long) offs[i]);
			r = check_l2_entry(q, e, bitmap, where, ret_reason);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Parses the header extensions between the header and the end of the first cluster. */
static int parse_extensions(struct qcow2 *q, const uint8_t *cluster, size_t cluster_n,
			    uint64_t start, char **ret_backing_format, char **ret_reason)
{
	uint64_t off = start, end = cluster_n;

	while (off + 8 <= end) {
		uint32_t type, len;

		memcpy(&type, cluster + off, 4);
		memcpy(&len, cluster + off + 4, 4);
		type = be32toh(type), len = be32toh(len);
		off += 8;
		if (type == QCOW2_EXT_END)
			break;
		if (len > end - off)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "header extension 0x%08x of %u bytes overruns the header "
					    "cluster",
					    type, len);
		switch (type) {
		case QCOW2_EXT_BACKING_FORMAT:
			if (len > 0 && len < 32 && ret_backing_format) {
				char *f = strndup((const char *) cluster + off, len);
				if (!f)
					return -ENOMEM;
				sanitize(f);
				free(*ret_backing_format);
				*ret_backing_format = f;
			}
			break;
		case QCOW2_EXT_CRYPTO:
			return vdisk_reason(ret_reason, -EOPNOTSUPP,
					    "encrypted qcow2 images are not supported");
		case QCOW2_EXT_DATA_FILE:
			return vdisk_reason(ret_reason, -EOPNOTSUPP,
					    "qcow2 images with an external data file are not "
					    "supported");
		default:
			break; /* feature names, bitmaps, unknown: nothing we need */
		}
		off += ALIGN_UP((uint64_t) len, 8);
	}
	return 0;
}

static int parse_header(struct qcow2 *q, const char *backing_path, char **ret_reason)
{
	_cleanup_free_ uint8_t *cluster = NULL;
	_cleanup_free_ char *backing_name = NULL, *backing_format = NULL;
	struct header_v3 h = {};
	uint64_t size, header_bytes, l1_bytes, l1_needed, l1_offset, incompat = 0;
	size_t n;
	int r;

	if (q->file_bytes < QCOW2_HEADER_V2_BYTES)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the file is %llu bytes, too short for a qcow2 header",
				    (unsigned long long) q->file_bytes);
	r = pread_full(q->fd, &h, sizeof(h), 0, &n);
	if (r < 0)
		return r;
	if (be32toh(h.magic) != QCOW2_MAGIC)
		return vdisk_reason(ret_reason, -EBADMSG, "no qcow2 magic");
	q->version = be32toh(h.version);
	if (q->version < 2)
		return vdisk_reason(ret_reason, -EOPNOTSUPP, "qcow version %u is not supported",
				    q->version);
	if (q->version > 3)
		return vdisk_reason(ret_reason, -EOPNOTSUPP,
				    "qcow2 version %u is newer than this reader (2 and 3)", q->version);
	q->cluster_bits = be32toh(h.cluster_bits);
	if (q->cluster_bits < QCOW2_CLUSTER_BITS_MIN || q->cluster_bits > QCOW2_CLUSTER_BITS_MAX)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the cluster size 2^%u is outside 2^%u..2^%u bytes",
				    q->cluster_bits, QCOW2_CLUSTER_BITS_MIN, QCOW2_CLUSTER_BITS_MAX);
	q->cluster_bytes = UINT64_C(1) << q->cluster_bits;

	header_bytes = QCOW2_HEADER_V2_BYTES;
	if (q->version >= 3) {
		if (n < QCOW2_HEADER_V3_BYTES)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "the file is too short for a qcow2 v3 header");
		header_bytes = be32toh(h.header_length);
		if (header_bytes < QCOW2_HEADER_V3_BYTES || header_bytes > q->cluster_bytes)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "the header length %llu is outside %u..%llu bytes",
					    (unsigned long long) header_bytes, QCOW2_HEADER_V3_BYTES,
					    (unsigned long long) q->cluster_bytes);
		incompat = be64toh(h.incompatible_features);
	}
	if (incompat & QCOW2_INCOMPAT_CORRUPT)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "qemu marked this image corrupt; repair it first (qemu-img check "
				    "-r all)");
	if (incompat & QCOW2_INCOMPAT_DATA_FILE)
		return vdisk_reason(ret_reason, -EOPNOTSUPP,
				    "qcow2 images with an external data file are not supported");
	if (incompat & ~QCOW2_INCOMPAT_KNOWN)
		return vdisk_reason(ret_reason, -EOPNOTSUPP,
				    "unknown incompatible qcow2 features 0x%llx",
				    (unsigned long long) (incompat & ~QCOW2_INCOMPAT_KNOWN));
	if (be32toh(h.crypt_method) != 0)
		return vdisk_reason(ret_reason, -EOPNOTSUPP,
				    "encrypted qcow2 images are not supported");
	q->extended_l2 = incompat & QCOW2_INCOMPAT_EXTL2;
	if (q->extended_l2 && q->cluster_bits < QCOW2_EXTL2_CLUSTER_BITS_MIN)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "extended L2 entries need clusters of 16 KiB or more");
	q->l2_bits = q->cluster_bits - (q->extended_l2 ? 4 : 3);
	q->csize_shift = 62 - (q->cluster_bits - 8);
	q->csize_mask = (UINT64_C(1) << (q->cluster_bits - 8)) - 1;

	/* the whole first cluster: header, extensions, backing file name */
	n = (size_t) MIN(q->cluster_bytes, q->file_bytes);
	cluster = calloc(1, q->cluster_bytes);
	if (!cluster)
		return -ENOMEM;
	r = pread_all(q->fd, cluster, n, 0);
	if (r < 0)
		return r;
	if (incompat & QCOW2_INCOMPAT_COMPRESSION) {
		if (header_bytes <= QCOW2_HEADER_V3_BYTES)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "the compression-type feature is set but the header has "
					    "no compression type field");
		q->compression = cluster[QCOW2_HEADER_V3_BYTES];
	} else if (header_bytes > QCOW2_HEADER_V3_BYTES && cluster[QCOW2_HEADER_V3_BYTES] != 0)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "a compression type is set without the compression-type "
				    "feature");
	if (q->compression != QCOW2_COMPRESSION_ZLIB && q->compression != QCOW2_COMPRESSION_ZSTD)
		return vdisk_reason(ret_reason, -EOPNOTSUPP, "unknown compression type %d",
				    q->compression);

	size = be64toh(h.size);
	r = vdisk_check_size(size, ret_reason);
	if (r < 0)
		return r;
	if (size % 512 != 0)
		/* qemu-img rounds sizes up to 512 bytes; nothing else makes such images */
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the virtual size %llu is not a multiple of 512 bytes",
				    (unsigned long long) size);

	r = parse_extensions(q, cluster, n, header_bytes, &backing_format, ret_reason);
	if (r < 0)
		return r;

	/* backing file */
	uint64_t bf_off = be64toh(h.backing_file_offset);
	uint32_t bf_len = be32toh(h.backing_file_size);
	if (bf_off != 0) {
		if (bf_len == 0 || bf_len > QCOW2_BACKING_NAME_MAX || bf_off > n || n - bf_off < bf_len)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "the backing file name (%u bytes at byte %llu) lies "
					    "outside the header cluster",
					    bf_len, (unsigned long long) bf_off);
		backing_name = strndup((const char *) cluster + bf_off, bf_len);
		if (!backing_name)
			return -ENOMEM;
		sanitize(backing_name);
	}
	if (backing_name && !backing_path)
		return vdisk_reason(ret_reason, -EOPNOTSUPP,
				    "it has a backing file '%s' (format %s), which must be given "
				    "explicitly",
				    backing_name, backing_format ? backing_format : "unknown");
	if (!backing_name && backing_path)
		return vdisk_reason(ret_reason, -EINVAL,
				    "a backing file was given, but this qcow2 image has none");

	/* L1 table */
	q->l1_entries = be32toh(h.l1_size);
	l1_offset = be64toh(h.l1_table_offset);
	l1_bytes = (uint64_t) q->l1_entries * 8;
	l1_needed = DIV_ROUND_UP(size, q->cluster_bytes << q->l2_bits);
	if (l1_bytes > QCOW2_L1_BYTES_MAX)
		return vdisk_reason(ret_reason, -EBADMSG, "the L1 table has %u entries, too many",
				    q->l1_entries);
	if (q->l1_entries < l1_needed)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the L1 table has %u entries, too few for the virtual size "
				    "(%llu needed)",
				    q->l1_entries, (unsigned long long) l1_needed);
	if (l1_offset & (q->cluster_bytes - 1))
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the L1 table offset %llu is not cluster-aligned",
				    (unsigned long long) l1_offset);
	if (l1_offset > q->file_bytes || q->file_bytes - l1_offset < l1_bytes)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the L1 table (%u entries at byte %llu) ends past the end of the "
				    "file (%llu bytes)",
				    q->l1_entries, (unsigned long long) l1_offset,
				    (unsigned long long) q->file_bytes);
	q->l1 = malloc(MAX(l1_bytes, (uint64_t) 1));
	if (!q->l1)
		return -ENOMEM;
	r = pread_all(q->fd, q->l1, l1_bytes, l1_offset);
	if (r < 0)
		return r == -EIO ? -EBADMSG : r;
	for (uint32_t i = 0; i < q->l1_entries; i++)
		q->l1[i] = be64toh(q->l1[i]);

	q->v.size_bytes = size;

	if (backing_path) {
		enum vdisk_format f = vdisk_format_from_string(backing_format);
		_cleanup_free_ char *why = NULL;

		if (backing_format && (f == VDISK_RAW || f == VDISK_QCOW2))
			r = vdisk_open_format(backing_path, f, NULL, &q->backing, &why);
		else
			r = vdisk_open(backing_path, NULL, &q->backing, &why);
		/* our own refusal text (above): a chain, which one --backing-file cannot give */
		if (r == -EOPNOTSUPP && why && startswith(why, "it has a backing file"))
			return vdisk_reason(ret_reason, r,
					    "the backing file '%s' has a backing file of its own; "
					    "chains are not supported, flatten it first (qemu-img "
					    "convert)",
					    backing_path);
		if (r < 0)
			return vdisk_reason(ret_reason, r, "cannot open the backing file '%s': %s",
					    backing_path, why ? why : strerror(-r));
	}
	return 0;
}

/* Returns the L2 table at @offset_bytes from the cache, loading it. Called locked. */
static int l2_get(struct qcow2 *q, uint64_t offset_bytes, const uint64_t **ret)
{
	struct l2_slot *victim = &q->l2_cache[0];
	int r;

	for (unsigned i = 0; i < q->l2_slots; i++) {
		struct l2_slot *s = &q->l2_cache[i];
		if (s->offset_bytes == offset_bytes) {
			s->used = ++q->clock;
			*ret = s->table;
			return 0;
		}
		if (s->used < victim->used)
			victim = s;
	}
	victim->offset_bytes = 0;
	r = read_l2_table(q, offset_bytes, victim->table);
	if (r < 0)
		return r;
	victim->offset_bytes = offset_bytes;
	victim->used = ++q->clock;
	*ret = victim->table;
	return 0;
}

/* The L2 entry (and bitmap) of guest cluster @index; 0/0 when unallocated. Called locked. */
static int lookup(struct qcow2 *q, uint64_t index, uint64_t *ret_entry, uint64_t *ret_bitmap)
{
	uint64_t l1_index = index >> q->l2_bits, l2_index = index & ((UINT64_C(1) << q->l2_bits) - 1);
	const uint64_t *table;
	uint64_t l2_off;
	int r;

	*ret_entry = *ret_bitmap = 0;
	if (l1_index >= q->l1_entries)
		return 0;
	l2_off = q->l1[l1_index] & QCOW2_OFFSET_MASK;
	if (l2_off == 0)
		return 0;
	r = l2_get(q, l2_off, &table);
	if (r < 0)
		return r;
	if (q->extended_l2) {
		*ret_entry = be64toh(table[2 * l2_index]);
		*ret_bitmap = be64toh(table[2 * l2_index + 1]);
	} else
		*ret_entry = be64toh(table[l2_index]);
	return 0;
}

/* Decompresses the cluster described by @e into q->zbuf. Called locked. */
static int decompress(struct qcow2 *q, uint64_t e)
{
	uint64_t off = e & ((UINT64_C(1) << q->csize_shift) - 1);
	uint64_t sectors = ((e >> q->csize_shift) & q->csize_mask) + 1;
	uint64_t csize = sectors * QCOW2_COMPRESSED_SECTOR_BYTES - (off % QCOW2_COMPRESSED_SECTOR_BYTES);
	size_t n;
	int r;

	if (q->zcache_entry == e)
		return 0;
	q->zcache_entry = 0;
	if (off == 0 || off >= q->file_bytes)
		return -EBADMSG;
	/* the last compressed cluster may end before its sector-rounded size */
	csize = MIN(csize, q->file_bytes - off);
	r = pread_full(q->fd, q->cbuf, csize, off, &n);
	if (r < 0)
		return r;
	if (q->compression == QCOW2_COMPRESSION_ZLIB) {
		if (!q->zs_ready) {
			if (inflateInit2(&q->zs, -12) != Z_OK) /* raw deflate, 4 KiB window */
				return -ENOMEM;
			q->zs_ready = true;
		} else if (inflateReset(&q->zs) != Z_OK)
			return -EIO;
		q->zs.next_in = q->cbuf;
		q->zs.avail_in = (uInt) n;
		q->zs.next_out = q->zbuf;
		q->zs.avail_out = (uInt) q->cluster_bytes;
		r = inflate(&q->zs, Z_FINISH);
		/* qemu accepts a full output buffer even without the stream end */
		if (!((r == Z_STREAM_END || r == Z_BUF_ERROR) && q->zs.avail_out == 0))
			return -EBADMSG;
	} else {
		ZSTD_inBuffer in = { q->cbuf, n, 0 };
		ZSTD_outBuffer out = { q->zbuf, q->cluster_bytes, 0 };

		if (!q->zstd) {
			q->zstd = ZSTD_createDCtx();
			if (!q->zstd)
				return -ENOMEM;
		}
		ZSTD_DCtx_reset(q->zstd, ZSTD_reset_session_only);
		while (out.pos < out.size) {
			size_t in_pos = in.pos, out_pos = out.pos;
			size_t z = ZSTD_decompressStream(q->zstd, &out, &in);
			if (ZSTD_isError(z))
				return -EBADMSG;
			if (in.pos <= in_pos && out.pos <= out_pos)
				return -EBADMSG; /* no progress: input ended early */
		}
	}
	q->zcache_entry = e;
	return 0;
}

static int read_unallocated(struct qcow2 *q, uint8_t *buf, size_t n, uint64_t offset_bytes)
{
	uint64_t have;

	if (!q->backing || offset_bytes >= q->backing->size_bytes) {
		memset(buf, 0, n);
		return 0;
	}
	/* a backing file smaller than the image reads as zeros past its end */
	have = MIN((uint64_t) n, q->backing->size_bytes - offset_bytes);
	if (have < n)
		memset(buf + have, 0, n - have);
	return vdisk_pread(q->backing, buf, have, offset_bytes);
}

static int qcow2_pread(struct vdisk *v, void *buf_, size_t n, uint64_t offset_bytes)
{
	struct qcow2 *q = (struct qcow2 *) v;
	uint8_t *buf = buf_;
	uint64_t sub_bytes = q->extended_l2 ? q->cluster_bytes / QCOW2_SUBCLUSTERS : q->cluster_bytes;
	int r;

	while (n > 0) {
		uint64_t index = offset_bytes >> q->cluster_bits;
		uint64_t in_cluster = offset_bytes & (q->cluster_bytes - 1);
		size_t seg = (size_t) MIN((uint64_t) n, sub_bytes - (in_cluster % sub_bytes));
		uint64_t e, bitmap, host;
		enum { UNALLOCATED, ZERO, DATA } kind;

		pthread_mutex_lock(&q->lock);
		r = lookup(q, index, &e, &bitmap);
		if (r >= 0 && (e & QCOW2_OFLAG_COMPRESSED)) {
			r = decompress(q, e);
			if (r >= 0)
				memcpy(buf, q->zbuf + in_cluster, seg);
			pthread_mutex_unlock(&q->lock);
			if (r < 0)
				return vdisk_set_error(v, r == -EIO ? -EBADMSG : r,
						       "the compressed cluster at byte %llu (for byte "
						       "%llu of the disk) cannot be decompressed",
						       (unsigned long long) (e & ((UINT64_C(1) << q->csize_shift) - 1)),
						       (unsigned long long) offset_bytes);
			goto next;
		}
		pthread_mutex_unlock(&q->lock);
		if (r < 0)
			return vdisk_set_error(v, r == -EIO ? -EBADMSG : r,
					       "cannot read the L2 table for byte %llu of the disk",
					       (unsigned long long) offset_bytes);

		host = e & QCOW2_OFFSET_MASK;
		if (q->extended_l2) {
			unsigned sc = (unsigned) (in_cluster / sub_bytes);
			if (bitmap & (UINT64_C(1) << sc))
				kind = DATA;
			else if (bitmap & (UINT64_C(1) << (32 + sc)))
				kind = ZERO;
			else
				kind = UNALLOCATED;
		} else if (q->version >= 3 && (e & QCOW2_OFLAG_ZERO))
			kind = ZERO;
		else
			kind = host != 0 ? DATA : UNALLOCATED;

		switch (kind) {
		case ZERO:
			memset(buf, 0, seg);
			break;
		case UNALLOCATED:
			r = read_unallocated(q, buf, seg, offset_bytes);
			if (r < 0)
				return vdisk_set_error(v, r, "cannot read byte %llu from the backing "
							     "file",
						       (unsigned long long) offset_bytes);
			break;
		case DATA:
			/* checked when opened; the file could have shrunk since */
			if (host == 0 || host > q->file_bytes ||
			    q->file_bytes - host < in_cluster + seg)
				return vdisk_set_error(v, -EBADMSG,
						       "the cluster for byte %llu lies past the end of "
						       "the file",
						       (unsigned long long) offset_bytes);
			r = pread_all(q->fd, buf, seg, host + in_cluster);
			if (r < 0)
				return vdisk_set_error(v, r == -EIO ? -EBADMSG : r,
						       "cannot read the cluster at byte %llu",
						       (unsigned long long) host);
			break;
		}
	next:
		buf += seg, n -= seg, offset_bytes += seg;
	}
	return 0;
}

int vdisk_open_qcow2(int fd, uint64_t file_bytes, const char *backing_path, struct vdisk **ret,
		     char **ret_reason)
{
	struct qcow2 *q;
	int r;

	q = calloc(1, sizeof(*q));
	if (!q) {
		safe_close(fd);
		return -ENOMEM;
	}
	q->fd = fd;
	q->file_bytes = file_bytes;
	pthread_mutex_init(&q->lock, NULL);
	vdisk_init(&q->v, VDISK_QCOW2, 0);
	q->v.close = qcow2_close;
	q->v.pread = qcow2_pread;

	r = parse_header(q, backing_path, ret_reason);
	if (r < 0)
		goto fail;
	r = check_tables(q, ret_reason);
	if (r < 0)
		goto fail;

	q->l2_slots = (unsigned) MAX(UINT64_C(2), MIN((uint64_t) QCOW2_L2_CACHE_SLOTS_MAX,
						       QCOW2_L2_CACHE_BYTES / q->cluster_bytes));
	q->l2_cache = calloc(q->l2_slots, sizeof(*q->l2_cache));
	q->zbuf = malloc(q->cluster_bytes);
	q->cbuf = malloc(2 * q->cluster_bytes); /* the most a compressed cluster may take */
	if (!q->l2_cache || !q->zbuf || !q->cbuf) {
		r = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < q->l2_slots; i++) {
		q->l2_cache[i].table = malloc(q->cluster_bytes);
		if (!q->l2_cache[i].table) {
			r = -ENOMEM;
			goto fail;
		}
	}
	log_debug("qcow2 v%u: %llu bytes, %llu-byte clusters%s, %s compression%s", q->version,
		  (unsigned long long) q->v.size_bytes, (unsigned long long) q->cluster_bytes,
		  q->extended_l2 ? " with subclusters" : "",
		  q->compression == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib",
		  q->backing ? ", backing file" : "");
	*ret = &q->v;
	return 0;
fail:
	free(q->v.error);
	pthread_mutex_destroy(&q->v.error_lock);
	qcow2_close(&q->v);
	return r;
}
