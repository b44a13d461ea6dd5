/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Encryption at rest: AES-256-GCM, HKDF-SHA-256, HMAC-SHA-256 chunk IDs,
 * scrypt and key-file key slots, sealed manifests, and the store operations
 * on key slots (docs/FORMAT.md, "Encryption"). The only file that talks to
 * OpenSSL's cipher and KDF APIs.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "imager/crypt.h"
#include "imager/store.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

/* store.c bounds the config the same way: 16 slots of about 250 bytes fit */
#define CONFIG_BYTES_MAX (16u * 1024)
#define CONFIG_FILE	 "config"

#define SCRYPT_LOG2_N_DEFAULT 17 /* 128 MiB with r = 8: 0.3-0.5 s here (docs/FORMAT.md) */
#define SCRYPT_LOG2_N_FAST    10 /* IMAGER_KDF_FAST=1: tests only */
#define SCRYPT_LOG2_N_MIN     10
#define SCRYPT_LOG2_N_MAX     22
#define SCRYPT_R_MAX	      32
#define SCRYPT_P_MAX	      16
#define SCRYPT_MEMORY_MAX     (UINT64_C(1) << 30) /* what a config may make a reader allocate */

static const char *const secret_kind_name[_CRYPT_SECRET_KIND_MAX] = {
	[CRYPT_SECRET_PASSPHRASE] = "passphrase",
	[CRYPT_SECRET_KEY_FILE] = "key-file",
};

const char *crypt_secret_kind_to_string(enum crypt_secret_kind k)
{
	return k >= 0 && k < _CRYPT_SECRET_KIND_MAX ? secret_kind_name[k] : NULL;
}

static enum crypt_secret_kind secret_kind_from_string(const char *s)
{
	for (int i = 0; i < _CRYPT_SECRET_KIND_MAX; i++)
		if (strcmp(s, secret_kind_name[i]) == 0)
			return i;
	return _CRYPT_SECRET_KIND_INVALID;
}

/* ---- secrets ---- */

struct crypt_secret *crypt_secret_free(struct crypt_secret *s)
{
	if (!s)
		return NULL;
	if (s->data) {
		OPENSSL_cleanse(s->data, s->size);
		free(s->data);
	}
	free(s);
	return NULL;
}
DEFINE_CLEANUP(struct crypt_secret *, crypt_secret_free)

int crypt_secret_new(enum crypt_secret_kind kind, const void *data, size_t size,
		     struct crypt_secret **ret)
{
	_cleanup_(crypt_secret_freep) struct crypt_secret *s = NULL;

	if (!data || !ret)
		return -EINVAL;
	switch (kind) {
	case CRYPT_SECRET_PASSPHRASE:
		if (size == 0 || size > CRYPT_PASSPHRASE_BYTES_MAX)
			return -EMSGSIZE;
		break;
	case CRYPT_SECRET_KEY_FILE:
		if (size < CRYPT_KEY_FILE_BYTES_MIN || size > CRYPT_KEY_FILE_BYTES_MAX)
			return -EMSGSIZE;
		break;
	default:
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->data = malloc(size);
	if (!s->data)
		return -ENOMEM;
	memcpy(s->data, data, size);
	s->size = size;
	s->kind = kind;
	*ret = TAKE_PTR(s);
	return 0;
}

int crypt_secret_load_key_file(int dir_fd, const char *path, struct crypt_secret **ret)
{
	_cleanup_close_ int fd = -EBADF;
	uint8_t buf[CRYPT_KEY_FILE_BYTES_MAX + 1];
	size_t n;
	int r;

	if (!path || !ret)
		return -EINVAL;
	fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* one byte more than allowed tells "too long" from "exactly the maximum" */
	r = read_full(fd, buf, sizeof(buf), &n);
	if (r >= 0)
		r = crypt_secret_new(CRYPT_SECRET_KEY_FILE, buf, n, ret);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

int crypt_key_file_generate(int dir_fd, const char *path)
{
	_cleanup_close_ int fd = -EBADF;
	uint8_t buf[CRYPT_KEY_FILE_BYTES_DEFAULT];
	int r;

	if (!path)
		return -EINVAL;
	r = crypt_random(buf, sizeof(buf));
	if (r < 0)
		return r;
	fd = openat(dir_fd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = write_all(fd, buf, sizeof(buf));
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		(void) unlinkat(dir_fd, path, 0); /* never leave a short key file behind */
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

/* ---- primitives ---- */

int crypt_random(void *buf, size_t size)
{
	if (size > INT_MAX)
		return -EINVAL;
	return RAND_bytes(buf, (int) size) == 1 ? 0 : -EIO;
}

DEFINE_CLEANUP(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free)

static int aead(bool seal, const uint8_t key[CRYPT_KEY_BYTES],
		const uint8_t nonce[CRYPT_NONCE_BYTES], const void *aad, size_t aad_size,
		const void *in, void *out, size_t size, uint8_t tag[CRYPT_TAG_BYTES])
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	int len;

	if (size > INT_MAX || aad_size > INT_MAX || (size > 0 && (!in || !out)))
		return -EINVAL;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* 12-byte nonces are GCM's default IV length */
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, seal ? 1 : 0) != 1)
		return -EIO;
	if (aad_size > 0 && EVP_CipherUpdate(ctx, NULL, &len, aad, (int) aad_size) != 1)
		return -EIO;
	if (size > 0 && EVP_CipherUpdate(ctx, out, &len, in, (int) size) != 1)
		return -EIO;
	if (seal) {
		if (EVP_CipherFinal_ex(ctx, (uint8_t *) out + size, &len) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPT_TAG_BYTES, tag) != 1)
			return -EIO;
		return 0;
	}
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPT_TAG_BYTES, tag) != 1)
		return -EIO;
	if (EVP_CipherFinal_ex(ctx, (uint8_t *) out + size, &len) != 1)
		return -EBADMSG; /* the tag does not authenticate: damaged, forged or another key */
	return 0;
}

int crypt_aead_seal(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t nonce[CRYPT_NONCE_BYTES],
		    const void *aad, size_t aad_size, const void *in, void *out, size_t size,
		    uint8_t ret_tag[CRYPT_TAG_BYTES])
{
	return aead(true, key, nonce, aad, aad_size, in, out, size, ret_tag);
}

int crypt_aead_open(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t nonce[CRYPT_NONCE_BYTES],
		    const void *aad, size_t aad_size, const void *in, void *out, size_t size,
		    const uint8_t tag[CRYPT_TAG_BYTES])
{
	uint8_t t[CRYPT_TAG_BYTES];

	memcpy(t, tag, sizeof(t));
	return aead(false, key, nonce, aad, aad_size, in, out, size, t);
}

DEFINE_CLEANUP(EVP_KDF *, EVP_KDF_free)
DEFINE_CLEANUP(EVP_KDF_CTX *, EVP_KDF_CTX_free)

int crypt_hkdf(const void *ikm, size_t ikm_size, const void *salt, size_t salt_size,
	       const char *info, void *out, size_t out_size)
{
	_cleanup_(EVP_KDF_freep) EVP_KDF *kdf = NULL;
	_cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5], *p = params;

	if (!ikm || ikm_size == 0 || !info || !out)
		return -EINVAL;
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return -EIO;
	ctx = EVP_KDF_CTX_new(kdf);
	if (!ctx)
		return -ENOMEM;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) ikm, ikm_size);
	if (salt && salt_size > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *) salt,
							 salt_size);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *) info, strlen(info));
	*p = OSSL_PARAM_construct_end();
	return EVP_KDF_derive(ctx, out, out_size, params) == 1 ? 0 : -EIO;
}

static void hmac_sha256(const uint8_t key[CRYPT_KEY_BYTES], const void *data, size_t size,
			uint8_t out[32])
{
	unsigned len = 0;

	/* HMAC() keeps no shared state, so threads may call it at once; it
	 * cannot fail for SHA-256 short of a broken libcrypto */
	if (!HMAC(EVP_sha256(), key, CRYPT_KEY_BYTES, data, size, out, &len) || len != 32)
		abort();
}

void crypt_scrypt_params_default(struct crypt_scrypt_params *ret)
{
	const char *fast = getenv("IMAGER_KDF_FAST");
	bool f = fast && strcmp(fast, "1") == 0;

	*ret = (struct crypt_scrypt_params){
		.n = UINT64_C(1) << (f ? SCRYPT_LOG2_N_FAST : SCRYPT_LOG2_N_DEFAULT),
		.r = 8,
		.p = 1,
	};
}

bool crypt_scrypt_params_valid(const struct crypt_scrypt_params *p)
{
	if (!p || p->n < (UINT64_C(1) << SCRYPT_LOG2_N_MIN) ||
	    p->n > (UINT64_C(1) << SCRYPT_LOG2_N_MAX) || (p->n & (p->n - 1)) != 0)
		return false;
	if (p->r == 0 || p->r > SCRYPT_R_MAX || p->p == 0 || p->p > SCRYPT_P_MAX)
		return false;
	return 128 * (uint64_t) p->r * (p->n + 2 + p->p) <= SCRYPT_MEMORY_MAX;
}

/* ---- keys ---- */

int crypt_keys_derive(const uint8_t data_key[CRYPT_KEY_BYTES],
		      const uint8_t store_id[CRYPT_STORE_ID_BYTES], struct crypt_keys *ret)
{
	struct crypt_keys k;
	int r;

	/* one label per purpose: no key is ever used for two things */
	r = crypt_hkdf(data_key, CRYPT_KEY_BYTES, store_id, CRYPT_STORE_ID_BYTES,
		       "imager chunk id v1", k.id_key, sizeof(k.id_key));
	if (r >= 0)
		r = crypt_hkdf(data_key, CRYPT_KEY_BYTES, store_id, CRYPT_STORE_ID_BYTES,
			       "imager chunk key v1", k.chunk_key, sizeof(k.chunk_key));
	if (r >= 0)
		r = crypt_hkdf(data_key, CRYPT_KEY_BYTES, store_id, CRYPT_STORE_ID_BYTES,
			       "imager manifest key v1", k.manifest_key, sizeof(k.manifest_key));
	if (r >= 0)
		r = crypt_hkdf(data_key, CRYPT_KEY_BYTES, store_id, CRYPT_STORE_ID_BYTES,
			       "imager manifest nonce v1", k.manifest_nonce_key,
			       sizeof(k.manifest_nonce_key));
	if (r >= 0)
		r = crypt_hkdf(data_key, CRYPT_KEY_BYTES, store_id, CRYPT_STORE_ID_BYTES,
			       "imager key id v1", k.key_id, sizeof(k.key_id));
	if (r >= 0)
		*ret = k;
	OPENSSL_cleanse(&k, sizeof(k));
	return r;
}

void crypt_keys_wipe(struct crypt_keys *k)
{
	if (k)
		OPENSSL_cleanse(k, sizeof(*k));
}

void crypt_chunk_id(const struct crypt_keys *k, const void *data, size_t size, struct chunk_id *ret)
{
	hmac_sha256(k->id_key, data, size, ret->bytes);
}

/* ---- key slots ---- */

/*
 * A slot's text without its wrapped key: what the wrapping authenticates, so
 * no parameter (kind, cost, salt, nonce, slot ID) can be changed unnoticed.
 */
static int slot_format(const struct crypt_slot *s, bool with_wrapped, char **ret)
{
	char id[CRYPT_SLOT_ID_STRING_MAX], salt[2 * CRYPT_SALT_BYTES + 1],
		nonce[2 * CRYPT_NONCE_BYTES + 1],
		wrapped[2 * (CRYPT_KEY_BYTES + CRYPT_TAG_BYTES) + 1] = "";
	uint8_t w[CRYPT_KEY_BYTES + CRYPT_TAG_BYTES];
	char *text;
	int k;

	hex_encode(s->id, sizeof(s->id), id);
	hex_encode(s->salt, sizeof(s->salt), salt);
	hex_encode(s->nonce, sizeof(s->nonce), nonce);
	if (with_wrapped) {
		memcpy(w, s->wrapped, CRYPT_KEY_BYTES);
		memcpy(w + CRYPT_KEY_BYTES, s->tag, CRYPT_TAG_BYTES);
		hex_encode(w, sizeof(w), wrapped);
	}
	switch (s->kind) {
	case CRYPT_SECRET_PASSPHRASE:
		k = asprintf(&text,
			     "%s passphrase scrypt-n=%llu scrypt-r=%u scrypt-p=%u salt=%s "
			     "nonce=%s%s%s",
			     id, (unsigned long long) s->scrypt.n, s->scrypt.r, s->scrypt.p, salt,
			     nonce, with_wrapped ? " wrapped=" : "", wrapped);
		break;
	case CRYPT_SECRET_KEY_FILE:
		k = asprintf(&text, "%s key-file salt=%s nonce=%s%s%s", id, salt, nonce,
			     with_wrapped ? " wrapped=" : "", wrapped);
		break;
	default:
		return -EINVAL;
	}
	if (k < 0)
		return -ENOMEM;
	*ret = text;
	return 0;
}

#define SLOT_AAD_LABEL "imager key slot v1"

static int slot_aad(const struct crypt_config *c, const struct crypt_slot *s, uint8_t **ret,
		    size_t *ret_size)
{
	_cleanup_free_ char *text = NULL;
	size_t n;
	uint8_t *aad;
	int r;

	r = slot_format(s, false, &text);
	if (r < 0)
		return r;
	/* label NUL || store ID || slot text */
	n = sizeof(SLOT_AAD_LABEL) + CRYPT_STORE_ID_BYTES + strlen(text);
	aad = malloc(n);
	if (!aad)
		return -ENOMEM;
	memcpy(aad, SLOT_AAD_LABEL, sizeof(SLOT_AAD_LABEL));
	memcpy(aad + sizeof(SLOT_AAD_LABEL), c->store_id, CRYPT_STORE_ID_BYTES);
	memcpy(aad + sizeof(SLOT_AAD_LABEL) + CRYPT_STORE_ID_BYTES, text, strlen(text));
	*ret = aad;
	*ret_size = n;
	return 0;
}

static int slot_kek(const struct crypt_slot *s, const struct crypt_secret *secret,
		    uint8_t kek[CRYPT_KEY_BYTES])
{
	switch (s->kind) {
	case CRYPT_SECRET_PASSPHRASE: {
		const struct crypt_scrypt_params *p = &s->scrypt;
		uint64_t maxmem;

		if (!crypt_scrypt_params_valid(p))
			return -EBADMSG;
		/* OpenSSL needs 128 r (N + 2) + 128 r p bytes; some slack on top */
		maxmem = 128 * (uint64_t) p->r * (p->n + 2 + p->p) + (UINT64_C(1) << 20);
		if (EVP_PBE_scrypt((const char *) secret->data, secret->size, s->salt,
				   sizeof(s->salt), p->n, p->r, p->p, maxmem, kek,
				   CRYPT_KEY_BYTES) != 1)
			return -ENOMEM; /* the only way it fails with valid parameters */
		return 0;
	}
	case CRYPT_SECRET_KEY_FILE:
		/* the file is already a uniformly random key: no stretching needed */
		return crypt_hkdf(secret->data, secret->size, s->salt, sizeof(s->salt),
				  "imager key file v1", kek, CRYPT_KEY_BYTES);
	default:
		return -EINVAL;
	}
}

static bool slot_id_in_use(const struct crypt_config *c, const uint8_t id[CRYPT_SLOT_ID_BYTES])
{
	for (size_t i = 0; i < c->n_slots; i++)
		if (memcmp(c->slots[i].id, id, CRYPT_SLOT_ID_BYTES) == 0)
			return true;
	return false;
}

int crypt_config_add_slot(struct crypt_config *c, const uint8_t data_key[CRYPT_KEY_BYTES],
			  const struct crypt_secret *secret,
			  const struct crypt_scrypt_params *params, size_t *ret_index)
{
	_cleanup_free_ uint8_t *aad = NULL;
	struct crypt_slot s = {.kind = secret ? secret->kind : _CRYPT_SECRET_KIND_INVALID};
	uint8_t kek[CRYPT_KEY_BYTES];
	size_t aad_size;
	int r;

	if (!c || !data_key || !secret)
		return -EINVAL;
	if (c->n_slots >= CRYPT_SLOTS_MAX)
		return -E2BIG;
	if (s.kind == CRYPT_SECRET_PASSPHRASE) {
		if (params)
			s.scrypt = *params;
		else
			crypt_scrypt_params_default(&s.scrypt);
		if (!crypt_scrypt_params_valid(&s.scrypt))
			return -EINVAL;
	} else if (s.kind != CRYPT_SECRET_KEY_FILE)
		return -EINVAL;
	do {
		r = crypt_random(s.id, sizeof(s.id));
		if (r < 0)
			return r;
	} while (slot_id_in_use(c, s.id));
	r = crypt_random(s.salt, sizeof(s.salt));
	if (r >= 0)
		r = crypt_random(s.nonce, sizeof(s.nonce));
	if (r >= 0)
		r = slot_aad(c, &s, &aad, &aad_size);
	if (r >= 0)
		r = slot_kek(&s, secret, kek);
	if (r < 0)
		return r;
	r = crypt_aead_seal(kek, s.nonce, aad, aad_size, data_key, s.wrapped, CRYPT_KEY_BYTES,
			    s.tag);
	OPENSSL_cleanse(kek, sizeof(kek));
	if (r < 0)
		return r;
	c->slots[c->n_slots] = s;
	if (ret_index)
		*ret_index = c->n_slots;
	c->n_slots++;
	return 0;
}

void crypt_config_remove_slot(struct crypt_config *c, size_t index)
{
	if (!c || index >= c->n_slots)
		return;
	memmove(&c->slots[index], &c->slots[index + 1],
		(c->n_slots - index - 1) * sizeof(c->slots[0]));
	c->n_slots--;
}

int crypt_config_unlock(const struct crypt_config *c, const struct crypt_secret *secret,
			uint8_t ret_data_key[CRYPT_KEY_BYTES], size_t *ret_slot)
{
	uint8_t kek[CRYPT_KEY_BYTES], dk[CRYPT_KEY_BYTES];
	int r = -EKEYREJECTED;

	if (!c || !secret || !ret_data_key)
		return -EINVAL;
	for (size_t i = 0; i < c->n_slots; i++) {
		const struct crypt_slot *s = &c->slots[i];
		_cleanup_free_ uint8_t *aad = NULL;
		struct crypt_keys keys;
		size_t aad_size;
		int k;

		if (s->kind != secret->kind)
			continue;
		k = slot_aad(c, s, &aad, &aad_size);
		if (k >= 0)
			k = slot_kek(s, secret, kek);
		if (k < 0) {
			r = k;
			break;
		}
		k = crypt_aead_open(kek, s->nonce, aad, aad_size, s->wrapped, dk, CRYPT_KEY_BYTES,
				    s->tag);
		OPENSSL_cleanse(kek, sizeof(kek));
		if (k == -EBADMSG)
			continue; /* not this slot's secret */
		if (k < 0) {
			r = k;
			break;
		}
		/* the slot is authentic; its key must also be the store's key */
		k = crypt_keys_derive(dk, c->store_id, &keys);
		if (k >= 0 && memcmp(keys.key_id, c->key_id, CRYPT_KEY_ID_BYTES) != 0)
			k = -EBADMSG;
		crypt_keys_wipe(&keys);
		if (k < 0) {
			r = k;
			break;
		}
		memcpy(ret_data_key, dk, CRYPT_KEY_BYTES);
		if (ret_slot)
			*ret_slot = i;
		r = 0;
		break;
	}
	OPENSSL_cleanse(dk, sizeof(dk));
	OPENSSL_cleanse(kek, sizeof(kek));
	return r;
}

int crypt_config_new(const struct crypt_secret *secret, const struct crypt_scrypt_params *params,
		     struct crypt_config *ret, uint8_t ret_data_key[CRYPT_KEY_BYTES])
{
	struct crypt_config *c;
	struct crypt_keys keys;
	uint8_t dk[CRYPT_KEY_BYTES];
	int r;

	if (!secret || !ret || !ret_data_key)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = crypt_random(c->store_id, sizeof(c->store_id));
	if (r >= 0)
		r = crypt_random(dk, sizeof(dk));
	if (r >= 0)
		r = crypt_keys_derive(dk, c->store_id, &keys);
	if (r >= 0) {
		memcpy(c->key_id, keys.key_id, sizeof(c->key_id));
		crypt_keys_wipe(&keys);
		r = crypt_config_add_slot(c, dk, secret, params, NULL);
	}
	if (r >= 0) {
		*ret = *c;
		memcpy(ret_data_key, dk, sizeof(dk));
	}
	OPENSSL_cleanse(dk, sizeof(dk));
	free(c);
	return r;
}

/* ---- the config lines ---- */

#define LINE_ENCRYPTION	 "encryption="
#define LINE_CHUNK_IDS	 "chunk-ids="
#define LINE_STORE_ID	 "store-id="
#define LINE_KEY_ID	 "key-id="
#define LINE_SLOT	 "key-slot="
#define CHUNK_IDS_SCHEME "hmac-sha256"

bool crypt_config_line_is_ours(const char *line)
{
	return startswith(line, LINE_ENCRYPTION) || startswith(line, LINE_CHUNK_IDS) ||
	       startswith(line, LINE_STORE_ID) || startswith(line, LINE_KEY_ID) ||
	       startswith(line, LINE_SLOT);
}

/* "name=HEX" with exactly 2 * size digits */
static int parse_hex_field(const char *token, const char *name, void *out, size_t size)
{
	size_t n = strlen(name);

	if (strncmp(token, name, n) != 0 || token[n] != '=' || strlen(token + n + 1) != 2 * size)
		return -EBADMSG;
	return hex_decode(token + n + 1, out, size) < 0 ? -EBADMSG : 0;
}

static int parse_u64_field(const char *token, const char *name, uint64_t *ret)
{
	size_t n = strlen(name);

	if (strncmp(token, name, n) != 0 || token[n] != '=')
		return -EBADMSG;
	return safe_atou64(token + n + 1, ret) < 0 ? -EBADMSG : 0;
}

static int slot_parse(const char *value, struct crypt_slot *ret)
{
	_cleanup_free_ char *copy = strdup(value), *again = NULL;
	struct crypt_slot s = {};
	uint8_t w[CRYPT_KEY_BYTES + CRYPT_TAG_BYTES];
	char *tok[8], *save = NULL;
	size_t n = 0, i = 2;
	uint64_t v;
	int r;

	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (n == ELEMENTSOF(tok))
			return -EBADMSG;
		tok[n++] = t;
	}
	if (n < 2 || strlen(tok[0]) != 2 * CRYPT_SLOT_ID_BYTES ||
	    hex_decode(tok[0], s.id, sizeof(s.id)) < 0)
		return -EBADMSG;
	s.kind = secret_kind_from_string(tok[1]);
	if (s.kind < 0)
		return -EPROTONOSUPPORT; /* a newer kind of slot (e.g. another KDF) */
	if (s.kind == CRYPT_SECRET_PASSPHRASE) {
		if (n != 8)
			return -EBADMSG;
		if (parse_u64_field(tok[i++], "scrypt-n", &s.scrypt.n) < 0)
			return -EBADMSG;
		if (parse_u64_field(tok[i++], "scrypt-r", &v) < 0 || v > UINT32_MAX)
			return -EBADMSG;
		s.scrypt.r = (uint32_t) v;
		if (parse_u64_field(tok[i++], "scrypt-p", &v) < 0 || v > UINT32_MAX)
			return -EBADMSG;
		s.scrypt.p = (uint32_t) v;
		if (!crypt_scrypt_params_valid(&s.scrypt))
			return -EBADMSG;
	} else if (n != 5)
		return -EBADMSG;
	if (parse_hex_field(tok[i++], "salt", s.salt, sizeof(s.salt)) < 0 ||
	    parse_hex_field(tok[i++], "nonce", s.nonce, sizeof(s.nonce)) < 0 ||
	    parse_hex_field(tok[i++], "wrapped", w, sizeof(w)) < 0)
		return -EBADMSG;
	memcpy(s.wrapped, w, CRYPT_KEY_BYTES);
	memcpy(s.tag, w + CRYPT_KEY_BYTES, CRYPT_TAG_BYTES);
	/* one spelling only (no leading zeros, no double spaces): what we would write */
	r = slot_format(&s, true, &again);
	if (r < 0)
		return r;
	if (strcmp(again, value) != 0)
		return -EBADMSG;
	*ret = s;
	return 0;
}

int crypt_config_parse(const char *text, struct crypt_config *ret)
{
	_cleanup_free_ char *copy = NULL;
	_cleanup_free_ struct crypt_config *c = NULL;
	bool have_enc = false, have_ids = false, have_store = false, have_key = false;
	char *line, *save = NULL;
	int r;

	if (!text || !ret)
		return -EINVAL;
	copy = strdup(text);
	c = calloc(1, sizeof(*c));
	if (!copy || !c)
		return -ENOMEM;
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (startswith(line, LINE_ENCRYPTION)) {
			if (have_enc)
				return -EBADMSG;
			if (strcmp(line + strlen(LINE_ENCRYPTION), CRYPT_CIPHER_NAME) != 0)
				return -EPROTONOSUPPORT;
			have_enc = true;
		} else if (startswith(line, LINE_CHUNK_IDS)) {
			if (have_ids)
				return -EBADMSG;
			if (strcmp(line + strlen(LINE_CHUNK_IDS), CHUNK_IDS_SCHEME) != 0)
				return -EPROTONOSUPPORT;
			have_ids = true;
		} else if (startswith(line, LINE_STORE_ID)) {
			const char *v = line + strlen(LINE_STORE_ID);
			if (have_store || strlen(v) != 2 * CRYPT_STORE_ID_BYTES ||
			    hex_decode(v, c->store_id, sizeof(c->store_id)) < 0)
				return -EBADMSG;
			have_store = true;
		} else if (startswith(line, LINE_KEY_ID)) {
			const char *v = line + strlen(LINE_KEY_ID);
			if (have_key || strlen(v) != 2 * CRYPT_KEY_ID_BYTES ||
			    hex_decode(v, c->key_id, sizeof(c->key_id)) < 0)
				return -EBADMSG;
			have_key = true;
		} else if (startswith(line, LINE_SLOT)) {
			struct crypt_slot s;

			if (c->n_slots >= CRYPT_SLOTS_MAX)
				return -EBADMSG;
			r = slot_parse(line + strlen(LINE_SLOT), &s);
			if (r < 0)
				return r;
			if (slot_id_in_use(c, s.id))
				return -EBADMSG;
			c->slots[c->n_slots++] = s;
		}
	}
	if (!have_enc || !have_ids || !have_store || !have_key || c->n_slots == 0)
		return -EBADMSG;
	*ret = *c;
	return 0;
}

int crypt_config_format(const struct crypt_config *c, char **ret)
{
	_cleanup_free_ char *text = NULL;
	char store_id[2 * CRYPT_STORE_ID_BYTES + 1], key_id[CRYPT_KEY_ID_STRING_MAX];
	size_t len;

	if (!c || !ret || c->n_slots == 0 || c->n_slots > CRYPT_SLOTS_MAX)
		return -EINVAL;
	hex_encode(c->store_id, sizeof(c->store_id), store_id);
	hex_encode(c->key_id, sizeof(c->key_id), key_id);
	if (asprintf(&text,
		     LINE_ENCRYPTION CRYPT_CIPHER_NAME "\n" LINE_CHUNK_IDS CHUNK_IDS_SCHEME
						       "\n" LINE_STORE_ID "%s\n" LINE_KEY_ID "%s\n",
		     store_id, key_id) < 0)
		return -ENOMEM;
	len = strlen(text);
	for (size_t i = 0; i < c->n_slots; i++) {
		_cleanup_free_ char *slot = NULL;
		char *more;
		int r = slot_format(&c->slots[i], true, &slot);

		if (r < 0)
			return r;
		more = realloc(text, len + strlen(LINE_SLOT) + strlen(slot) + 2);
		if (!more)
			return -ENOMEM;
		text = more;
		len += (size_t) sprintf(text + len, LINE_SLOT "%s\n", slot);
	}
	*ret = TAKE_PTR(text);
	return 0;
}

/* ---- sealed manifests ---- */

/*
 * The 96-byte header has the layout of a manifest's (docs/FORMAT.md,
 * "Header"), with the SEALED required-feature flag: a reader that knows no
 * sealing refuses the file (-EPROTONOSUPPORT) after checking its checksum.
 */
struct sealed_header {
	uint8_t magic[8];	    /* "IMGMANIF" */
	uint16_t version_major;	    /* 1 */
	uint16_t version_minor;	    /* 1 */
	uint32_t header_size;	    /* 96 */
	uint32_t flags;		    /* CRYPT_MANIFEST_FLAG_SEALED */
	uint32_t n_sections;	    /* 0: the body is not sections */
	uint64_t body_size;	    /* file size - 96 */
	uint8_t checksum[32];	    /* SHA-256 of the file with these bytes zero */
	uint8_t content_digest[32]; /* zero: the digest is inside */
} __attribute__((packed));

struct seal_info {
	uint8_t cipher; /* 1: AES-256-GCM */
	uint8_t reserved0[3];
	uint8_t nonce[CRYPT_NONCE_BYTES];
	uint8_t key_id[CRYPT_KEY_ID_BYTES];
	uint8_t reserved1[8];
} __attribute__((packed));

_Static_assert(sizeof(struct sealed_header) == 96, "sealed manifest header");
_Static_assert(offsetof(struct sealed_header, checksum) == 32, "sealed manifest header");
_Static_assert(sizeof(struct seal_info) == 32, "seal info");
_Static_assert(sizeof(struct sealed_header) + sizeof(struct seal_info) + CRYPT_TAG_BYTES ==
		       CRYPT_SEALED_MANIFEST_OVERHEAD_BYTES,
	       "sealed manifest overhead");

#define SEAL_CIPHER_AES_256_GCM 1
static const uint8_t manifest_magic[8] = {'I', 'M', 'G', 'M', 'A', 'N', 'I', 'F'};
#define SEAL_AAD_LABEL	 "imager sealed manifest v1"
#define SEAL_NONCE_LABEL "imager manifest nonce v1"

bool crypt_manifest_is_sealed(const void *data, size_t size)
{
	struct sealed_header h;

	if (!data || size < sizeof(h))
		return false;
	memcpy(&h, data, sizeof(h));
	return memcmp(h.magic, manifest_magic, sizeof(h.magic)) == 0 &&
	       le16toh(h.version_major) == 1 &&
	       (le32toh(h.flags) & CRYPT_MANIFEST_FLAG_SEALED) != 0;
}

static void sha256_with_hole(const uint8_t *file, size_t size, size_t hole_offset, size_t hole_size,
			     uint8_t out[32])
{
	static const uint8_t zero[32];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned len = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, file, hole_offset) != 1 ||
	    EVP_DigestUpdate(ctx, zero, hole_size) != 1 ||
	    EVP_DigestUpdate(ctx, file + hole_offset + hole_size, size - hole_offset - hole_size) !=
		    1 ||
	    EVP_DigestFinal_ex(ctx, out, &len) != 1)
		abort(); /* allocation failure inside libcrypto, or a broken one */
	EVP_MD_CTX_free(ctx);
}

/* label NUL || kind || name length || name || header (checksum zero) || seal info */
static int seal_aad(enum manifest_kind kind, const char *name, const struct sealed_header *h,
		    const struct seal_info *si, uint8_t **ret, size_t *ret_size)
{
	size_t name_len = strlen(name), n;
	struct sealed_header hz = *h;
	uint8_t *aad, *p;

	if (name_len == 0 || name_len > 255)
		return -EINVAL;
	memset(hz.checksum, 0, sizeof(hz.checksum));
	n = sizeof(SEAL_AAD_LABEL) + 2 + name_len + sizeof(hz) + sizeof(*si);
	aad = p = malloc(n);
	if (!aad)
		return -ENOMEM;
	memcpy(p, SEAL_AAD_LABEL, sizeof(SEAL_AAD_LABEL)), p += sizeof(SEAL_AAD_LABEL);
	*p++ = (uint8_t) kind;
	*p++ = (uint8_t) name_len;
	memcpy(p, name, name_len), p += name_len;
	memcpy(p, &hz, sizeof(hz)), p += sizeof(hz);
	memcpy(p, si, sizeof(*si));
	*ret = aad;
	*ret_size = n;
	return 0;
}

int crypt_manifest_seal(const struct crypt_keys *k, enum manifest_kind kind, const char *name,
			const void *data, size_t size, void **ret, size_t *ret_size)
{
	_cleanup_free_ uint8_t *out = NULL, *aad = NULL, *nonce_in = NULL;
	struct sealed_header h = {};
	struct seal_info si = {.cipher = SEAL_CIPHER_AES_256_GCM};
	uint8_t mac[32], tag[CRYPT_TAG_BYTES];
	size_t total, aad_size, name_len, nonce_in_size;
	int r;

	if (!k || !name || !data || !ret || !ret_size || kind < 0 || kind >= _MANIFEST_KIND_MAX)
		return -EINVAL;
	if (size == 0 || size > MANIFEST_BYTES_MAX - CRYPT_SEALED_MANIFEST_OVERHEAD_BYTES)
		return -EINVAL;
	name_len = strlen(name);
	if (name_len == 0 || name_len > 255)
		return -EINVAL;
	total = sizeof(h) + sizeof(si) + size + CRYPT_TAG_BYTES;

	/* Synthetic nonce: a MAC of everything sealed. Equal inputs give equal
	 * files (deterministic, as signing needs); different ones differ in
	 * the nonce, so GCM never sees one nonce with two plaintexts. */
	nonce_in_size = sizeof(SEAL_NONCE_LABEL) + 2 + name_len + size;
	nonce_in = malloc(nonce_in_size);
	if (!nonce_in)
		return -ENOMEM;
	memcpy(nonce_in, SEAL_NONCE_LABEL, sizeof(SEAL_NONCE_LABEL));
	nonce_in[sizeof(SEAL_NONCE_LABEL)] = (uint8_t) kind;
	nonce_in[sizeof(SEAL_NONCE_LABEL) + 1] = (uint8_t) name_len;
	memcpy(nonce_in + sizeof(SEAL_NONCE_LABEL) + 2, name, name_len);
	memcpy(nonce_in + sizeof(SEAL_NONCE_LABEL) + 2 + name_len, data, size);
	hmac_sha256(k->manifest_nonce_key, nonce_in, nonce_in_size, mac);
	memcpy(si.nonce, mac, sizeof(si.nonce));
	memcpy(si.key_id, k->key_id, sizeof(si.key_id));

	memcpy(h.magic, manifest_magic, sizeof(h.magic));
	h.version_major = htole16(1);
	h.version_minor = htole16(1);
	h.header_size = htole32(sizeof(h));
	h.flags = htole32(CRYPT_MANIFEST_FLAG_SEALED);
	h.n_sections = 0;
	h.body_size = htole64(total - sizeof(h));

	r = seal_aad(kind, name, &h, &si, &aad, &aad_size);
	if (r < 0)
		return r;
	out = malloc(total);
	if (!out)
		return -ENOMEM;
	r = crypt_aead_seal(k->manifest_key, si.nonce, aad, aad_size, data,
			    out + sizeof(h) + sizeof(si), size, tag);
	if (r < 0)
		return r;
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), &si, sizeof(si));
	memcpy(out + total - CRYPT_TAG_BYTES, tag, sizeof(tag));
	sha256_with_hole(out, total, offsetof(struct sealed_header, checksum), 32, h.checksum);
	memcpy(out, &h, sizeof(h));
	*ret_size = total;
	*ret = TAKE_PTR(out);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int crypt_manifest_open(const struct crypt_keys *k, enum manifest_kind kind, const char *name,
			const void *data, size_t size, void **ret, size_t *ret_size)
{
	_cleanup_free_ uint8_t *out = NULL, *aad = NULL;
	const uint8_t *file = data;
	struct sealed_header h;
	struct seal_info si;
	uint8_t sum[32];
	size_t n, aad_size;
	int r;

	if (!k || !name || !data || !ret || !ret_size)
		return -EINVAL;
	if (size < CRYPT_SEALED_MANIFEST_OVERHEAD_BYTES + 1 || size > MANIFEST_BYTES_MAX)
		return -EBADMSG;
	memcpy(&h, file, sizeof(h));
	if (memcmp(h.magic, manifest_magic, sizeof(h.magic)) != 0 ||
	    le16toh(h.version_major) != 1 || le32toh(h.header_size) != sizeof(h) ||
	    le64toh(h.body_size) != size - sizeof(h))
		return -EBADMSG;
	sha256_with_hole(file, size, offsetof(struct sealed_header, checksum), 32, sum);
	if (memcmp(sum, h.checksum, sizeof(sum)) != 0)
		return -EBADMSG;
	if (le32toh(h.flags) != CRYPT_MANIFEST_FLAG_SEALED)
		return le32toh(h.flags) & CRYPT_MANIFEST_FLAG_SEALED ? -EPROTONOSUPPORT : -EBADMSG;
	if (h.n_sections != 0 || !all_zero(h.content_digest, sizeof(h.content_digest)))
		return -EBADMSG;
	memcpy(&si, file + sizeof(h), sizeof(si));
	if (si.cipher != SEAL_CIPHER_AES_256_GCM)
		return -EPROTONOSUPPORT;
	if (!all_zero(si.reserved0, sizeof(si.reserved0)) ||
	    !all_zero(si.reserved1, sizeof(si.reserved1)))
		return -EBADMSG;
	if (memcmp(si.key_id, k->key_id, sizeof(si.key_id)) != 0)
		return -EBADMSG; /* sealed by another store's key */
	r = seal_aad(kind, name, &h, &si, &aad, &aad_size);
	if (r < 0)
		return r;
	n = size - CRYPT_SEALED_MANIFEST_OVERHEAD_BYTES;
	out = malloc(n);
	if (!out)
		return -ENOMEM;
	r = crypt_aead_open(k->manifest_key, si.nonce, aad, aad_size, file + sizeof(h) + sizeof(si),
			    out, n, file + size - CRYPT_TAG_BYTES);
	if (r < 0)
		return r;
	*ret_size = n;
	*ret = TAKE_PTR(out);
	return 0;
}

/* ---- a store's encryption state ---- */

struct store_crypt *store_crypt_free(struct store_crypt *c)
{
	if (!c)
		return NULL;
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
	return NULL;
}
DEFINE_CLEANUP(struct store_crypt *, store_crypt_free)

int store_crypt_load(int dir_fd, struct store_crypt **ret)
{
	_cleanup_(store_crypt_freep) struct store_crypt *c = NULL;
	_cleanup_free_ char *text = NULL;
	int r;

	r = read_file_at(dir_fd, CONFIG_FILE, CONFIG_BYTES_MAX, &text, NULL);
	if (r == -EFBIG)
		return -EBADMSG;
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = crypt_config_parse(text, &c->cfg);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}

int store_crypt_unlock_with_key(struct store_crypt *c, const uint8_t data_key[CRYPT_KEY_BYTES],
				size_t slot)
{
	struct crypt_keys keys;
	int r;

	if (!c || !data_key || slot >= c->cfg.n_slots)
		return -EINVAL;
	r = crypt_keys_derive(data_key, c->cfg.store_id, &keys);
	if (r < 0)
		return r;
	if (memcmp(keys.key_id, c->cfg.key_id, CRYPT_KEY_ID_BYTES) != 0) {
		crypt_keys_wipe(&keys);
		return -EBADMSG;
	}
	c->keys = keys;
	crypt_keys_wipe(&keys);
	memcpy(c->data_key, data_key, CRYPT_KEY_BYTES);
	c->unlocked_slot = slot;
	c->unlocked = true;
	return 0;
}

int store_crypt_unlock(struct store_crypt *c, const struct crypt_secret *secret)
{
	uint8_t dk[CRYPT_KEY_BYTES];
	size_t slot;
	int r;

	if (!c || !secret)
		return -EINVAL;
	r = crypt_config_unlock(&c->cfg, secret, dk, &slot);
	if (r >= 0)
		r = store_crypt_unlock_with_key(c, dk, slot);
	OPENSSL_cleanse(dk, sizeof(dk));
	return r;
}

int store_crypt_keys(const struct store_crypt *c, const struct crypt_keys **ret)
{
	if (!c) {
		*ret = NULL;
		return 0;
	}
	if (!c->unlocked)
		return -ENOKEY;
	*ret = &c->keys;
	return 0;
}

int store_crypt_new_config(const struct crypt_secret *secret, char **ret_lines,
			   uint8_t ret_data_key[CRYPT_KEY_BYTES])
{
	_cleanup_free_ struct crypt_config *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	r = crypt_config_new(secret, NULL, c, ret_data_key);
	if (r >= 0)
		r = crypt_config_format(c, ret_lines);
	if (r < 0)
		OPENSSL_cleanse(ret_data_key, CRYPT_KEY_BYTES);
	return r;
}

/* ---- store operations on key slots (imager/store.h) ---- */

bool store_is_encrypted(const struct store *s)
{
	return s && store_crypt_of(s);
}

bool store_is_locked(const struct store *s)
{
	const struct store_crypt *c = s ? store_crypt_of(s) : NULL;

	return c && !c->unlocked;
}

int store_unlock(struct store *s, const struct crypt_secret *secret)
{
	struct store_crypt *c;

	if (!s || !secret)
		return -EINVAL;
	c = store_crypt_of(s);
	if (!c)
		return 0; /* nothing to unlock */
	return store_crypt_unlock(c, secret);
}

int store_key_id(const struct store *s, char buf[static CRYPT_KEY_ID_STRING_MAX])
{
	const struct store_crypt *c = s ? store_crypt_of(s) : NULL;

	if (!c)
		return -ENODATA;
	hex_encode(c->cfg.key_id, CRYPT_KEY_ID_BYTES, buf);
	return 0;
}

int store_key_slots(const struct store *s, struct store_key_slot **ret, size_t *ret_n)
{
	const struct store_crypt *c = s ? store_crypt_of(s) : NULL;
	struct store_key_slot *l;

	if (!ret || !ret_n)
		return -EINVAL;
	if (!c)
		return -ENODATA;
	l = calloc(MAX(c->cfg.n_slots, (size_t) 1), sizeof(*l));
	if (!l)
		return -ENOMEM;
	for (size_t i = 0; i < c->cfg.n_slots; i++) {
		hex_encode(c->cfg.slots[i].id, CRYPT_SLOT_ID_BYTES, l[i].id);
		l[i].kind = c->cfg.slots[i].kind;
		l[i].scrypt = c->cfg.slots[i].scrypt;
		l[i].unlocked_this = c->unlocked && c->unlocked_slot == i;
	}
	*ret = l;
	*ret_n = c->cfg.n_slots;
	return 0;
}

enum slot_op { SLOT_ADD, SLOT_REPLACE, SLOT_REMOVE };

static int slot_index(const struct crypt_config *cfg, const uint8_t id[CRYPT_SLOT_ID_BYTES])
{
	for (size_t i = 0; i < cfg->n_slots; i++)
		if (memcmp(cfg->slots[i].id, id, CRYPT_SLOT_ID_BYTES) == 0)
			return (int) i;
	return -ENOENT;
}

/*
 * Rewrites the config's key slots under an exclusive flock() on the store
 * directory, starting from the config as it is on disk now (a concurrent
 * change is never lost), and replaces the file atomically: a crash leaves
 * the old config or the new one. Chunks and manifests are not touched.
 */
static int slots_rewrite(struct store *s, enum slot_op op, const struct crypt_secret *secret,
			 const uint8_t id[CRYPT_SLOT_ID_BYTES], char *ret_id)
{
	struct store_crypt *c = store_crypt_of(s);
	_cleanup_free_ struct crypt_config *cfg = NULL;
	_cleanup_free_ char *text = NULL, *lines = NULL, *out = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	uint8_t unlocked_id[CRYPT_SLOT_ID_BYTES];
	size_t len = 0, added = SIZE_MAX;
	char *line, *save = NULL;
	int r, k;

	if (!c)
		return -ENODATA;
	if (!c->unlocked)
		return -ENOKEY;
	memcpy(unlocked_id, c->cfg.slots[c->unlocked_slot].id, sizeof(unlocked_id));
	lock_fd = openat(store_dir_fd(s), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0)
		return -errno;
	while (flock(lock_fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return -errno;

	r = read_file_at(store_dir_fd(s), CONFIG_FILE, CONFIG_BYTES_MAX, &text, NULL);
	if (r == -EFBIG)
		return -EBADMSG;
	if (r < 0)
		return r;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	r = crypt_config_parse(text, cfg);
	if (r < 0)
		return r;
	if (memcmp(cfg->store_id, c->cfg.store_id, CRYPT_STORE_ID_BYTES) != 0 ||
	    memcmp(cfg->key_id, c->cfg.key_id, CRYPT_KEY_ID_BYTES) != 0)
		return -ESTALE; /* the config was replaced by another store's */

	switch (op) {
	case SLOT_ADD:
		r = crypt_config_add_slot(cfg, c->data_key, secret, NULL, &added);
		break;
	case SLOT_REPLACE:
		/* the slot this store was unlocked with gives way to the new secret */
		k = slot_index(cfg, unlocked_id);
		if (k < 0)
			return -ESTALE; /* removed meanwhile */
		r = crypt_config_add_slot(cfg, c->data_key, secret, NULL, &added);
		if (r >= 0) {
			crypt_config_remove_slot(cfg, (size_t) k);
			added--; /* it was appended after slot k */
		}
		break;
	case SLOT_REMOVE:
		k = slot_index(cfg, id);
		if (k < 0)
			return -ENOENT;
		if (cfg->n_slots == 1)
			return -EBUSY; /* the last slot: the store would be lost */
		crypt_config_remove_slot(cfg, (size_t) k);
		r = 0;
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		return r;

	/* keep every line that is not ours, in order; then the new lines */
	r = crypt_config_format(cfg, &lines);
	if (r < 0)
		return r;
	out = malloc(strlen(text) + strlen(lines) + 1);
	if (!out)
		return -ENOMEM;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (crypt_config_line_is_ours(line))
			continue;
		len += (size_t) sprintf(out + len, "%s\n", line);
	}
	len += (size_t) sprintf(out + len, "%s", lines);
	if (len > CONFIG_BYTES_MAX)
		return -E2BIG;
	r = write_file_atomic_replace(store_dir_fd(s), CONFIG_FILE, out, len);
	if (r < 0)
		return r;

	c->cfg = *cfg;
	if (op == SLOT_REPLACE)
		c->unlocked_slot = added; /* the new secret opens the store now */
	else {
		k = slot_index(cfg, unlocked_id);
		if (k < 0)
			return -EINVAL; /* removing the slot in use is refused by the caller */
		c->unlocked_slot = (size_t) k;
	}
	if (ret_id && added != SIZE_MAX)
		hex_encode(cfg->slots[added].id, CRYPT_SLOT_ID_BYTES, ret_id);
	return 0;
}

int store_add_key_slot(struct store *s, const struct crypt_secret *secret,
		       char ret_id[static CRYPT_SLOT_ID_STRING_MAX])
{
	if (!s || !secret)
		return -EINVAL;
	return slots_rewrite(s, SLOT_ADD, secret, NULL, ret_id);
}

int store_replace_key_slot(struct store *s, const struct crypt_secret *secret,
			   char ret_id[static CRYPT_SLOT_ID_STRING_MAX])
{
	if (!s || !secret)
		return -EINVAL;
	return slots_rewrite(s, SLOT_REPLACE, secret, NULL, ret_id);
}

int store_remove_key_slot(struct store *s, const char *id)
{
	struct store_crypt *c = s ? store_crypt_of(s) : NULL;
	uint8_t raw[CRYPT_SLOT_ID_BYTES];

	if (!s || !id)
		return -EINVAL;
	if (strlen(id) != 2 * CRYPT_SLOT_ID_BYTES || hex_decode(id, raw, sizeof(raw)) < 0)
		return -ENOENT;
	if (c && c->unlocked &&
	    memcmp(c->cfg.slots[c->unlocked_slot].id, raw, CRYPT_SLOT_ID_BYTES) == 0)
		return -EDEADLK; /* the slot in use: remove it while unlocked by another */
	return slots_rewrite(s, SLOT_REMOVE, NULL, raw, NULL);
}
