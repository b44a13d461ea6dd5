/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Signed images (docs/FORMAT.md, "Signatures"). An Ed25519 signature covers
 * the manifest's bytes exactly as stored, so any change to a manifest breaks
 * every signature over it. Manifests stay immutable: signatures live beside
 * them in a detached file, <dir>/<name>.sig ("images/NAME.sig"), which holds
 * one record per signing key and is replaced atomically (temporary file,
 * fsync, rename) whenever a signature is added.
 *
 * The signed message (SIGN_MESSAGE_BYTES_MAX bytes at most):
 *
 *	"imager-manifest-signature-v1" NUL    29 bytes, domain separation
 *	u8 name_length, name                   the image name (1..63 bytes)
 *	SHA-256 of the manifest file           32 bytes
 *	le64 signed_unix                       the signer's clock
 *
 * Keys are OpenSSL PEM files: a PKCS#8 "PRIVATE KEY" (unencrypted) and a
 * SubjectPublicKeyInfo "PUBLIC KEY", as `openssl genpkey -algorithm ed25519`
 * and `openssl pkey -pubout` write them. A key's ID is the first 8 bytes of
 * the SHA-256 of its raw 32-byte public key, shown as 16 hex digits; it names
 * a key for people, while trust decisions compare whole public keys.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imager/manifest.h"

struct store;

#define SIGN_PUBLIC_KEY_BYTES 32
#define SIGN_SIGNATURE_BYTES 64
#define SIGN_KEY_ID_BYTES 8
#define SIGN_KEY_ID_STRING_MAX (2 * SIGN_KEY_ID_BYTES + 1)
/* a PEM Ed25519 key is about 120 bytes; room for comments around it */
#define SIGN_KEY_FILE_BYTES_MAX 16384
#define SIGN_RECORDS_MAX 64
#define SIGN_SUFFIX ".sig"

enum sign_algorithm {
	SIGN_ALGORITHM_ED25519 = 1,
};

/* A private key (which also knows its public half) or a public key alone. */
struct sign_key;

/* A new random Ed25519 key pair. */
int sign_key_generate(struct sign_key **ret);
/*
 * Loads a PEM key file (at most SIGN_KEY_FILE_BYTES_MAX, relative to @dir_fd,
 * which may be AT_FDCWD). -ENOENT if missing; -EBADMSG if it is not an
 * Ed25519 key of the wanted kind (garbage, another algorithm, a public key
 * where a private one is wanted, a passphrase-protected key), -EFBIG never
 * (too large is -EBADMSG too).
 */
int sign_key_load_private(int dir_fd, const char *path, struct sign_key **ret);
int sign_key_load_public(int dir_fd, const char *path, struct sign_key **ret);
/* A public key from its 32 raw bytes. */
int sign_key_from_raw_public(const uint8_t pub[SIGN_PUBLIC_KEY_BYTES], struct sign_key **ret);
/*
 * Writes the private key (PKCS#8 PEM, mode 0600) or the public key
 * (SubjectPublicKeyInfo PEM, mode 0644) to @path, atomically, never replacing
 * an existing file (-EEXIST). -EINVAL if @k has no private half.
 */
int sign_key_save_private(const struct sign_key *k, int dir_fd, const char *path);
int sign_key_save_public(const struct sign_key *k, int dir_fd, const char *path);
bool sign_key_has_private(const struct sign_key *k);
void sign_key_public_raw(const struct sign_key *k, uint8_t ret[SIGN_PUBLIC_KEY_BYTES]);
void sign_key_id(const struct sign_key *k, uint8_t ret[SIGN_KEY_ID_BYTES]);
/* 16 lower-case hex digits */
char *sign_key_id_to_string(const uint8_t id[SIGN_KEY_ID_BYTES],
			    char buf[static SIGN_KEY_ID_STRING_MAX]);
struct sign_key *sign_key_free(struct sign_key *k);

/* One signature: the fixed fields of a record of the .sig file. */
struct sign_record {
	uint8_t algorithm;       /* enum sign_algorithm */
	int64_t signed_unix;     /* part of the signed message */
	uint8_t key_id[SIGN_KEY_ID_BYTES];
	uint8_t public_key[SIGN_PUBLIC_KEY_BYTES];
	uint8_t manifest_sha256[32]; /* what was signed, for telling "another manifest" apart */
	uint8_t signature[SIGN_SIGNATURE_BYTES];
};

/* SHA-256 of a manifest file's bytes, the digest every signature covers. */
void sign_manifest_sha256(const void *manifest, size_t size, uint8_t ret[32]);

/* Signs manifest @name whose file hashes to @manifest_sha256; -EINVAL without a private key. */
int sign_record_create(const struct sign_key *k, const char *name,
		       const uint8_t manifest_sha256[32], int64_t signed_unix,
		       struct sign_record *ret);

enum sign_verdict {
	SIGN_VERDICT_VALID,
	SIGN_VERDICT_BAD_SIGNATURE,   /* does not verify: damaged or forged */
	SIGN_VERDICT_OTHER_MANIFEST,  /* over other bytes: the manifest was changed or replaced */
	SIGN_VERDICT_BAD_KEY_ID,      /* the recorded key ID is not its key's */
	SIGN_VERDICT_UNKNOWN_ALGORITHM,
	_SIGN_VERDICT_MAX,
	_SIGN_VERDICT_INVALID = -22,
};
/* "valid", "does not verify", "signs a different manifest", ... */
const char *sign_verdict_to_string(enum sign_verdict v);

/* Checks @rec against manifest @name whose file hashes to @manifest_sha256. Pure. */
enum sign_verdict sign_record_verify(const struct sign_record *rec, const char *name,
				     const uint8_t manifest_sha256[32]);
/* True if @rec carries public key @k (the trust decision). */
bool sign_record_is_by(const struct sign_record *rec, const struct sign_key *k);

/*
 * The .sig file (docs/FORMAT.md, "Signature files"). decode checks magic,
 * versions, sizes and reserved bytes, every count against SIGN_RECORDS_MAX
 * and the bytes present: -EBADMSG on damage, -EPROTONOSUPPORT for a larger
 * major version. It does not verify signatures (sign_record_verify()).
 */
int sign_file_encode(const struct sign_record *recs, size_t n, void **ret, size_t *ret_size);
int sign_file_decode(const void *data, size_t size, struct sign_record **ret, size_t *ret_n);

/* ---- in a store ---- */

/*
 * The bytes of manifest @name of @kind exactly as stored, bounded by
 * MANIFEST_BYTES_MAX; not decoded. -ENOENT if there is none.
 */
int sign_read_manifest(struct store *s, enum manifest_kind kind, const char *name, void **ret,
		       size_t *ret_size);
/* The records of @name's .sig file; -ENOENT if it has none, -EBADMSG if damaged. */
int sign_load(struct store *s, enum manifest_kind kind, const char *name,
	      struct sign_record **ret, size_t *ret_n);

/*
 * Adds (or, for a key that signed before, replaces) a signature by @k to
 * the published manifest @name: reads the manifest, refuses (-EBADMSG) one
 * that does not decode, signs its bytes, and replaces the .sig file with one
 * holding the other records unchanged plus this one. Holds an exclusive
 * flock(2) on the manifest file meanwhile, so concurrent signers do not lose
 * each other's records. -ENOENT if no such manifest; -E2BIG at
 * SIGN_RECORDS_MAX records. Stores the new record in *ret_record if given.
 */
int sign_add(struct store *s, enum manifest_kind kind, const char *name, const struct sign_key *k,
	     int64_t signed_unix, struct sign_record *ret_record);

/*
 * For a capture, before store_put_manifest(@m): writes @m's .sig file with
 * one signature by @k over the bytes store_put_manifest() will write
 * (store_encode_manifest() is deterministic), replacing a stale .sig left by a
 * deleted image of the same name. So an image is signed from the moment it
 * is listed. With @k NULL, only removes a stale .sig. -EEXIST if manifest
 * @m->name exists already (its .sig is left alone).
 */
int sign_prepare_publish(struct store *s, const struct manifest *m, const struct sign_key *k,
			 int64_t signed_unix);

/* Removes @name's .sig file; 1 removed, 0 there was none, -errno. */
int sign_remove(struct store *s, enum manifest_kind kind, const char *name);
