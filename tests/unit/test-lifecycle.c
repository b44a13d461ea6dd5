/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Deprecation states and schedules, deprecation files, family resolution, gc and verify. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "unit.h"
#include "imager/chunk.h"
#include "imager/gc.h"
#include "imager/lifecycle.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "util/cleanup.h"

#define T0 INT64_C(1800000000) /* 2027-01-15T08:00:00Z */

static struct deprecation dep(enum deprecation_state s, int64_t dep_on, int64_t obs_on,
			      int64_t del_on)
{
	struct deprecation d = DEPRECATION_INIT;

	d.state = s;
	d.deprecate_on = dep_on;
	d.obsolete_on = obs_on;
	d.delete_on = del_on;
	return d;
}

#define U DEPRECATION_TIME_UNSET

TEST(effective_state_explicit_and_scheduled)
{
	struct deprecation d;

	ASSERT_EQ_I64(deprecation_effective_state(NULL, T0), DEPRECATION_ACTIVE);
	for (int s = 0; s < _DEPRECATION_STATE_MAX; s++) {
		d = dep(s, U, U, U);
		ASSERT_EQ_I64(deprecation_effective_state(&d, T0), s);
	}
	/* a schedule takes effect at its second, not before */
	d = dep(DEPRECATION_ACTIVE, T0, U, U);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 - 1), DEPRECATION_ACTIVE);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0), DEPRECATION_DEPRECATED);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 86400), DEPRECATION_DEPRECATED);

	d = dep(DEPRECATION_DEPRECATED, U, T0 + 100, T0 + 200);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0), DEPRECATION_DEPRECATED);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 99), DEPRECATION_DEPRECATED);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 100), DEPRECATION_OBSOLETE);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 199), DEPRECATION_OBSOLETE);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 200), DEPRECATION_DELETED);

	/* all three scheduled from ACTIVE: each step in turn */
	d = dep(DEPRECATION_ACTIVE, T0 + 10, T0 + 20, T0 + 30);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0), DEPRECATION_ACTIVE);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 10), DEPRECATION_DEPRECATED);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 25), DEPRECATION_OBSOLETE);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 30), DEPRECATION_DELETED);

	/* a schedule never lowers an explicit state */
	d = dep(DEPRECATION_OBSOLETE, T0 + 10, U, U);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 50), DEPRECATION_OBSOLETE);
	d = dep(DEPRECATION_DELETED, U, T0, U);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 + 50), DEPRECATION_DELETED);

	/* an obsolete-on alone skips DEPRECATED */
	d = dep(DEPRECATION_ACTIVE, U, T0, U);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0 - 1), DEPRECATION_ACTIVE);
	ASSERT_EQ_I64(deprecation_effective_state(&d, T0), DEPRECATION_OBSOLETE);

	/* times before 1970 work too */
	d = dep(DEPRECATION_ACTIVE, -1000, U, U);
	ASSERT_EQ_I64(deprecation_effective_state(&d, -1001), DEPRECATION_ACTIVE);
	ASSERT_EQ_I64(deprecation_effective_state(&d, 0), DEPRECATION_DEPRECATED);
}

TEST(state_strings)
{
	ASSERT_STREQ(deprecation_state_to_string(DEPRECATION_ACTIVE), "ACTIVE");
	ASSERT_STREQ(deprecation_state_to_string(DEPRECATION_DELETED), "DELETED");
	ASSERT_TRUE(deprecation_state_to_string(_DEPRECATION_STATE_MAX) == NULL);
	ASSERT_EQ_I64(deprecation_state_from_string("obsolete"), DEPRECATION_OBSOLETE);
	ASSERT_EQ_I64(deprecation_state_from_string("Deprecated"), DEPRECATION_DEPRECATED);
	ASSERT_EQ_I64(deprecation_state_from_string("gone"), _DEPRECATION_STATE_INVALID);
	ASSERT_EQ_I64(deprecation_state_from_string(NULL), _DEPRECATION_STATE_INVALID);
}

TEST(validate_rules)
{
	struct deprecation d = dep(DEPRECATION_DEPRECATED, T0, T0, T0 + 1);

	ASSERT_OK(deprecation_validate(&d));
	d.replacement = (char *) "web-v2";
	ASSERT_OK(deprecation_validate(&d));
	d.replacement = (char *) "Web_V2";
	ASSERT_ERR(deprecation_validate(&d), -EINVAL);
	d = dep(DEPRECATION_ACTIVE, T0 + 1, T0, U); /* deprecated after obsolete */
	ASSERT_ERR(deprecation_validate(&d), -EINVAL);
	d = dep(DEPRECATION_ACTIVE, T0 + 5, U, T0); /* deprecated after deleted */
	ASSERT_ERR(deprecation_validate(&d), -EINVAL);
	d = dep(DEPRECATION_ACTIVE, U, INT64_MAX, U);
	ASSERT_ERR(deprecation_validate(&d), -EINVAL);
	d = dep((enum deprecation_state) 7, U, U, U);
	ASSERT_ERR(deprecation_validate(&d), -EINVAL);
}

TEST(deprecation_file_roundtrip_and_damage)
{
	struct deprecation d = dep(DEPRECATION_DEPRECATED, U, T0 + 100, T0 + 200), back;
	uint8_t *buf, *copy;
	size_t n;

	d.replacement = (char *) "web-v3";
	d.changed_unix = T0 - 5;
	ASSERT_OK(deprecation_encode(&d, (void **) &buf, &n));
	ASSERT_TRUE(memcmp(buf, "IMGDEPRC", 8) == 0);
	ASSERT_OK(deprecation_decode(buf, n, &back));
	ASSERT_EQ_I64(back.state, DEPRECATION_DEPRECATED);
	ASSERT_STREQ(back.replacement, "web-v3");
	ASSERT_EQ_I64(back.deprecate_on, U);
	ASSERT_EQ_I64(back.obsolete_on, T0 + 100);
	ASSERT_EQ_I64(back.delete_on, T0 + 200);
	ASSERT_EQ_I64(back.changed_unix, T0 - 5);
	deprecation_done(&back);

	/* every single-bit flip is refused, never misread */
	copy = malloc(n);
	for (size_t i = 0; i < n; i++)
		for (int bit = 0; bit < 8; bit++) {
			int r;
			memcpy(copy, buf, n);
			copy[i] ^= (uint8_t) (1u << bit);
			r = deprecation_decode(copy, n, &back);
			if (r >= 0)
				UNIT_FAIL("flip of bit %d in byte %zu was accepted", bit, i);
		}
	/* every truncation and an appended byte too */
	for (size_t k = 0; k < n; k++)
		ASSERT_ERR(deprecation_decode(buf, k, &back), -EBADMSG);
	memcpy(copy, buf, n);
	free(copy);
	copy = calloc(1, n + 1);
	memcpy(copy, buf, n);
	ASSERT_ERR(deprecation_decode(copy, n + 1, &back), -EBADMSG);
	/* a newer major version is refused as such */
	copy[8] = 2;
	ASSERT_ERR(deprecation_decode(copy, n, &back), -EPROTONOSUPPORT);
	free(copy);
	free(buf);

	/* unset everything: the smallest record; an invalid record is not encoded */
	d = dep(DEPRECATION_ACTIVE, U, U, U);
	ASSERT_OK(deprecation_encode(&d, (void **) &buf, &n));
	ASSERT_OK(deprecation_decode(buf, n, &back));
	ASSERT_TRUE(back.replacement == NULL);
	ASSERT_EQ_I64(back.obsolete_on, U);
	free(buf);
	d = dep(DEPRECATION_ACTIVE, T0, T0 - 1, U);
	ASSERT_ERR(deprecation_encode(&d, (void **) &buf, &n), -EINVAL);
}

TEST(family_pick_newest_active)
{
	struct family_candidate c[] = {
		{ "web-v1", T0, DEPRECATION_ACTIVE },
		{ "web-v2", T0 + 10, DEPRECATION_ACTIVE },
		{ "web-v3", T0 + 20, DEPRECATION_DEPRECATED },
		{ "web-v0", T0 + 30, DEPRECATION_OBSOLETE },
	};

	ASSERT_EQ_I64(family_pick(c, 0), -ENOENT);
	ASSERT_EQ_I64(family_pick(c, 4), 1);     /* the newest ACTIVE */
	c[1].state = DEPRECATION_DELETED;         /* roll back: deprecate the newest */
	ASSERT_EQ_I64(family_pick(c, 4), 0);
	c[0].state = DEPRECATION_DEPRECATED;
	ASSERT_EQ_I64(family_pick(c, 4), -ENOENT);
	/* equal times: the greater name wins, whatever the order */
	{
		struct family_candidate t[] = {
			{ "b", T0, DEPRECATION_ACTIVE },
			{ "c", T0, DEPRECATION_ACTIVE },
			{ "a", T0, DEPRECATION_ACTIVE },
		};
		ASSERT_EQ_I64(family_pick(t, 3), 1);
	}
}

/* ---- against a store ---- */

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (uint8_t) x;
	}
}

/*
 * A one-disk manifest whose disk holds @n chunks, chunk k with content seed
 * @seeds[k]; the chunks are put into @s.
 */
static struct manifest *make_image(struct store *s, const char *name, const char *family,
				   int64_t created, enum manifest_kind kind, const uint64_t *seeds,
				   size_t n)
{
	struct manifest *m = calloc(1, sizeof(*m));
	struct manifest_disk *d;
	uint8_t *buf = malloc(CHUNK_SIZE_BYTES);

	m->name = strdup(name);
	m->family = family ? strdup(family) : NULL;
	m->kind = kind;
	m->tool_version = strdup("test");
	m->created_unix = created;
	m->n_disks = 1;
	m->disks = d = calloc(1, sizeof(*d));
	d->size_bytes = (uint64_t) n * CHUNK_SIZE_BYTES;
	d->logical_sector_bytes = d->physical_sector_bytes = 512;
	d->label = strdup("none");
	d->n_extents = 1;
	d->extents = calloc(1, sizeof(*d->extents));
	d->extents[0] = (struct manifest_extent){ 0, d->size_bytes };
	d->used_bytes = d->size_bytes;
	d->n_chunks = n;
	d->chunks = calloc(n, sizeof(*d->chunks));
	for (size_t k = 0; k < n; k++) {
		fill(buf, CHUNK_SIZE_BYTES, seeds[k]);
		d->chunks[k].offset_bytes = k * CHUNK_SIZE_BYTES;
		d->chunks[k].size_bytes = CHUNK_SIZE_BYTES;
		chunk_id_compute(buf, CHUNK_SIZE_BYTES, &d->chunks[k].id);
		if (store_put_chunk(s, &d->chunks[k].id, buf, CHUNK_SIZE_BYTES, NULL) < 0)
			abort();
	}
	free(buf);
	manifest_compute_digest(m, m->content_digest);
	if (store_put_manifest(s, m) < 0)
		abort();
	return m;
}

static unsigned count_chunk_files(const char *store)
{
	char cmd[4200], out[64];
	FILE *p;
	unsigned n = 0;

	snprintf(cmd, sizeof(cmd), "find '%s/chunks' -name '*.chunk' | wc -l", store);
	p = popen(cmd, "re");
	if (p && fgets(out, sizeof(out), p))
		n = (unsigned) strtoul(out, NULL, 10);
	if (p)
		pclose(p);
	return n;
}

TEST(store_deprecation_files_and_family_resolution)
{
	char *dir = make_tmpdir();
	struct store *s;
	struct deprecation d = dep(DEPRECATION_DEPRECATED, U, T0 + 100, U), back;
	uint64_t seeds[] = { 1 };
	char *name = NULL;
	size_t n;

	ASSERT_OK(store_open(dir, true, &s));
	manifest_free(make_image(s, "web-v1", "web", T0, MANIFEST_KIND_IMAGE, seeds, 1));
	manifest_free(make_image(s, "web-v2", "web", T0 + 10, MANIFEST_KIND_IMAGE, seeds, 1));
	manifest_free(make_image(s, "web-v3", "web", T0 + 20, MANIFEST_KIND_IMAGE, seeds, 1));
	manifest_free(make_image(s, "db-v1", "db", T0 + 30, MANIFEST_KIND_IMAGE, seeds, 1));
	manifest_free(make_image(s, "loose", NULL, T0 + 40, MANIFEST_KIND_IMAGE, seeds, 1));
	/* a snapshot is never a family member, whatever it carries */
	manifest_free(make_image(s, "web-v9", "web", T0 + 90, MANIFEST_KIND_SNAPSHOT, seeds, 1));

	ASSERT_ERR(store_get_deprecation(s, "web-v3", &back), -ENOENT);
	ASSERT_OK(store_resolve_family(s, "web", T0 + 50, &name, &n));
	ASSERT_STREQ(name, "web-v3");
	ASSERT_EQ_U64(n, 3);
	free(name);

	/* roll back: deprecate the newest */
	d.replacement = (char *) "web-v2";
	ASSERT_OK(store_put_deprecation(s, "web-v3", &d));
	ASSERT_OK(store_get_deprecation(s, "web-v3", &back));
	ASSERT_EQ_I64(back.state, DEPRECATION_DEPRECATED);
	ASSERT_STREQ(back.replacement, "web-v2");
	ASSERT_EQ_I64(back.obsolete_on, T0 + 100);
	deprecation_done(&back);
	ASSERT_OK(store_resolve_family(s, "web", T0 + 50, &name, NULL));
	ASSERT_STREQ(name, "web-v2");
	free(name);

	/* a scheduled obsolescence of web-v2, not yet due, then due */
	d = dep(DEPRECATION_ACTIVE, U, T0 + 60, U);
	ASSERT_OK(store_put_deprecation(s, "web-v2", &d));
	ASSERT_OK(store_resolve_family(s, "web", T0 + 59, &name, NULL));
	ASSERT_STREQ(name, "web-v2");
	free(name);
	ASSERT_OK(store_resolve_family(s, "web", T0 + 60, &name, NULL));
	ASSERT_STREQ(name, "web-v1");
	free(name);

	/* back to ACTIVE: the record goes away */
	ASSERT_OK(store_put_deprecation(s, "web-v3", NULL));
	ASSERT_ERR(store_get_deprecation(s, "web-v3", &back), -ENOENT);
	ASSERT_OK(store_put_deprecation(s, "web-v3", NULL)); /* idempotent */
	ASSERT_OK(store_resolve_family(s, "web", T0 + 1000, &name, NULL));
	ASSERT_STREQ(name, "web-v3");
	free(name);

	/* a damaged record: that image is never picked */
	{
		char *p;
		int fd;
		ASSERT_OK(store_put_deprecation(s, "web-v3", &d));
		ASSERT_TRUE(asprintf(&p, "%s/images/web-v3.deprecation", dir) > 0);
		fd = open(p, O_WRONLY);
		ASSERT_TRUE(fd >= 0);
		ASSERT_TRUE(pwrite(fd, "X", 1, 70) == 1);
		close(fd);
		free(p);
		ASSERT_ERR(store_get_deprecation(s, "web-v3", &back), -EBADMSG);
		ASSERT_OK(store_resolve_family(s, "web", T0, &name, NULL));
		ASSERT_STREQ(name, "web-v2");
		free(name);
	}

	ASSERT_ERR(store_resolve_family(s, "nothing", T0, &name, &n), -ENOENT);
	ASSERT_EQ_U64(n, 0);
	ASSERT_ERR(store_put_deprecation(s, "../config", &d), -EINVAL);
	store_free(s);
	rm_rf(dir);
}

TEST(refs_accounting_gc_and_verify)
{
	char *dir = make_tmpdir(), *p;
	struct store *s;
	struct store_refs *refs;
	struct image_storage st;
	struct gc_stats gs;
	struct verify_stats vs;
	struct gc_options o = { .now = T0, .tmp_age_seconds = 3600 };
	struct manifest *a, *b, *snap;
	uint64_t sa[] = { 1, 2, 3 }, sb[] = { 1, 2, 4 }, ss[] = { 5 }, junk[] = { 6, 7 };
	int lock1, lock2;

	ASSERT_OK(store_open(dir, true, &s));
	a = make_image(s, "a", NULL, T0, MANIFEST_KIND_IMAGE, sa, 3);
	b = make_image(s, "b", NULL, T0, MANIFEST_KIND_IMAGE, sb, 3);
	snap = make_image(s, "a", NULL, T0, MANIFEST_KIND_SNAPSHOT, ss, 1); /* same name, own namespace */
	/* chunks 6 and 7: stored by a capture that never published its manifest */
	manifest_free(make_image(s, "junk", NULL, T0, MANIFEST_KIND_IMAGE, junk, 2));
	ASSERT_OK(store_remove_manifest(s, MANIFEST_KIND_IMAGE, "junk"));
	ASSERT_EQ_U64(count_chunk_files(dir), 7);

	ASSERT_OK(store_refs_load(s, &refs, NULL));
	ASSERT_EQ_U64(store_refs_n_images(refs), 2);
	ASSERT_EQ_U64(store_refs_n_snapshots(refs), 1);
	ASSERT_EQ_U64(store_refs_n_chunks(refs), 5);
	ASSERT_EQ_U64(store_refs_count(refs, &a->disks[0].chunks[0].id), 2);
	ASSERT_EQ_U64(store_refs_count(refs, &a->disks[0].chunks[2].id), 1);
	ASSERT_OK(store_image_storage(s, a, refs, &st));
	ASSERT_EQ_U64(st.logical_bytes, 3 * (uint64_t) CHUNK_SIZE_BYTES);
	ASSERT_EQ_U64(st.chunks, 3);
	ASSERT_EQ_U64(st.unique_chunks, 1);
	ASSERT_TRUE(st.unique_bytes > 0 && st.unique_bytes < st.stored_bytes);
	store_refs_free(refs);

	/* old temporaries go, young ones stay (perhaps a writer without the lock) */
	ASSERT_TRUE(asprintf(&p, "touch -d @%lld '%s/chunks/old.tmp.0011' '%s/images/x.manifest.tmp.22' && "
			     "touch -d @%lld '%s/chunks/young.tmp.33' && echo keep >'%s/chunks/README'",
			     (long long) (T0 - 7200), dir, dir, (long long) (T0 - 60), dir, dir) > 0);
	ASSERT_TRUE(system(p) == 0);
	free(p);

	/* gc: dry run first, then for real; only 6 and 7 go */
	o.dry_run = true;
	ASSERT_OK(store_gc(s, &o, &gs, NULL));
	ASSERT_EQ_U64(gs.removed_chunks, 2);
	ASSERT_EQ_U64(count_chunk_files(dir), 7);
	o.dry_run = false;
	ASSERT_OK(store_gc(s, &o, &gs, NULL));
	ASSERT_EQ_U64(gs.removed_chunks, 2);
	ASSERT_EQ_U64(gs.kept_chunks, 5);
	ASSERT_EQ_U64(gs.removed_tmp, 2);
	ASSERT_EQ_U64(gs.images, 2);
	ASSERT_EQ_U64(gs.snapshots, 1);
	ASSERT_EQ_U64(count_chunk_files(dir), 5);
	ASSERT_TRUE(asprintf(&p, "test -e '%s/chunks/young.tmp.33' && test -e '%s/chunks/README' && "
			     "! test -e '%s/chunks/old.tmp.0011'", dir, dir, dir) > 0);
	ASSERT_TRUE(system(p) == 0);
	free(p);
	ASSERT_OK(store_verify(s, NULL, NULL, &vs));
	ASSERT_EQ_U64(vs.problems, 0);
	ASSERT_EQ_U64(vs.chunks, 5);

	/* deleting b frees only its own chunk 4; a keeps 1 and 2 */
	ASSERT_OK(store_remove_manifest(s, MANIFEST_KIND_IMAGE, "b"));
	ASSERT_OK(store_gc(s, &o, &gs, NULL));
	ASSERT_EQ_U64(gs.removed_chunks, 1);
	ASSERT_EQ_U64(count_chunk_files(dir), 4);
	ASSERT_OK(store_verify(s, NULL, NULL, &vs));
	ASSERT_EQ_U64(vs.problems, 0);

	/* damage: a flipped chunk byte, then a missing chunk: one problem each */
	{
		char hex[CHUNK_ID_STRING_MAX];
		int fd;
		chunk_id_to_string(&a->disks[0].chunks[2].id, hex);
		ASSERT_TRUE(asprintf(&p, "%s/chunks/%.4s/%s.chunk", dir, hex, hex) > 0);
		fd = open(p, O_WRONLY);
		ASSERT_TRUE(fd >= 0);
		ASSERT_TRUE(pwrite(fd, "\xff", 1, 100) == 1);
		close(fd);
		ASSERT_OK(store_verify(s, NULL, NULL, &vs));
		ASSERT_EQ_U64(vs.problems, 1);
		ASSERT_OK(unlink(p));
		free(p);
		ASSERT_OK(store_verify(s, NULL, NULL, &vs));
		ASSERT_EQ_U64(vs.problems, 1);
	}
	/* a damaged manifest stops gc: its chunks are unknown */
	{
		char *bad = NULL;
		int fd;
		ASSERT_TRUE(asprintf(&p, "%s/snapshots/a.manifest", dir) > 0);
		ASSERT_OK(truncate(p, 50));
		free(p);
		ASSERT_ERR(store_gc(s, &o, &gs, &bad), -EBADMSG);
		ASSERT_STREQ(bad, "snapshot 'a'");
		free(bad);
		ASSERT_EQ_U64(count_chunk_files(dir), 3);
		ASSERT_OK(store_verify(s, NULL, NULL, &vs));
		ASSERT_EQ_U64(vs.problems, 2);
		(void) fd;
	}

	/* the lock: shared locks coexist, exclusive waits for them */
	ASSERT_OK(store_lock(s, STORE_LOCK_SHARED, false, &lock1));
	ASSERT_OK(store_lock(s, STORE_LOCK_SHARED, false, &lock2));
	{
		int x;
		ASSERT_ERR(store_lock(s, STORE_LOCK_EXCLUSIVE, false, &x), -EAGAIN);
		close(lock1);
		ASSERT_ERR(store_lock(s, STORE_LOCK_EXCLUSIVE, false, &x), -EAGAIN);
		close(lock2);
		ASSERT_OK(store_lock(s, STORE_LOCK_EXCLUSIVE, false, &x));
		ASSERT_ERR(store_lock(s, STORE_LOCK_SHARED, false, &lock1), -EAGAIN);
		close(x);
	}

	manifest_free(a);
	manifest_free(b);
	manifest_free(snap);
	store_free(s);
	rm_rf(dir);
}

TEST(gc_removes_orphan_records_only)
{
	char *dir = make_tmpdir(), *p;
	struct store *s;
	struct gc_stats gs;
	struct gc_options o = { .now = T0, .tmp_age_seconds = 3600 };
	struct deprecation d = dep(DEPRECATION_DEPRECATED, U, U, U);
	uint64_t seeds[] = { 11 };

	ASSERT_OK(store_open(dir, true, &s));
	manifest_free(make_image(s, "kept", NULL, T0, MANIFEST_KIND_IMAGE, seeds, 1));
	ASSERT_OK(store_put_deprecation(s, "kept", &d));
	ASSERT_OK(store_put_deprecation(s, "ghost", &d));
	ASSERT_TRUE(asprintf(&p, "cd '%s' && echo x >snapshots/ghost.sig && echo x >images/kept.sig && "
			     "echo x >images/other.txt", dir) > 0);
	ASSERT_TRUE(system(p) == 0);
	free(p);
	ASSERT_OK(store_gc(s, &o, &gs, NULL));
	ASSERT_EQ_U64(gs.removed_orphans, 2);
	ASSERT_EQ_U64(gs.removed_chunks, 0);
	ASSERT_TRUE(asprintf(&p, "cd '%s' && test -e images/kept.deprecation && test -e images/kept.sig && "
			     "test -e images/other.txt && ! test -e images/ghost.deprecation && "
			     "! test -e snapshots/ghost.sig", dir) > 0);
	ASSERT_TRUE(system(p) == 0);
	free(p);
	/* a new image of the old name starts ACTIVE */
	{
		struct deprecation back;
		ASSERT_ERR(store_get_deprecation(s, "ghost", &back), -ENOENT);
	}
	store_free(s);
	rm_rf(dir);
}

TEST(manifest_family_kind_source_roundtrip)
{
	struct manifest *m = calloc(1, sizeof(*m)), *back;
	struct manifest_disk *d;
	void *buf;
	size_t n;

	m->name = strdup("web-v2");
	m->tool_version = strdup("test");
	m->family = strdup("web");
	m->kind = MANIFEST_KIND_SNAPSHOT;
	m->source.type = MANIFEST_SOURCE_IMAGE;
	m->source.name = strdup("web-v1");
	m->source.has_digest = true;
	memset(m->source.digest, 0xab, 32);
	m->n_disks = 1;
	m->disks = d = calloc(1, sizeof(*d));
	d->size_bytes = 1 << 20;
	d->logical_sector_bytes = d->physical_sector_bytes = 512;
	d->label = strdup("none");
	manifest_compute_digest(m, m->content_digest);
	ASSERT_OK(manifest_encode(m, &buf, &n));
	ASSERT_OK(manifest_decode(buf, n, &back));
	free(buf);
	ASSERT_STREQ(back->family, "web");
	ASSERT_EQ_I64(back->kind, MANIFEST_KIND_SNAPSHOT);
	ASSERT_EQ_I64(back->source.type, MANIFEST_SOURCE_IMAGE);
	ASSERT_STREQ(back->source.name, "web-v1");
	ASSERT_TRUE(back->source.has_digest);
	ASSERT_EQ_U64(back->source.digest[31], 0xab);
	/* none of it is content: the digest is that of the same disks without it */
	{
		uint8_t dg[32];
		manifest_source_done(&back->source);
		free(back->family);
		back->family = NULL;
		back->kind = MANIFEST_KIND_IMAGE;
		manifest_compute_digest(back, dg);
		ASSERT_MEMEQ(dg, m->content_digest, 32);
	}
	manifest_free(back);

	/* disk nodes and a file source */
	manifest_source_done(&m->source);
	m->source.type = MANIFEST_SOURCE_DISK;
	m->source.nodes = calloc(2, sizeof(char *));
	m->source.nodes[0] = strdup("/dev/loop7");
	ASSERT_OK(manifest_encode(m, &buf, &n));
	ASSERT_OK(manifest_decode(buf, n, &back));
	free(buf);
	ASSERT_EQ_I64(back->source.type, MANIFEST_SOURCE_DISK);
	ASSERT_STREQ(back->source.nodes[0], "/dev/loop7");
	ASSERT_TRUE(back->source.nodes[1] == NULL);
	manifest_free(back);

	/* rules: a family and a source image follow the name rule */
	free(m->family);
	m->family = strdup("Web");
	ASSERT_ERR(manifest_encode(m, &buf, &n), -EINVAL);
	free(m->family);
	m->family = NULL;
	manifest_source_done(&m->source);
	m->source.type = MANIFEST_SOURCE_IMAGE;
	m->source.name = strdup("../x");
	ASSERT_ERR(manifest_encode(m, &buf, &n), -EINVAL);
	manifest_free(m);
}
