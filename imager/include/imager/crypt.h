/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Encryption at rest (docs/FORMAT.md, "Encryption"). A store has one random
 * 256-bit data key. HKDF-SHA-256 derives from it the key that names chunks
 * (chunk IDs are HMAC-SHA-256 of the plaintext, so the store does not reveal
 * plaintext hashes and identical chunks still deduplicate), the key that
 * encrypts chunk files (AES-256-GCM, random nonce) and the keys that seal
 * manifests (AES-256-GCM, nonce synthesised from the plaintext, so sealing
 * is deterministic). The data key itself is stored only wrapped, once per
 * key slot: by a key-encryption key from a passphrase (scrypt, parameters
 * recorded) or from a key file (HKDF). Slots come and go without touching
 * any chunk or manifest.
 *
 * Everything here is pure computation except crypt_secret_load_key_file()
 * and crypt_key_file_generate(); the store-level operations (unlock, add a
 * slot...) are declared in imager/store.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imager/chunk.h"
#include "imager/manifest.h"

#define CRYPT_KEY_BYTES		     32 /* AES-256, HMAC-SHA-256 keys */
#define CRYPT_NONCE_BYTES	     12 /* the GCM nonce size NIST SP 800-38D recommends */
#define CRYPT_TAG_BYTES		     16
#define CRYPT_KEY_ID_BYTES	     8 /* names a data key in public; derived, not secret */
#define CRYPT_STORE_ID_BYTES	     16
#define CRYPT_SALT_BYTES	     16
#define CRYPT_SLOT_ID_BYTES	     4
#define CRYPT_SLOTS_MAX		     16
#define CRYPT_PASSPHRASE_BYTES_MAX   1024
#define CRYPT_KEY_FILE_BYTES_MIN     32 /* the key file itself is the entropy: at least 256 bits */
#define CRYPT_KEY_FILE_BYTES_MAX     4096
#define CRYPT_KEY_FILE_BYTES_DEFAULT 64

/* "hex" forms, with the NUL */
#define CRYPT_KEY_ID_STRING_MAX	 (2 * CRYPT_KEY_ID_BYTES + 1)
#define CRYPT_SLOT_ID_STRING_MAX (2 * CRYPT_SLOT_ID_BYTES + 1)

/* The store config's value for "encryption=" (docs/FORMAT.md, "config"). */
#define CRYPT_CIPHER_NAME "aes-256-gcm"

/* Sealed manifests: a manifest header with this required-feature flag (v1 readers refuse). */
#define CRYPT_MANIFEST_FLAG_SEALED UINT32_C(1)
/* header (96) + seal header (32) + tag */
#define CRYPT_SEALED_MANIFEST_OVERHEAD_BYTES (96 + 32 + CRYPT_TAG_BYTES)

/* ---- secrets: what a person or a key file supplies ---- */

enum crypt_secret_kind {
	CRYPT_SECRET_PASSPHRASE,
	CRYPT_SECRET_KEY_FILE,
	_CRYPT_SECRET_KIND_MAX,
	_CRYPT_SECRET_KIND_INVALID = -22,
};
/* "passphrase", "key-file" */
const char *crypt_secret_kind_to_string(enum crypt_secret_kind k);

struct crypt_secret {
	enum crypt_secret_kind kind;
	size_t size;
	uint8_t *data; /* wiped on free */
};

/*
 * Copies @size bytes of @data. A passphrase is 1..CRYPT_PASSPHRASE_BYTES_MAX
 * bytes, a key file's contents CRYPT_KEY_FILE_BYTES_MIN..MAX bytes; anything
 * else is -EMSGSIZE (-EINVAL for an unknown kind).
 */
int crypt_secret_new(enum crypt_secret_kind kind, const void *data, size_t size,
		     struct crypt_secret **ret);
/* Reads a key file (every byte counts, newline included); -EMSGSIZE if too short or long. */
int crypt_secret_load_key_file(int dir_fd, const char *path, struct crypt_secret **ret);
struct crypt_secret *crypt_secret_free(struct crypt_secret *s);
/* Writes CRYPT_KEY_FILE_BYTES_DEFAULT random bytes to a new file (O_EXCL, mode 0600). */
int crypt_key_file_generate(int dir_fd, const char *path);

/* ---- primitives ---- */

int crypt_random(void *buf, size_t size);
/*
 * AES-256-GCM. @in and @out may be the same buffer. crypt_aead_open()
 * returns -EBADMSG if the tag does not authenticate @aad and @in; @out then
 * holds garbage that must not be used.
 */
int crypt_aead_seal(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t nonce[CRYPT_NONCE_BYTES],
		    const void *aad, size_t aad_size, const void *in, void *out, size_t size,
		    uint8_t ret_tag[CRYPT_TAG_BYTES]);
int crypt_aead_open(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t nonce[CRYPT_NONCE_BYTES],
		    const void *aad, size_t aad_size, const void *in, void *out, size_t size,
		    const uint8_t tag[CRYPT_TAG_BYTES]);
/* HKDF-SHA-256 (RFC 5869): extract with @salt (may be NULL), expand with @info. */
int crypt_hkdf(const void *ikm, size_t ikm_size, const void *salt, size_t salt_size,
	       const char *info, void *out, size_t out_size);

/* scrypt parameters of a passphrase slot (RFC 7914 names) */
struct crypt_scrypt_params {
	uint64_t n; /* CPU/memory cost, a power of two */
	uint32_t r; /* block size */
	uint32_t p; /* parallelism */
};
/*
 * The parameters for a new passphrase slot: N = 2^17, r = 8, p = 1 (128 MiB,
 * about 0.3-0.5 s on the machines the project is tested on). With
 * IMAGER_KDF_FAST=1 in the environment N = 2^10, which is for tests only: a
 * passphrase behind it can be guessed a thousand times faster.
 */
void crypt_scrypt_params_default(struct crypt_scrypt_params *ret);
/* The limits a reader accepts from a config (bounds memory and time). */
bool crypt_scrypt_params_valid(const struct crypt_scrypt_params *p);

/* ---- the keys of an unlocked store ---- */

struct crypt_keys {
	uint8_t id_key[CRYPT_KEY_BYTES];	     /* HMAC key naming chunks */
	uint8_t chunk_key[CRYPT_KEY_BYTES];	     /* AES-256-GCM key of chunk files */
	uint8_t manifest_key[CRYPT_KEY_BYTES];	     /* AES-256-GCM key of manifests */
	uint8_t manifest_nonce_key[CRYPT_KEY_BYTES]; /* HMAC key synthesising manifest nonces */
	uint8_t key_id[CRYPT_KEY_ID_BYTES];	     /* public name of the data key */
};

int crypt_keys_derive(const uint8_t data_key[CRYPT_KEY_BYTES],
		      const uint8_t store_id[CRYPT_STORE_ID_BYTES], struct crypt_keys *ret);
void crypt_keys_wipe(struct crypt_keys *k);
/* HMAC-SHA-256(id_key, data): a chunk's ID in an encrypted store. */
void crypt_chunk_id(const struct crypt_keys *k, const void *data, size_t size,
		    struct chunk_id *ret);

/* ---- the encryption lines of a store config: store identity and key slots ---- */

struct crypt_slot {
	uint8_t id[CRYPT_SLOT_ID_BYTES];
	enum crypt_secret_kind kind;
	struct crypt_scrypt_params scrypt; /* passphrase slots */
	uint8_t salt[CRYPT_SALT_BYTES];
	uint8_t nonce[CRYPT_NONCE_BYTES];
	uint8_t wrapped[CRYPT_KEY_BYTES]; /* the data key, encrypted */
	uint8_t tag[CRYPT_TAG_BYTES];
};

struct crypt_config {
	uint8_t store_id[CRYPT_STORE_ID_BYTES];
	uint8_t key_id[CRYPT_KEY_ID_BYTES];
	size_t n_slots;
	struct crypt_slot slots[CRYPT_SLOTS_MAX];
};

/*
 * Parses the encryption lines of a whole config text (other lines are
 * skipped). -EBADMSG for a damaged or missing line, -EPROTONOSUPPORT for a
 * cipher or chunk-ID scheme this version does not know. A slot of an
 * unknown kind is -EPROTONOSUPPORT too: rewriting the config would lose it.
 */
int crypt_config_parse(const char *text, struct crypt_config *ret);
/* The lines crypt_config_parse() reads, "encryption=" first, each ending in "\n". */
int crypt_config_format(const struct crypt_config *c, char **ret);
/* True for the config keys crypt_config_format() writes (to drop them before rewriting). */
bool crypt_config_line_is_ours(const char *line);
/* A new store identity and data key, with one slot for @secret. */
int crypt_config_new(const struct crypt_secret *secret, const struct crypt_scrypt_params *params,
		     struct crypt_config *ret, uint8_t ret_data_key[CRYPT_KEY_BYTES]);
/* Adds a slot wrapping @data_key for @secret; -E2BIG when CRYPT_SLOTS_MAX are in use. */
int crypt_config_add_slot(struct crypt_config *c, const uint8_t data_key[CRYPT_KEY_BYTES],
			  const struct crypt_secret *secret,
			  const struct crypt_scrypt_params *params, size_t *ret_index);
/*
 * Tries every slot of @secret's kind. -EKEYREJECTED if none unwraps (a wrong
 * passphrase or key file), -EBADMSG if one unwraps to a key that does not
 * match the config's key ID. *ret_slot is the index of the slot that did.
 */
int crypt_config_unlock(const struct crypt_config *c, const struct crypt_secret *secret,
			uint8_t ret_data_key[CRYPT_KEY_BYTES], size_t *ret_slot);
void crypt_config_remove_slot(struct crypt_config *c, size_t index);

/* ---- sealed manifests ---- */

bool crypt_manifest_is_sealed(const void *data, size_t size);
/*
 * Encrypts an encoded manifest (the whole file manifest_encode() made) into
 * a sealed one bound to @kind and @name. Deterministic: the same input gives
 * the same bytes (signatures are made over them before they are written).
 */
int crypt_manifest_seal(const struct crypt_keys *k, enum manifest_kind kind, const char *name,
			const void *data, size_t size, void **ret, size_t *ret_size);
/*
 * The inverse. -EBADMSG if the file is damaged, was sealed for another kind
 * or name, or by another key; -EPROTONOSUPPORT for an unknown cipher.
 */
int crypt_manifest_open(const struct crypt_keys *k, enum manifest_kind kind, const char *name,
			const void *data, size_t size, void **ret, size_t *ret_size);

/* ---- the encryption state of an open store (owned by struct store) ---- */

struct store_crypt {
	struct crypt_config cfg;
	bool unlocked;
	size_t unlocked_slot;		   /* the slot the secret opened */
	uint8_t data_key[CRYPT_KEY_BYTES]; /* kept to wrap it for new slots; wiped on free */
	struct crypt_keys keys;
};

struct store;
/* The state of @s; NULL for an unencrypted store. For imager/lib only. */
struct store_crypt *store_crypt_of(const struct store *s);
/* Loads the encryption lines of the store config at @dir_fd (locked: no keys yet). */
int store_crypt_load(int dir_fd, struct store_crypt **ret);
struct store_crypt *store_crypt_free(struct store_crypt *c);
/* Unlocks with @secret (see crypt_config_unlock()). */
int store_crypt_unlock(struct store_crypt *c, const struct crypt_secret *secret);
/* Unlocks with a known data key (the store creator has it: no second KDF run). */
int store_crypt_unlock_with_key(struct store_crypt *c, const uint8_t data_key[CRYPT_KEY_BYTES],
				size_t slot);
/* The keys of @c: NULL (and 0) for a plain store (c == NULL), -ENOKEY while locked. */
int store_crypt_keys(const struct store_crypt *c, const struct crypt_keys **ret);
/* The config text of a new encrypted store's encryption lines, and its data key. */
int store_crypt_new_config(const struct crypt_secret *secret, char **ret_lines,
			   uint8_t ret_data_key[CRYPT_KEY_BYTES]);
