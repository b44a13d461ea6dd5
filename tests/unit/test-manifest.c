/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <time.h>

#include "unit.h"
#include "imager/chunk.h"
#include "imager/manifest.h"
#include "util/cleanup.h"

#define MiB (UINT64_C(1) << 20)
#define HDR 96 /* docs/FORMAT.md: manifest header size */

/* ---- building test manifests ---- */

static bool streq_or_null(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void fake_id(uint64_t seed, struct chunk_id *ret)
{
	chunk_id_compute(&seed, sizeof(seed), ret);
}

/* Fills d->chunks with exactly the chunks d->extents touch. */
static void chunks_from_extents(struct manifest_disk *d, uint64_t seed)
{
	uint64_t last = UINT64_MAX;

	free(d->chunks);
	d->chunks = NULL;
	d->n_chunks = 0;
	d->used_bytes = 0;
	for (size_t i = 0; i < d->n_extents; i++) {
		const struct manifest_extent *e = &d->extents[i];
		d->used_bytes += e->size_bytes;
		for (uint64_t k = e->offset_bytes / CHUNK_SIZE_BYTES;
		     k <= (e->offset_bytes + e->size_bytes - 1) / CHUNK_SIZE_BYTES; k++) {
			struct manifest_chunk *c;
			if (k == last)
				continue;
			/* capacity doubles at powers of two: a realloc per chunk is
			 * quadratic where realloc always copies (ASan) */
			if ((d->n_chunks & (d->n_chunks - 1)) == 0)
				d->chunks = realloc(d->chunks,
						    MAX(2 * d->n_chunks, (size_t) 1) * sizeof(*d->chunks));
			c = &d->chunks[d->n_chunks++];
			c->offset_bytes = k * CHUNK_SIZE_BYTES;
			c->size_bytes = (uint32_t) MIN((uint64_t) CHUNK_SIZE_BYTES,
						       d->size_bytes - c->offset_bytes);
			fake_id(seed * 1000003 + k, &c->id);
			last = k;
		}
	}
}

static void add_partition(struct manifest_disk *d, unsigned no, uint64_t start, uint64_t size,
			  const char *fs)
{
	struct manifest_partition *p;

	d->partitions = realloc(d->partitions, (d->n_partitions + 1) * sizeof(*p));
	p = &d->partitions[d->n_partitions++];
	*p = (struct manifest_partition){
		.partno = no,
		.start_bytes = start,
		.size_bytes = size,
		.type = strdup("0fc63daf-8483-4772-8e79-3d69d8477de4"),
		.uuid = strdup("11111111-2222-3333-4444-555555555555"),
		.name = no == 1 ? strdup("root") : NULL,
		.attrs = UINT64_C(1) << 60,
		.bootable = no == 1,
		.method = fs ? CAPTURE_EXT_USED : CAPTURE_RAW,
		.fs_type = fs ? strdup(fs) : NULL,
		.fs_uuid = fs ? strdup("abcd-ef") : NULL,
		.fs_label = NULL,
		.fs_used_bytes = size / 4,
		.fs_min_size_bytes = size / 3,
	};
}

static struct manifest *make_manifest(void)
{
	struct manifest *m = calloc(1, sizeof(*m));
	struct manifest_disk *d;

	m->name = strdup("golden-web-1");
	m->description = strdup("a test image, \xc3\xa9t\xc3\xa9");
	m->labels = calloc(3, sizeof(char *));
	m->labels[0] = strdup("env=test");
	m->labels[1] = strdup("owner=");
	m->created_unix = -12345; /* before 1970: the zigzag path */
	m->tool_version = strdup("imager 0.1");
	m->host_vendor = strdup("QEMU");
	m->host_product = NULL;
	m->host_serial = strdup("S/N 1");
	m->n_disks = 2;
	m->disks = calloc(2, sizeof(*m->disks));

	d = &m->disks[0];
	d->size_bytes = 100 * MiB + 3 * 512; /* last chunk is short */
	d->logical_sector_bytes = 512;
	d->physical_sector_bytes = 4096;
	d->label = strdup("gpt");
	d->disk_id = strdup("01234567-89ab-cdef-0123-456789abcdef");
	d->first_usable_bytes = 34 * 512;
	d->last_usable_bytes = d->size_bytes - 34 * 512;
	d->gpt_n_entries_max = 128;
	for (int i = 0; i < MANIFEST_BOOT_CODE_BYTES; i++)
		d->boot_code[i] = (uint8_t) (i * 7);
	d->boot_gap_bytes = 0;
	add_partition(d, 1, 1 * MiB, 50 * MiB, "ext4");
	add_partition(d, 2, 51 * MiB, 49 * MiB, NULL);
	d->n_extents = 5;
	d->extents = calloc(5, sizeof(*d->extents));
	d->extents[0] = (struct manifest_extent){ 0, 20480 };
	d->extents[1] = (struct manifest_extent){ 1 * MiB, 3 * MiB + 4096 }; /* crosses chunk 0/1 */
	d->extents[2] = (struct manifest_extent){ 4 * MiB + 8192, 4096 };     /* shares chunk 1 */
	d->extents[3] = (struct manifest_extent){ 40 * MiB, 4096 };
	d->extents[4] = (struct manifest_extent){ d->size_bytes - 8192, 8192 }; /* the short chunk */
	d->model = strdup("QEMU HARDDISK");
	d->serial = NULL;
	chunks_from_extents(d, 1);

	d = &m->disks[1];
	d->size_bytes = 8 * MiB;
	d->logical_sector_bytes = d->physical_sector_bytes = 4096;
	d->label = strdup("none");
	d->n_extents = 1;
	d->extents = calloc(1, sizeof(*d->extents));
	d->extents[0] = (struct manifest_extent){ 4096, 4096 };
	chunks_from_extents(d, 2);

	manifest_compute_digest(m, m->content_digest);
	return m;
}

static void assert_manifest_equal(const struct manifest *a, const struct manifest *b)
{
	ASSERT_STREQ(a->name, b->name);
	ASSERT_TRUE(streq_or_null(a->description, b->description));
	ASSERT_EQ_I64(a->created_unix, b->created_unix);
	ASSERT_TRUE(streq_or_null(a->family, b->family));
	ASSERT_EQ_U64(a->kind, b->kind);
	ASSERT_EQ_U64(a->source.type, b->source.type);
	ASSERT_TRUE(streq_or_null(a->source.name, b->source.name));
	ASSERT_TRUE(streq_or_null(a->source.format, b->source.format));
	ASSERT_EQ_U64(a->source.has_digest, b->source.has_digest);
	if (a->source.has_digest)
		ASSERT_MEMEQ(a->source.digest, b->source.digest, 32);
	for (size_t i = 0;; i++) {
		const char *x = a->source.nodes ? a->source.nodes[i] : NULL;
		const char *y = b->source.nodes ? b->source.nodes[i] : NULL;
		ASSERT_TRUE(streq_or_null(x, y));
		if (!x)
			break;
	}
	ASSERT_TRUE(streq_or_null(a->tool_version, b->tool_version));
	ASSERT_TRUE(streq_or_null(a->host_vendor, b->host_vendor));
	ASSERT_TRUE(streq_or_null(a->host_product, b->host_product));
	ASSERT_TRUE(streq_or_null(a->host_serial, b->host_serial));
	for (size_t i = 0;; i++) {
		const char *x = a->labels ? a->labels[i] : NULL, *y = b->labels ? b->labels[i] : NULL;
		ASSERT_TRUE(streq_or_null(x, y));
		if (!x)
			break;
	}
	ASSERT_MEMEQ(a->content_digest, b->content_digest, 32);
	ASSERT_EQ_U64(a->n_disks, b->n_disks);
	for (size_t i = 0; i < a->n_disks; i++) {
		const struct manifest_disk *x = &a->disks[i], *y = &b->disks[i];

		ASSERT_EQ_U64(x->size_bytes, y->size_bytes);
		ASSERT_EQ_U64(x->logical_sector_bytes, y->logical_sector_bytes);
		ASSERT_EQ_U64(x->physical_sector_bytes, y->physical_sector_bytes);
		ASSERT_TRUE(streq_or_null(x->label, y->label));
		ASSERT_TRUE(streq_or_null(x->disk_id, y->disk_id));
		ASSERT_EQ_U64(x->first_usable_bytes, y->first_usable_bytes);
		ASSERT_EQ_U64(x->last_usable_bytes, y->last_usable_bytes);
		ASSERT_EQ_U64(x->gpt_n_entries_max, y->gpt_n_entries_max);
		ASSERT_MEMEQ(x->boot_code, y->boot_code, MANIFEST_BOOT_CODE_BYTES);
		ASSERT_EQ_U64(x->boot_gap_bytes, y->boot_gap_bytes);
		ASSERT_EQ_U64(x->used_bytes, y->used_bytes);
		ASSERT_TRUE(streq_or_null(x->model, y->model));
		ASSERT_TRUE(streq_or_null(x->serial, y->serial));
		ASSERT_EQ_U64(x->n_partitions, y->n_partitions);
		for (size_t j = 0; j < x->n_partitions; j++) {
			const struct manifest_partition *p = &x->partitions[j], *q = &y->partitions[j];
			ASSERT_EQ_U64(p->partno, q->partno);
			ASSERT_EQ_U64(p->start_bytes, q->start_bytes);
			ASSERT_EQ_U64(p->size_bytes, q->size_bytes);
			ASSERT_TRUE(streq_or_null(p->type, q->type));
			ASSERT_TRUE(streq_or_null(p->uuid, q->uuid));
			ASSERT_TRUE(streq_or_null(p->name, q->name));
			ASSERT_EQ_U64(p->attrs, q->attrs);
			ASSERT_EQ_U64(p->bootable, q->bootable);
			ASSERT_EQ_U64(p->method, q->method);
			ASSERT_TRUE(streq_or_null(p->fs_type, q->fs_type));
			ASSERT_TRUE(streq_or_null(p->fs_uuid, q->fs_uuid));
			ASSERT_TRUE(streq_or_null(p->fs_label, q->fs_label));
			ASSERT_EQ_U64(p->fs_used_bytes, q->fs_used_bytes);
			ASSERT_EQ_U64(p->fs_min_size_bytes, q->fs_min_size_bytes);
		}
		ASSERT_EQ_U64(x->n_extents, y->n_extents);
		for (size_t j = 0; j < x->n_extents; j++) {
			ASSERT_EQ_U64(x->extents[j].offset_bytes, y->extents[j].offset_bytes);
			ASSERT_EQ_U64(x->extents[j].size_bytes, y->extents[j].size_bytes);
		}
		ASSERT_EQ_U64(x->n_chunks, y->n_chunks);
		for (size_t j = 0; j < x->n_chunks; j++) {
			ASSERT_EQ_U64(x->chunks[j].offset_bytes, y->chunks[j].offset_bytes);
			ASSERT_EQ_U64(x->chunks[j].size_bytes, y->chunks[j].size_bytes);
			ASSERT_MEMEQ(x->chunks[j].id.bytes, y->chunks[j].id.bytes, CHUNK_ID_BYTES);
		}
	}
}

/* ---- raw file surgery, per docs/FORMAT.md ---- */

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static void wr32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void wr64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

/* Recomputes the self-checksum: SHA-256 of the file with bytes 32..63 zeroed. */
static void refresh(uint8_t *f, size_t n)
{
	uint8_t *copy = malloc(n);
	struct chunk_id sum;

	memcpy(copy, f, n);
	memset(copy + 32, 0, 32);
	chunk_id_compute(copy, n, &sum);
	memcpy(f + 32, sum.bytes, 32);
	free(copy);
}

static void encode_ok(const struct manifest *m, uint8_t **ret, size_t *ret_size)
{
	void *p;

	ASSERT_OK(manifest_encode(m, &p, ret_size));
	*ret = p;
}

/* Inserts a section (header + payload) at byte @at of the body and fixes up the header. */
static uint8_t *insert_section(const uint8_t *f, size_t n, size_t at, uint32_t type, uint32_t flags,
			       const void *payload, size_t len, size_t *ret_size)
{
	size_t hs = rd32(f + 12), nn = n + 16 + len;
	uint8_t *g = malloc(nn);

	memcpy(g, f, hs + at);
	wr32(g + hs + at, type);
	wr32(g + hs + at + 4, flags);
	wr64(g + hs + at + 8, len);
	memcpy(g + hs + at + 16, payload, len);
	memcpy(g + hs + at + 16 + len, f + hs + at, n - hs - at);
	wr32(g + 20, rd32(g + 20) + 1);
	wr64(g + 24, nn - hs);
	refresh(g, nn);
	*ret_size = nn;
	return g;
}

/* ---- an independent encoder written from docs/FORMAT.md ---- */

struct out {
	uint8_t *p;
	size_t n;
};

static void o_bytes(struct out *o, const void *p, size_t n)
{
	o->p = realloc(o->p, o->n + n + 1);
	memcpy(o->p + o->n, p, n);
	o->n += n;
}

static void o_var(struct out *o, uint64_t v)
{
	do {
		uint8_t b = (v & 0x7f) | (v > 0x7f ? 0x80 : 0);
		o_bytes(o, &b, 1);
		v >>= 7;
	} while (v);
}

static void o_str(struct out *o, const char *s)
{
	o_var(o, s ? strlen(s) + 1 : 0);
	if (s)
		o_bytes(o, s, strlen(s));
}

static void o_rec(struct out *o, struct out *r)
{
	o_var(o, r->n);
	o_bytes(o, r->p, r->n);
	free(r->p);
	*r = (struct out){};
}

static void o_section(struct out *o, uint32_t type, uint32_t flags, struct out *payload)
{
	uint8_t h[16];

	wr32(h, type);
	wr32(h + 4, flags);
	wr64(h + 8, payload->n);
	o_bytes(o, h, 16);
	o_bytes(o, payload->p, payload->n);
	free(payload->p);
	*payload = (struct out){};
}

static void spec_disk_section(struct out *o, const struct manifest_disk *d)
{
	struct out s = {}, r = {};
	uint64_t prev = 0, next = 0;

	o_var(&r, d->size_bytes);
	o_var(&r, d->logical_sector_bytes);
	o_var(&r, d->physical_sector_bytes);
	o_str(&r, d->label);
	o_str(&r, d->disk_id);
	o_var(&r, d->first_usable_bytes);
	o_var(&r, d->last_usable_bytes);
	o_var(&r, d->gpt_n_entries_max);
	o_bytes(&r, d->boot_code, MANIFEST_BOOT_CODE_BYTES);
	o_var(&r, d->boot_gap_bytes);
	o_var(&r, d->used_bytes);
	o_str(&r, d->model);
	o_str(&r, d->serial);
	o_rec(&s, &r);
	o_var(&s, d->n_partitions);
	for (size_t i = 0; i < d->n_partitions; i++) {
		const struct manifest_partition *p = &d->partitions[i];
		o_var(&r, p->partno);
		o_var(&r, p->start_bytes);
		o_var(&r, p->size_bytes);
		o_str(&r, p->type);
		o_str(&r, p->uuid);
		o_str(&r, p->name);
		o_var(&r, p->attrs);
		o_var(&r, p->bootable);
		o_var(&r, p->method);
		o_str(&r, p->fs_type);
		o_str(&r, p->fs_uuid);
		o_str(&r, p->fs_label);
		o_var(&r, p->fs_used_bytes);
		o_var(&r, p->fs_min_size_bytes);
		o_rec(&s, &r);
	}
	o_var(&s, d->n_extents);
	for (size_t i = 0; i < d->n_extents; i++) {
		o_var(&s, d->extents[i].offset_bytes - prev);
		o_var(&s, d->extents[i].size_bytes);
		prev = d->extents[i].offset_bytes + d->extents[i].size_bytes;
	}
	o_var(&s, d->n_chunks);
	for (size_t i = 0; i < d->n_chunks; i++) {
		uint64_t k = d->chunks[i].offset_bytes / CHUNK_SIZE_BYTES;
		o_var(&s, k - next);
		o_bytes(&s, d->chunks[i].id.bytes, 32);
		next = k + 1;
	}
	o_section(o, 2, 1, &s);
}

static void spec_image_section(struct out *o, const struct manifest *m)
{
	struct out s = {}, r = {};
	size_t n = 0;

	o_str(&r, m->name);
	o_str(&r, m->description);
	o_var(&r, ((uint64_t) m->created_unix << 1) ^ (uint64_t) (m->created_unix < 0 ? -1 : 0));
	o_str(&r, m->tool_version);
	o_str(&r, m->host_vendor);
	o_str(&r, m->host_product);
	o_str(&r, m->host_serial);
	while (m->labels && m->labels[n])
		n++;
	o_var(&r, n);
	for (size_t i = 0; i < n; i++)
		o_str(&r, m->labels[i]);
	o_var(&r, m->kind); /* 1.1 */
	o_rec(&s, &r);
	o_section(o, 1, 1, &s);
}

/* Header + sections; @n_sections and the checksum filled in. */
static uint8_t *spec_finish(struct out *body, uint32_t n_sections, const uint8_t digest[32],
			    size_t *ret_size)
{
	size_t n = HDR + body->n;
	uint8_t *f = calloc(1, n);

	memcpy(f, "IMGMANIF", 8);
	f[8] = 1;	  /* major */
	f[10] = 1;	  /* minor */
	wr32(f + 12, HDR);
	wr32(f + 16, 0);
	wr32(f + 20, n_sections);
	wr64(f + 24, body->n);
	memcpy(f + 64, digest, 32);
	memcpy(f + HDR, body->p, body->n);
	free(body->p);
	refresh(f, n);
	*ret_size = n;
	return f;
}

/* ---- tests ---- */

TEST(manifest_roundtrip_field_by_field)
{
	struct manifest *m = make_manifest(), *back = NULL, *again = NULL;
	uint8_t *f, *g;
	size_t n, n2;

	encode_ok(m, &f, &n);
	ASSERT_MEMEQ(f, "IMGMANIF", 8);
	ASSERT_OK(manifest_decode(f, n, &back));
	ASSERT_EQ_U64(back->version_major, MANIFEST_VERSION_MAJOR);
	ASSERT_EQ_U64(back->version_minor, MANIFEST_VERSION_MINOR);
	assert_manifest_equal(m, back);
	/* canonical: re-encoding gives the same bytes */
	encode_ok(back, &g, &n2);
	ASSERT_EQ_U64(n, n2);
	ASSERT_MEMEQ(f, g, n);
	ASSERT_OK(manifest_decode(g, n2, &again));
	assert_manifest_equal(m, again);
	free(f);
	free(g);
	manifest_free(m);
	manifest_free(back);
	manifest_free(again);
}

TEST(manifest_bytes_match_the_spec)
{
	struct manifest *m = make_manifest();
	struct out body = {};
	uint8_t *f, *spec;
	size_t n, ns;

	encode_ok(m, &f, &n);
	spec_image_section(&body, m);
	for (size_t i = 0; i < m->n_disks; i++)
		spec_disk_section(&body, &m->disks[i]);
	spec = spec_finish(&body, 1 + (uint32_t) m->n_disks, m->content_digest, &ns);
	ASSERT_EQ_U64(n, ns);
	ASSERT_MEMEQ(f, spec, n);
	free(f);
	free(spec);
	manifest_free(m);
}

TEST(manifest_family_is_an_optional_section)
{
	struct manifest *m = make_manifest(), *back = NULL;
	struct out body = {}, fam = {}, r = {};
	uint8_t *f, *spec, digest[32];
	size_t n, ns, image_end;

	m->family = strdup("web");
	manifest_compute_digest(m, digest);
	ASSERT_MEMEQ(digest, m->content_digest, 32); /* not part of the content */
	encode_ok(m, &f, &n);

	/* the bytes: IMAGE, then FAMILY (type 16, flags 0: v1.0 readers may skip it), then disks */
	spec_image_section(&body, m);
	o_str(&r, "web");
	o_rec(&fam, &r);
	o_section(&body, MANIFEST_SECTION_FAMILY, 0, &fam);
	for (size_t i = 0; i < m->n_disks; i++)
		spec_disk_section(&body, &m->disks[i]);
	spec = spec_finish(&body, 2 + (uint32_t) m->n_disks, m->content_digest, &ns);
	ASSERT_EQ_U64(n, ns);
	ASSERT_MEMEQ(f, spec, n);
	free(spec);

	ASSERT_OK(manifest_decode(f, n, &back));
	ASSERT_STREQ(back->family, "web");
	assert_manifest_equal(m, back);
	manifest_free(back);
	back = NULL;

	/* two family sections: damage */
	image_end = 16 + rd64(f + HDR + 8);
	{
		uint8_t *g;
		size_t gn;
		static const uint8_t rec[] = { 4, 4, 'a', 'p', 'p' };
		g = insert_section(f, n, image_end, MANIFEST_SECTION_FAMILY, 0, rec, sizeof(rec), &gn);
		ASSERT_ERR(manifest_decode(g, gn, &back), -EBADMSG);
		free(g);
	}
	free(f);

	/* a family name follows the image name rules */
	free(m->family);
	m->family = strdup("Web_1");
	ASSERT_ERR(manifest_encode(m, (void **) &f, &n), -EINVAL);
	manifest_free(m);
}

static void spec_source_section(struct out *o, const struct manifest_source *src)
{
	struct out sec = {}, r = {};
	size_t n = 0;

	o_var(&r, src->type);
	o_str(&r, src->name);
	o_str(&r, src->format);
	o_var(&r, src->has_digest);
	if (src->has_digest)
		o_bytes(&r, src->digest, 32);
	while (src->nodes && src->nodes[n])
		n++;
	o_var(&r, n);
	for (size_t i = 0; i < n; i++)
		o_str(&r, src->nodes[i]);
	o_rec(&sec, &r);
	o_section(o, MANIFEST_SECTION_SOURCE, 0, &sec);
}

TEST(manifest_kind_and_source)
{
	struct manifest *m = make_manifest(), *back = NULL;
	struct out body = {};
	uint8_t *f, *spec, digest[32];
	size_t n, ns;

	ASSERT_STREQ(manifest_kind_to_string(MANIFEST_KIND_SNAPSHOT), "snapshot");
	ASSERT_EQ_I64(manifest_kind_from_string("image"), MANIFEST_KIND_IMAGE);
	ASSERT_EQ_I64(manifest_kind_from_string("x"), _MANIFEST_KIND_INVALID);
	ASSERT_STREQ(manifest_source_type_to_string(MANIFEST_SOURCE_FILE), "file");

	m->kind = MANIFEST_KIND_SNAPSHOT;
	m->source.type = MANIFEST_SOURCE_DISK;
	m->source.nodes = calloc(3, sizeof(char *));
	m->source.nodes[0] = strdup("/dev/vdb");
	m->source.nodes[1] = strdup("/dev/vdc");
	m->source.has_digest = true;
	memset(m->source.digest, 0xab, 32);
	manifest_compute_digest(m, digest);
	ASSERT_MEMEQ(digest, m->content_digest, 32); /* neither is content */
	encode_ok(m, &f, &n);

	spec_image_section(&body, m);
	spec_source_section(&body, &m->source);
	for (size_t i = 0; i < m->n_disks; i++)
		spec_disk_section(&body, &m->disks[i]);
	spec = spec_finish(&body, 2 + (uint32_t) m->n_disks, m->content_digest, &ns);
	ASSERT_EQ_U64(n, ns);
	ASSERT_MEMEQ(f, spec, n);
	free(spec);

	ASSERT_OK(manifest_decode(f, n, &back));
	ASSERT_EQ_U64(back->kind, MANIFEST_KIND_SNAPSHOT);
	ASSERT_EQ_U64(back->source.type, MANIFEST_SOURCE_DISK);
	ASSERT_STREQ(back->source.nodes[1], "/dev/vdc");
	ASSERT_TRUE(back->source.nodes[2] == NULL);
	assert_manifest_equal(m, back);
	manifest_free(back);
	back = NULL;
	free(f);

	/* a file source without digest or nodes */
	manifest_source_done(&m->source);
	ASSERT_EQ_U64(m->source.type, MANIFEST_SOURCE_NONE);
	m->source.type = MANIFEST_SOURCE_FILE;
	m->source.name = strdup("disk.tar");
	m->source.format = strdup("tar");
	encode_ok(m, &f, &n);
	ASSERT_OK(manifest_decode(f, n, &back));
	assert_manifest_equal(m, back);
	manifest_free(back);
	back = NULL;
	free(f);

	/* refused: fields on a NONE source (they would be lost), an unknown kind */
	manifest_source_done(&m->source);
	m->source.name = strdup("lost");
	ASSERT_ERR(manifest_encode(m, (void **) &f, &n), -EINVAL);
	manifest_source_done(&m->source);
	m->kind = _MANIFEST_KIND_MAX;
	ASSERT_ERR(manifest_encode(m, (void **) &f, &n), -EINVAL);
	manifest_free(m);
}

TEST(manifest_1_0_image_record_reads_as_image)
{
	struct manifest *m = make_manifest(), *back = NULL;
	struct out body = {}, sec = {}, r = {};
	uint8_t *f;
	size_t n;

	/* the 1.0 IMAGE record: no kind field */
	o_str(&r, m->name);
	o_str(&r, m->description);
	o_var(&r, ((uint64_t) m->created_unix << 1) ^ (uint64_t) (m->created_unix < 0 ? -1 : 0));
	o_str(&r, m->tool_version);
	o_str(&r, m->host_vendor);
	o_str(&r, m->host_product);
	o_str(&r, m->host_serial);
	o_var(&r, 2);
	o_str(&r, m->labels[0]);
	o_str(&r, m->labels[1]);
	o_rec(&sec, &r);
	o_section(&body, 1, 1, &sec);
	for (size_t i = 0; i < m->n_disks; i++)
		spec_disk_section(&body, &m->disks[i]);
	f = spec_finish(&body, 1 + (uint32_t) m->n_disks, m->content_digest, &n);
	f[10] = 0;
	refresh(f, n);
	ASSERT_OK(manifest_decode(f, n, &back));
	ASSERT_EQ_U64(back->version_minor, 0);
	ASSERT_EQ_U64(back->kind, MANIFEST_KIND_IMAGE);
	assert_manifest_equal(m, back);
	manifest_free(back);
	free(f);
	manifest_free(m);
}

TEST(manifest_every_byte_flip_is_refused)
{
	struct manifest *m = make_manifest(), *back;
	uint8_t *f;
	size_t n;

	encode_ok(m, &f, &n);
	for (size_t i = 0; i < n; i++)
		for (unsigned x = 1; x < 256; x <<= 1) {
			int r;

			f[i] ^= (uint8_t) x;
			back = NULL;
			r = manifest_decode(f, n, &back);
			f[i] ^= (uint8_t) x;
			if (r >= 0 || back)
				UNIT_FAIL("flip 0x%02x at byte %zu accepted", x, i);
			if (r != -EBADMSG && r != -EPROTONOSUPPORT)
				UNIT_FAIL("flip 0x%02x at byte %zu: unexpected %d", x, i, r);
		}
	free(f);
	manifest_free(m);
}

/*
 * The checksum catches every flip above before the parser runs, so do it again
 * with the checksum recomputed: now every parser and validator path sees
 * damaged input. Anything accepted must be a manifest that is fully valid
 * (it re-encodes and decodes to the same thing).
 */
static void check_mutant(uint8_t *g, size_t n, const char *what, size_t i)
{
	struct manifest *back = NULL, *again = NULL;
	uint8_t *h;
	size_t hn;
	int r;

	refresh(g, n);
	r = manifest_decode(g, n, &back);
	if (r < 0) {
		if (back)
			UNIT_FAIL("%s %zu: failure wrote *ret", what, i);
		if (r != -EBADMSG && r != -EPROTONOSUPPORT)
			UNIT_FAIL("%s %zu: unexpected %d", what, i, r);
		return;
	}
	encode_ok(back, &h, &hn);
	ASSERT_OK(manifest_decode(h, hn, &again));
	assert_manifest_equal(back, again);
	free(h);
	manifest_free(back);
	manifest_free(again);
}

TEST(manifest_parser_survives_mutations_past_the_checksum)
{
	struct manifest *m = make_manifest();
	uint8_t *f, *g;
	size_t n;
	uint64_t x = 88172645463325252ull;

	encode_ok(m, &f, &n);
	g = malloc(n);
	for (size_t i = 0; i < n; i++) {
		if (i >= 32 && i < 64)
			continue; /* the checksum itself */
		for (unsigned v = 0; v < 3; v++) {
			static const uint8_t xor[] = { 0x01, 0x80, 0xff };
			memcpy(g, f, n);
			g[i] ^= xor[v];
			check_mutant(g, n, "flip at", i);
		}
	}
	/* random multi-byte damage, including plausible small values */
	for (size_t it = 0; it < 3000; it++) {
		memcpy(g, f, n);
		for (int k = 0; k < 3; k++) {
			size_t at;
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			at = 64 + x % (n - 64);
			g[at] = (uint8_t) ((x >> 32) % 3 == 0 ? 0 : x >> 40);
		}
		check_mutant(g, n, "random mutation", it);
	}
	free(g);
	free(f);
	manifest_free(m);
}

TEST(manifest_truncation_at_every_length)
{
	struct manifest *m = make_manifest(), *back = NULL;
	uint8_t *f, *g;
	size_t n;

	encode_ok(m, &f, &n);
	g = malloc(n);
	for (size_t len = 0; len < n; len++) {
		ASSERT_ERR(manifest_decode(f, len, &back), -EBADMSG);
		/* and with the header claiming the shorter size: the parser runs out */
		if (len >= HDR) {
			memcpy(g, f, len);
			wr64(g + 24, len - HDR);
			refresh(g, len);
			ASSERT_ERR(manifest_decode(g, len, &back), -EBADMSG);
		}
	}
	ASSERT_TRUE(back == NULL);
	free(g);
	free(f);
	manifest_free(m);
}

TEST(manifest_major_version_and_header_flags)
{
	struct manifest *m = make_manifest(), *back = NULL;
	uint8_t *f;
	size_t n;

	encode_ok(m, &f, &n);
	f[8] = MANIFEST_VERSION_MAJOR + 1;
	ASSERT_ERR(manifest_decode(f, n, &back), -EPROTONOSUPPORT);
	refresh(f, n);
	ASSERT_ERR(manifest_decode(f, n, &back), -EPROTONOSUPPORT);
	f[8] = 0;
	refresh(f, n);
	ASSERT_ERR(manifest_decode(f, n, &back), -EBADMSG);
	f[8] = MANIFEST_VERSION_MAJOR;
	/* a newer minor version: read */
	f[10] = 9;
	refresh(f, n);
	ASSERT_OK(manifest_decode(f, n, &back));
	ASSERT_EQ_U64(back->version_minor, 9);
	assert_manifest_equal(m, back);
	manifest_free(back);
	back = NULL;
	f[10] = MANIFEST_VERSION_MINOR;
	/* a required feature bit this reader does not know */
	f[16] = 1;
	refresh(f, n);
	ASSERT_ERR(manifest_decode(f, n, &back), -EPROTONOSUPPORT);
	ASSERT_TRUE(back == NULL);
	free(f);
	manifest_free(m);
}

TEST(manifest_newer_minor_appends_are_skipped)
{
	struct manifest *m = make_manifest(), *back = NULL;
	uint8_t *f, *g;
	size_t n, nn;

	encode_ok(m, &f, &n);
	/* a header grown by 32 bytes */
	nn = n + 32;
	g = calloc(1, nn);
	memcpy(g, f, HDR);
	memset(g + HDR, 0x5a, 32);
	memcpy(g + HDR + 32, f + HDR, n - HDR);
	wr32(g + 12, HDR + 32);
	refresh(g, nn);
	ASSERT_OK(manifest_decode(g, nn, &back));
	assert_manifest_equal(m, back);
	manifest_free(back);
	back = NULL;
	free(g);

	/* bytes appended to the last (disk) section, after the chunk list */
	{
		size_t at = HDR, last = 0;
		for (unsigned i = 0; i < rd32(f + 20); i++) {
			last = at;
			at += 16 + rd64(f + at + 8);
		}
		ASSERT_EQ_U64(at, n);
		g = calloc(1, n + 5);
		memcpy(g, f, n);
		memcpy(g + n, "\x01\x02\x03\x04\x05", 5);
		wr64(g + last + 8, rd64(g + last + 8) + 5);
		wr64(g + 24, n + 5 - HDR);
		refresh(g, n + 5);
		ASSERT_OK(manifest_decode(g, n + 5, &back));
		assert_manifest_equal(m, back);
		manifest_free(back);
		back = NULL;
		free(g);
	}
	free(f);
	manifest_free(m);
}

TEST(manifest_unknown_sections)
{
	struct manifest *m = make_manifest(), *back = NULL;
	uint8_t *f, *g;
	size_t n, nn, image_end;
	static const char payload[] = "a section from the future";

	encode_ok(m, &f, &n);
	image_end = 16 + rd64(f + HDR + 8);

	/* optional, appended at the end */
	g = insert_section(f, n, n - HDR, 0x7777, 0, payload, sizeof(payload), &nn);
	ASSERT_OK(manifest_decode(g, nn, &back));
	assert_manifest_equal(m, back);
	manifest_free(back);
	back = NULL;
	free(g);

	/* optional, between the image and the first disk; a reserved type (signature) too */
	g = insert_section(f, n, image_end, MANIFEST_SECTION_SIGNATURE, 0, payload, sizeof(payload),
			   &nn);
	ASSERT_OK(manifest_decode(g, nn, &back));
	assert_manifest_equal(m, back);
	manifest_free(back);
	back = NULL;
	free(g);

	/* an empty optional section */
	g = insert_section(f, n, image_end, MANIFEST_SECTION_REMOTE, 0x80000000u, "", 0, &nn);
	ASSERT_OK(manifest_decode(g, nn, &back));
	manifest_free(back);
	back = NULL;
	free(g);

	/* required: refused, wherever it is */
	g = insert_section(f, n, n - HDR, 0x7777, MANIFEST_SECTION_FLAG_REQUIRED, payload,
			   sizeof(payload), &nn);
	ASSERT_ERR(manifest_decode(g, nn, &back), -EPROTONOSUPPORT);
	free(g);
	g = insert_section(f, n, image_end, MANIFEST_SECTION_ENCRYPTION,
			   MANIFEST_SECTION_FLAG_REQUIRED, payload, sizeof(payload), &nn);
	ASSERT_ERR(manifest_decode(g, nn, &back), -EPROTONOSUPPORT);
	free(g);

	/* the image section must come first */
	g = insert_section(f, n, 0, 0x7777, 0, payload, sizeof(payload), &nn);
	ASSERT_ERR(manifest_decode(g, nn, &back), -EBADMSG);
	free(g);
	/* a section length running past the end */
	g = insert_section(f, n, n - HDR, 0x7777, 0, payload, sizeof(payload), &nn);
	wr64(g + n + 8, sizeof(payload) + 1);
	refresh(g, nn);
	ASSERT_ERR(manifest_decode(g, nn, &back), -EBADMSG);
	wr64(g + n + 8, UINT64_MAX);
	refresh(g, nn);
	ASSERT_ERR(manifest_decode(g, nn, &back), -EBADMSG);
	/* n_sections disagreeing with the body */
	wr64(g + n + 8, sizeof(payload));
	wr32(g + 20, rd32(g + 20) + 1);
	refresh(g, nn);
	ASSERT_ERR(manifest_decode(g, nn, &back), -EBADMSG);
	wr32(g + 20, rd32(g + 20) - 2);
	refresh(g, nn);
	ASSERT_ERR(manifest_decode(g, nn, &back), -EBADMSG);
	ASSERT_TRUE(back == NULL);
	free(g);
	free(f);
	manifest_free(m);
}

/* A file with the real image section and a hand-made disk section. */
static int decode_with_disk_section(const struct manifest *m, struct out *disk)
{
	struct out body = {};
	struct manifest *back = NULL;
	uint8_t *f;
	size_t n;
	int r;

	spec_image_section(&body, m);
	o_section(&body, 2, 1, disk);
	f = spec_finish(&body, 2, m->content_digest, &n);
	r = manifest_decode(f, n, &back);
	manifest_free(back);
	free(f);
	return r;
}

static void disk_record(struct out *s, uint64_t size)
{
	struct out r = {};
	uint8_t boot[MANIFEST_BOOT_CODE_BYTES] = {};

	o_var(&r, size);
	o_var(&r, 512);
	o_var(&r, 512);
	o_str(&r, "none");
	o_str(&r, NULL);
	o_var(&r, 0);
	o_var(&r, 0);
	o_var(&r, 0);
	o_bytes(&r, boot, sizeof(boot));
	o_var(&r, 0);
	o_var(&r, 4096);
	o_str(&r, NULL);
	o_str(&r, NULL);
	o_rec(s, &r);
}

TEST(manifest_counts_over_bounds)
{
	struct manifest *m = make_manifest();
	struct out s = {};
	uint8_t pad[4096] = {};

	/* Counts far beyond the bytes present: -EBADMSG (an attempt to
	 * allocate them would have shown up as -ENOMEM). */
	disk_record(&s, 64 * MiB);
	o_var(&s, UINT64_C(1) << 40);
	o_bytes(&s, pad, sizeof(pad));
	ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);

	disk_record(&s, 64 * MiB);
	o_var(&s, MANIFEST_PARTITIONS_MAX + 1);
	o_bytes(&s, pad, sizeof(pad));
	ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);

	disk_record(&s, 64 * MiB);
	o_var(&s, 0);
	o_var(&s, UINT64_C(1) << 40);
	o_bytes(&s, pad, sizeof(pad));
	ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);

	disk_record(&s, 64 * MiB);
	o_var(&s, 0);
	o_var(&s, MANIFEST_EXTENTS_MAX + 1);
	o_bytes(&s, pad, sizeof(pad));
	ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);

	disk_record(&s, 64 * MiB);
	o_var(&s, 0);
	o_var(&s, 1);
	o_var(&s, 0);
	o_var(&s, 4096);
	o_var(&s, UINT64_C(1) << 40);
	o_bytes(&s, pad, sizeof(pad));
	ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);

	/* a chunk index beyond the disk */
	disk_record(&s, 64 * MiB);
	o_var(&s, 0);
	o_var(&s, 1);
	o_var(&s, 0);
	o_var(&s, 4096);
	o_var(&s, 1);
	o_var(&s, 16);
	o_bytes(&s, pad, 32);
	ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);

	/* a string length far beyond the bytes present, and one just over the limit */
	{
		struct out r = {};
		o_var(&r, 64 * MiB);
		o_var(&r, 512);
		o_var(&r, 512);
		o_var(&r, UINT64_C(1) << 50);
		o_rec(&s, &r);
		ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);
	}
	{
		struct out r = {};
		static char big[MANIFEST_STRING_MAX + 1];
		memset(big, 'x', sizeof(big));
		o_var(&r, 64 * MiB);
		o_var(&r, 512);
		o_var(&r, 512);
		o_var(&r, sizeof(big) + 1);
		o_bytes(&r, big, sizeof(big));
		o_rec(&s, &r);
		ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);
	}
	/* a varint of 11 bytes, and an overlong one */
	{
		static const uint8_t v11[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f };
		o_var(&s, sizeof(v11));
		o_bytes(&s, v11, sizeof(v11));
		o_bytes(&s, pad, 64);
		ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);
		o_bytes(&s, "\x80\x00", 2);
		o_bytes(&s, pad, 64);
		ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG);
	}
	/* sanity: the hand-made section is accepted when it is right (digest aside) */
	disk_record(&s, 64 * MiB);
	o_var(&s, 0);
	o_var(&s, 1);
	o_var(&s, 0);
	o_var(&s, 4096);
	o_var(&s, 1);
	o_var(&s, 0);
	o_bytes(&s, pad, 32);
	ASSERT_ERR(decode_with_disk_section(m, &s), -EBADMSG); /* the digest is m's, not this disk's */
	manifest_free(m);

	/* the same bounds hold for encoding */
	m = make_manifest();
	m->n_disks = MANIFEST_DISKS_MAX + 1;
	ASSERT_ERR(manifest_encode(m, (void **) &s.p, &s.n), -EINVAL);
	m->n_disks = 2;
	m->disks[0].n_partitions = MANIFEST_PARTITIONS_MAX + 1;
	ASSERT_ERR(manifest_encode(m, (void **) &s.p, &s.n), -EINVAL);
	m->disks[0].n_partitions = 2;
	free(m->description);
	m->description = calloc(1, MANIFEST_STRING_MAX + 2);
	memset(m->description, 'd', MANIFEST_STRING_MAX + 1);
	manifest_compute_digest(m, m->content_digest);
	ASSERT_ERR(manifest_encode(m, (void **) &s.p, &s.n), -EINVAL);
	manifest_free(m);

	m = make_manifest();
	strv_free(m->labels);
	m->labels = calloc(MANIFEST_LABELS_MAX + 2, sizeof(char *));
	for (int i = 0; i <= MANIFEST_LABELS_MAX; i++)
		ASSERT_TRUE(asprintf(&m->labels[i], "k%d=v", i) > 0);
	ASSERT_ERR(manifest_encode(m, (void **) &s.p, &s.n), -EINVAL);
	free(m->labels[MANIFEST_LABELS_MAX]);
	m->labels[MANIFEST_LABELS_MAX] = NULL;
	ASSERT_OK(manifest_encode(m, (void **) &s.p, &s.n));
	free(s.p);
	manifest_free(m);

	/* and for the file size */
	{
		uint8_t *huge = calloc(1, MANIFEST_BYTES_MAX + 1);
		struct manifest *back = NULL;
		ASSERT_TRUE(huge);
		memcpy(huge, "IMGMANIF\x01", 9);
		ASSERT_ERR(manifest_decode(huge, MANIFEST_BYTES_MAX + 1, &back), -EBADMSG);
		free(huge);
	}
}

/* Each mutation of a valid manifest must make manifest_encode() refuse it. */
static void expect_invalid(void (*mutate)(struct manifest *), const char *what)
{
	struct manifest *m = make_manifest();
	size_t n_disks = m->n_disks, n;
	void *p = NULL;
	int r;

	mutate(m);
	manifest_compute_digest(m, m->content_digest);
	r = manifest_validate(m);
	if (r != -EBADMSG)
		UNIT_FAIL("%s: validate gave %d", what, r);
	r = manifest_encode(m, &p, &n);
	if (r != -EINVAL)
		UNIT_FAIL("%s: encode gave %d", what, r);
	m->n_disks = n_disks; /* so that everything is freed */
	manifest_free(m);
}

static void mut_extent_unsorted(struct manifest *m)
{
	struct manifest_extent t = m->disks[0].extents[2];
	m->disks[0].extents[2] = m->disks[0].extents[3];
	m->disks[0].extents[3] = t;
}
static void mut_extent_overlap(struct manifest *m)
{
	m->disks[0].extents[1].size_bytes = 3 * MiB + 8192 + 1; /* runs into extent 2 */
	m->disks[0].used_bytes += 8192 + 1 - 4096;
}
static void mut_extent_adjacent(struct manifest *m)
{
	m->disks[0].extents[1].size_bytes = 3 * MiB + 8192; /* ends where extent 2 starts */
	m->disks[0].used_bytes += 4096;
}
static void mut_extent_outside(struct manifest *m)
{
	m->disks[0].extents[4].offset_bytes += 1;
}
static void mut_extent_empty(struct manifest *m)
{
	m->disks[0].used_bytes -= m->disks[0].extents[3].size_bytes;
	m->disks[0].extents[3].size_bytes = 0;
}
static void mut_used_bytes(struct manifest *m)
{
	m->disks[0].used_bytes++;
}
static void mut_chunk_zero_listed(struct manifest *m)
{
	uint8_t *zero = calloc(1, CHUNK_SIZE_BYTES);
	chunk_id_compute(zero, CHUNK_SIZE_BYTES, &m->disks[0].chunks[1].id);
	free(zero);
}
static void mut_last_chunk_zero_listed(struct manifest *m)
{
	struct manifest_disk *d = &m->disks[0];
	uint8_t *zero = calloc(1, CHUNK_SIZE_BYTES);
	chunk_id_compute(zero, d->chunks[d->n_chunks - 1].size_bytes, &d->chunks[d->n_chunks - 1].id);
	free(zero);
}
static void mut_chunks_unsorted(struct manifest *m)
{
	struct manifest_chunk t = m->disks[0].chunks[1];
	m->disks[0].chunks[1] = m->disks[0].chunks[2];
	m->disks[0].chunks[2] = t;
}
static void mut_chunk_extra(struct manifest *m)
{
	struct manifest_disk *d = &m->disks[1];
	d->chunks = realloc(d->chunks, 2 * sizeof(*d->chunks));
	d->chunks[1] = d->chunks[0];
	d->chunks[1].offset_bytes = CHUNK_SIZE_BYTES; /* holds no extent */
	d->n_chunks = 2;
}
static void mut_chunk_misaligned(struct manifest *m)
{
	m->disks[0].chunks[1].offset_bytes += 4096;
}
static void mut_chunk_size(struct manifest *m)
{
	m->disks[0].chunks[0].size_bytes -= 512;
}
static void mut_last_chunk_size(struct manifest *m)
{
	struct manifest_disk *d = &m->disks[0];
	d->chunks[d->n_chunks - 1].size_bytes = CHUNK_SIZE_BYTES;
}
static void mut_partition_outside(struct manifest *m)
{
	m->disks[0].partitions[1].size_bytes = 50 * MiB;
}
static void mut_partition_method(struct manifest *m)
{
	m->disks[0].partitions[1].method = _CAPTURE_METHOD_MAX;
}
static void mut_sector_size(struct manifest *m)
{
	m->disks[0].logical_sector_bytes = 520;
}
static void mut_no_disks(struct manifest *m)
{
	m->n_disks = 0;
}
static void mut_name(struct manifest *m)
{
	m->name[0] = 'G';
}
static void mut_label_no_key(struct manifest *m)
{
	free(m->labels[0]);
	m->labels[0] = strdup("=x");
}
static void mut_boot_gap(struct manifest *m)
{
	m->disks[0].boot_gap_bytes = MANIFEST_BOOT_GAP_BYTES_MAX + 1;
}

TEST(manifest_validation_rules)
{
	expect_invalid(mut_extent_unsorted, "unsorted extents");
	expect_invalid(mut_extent_overlap, "overlapping extents");
	expect_invalid(mut_extent_adjacent, "unmerged extents");
	expect_invalid(mut_extent_outside, "extent past the disk");
	expect_invalid(mut_extent_empty, "empty extent");
	expect_invalid(mut_used_bytes, "used bytes");
	expect_invalid(mut_chunk_zero_listed, "all-zero chunk listed");
	expect_invalid(mut_last_chunk_zero_listed, "all-zero short chunk listed");
	expect_invalid(mut_chunks_unsorted, "unsorted chunks");
	expect_invalid(mut_chunk_extra, "chunk without extent");
	expect_invalid(mut_chunk_misaligned, "misaligned chunk");
	expect_invalid(mut_chunk_size, "short chunk");
	expect_invalid(mut_last_chunk_size, "last chunk past the disk");
	expect_invalid(mut_partition_outside, "partition past the disk");
	expect_invalid(mut_partition_method, "method");
	expect_invalid(mut_sector_size, "sector size");
	expect_invalid(mut_no_disks, "no disks");
	expect_invalid(mut_name, "name");
	expect_invalid(mut_label_no_key, "label");
	expect_invalid(mut_boot_gap, "boot gap");
}

TEST(manifest_unlisted_chunks_are_zero)
{
	struct manifest *m = make_manifest(), *back = NULL;
	struct manifest_disk *d = &m->disks[0];
	void *p;
	size_t n, n_before = d->n_chunks;

	/* chunk 1 (touched by extents 1 and 2) was all zero: not listed */
	memmove(&d->chunks[1], &d->chunks[2], (d->n_chunks - 2) * sizeof(*d->chunks));
	d->n_chunks--;
	manifest_compute_digest(m, m->content_digest);
	ASSERT_OK(manifest_validate(m));
	ASSERT_OK(manifest_encode(m, &p, &n));
	ASSERT_OK(manifest_decode(p, n, &back));
	ASSERT_EQ_U64(back->disks[0].n_chunks, n_before - 1);
	assert_manifest_equal(m, back);
	free(p);
	manifest_free(back);
	/* even a disk whose data is all zero */
	d = &m->disks[1];
	free(d->chunks);
	d->chunks = NULL;
	d->n_chunks = 0;
	manifest_compute_digest(m, m->content_digest);
	ASSERT_OK(manifest_encode(m, &p, &n));
	ASSERT_OK(manifest_decode(p, n, &back));
	assert_manifest_equal(m, back);
	free(p);
	manifest_free(back);
	manifest_free(m);
}

TEST(manifest_encode_refuses_stale_digest)
{
	struct manifest *m = make_manifest();
	void *p;
	size_t n;

	m->disks[0].chunks[0].id.bytes[0] ^= 1; /* changed after the digest was taken */
	ASSERT_ERR(manifest_encode(m, &p, &n), -EINVAL);
	manifest_compute_digest(m, m->content_digest);
	ASSERT_OK(manifest_encode(m, &p, &n));
	free(p);
	manifest_free(m);
}

TEST(manifest_digest_is_content_only)
{
	struct manifest *a = make_manifest(), *b = make_manifest();
	uint8_t da[32], db[32];

	/* identity, time, host, description, labels, source disk identity, probe results */
	free(b->name);
	b->name = strdup("another-name");
	b->created_unix = 1800000000;
	free(b->description);
	b->description = NULL;
	free(b->tool_version);
	b->tool_version = strdup("imager 9");
	free(b->host_serial);
	b->host_serial = strdup("other");
	strv_free(b->labels);
	b->labels = NULL;
	free(b->disks[0].model);
	b->disks[0].model = strdup("other disk");
	b->disks[0].serial = strdup("SN2");
	b->disks[0].partitions[0].method = CAPTURE_RAW;
	b->disks[0].partitions[0].fs_used_bytes = 1;
	manifest_compute_digest(a, da);
	manifest_compute_digest(b, db);
	ASSERT_MEMEQ(da, db, 32);

	/* but anything flash writes changes it */
	b->disks[0].chunks[3].id.bytes[7] ^= 1;
	manifest_compute_digest(b, db);
	ASSERT_TRUE(memcmp(da, db, 32) != 0);
	b->disks[0].chunks[3].id.bytes[7] ^= 1;
	b->disks[0].partitions[1].uuid[0] = 'f';
	manifest_compute_digest(b, db);
	ASSERT_TRUE(memcmp(da, db, 32) != 0);
	b->disks[0].partitions[1].uuid[0] = '1';
	b->disks[0].extents[3].size_bytes += 1;
	manifest_compute_digest(b, db);
	ASSERT_TRUE(memcmp(da, db, 32) != 0);
	b->disks[0].extents[3].size_bytes -= 1;
	b->disks[0].boot_code[0] ^= 1;
	manifest_compute_digest(b, db);
	ASSERT_TRUE(memcmp(da, db, 32) != 0);
	b->disks[0].boot_code[0] ^= 1;
	manifest_compute_digest(b, db);
	ASSERT_MEMEQ(da, db, 32);
	/* NULL and "" are different strings */
	free(b->disks[0].partitions[1].name);
	b->disks[0].partitions[1].name = strdup("");
	manifest_compute_digest(b, db);
	ASSERT_TRUE(memcmp(da, db, 32) != 0);
	manifest_free(a);
	manifest_free(b);
}

TEST(manifest_size_of_a_1tib_disk_half_full)
{
	const uint64_t disk = UINT64_C(1) << 40, n_extents = 20000, n_chunks = 131072;
	struct manifest *m = calloc(1, sizeof(*m)), *back = NULL;
	struct manifest_disk *d;
	uint64_t k = 0;
	struct timespec t0, t1;
	void *p;
	size_t n;

	m->name = strdup("big");
	m->n_disks = 1;
	m->disks = d = calloc(1, sizeof(*d));
	d->size_bytes = disk;
	d->logical_sector_bytes = 512;
	d->physical_sector_bytes = 4096;
	d->label = strdup("gpt");
	add_partition(d, 1, MiB, disk - 2 * MiB, "ext4");
	d->extents = calloc(n_extents, sizeof(*d->extents));
	d->n_extents = n_extents;
	/* extents of 6 or 7 chunks (131072 in all), 6 or 7 chunks apart, not chunk-aligned */
	for (uint64_t i = 0; i < n_extents; i++) {
		uint64_t len = i < n_chunks - 6 * n_extents ? 7 : 6;
		d->extents[i].offset_bytes = k * CHUNK_SIZE_BYTES + 4096 * (1 + i % 100);
		d->extents[i].size_bytes = len * CHUNK_SIZE_BYTES - 4096 * (2 + i % 100) - 512;
		k += len + len;
	}
	ASSERT_TRUE(k * CHUNK_SIZE_BYTES <= disk);
	chunks_from_extents(d, 3);
	ASSERT_EQ_U64(d->n_chunks, n_chunks);
	manifest_compute_digest(m, m->content_digest);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_OK(manifest_encode(m, &p, &n));
	ASSERT_OK(manifest_decode(p, n, &back));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# 1 TiB, %" PRIu64 " chunks, %" PRIu64 " extents: %zu bytes (%.1f per chunk), "
	       "encode+decode %.0f ms\n",
	       n_chunks, n_extents, n, (double) n / n_chunks,
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	ASSERT_TRUE(n < 6 * MiB);
	ASSERT_TRUE(n < n_chunks * 36);
	assert_manifest_equal(m, back);
	free(p);
	manifest_free(m);
	manifest_free(back);
}

TEST(manifest_names)
{
	static const char *const good[] = { "a", "web-1", "golden-2024-01", "a0",
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123" };
	static const char *const bad[] = { "", "1abc", "-a", "a-", "Abc", "a_b", "a.b", "a b",
		"a/b", "\xc3\xa9", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234" };

	for (size_t i = 0; i < ELEMENTSOF(good); i++)
		if (!manifest_name_is_valid(good[i]))
			UNIT_FAIL("'%s' refused", good[i]);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (manifest_name_is_valid(bad[i]))
			UNIT_FAIL("'%s' accepted", bad[i]);
	ASSERT_TRUE(!manifest_name_is_valid(NULL));
}

TEST(capture_method_strings)
{
	for (int i = 0; i < _CAPTURE_METHOD_MAX; i++) {
		const char *s = capture_method_to_string((enum capture_method) i);
		ASSERT_TRUE(s);
		ASSERT_EQ_I64(capture_method_from_string(s), i);
	}
	ASSERT_STREQ(capture_method_to_string(CAPTURE_EXT_USED), "ext-used");
	ASSERT_TRUE(capture_method_to_string(_CAPTURE_METHOD_MAX) == NULL);
	ASSERT_EQ_I64(capture_method_from_string("xfs"), _CAPTURE_METHOD_INVALID);
	ASSERT_EQ_I64(capture_method_from_string(NULL), _CAPTURE_METHOD_INVALID);
}
