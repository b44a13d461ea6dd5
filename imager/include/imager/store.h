/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A store: a directory holding content-addressed chunks and image manifests
 * (docs/FORMAT.md). casync's layout: chunks/<4 hex>/<64 hex>.chunk,
 * images/<name>.manifest; everything is published atomically (O_EXCL temp
 * file, fsync, rename without replace, fsync of the directory). All
 * functions are safe to call from several threads at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imager/chunk.h"
#include "imager/manifest.h"

struct store;
struct manifest;

/* Opens the store at @path; with @create, makes it (and its config) if missing. -ENOENT otherwise. */
int store_open(const char *path, bool create, struct store **ret);
struct store *store_free(struct store *s);
const char *store_path(const struct store *s);
/*
 * The store directory's file descriptor, owned by @s (do not close it). For
 * modules that keep their own files in a store (lifecycle, gc); they must
 * follow the publish rules of docs/FORMAT.md.
 */
int store_dir_fd(const struct store *s);

/*
 * Adds a chunk. Idempotent: an ID already present is a successful no-op.
 * Returns 1 if the chunk was newly written (and *ret_stored_bytes the size on
 * disk), 0 if it was present already, -errno.
 */
int store_put_chunk(struct store *s, const struct chunk_id *id, const void *data, size_t size,
		    uint64_t *ret_stored_bytes);
/*
 * The ID of a chunk's bytes in this store. Today the SHA-256 of the bytes;
 * an encrypted store keys it (docs/FORMAT.md), so every caller that names or
 * checks chunks (capture, flash's read-back verification) goes through here.
 */
void store_chunk_id(const struct store *s, const void *data, size_t size, struct chunk_id *ret);
/* 1 present, 0 absent, -errno */
int store_has_chunk(struct store *s, const struct chunk_id *id);
/* Reads, decompresses and re-verifies a chunk into @buf (@size = its uncompressed size). */
int store_get_chunk(struct store *s, const struct chunk_id *id, void *buf, size_t size);
/* Size of the chunk file on disk, for accounting. */
int store_chunk_stored_bytes(struct store *s, const struct chunk_id *id, uint64_t *ret);
/*
 * Removes a chunk file. Returns 1 if it was removed, 0 if it was not there
 * (or is the implied all-zero chunk), -errno. It does not look at manifests:
 * the caller must know that no image references @id (e.g. an import
 * removing the raw chunks it wrote itself and no image uses,
 * vdisk_chunks_drop_new()). The chunk's "chunks/<4 hex>/" directory stays,
 * so a concurrent store_put_chunk() into it never fails.
 */
int store_remove_chunk(struct store *s, const struct chunk_id *id);

/*
 * Publishes a manifest under its name, in images/ or snapshots/ by m->kind;
 * -EEXIST if a manifest of that kind and name exists.
 */
int store_put_manifest(struct store *s, const struct manifest *m);
/* An image: -ENOENT if no such image, -EBADMSG if the manifest is damaged. */
int store_get_manifest(struct store *s, const char *name, struct manifest **ret);
/* Image names, sorted, NULL-terminated. */
int store_list_manifests(struct store *s, char ***ret);
/*
 * The same for either kind. A manifest whose recorded kind or name differs
 * from where it was found is -EBADMSG.
 */
int store_get_manifest_of_kind(struct store *s, enum manifest_kind kind, const char *name,
			       struct manifest **ret);
int store_list_manifests_of_kind(struct store *s, enum manifest_kind kind, char ***ret);
/*
 * "images/NAME.manifest" or "snapshots/NAME.manifest", relative to
 * store_dir_fd(); -EINVAL for an invalid kind or name. For modules that keep
 * files beside a manifest or read its bytes as stored (sign.c).
 */
int store_manifest_relpath(enum manifest_kind kind, const char *name, char **ret);
/*
 * Deletes a manifest (its chunks stay until a garbage collection); the
 * directory is fsync()ed. -ENOENT if there is no such manifest.
 */
int store_remove_manifest(struct store *s, enum manifest_kind kind, const char *name);
