/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A store: a directory holding content-addressed chunks and image manifests
 * (docs/FORMAT.md). casync's layout: chunks/<4 hex>/<64 hex>.chunk,
 * images/<name>.manifest; everything is published atomically (O_EXCL temp
 * file, made durable, renamed without replace; chunks in batches). All
 * functions are safe to call from several threads at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imager/chunk.h"
#include "imager/crypt.h"
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

/* Chunks per batch: 256 MiB of chunk data, one syncfs() per fraction of a second of capture. */
#define STORE_BATCH_CHUNKS 64

/*
 * Adds a chunk. Idempotent: an ID already present is a successful no-op.
 * Returns 1 if the chunk was newly written, 0 if it was present already,
 * -errno; *ret_stored_bytes is its size on disk either way. The chunk is
 * written to a temporary and joins the store's pending batch: it becomes
 * durable and gets its name at the next store_commit_chunks(), which runs
 * by itself every STORE_BATCH_CHUNKS chunks and before every manifest is
 * published. Until then this store handle sees it (dedup, has, get), other
 * processes do not; store_free() discards an uncommitted batch.
 */
int store_put_chunk(struct store *s, const struct chunk_id *id, const void *data, size_t size,
		    uint64_t *ret_stored_bytes);
/*
 * Makes the pending chunks durable (one syncfs()) and renames them to their
 * names. With @durable, one more syncfs() makes the renames durable too:
 * after it returns, every chunk name this or another process has published
 * survives a crash. store_put_manifest() calls it with @durable.
 */
int store_commit_chunks(struct store *s, bool durable);
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
/*
 * Starts reading a chunk file into the page cache (readahead), so that a
 * store_get_chunk() a little later does not wait for it. Best effort.
 */
void store_prefetch_chunk(struct store *s, const struct chunk_id *id);
/*
 * Reads a chunk file of an encrypted store and checks its authentication tag
 * only (chunk_authenticate_sealed()): -EBADMSG if it was damaged or altered,
 * -ENOENT if missing, -EOPNOTSUPP in an unencrypted store (its chunks carry
 * no tag; store_get_chunk() checks their hash when they are read).
 */
int store_authenticate_chunk(struct store *s, const struct chunk_id *id, size_t size);
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

/*
 * ---- Encryption at rest (docs/FORMAT.md, "Encryption"; imager/lib/crypt.c) ----
 *
 * An encrypted store names chunks by HMAC-SHA-256 under a store key,
 * encrypts chunk files and seals manifests with AES-256-GCM. Opened without
 * its secret it is "locked": image names can be listed (they are file
 * names), while reading or writing chunks and manifests gives -ENOKEY.
 * Unlock (and change key slots) before sharing @s between threads.
 */

/*
 * store_open() with a secret. An existing encrypted store is unlocked with
 * @secret (-EKEYREJECTED if it opens no key slot: a wrong passphrase or key
 * file), or opened locked if @secret is NULL. With @create, a missing store
 * is made encrypted with one key slot for @secret, or unencrypted if @secret
 * is NULL. An unencrypted store ignores @secret. store_open() is this
 * function with @secret NULL.
 */
int store_open_with_secret(const char *path, bool create, const struct crypt_secret *secret,
			   struct store **ret);
bool store_is_encrypted(const struct store *s);
/* Encrypted and not unlocked yet. */
bool store_is_locked(const struct store *s);
/* -EKEYREJECTED if @secret opens no slot; 0 (nothing to do) for an unencrypted store. */
int store_unlock(struct store *s, const struct crypt_secret *secret);
/* The public ID of the store's data key (16 hex digits); -ENODATA if unencrypted. */
int store_key_id(const struct store *s, char buf[static CRYPT_KEY_ID_STRING_MAX]);

struct store_key_slot {
	char id[CRYPT_SLOT_ID_STRING_MAX];
	enum crypt_secret_kind kind;
	struct crypt_scrypt_params scrypt; /* passphrase slots */
	bool unlocked_this;                /* the slot @s was unlocked with */
};
/* The key slots (no secret needed); -ENODATA if unencrypted. Free *ret with free(). */
int store_key_slots(const struct store *s, struct store_key_slot **ret, size_t *ret_n);
/*
 * Key slot changes: each needs an unlocked store (-ENOKEY), rewrites only the
 * config (atomically, under a lock) and never touches chunks or manifests.
 * add: a new slot for @secret (-E2BIG beyond CRYPT_SLOTS_MAX).
 * replace: a new slot for @secret takes the place of the slot @s was
 * unlocked with (changing a passphrase). remove: -ENOENT if no slot has that
 * ID, -EBUSY for the last slot, -EDEADLK for the slot @s was unlocked with
 * (unlock with another secret first: proof that one still works).
 */
int store_add_key_slot(struct store *s, const struct crypt_secret *secret,
		       char ret_id[static CRYPT_SLOT_ID_STRING_MAX]);
int store_replace_key_slot(struct store *s, const struct crypt_secret *secret,
			   char ret_id[static CRYPT_SLOT_ID_STRING_MAX]);
int store_remove_key_slot(struct store *s, const char *id);

/*
 * The exact bytes store_put_manifest() writes for @m: the encoded manifest,
 * sealed in an encrypted store. Deterministic (signatures are made over
 * these bytes before they are published).
 */
int store_encode_manifest(struct store *s, const struct manifest *m, void **ret,
			  size_t *ret_size);
/*
 * Decodes a manifest's bytes as stored in @s (unsealing them in an encrypted
 * store; a plain manifest there is -EBADMSG), and checks that it is the
 * manifest of @kind and @name (-EBADMSG otherwise).
 */
int store_decode_manifest(struct store *s, enum manifest_kind kind, const char *name,
			  const void *data, size_t size, struct manifest **ret);
/*
 * Decodes a chunk file's bytes as stored in @s into @buf (@size bytes) and
 * checks them against @id (chunk_decode() with the store's keys). @file is
 * used as scratch space: its contents are undefined afterwards.
 */
int store_decode_chunk(struct store *s, const struct chunk_id *id, void *file, size_t file_size,
		       void *buf, size_t size);
