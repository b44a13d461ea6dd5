/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Store maintenance: the store lock, garbage collection, verification and
 * storage accounting (docs/FORMAT.md, "Locking and garbage collection").
 *
 * The lock protocol: every process that adds chunks or manifests, or
 * removes manifests, holds a SHARED flock() on <store>/lock for its whole
 * run (from before its first chunk until after its manifest is published);
 * readers may hold it too. Garbage collection holds it EXCLUSIVE, so it runs
 * only when no writer is between "stored a chunk (or found it present)" and
 * "published the manifest that names it". Without the lock, gc could delete
 * a chunk that a capture found present (a dedup hit) just before the
 * capture published a manifest naming it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imager/chunk.h"

struct store;
struct manifest;

enum store_lock_mode {
	STORE_LOCK_SHARED,
	STORE_LOCK_EXCLUSIVE,
};

/*
 * Takes the store lock: flock() on "<store>/lock", created if missing.
 * Without @wait, -EAGAIN if another process holds a conflicting lock.
 * Returns 0 and the file descriptor holding the lock in *ret_fd (close it
 * to release). -EROFS/-EACCES if the lock file cannot be created (a
 * read-only store: readers may go on without it).
 */
int store_lock(struct store *s, enum store_lock_mode mode, bool wait, int *ret_fd);

/* Which chunks the manifests of a store reference, and how many manifests reference each. */
struct store_refs;

/*
 * Reads every image and snapshot manifest. A manifest that does not decode
 * (damaged, or from a newer version) fails the whole load: -EBADMSG or
 * -EPROTONOSUPPORT, with *ret_bad (if non-NULL) naming it ("image 'x'"),
 * because its chunks cannot be known.
 */
int store_refs_load(struct store *s, struct store_refs **ret, char **ret_bad);
/* How many manifests reference @id (each manifest counts once). */
size_t store_refs_count(const struct store_refs *refs, const struct chunk_id *id);
size_t store_refs_n_chunks(const struct store_refs *refs);
size_t store_refs_n_images(const struct store_refs *refs);
size_t store_refs_n_snapshots(const struct store_refs *refs);
struct store_refs *store_refs_free(struct store_refs *refs);

/* Storage accounting of one manifest against the references of the whole store. */
struct image_storage {
	uint64_t logical_bytes; /* sum of the disks' used bytes */
	uint64_t stored_bytes;  /* size on disk of its distinct chunk files */
	uint64_t unique_bytes;  /* of those, the chunks no other image or snapshot references */
	uint64_t chunks, unique_chunks;
	uint64_t missing_chunks;
};
int store_image_storage(struct store *s, const struct manifest *m, const struct store_refs *refs,
			struct image_storage *ret);

struct gc_options {
	bool dry_run;
	int64_t now;               /* Unix seconds, for the age of temporaries */
	int64_t tmp_age_seconds;   /* temporaries older than this are leftovers */
};
#define GC_TMP_AGE_SECONDS_DEFAULT 3600

struct gc_stats {
	uint64_t removed_chunks, removed_bytes;
	uint64_t kept_chunks, kept_bytes;
	uint64_t removed_tmp, removed_tmp_bytes;
	uint64_t removed_orphans;  /* deprecation and .sig files whose manifest is gone */
	size_t images, snapshots;
};

/*
 * Removes every chunk file no manifest references, temporaries ("*.tmp.*")
 * older than o->tmp_age_seconds, and deprecation and signature files whose
 * manifest no longer exists. The caller must hold the EXCLUSIVE store lock. Refuses
 * (store_refs_load()'s errors, *ret_bad naming the manifest) if any
 * manifest cannot be read. With o->dry_run, counts and removes nothing.
 */
int store_gc(struct store *s, const struct gc_options *o, struct gc_stats *ret, char **ret_bad);

struct verify_stats {
	uint64_t chunks, chunk_bytes;
	size_t images, snapshots;
	uint64_t problems;
};

/* Called once per problem with one line of text, e.g. "chunk 3fa9...: does not match its ID". */
typedef void (*store_problem_fn)(const char *line, void *userdata);

/*
 * Reads, decodes and re-hashes every chunk file; decodes every manifest and
 * deprecation file; checks that every chunk a manifest names is present
 * and has the size the manifest implies. Reports each problem once through
 * @fn. Returns 0 when the walk completed (problems are counted in
 * ret->problems), -errno if it could not.
 */
int store_verify(struct store *s, store_problem_fn fn, void *userdata, struct verify_stats *ret);
