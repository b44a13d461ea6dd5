/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Signed images: Ed25519 keys (OpenSSL EVP, PEM files), signatures over a
 * manifest's stored bytes, and the detached .sig file beside each manifest
 * (docs/FORMAT.md, "Signatures"). The only file that sees OpenSSL's key and
 * PEM APIs; errors from them become -EBADMSG (bad input) or -ENOMEM/-EIO.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "imager/manifest.h"
#include "imager/sign.h"
#include "imager/store.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

#define SIGN_DOMAIN "imager-manifest-signature-v1" /* followed by its NUL byte */
#define SIGN_NAME_BYTES_MAX 63                     /* the image name rule */
#define SIGN_MESSAGE_BYTES_MAX (sizeof(SIGN_DOMAIN) + 1 + SIGN_NAME_BYTES_MAX + 32 + 8)

/* The .sig file: a header, then n_records records; all integers little-endian. */
#define SIGN_FILE_VERSION_MAJOR 1
#define SIGN_FILE_VERSION_MINOR 0
#define SIGN_FILE_HEADER_BYTES 32
#define SIGN_FILE_RECORD_BYTES 160
#define SIGN_FILE_PART_BYTES_MAX 4096 /* header_size and record_size of any version */
#define SIGN_FILE_BYTES_MAX (SIGN_FILE_PART_BYTES_MAX * (1 + SIGN_RECORDS_MAX))
static const uint8_t sign_file_magic[8] = { 'I', 'M', 'G', 'S', 'I', 'G', 'N', 'S' };

#define MANIFEST_SUFFIX ".manifest"

struct sign_key {
	EVP_PKEY *pkey;
	bool has_private;
	uint8_t pub[SIGN_PUBLIC_KEY_BYTES];
};

DEFINE_CLEANUP(EVP_PKEY *, EVP_PKEY_free)
DEFINE_CLEANUP(EVP_PKEY_CTX *, EVP_PKEY_CTX_free)
DEFINE_CLEANUP(EVP_MD_CTX *, EVP_MD_CTX_free)
DEFINE_CLEANUP(BIO *, BIO_free)
DEFINE_CLEANUP(struct sign_key *, sign_key_free)

struct sign_key *sign_key_free(struct sign_key *k)
{
	if (!k)
		return NULL;
	EVP_PKEY_free(k->pkey);
	free(k);
	return NULL;
}

/* Takes @pkey over (also on failure); -EBADMSG unless it is an Ed25519 key of the wanted kind. */
static int key_wrap(EVP_PKEY *pkey, bool want_private, struct sign_key **ret)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *p = pkey;
	struct sign_key *k;
	size_t len = SIGN_PUBLIC_KEY_BYTES, priv_len = 0;

	if (!p || EVP_PKEY_get_id(p) != EVP_PKEY_ED25519)
		return -EBADMSG;
	if (want_private &&
	    (EVP_PKEY_get_raw_private_key(p, NULL, &priv_len) != 1 || priv_len == 0))
		return -EBADMSG;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	if (EVP_PKEY_get_raw_public_key(p, k->pub, &len) != 1 || len != SIGN_PUBLIC_KEY_BYTES) {
		free(k);
		return -EBADMSG;
	}
	k->pkey = TAKE_PTR(p);
	k->has_private = want_private;
	*ret = k;
	return 0;
}

int sign_key_generate(struct sign_key **ret)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return key_wrap(pkey, true, ret);
}

/* Never prompts for a passphrase: an encrypted private key fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	return -1;
}

static int key_load(int dir_fd, const char *path, bool want_private, struct sign_key **ret)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_(BIO_freep) BIO *bio = NULL;
	EVP_PKEY *pkey;
	size_t size;
	int r;

	if (!path || !ret)
		return -EINVAL;
	r = read_file_at(dir_fd, path, SIGN_KEY_FILE_BYTES_MAX, &data, &size);
	if (r == -EFBIG)
		return -EBADMSG;
	if (r < 0)
		return r;
	bio = BIO_new_mem_buf(data, (int) size);
	if (!bio)
		return -ENOMEM;
	pkey = want_private ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
			    : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	ERR_clear_error(); /* a failed parse leaves OpenSSL's error queue full */
	r = key_wrap(pkey, want_private, ret);
	if (r < 0)
		log_debug_errno(r, "'%s' is not an Ed25519 %s key in PEM form", path,
				want_private ? "private" : "public");
	return r;
}

int sign_key_load_private(int dir_fd, const char *path, struct sign_key **ret)
{
	return key_load(dir_fd, path, true, ret);
}

int sign_key_load_public(int dir_fd, const char *path, struct sign_key **ret)
{
	return key_load(dir_fd, path, false, ret);
}

int sign_key_from_raw_public(const uint8_t pub[SIGN_PUBLIC_KEY_BYTES], struct sign_key **ret)
{
	EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
						     SIGN_PUBLIC_KEY_BYTES);

	if (!pkey)
		ERR_clear_error();
	return key_wrap(pkey, false, ret);
}

/*
 * Writes a new file at @path with @mode, atomically and never over an
 * existing one: a temporary created with @mode (so a private key is never
 * readable by others, not even for a moment), fsync, rename without replace.
 */
static int write_new_file(int dir_fd, const char *path, const void *data, size_t size,
			  mode_t mode)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint64_t rnd;
	int r;

	if (RAND_bytes((unsigned char *) &rnd, sizeof(rnd)) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	if (asprintf(&tmp, "%s.tmp.%016llx", path, (unsigned long long) rnd) < 0)
		return -ENOMEM;
	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, size);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r >= 0 && renameat2(dir_fd, tmp, dir_fd, path, RENAME_NOREPLACE) < 0)
		r = -errno;
	if (r < 0) {
		(void) unlinkat(dir_fd, tmp, 0);
		return r;
	}
	return fsync_parent_at(dir_fd, path);
}

static int key_save(const struct sign_key *k, bool private, int dir_fd, const char *path)
{
	_cleanup_(BIO_freep) BIO *bio = NULL;
	char *pem;
	long len;

	if (!k || !path || (private && !k->has_private))
		return -EINVAL;
	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return -ENOMEM;
	/* PEM_write_bio_PrivateKey() writes PKCS#8 ("PRIVATE KEY"), unencrypted */
	if ((private ? PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_bio_PUBKEY(bio, k->pkey)) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	len = BIO_get_mem_data(bio, &pem);
	if (len <= 0)
		return -EIO;
	return write_new_file(dir_fd, path, pem, (size_t) len, private ? 0600 : 0644);
}

int sign_key_save_private(const struct sign_key *k, int dir_fd, const char *path)
{
	return key_save(k, true, dir_fd, path);
}

int sign_key_save_public(const struct sign_key *k, int dir_fd, const char *path)
{
	return key_save(k, false, dir_fd, path);
}

bool sign_key_has_private(const struct sign_key *k)
{
	return k && k->has_private;
}

void sign_key_public_raw(const struct sign_key *k, uint8_t ret[SIGN_PUBLIC_KEY_BYTES])
{
	memcpy(ret, k->pub, SIGN_PUBLIC_KEY_BYTES);
}

static void sha256(const void *data, size_t size, uint8_t ret[32])
{
	unsigned len = 0;

	/* EVP_Digest() with SHA-256 cannot fail short of memory corruption */
	if (EVP_Digest(data, size, ret, &len, EVP_sha256(), NULL) != 1 || len != 32)
		abort();
}

static void key_id_of(const uint8_t pub[SIGN_PUBLIC_KEY_BYTES], uint8_t ret[SIGN_KEY_ID_BYTES])
{
	uint8_t h[32];

	sha256(pub, SIGN_PUBLIC_KEY_BYTES, h);
	memcpy(ret, h, SIGN_KEY_ID_BYTES);
}

void sign_key_id(const struct sign_key *k, uint8_t ret[SIGN_KEY_ID_BYTES])
{
	key_id_of(k->pub, ret);
}

char *sign_key_id_to_string(const uint8_t id[SIGN_KEY_ID_BYTES],
			    char buf[static SIGN_KEY_ID_STRING_MAX])
{
	hex_encode(id, SIGN_KEY_ID_BYTES, buf);
	return buf;
}

void sign_manifest_sha256(const void *manifest, size_t size, uint8_t ret[32])
{
	sha256(manifest, size, ret);
}

/* The signed message (sign.h); returns its length, 0 for a name that cannot be signed. */
static size_t message_build(const char *name, const uint8_t manifest_sha256[32],
			    int64_t signed_unix, uint8_t buf[static SIGN_MESSAGE_BYTES_MAX])
{
	size_t n = 0, name_len = name ? strlen(name) : 0;
	uint64_t t = htole64((uint64_t) signed_unix);

	if (!manifest_name_is_valid(name) || name_len > SIGN_NAME_BYTES_MAX)
		return 0;
	memcpy(buf, SIGN_DOMAIN, sizeof(SIGN_DOMAIN)); /* with its NUL */
	n += sizeof(SIGN_DOMAIN);
	buf[n++] = (uint8_t) name_len;
	memcpy(buf + n, name, name_len);
	n += name_len;
	memcpy(buf + n, manifest_sha256, 32);
	n += 32;
	memcpy(buf + n, &t, sizeof(t));
	n += sizeof(t);
	return n;
}

int sign_record_create(const struct sign_key *k, const char *name,
		       const uint8_t manifest_sha256[32], int64_t signed_unix,
		       struct sign_record *ret)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
	uint8_t msg[SIGN_MESSAGE_BYTES_MAX];
	struct sign_record rec = {
		.algorithm = SIGN_ALGORITHM_ED25519,
		.signed_unix = signed_unix,
	};
	size_t msg_len, sig_len = SIGN_SIGNATURE_BYTES;

	if (!k || !k->has_private || !ret)
		return -EINVAL;
	msg_len = message_build(name, manifest_sha256, signed_unix, msg);
	if (msg_len == 0)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* Ed25519 hashes internally: no digest (NULL md), one-shot EVP_DigestSign() */
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, rec.signature, &sig_len, msg, msg_len) != 1 ||
	    sig_len != SIGN_SIGNATURE_BYTES) {
		ERR_clear_error();
		return -EIO;
	}
	memcpy(rec.public_key, k->pub, SIGN_PUBLIC_KEY_BYTES);
	key_id_of(k->pub, rec.key_id);
	memcpy(rec.manifest_sha256, manifest_sha256, 32);
	*ret = rec;
	return 0;
}

static const char *const sign_verdict_table[_SIGN_VERDICT_MAX] = {
	[SIGN_VERDICT_VALID] = "valid",
	[SIGN_VERDICT_BAD_SIGNATURE] = "does not verify",
	[SIGN_VERDICT_OTHER_MANIFEST] = "signs a different manifest",
	[SIGN_VERDICT_BAD_KEY_ID] = "key ID does not match its key",
	[SIGN_VERDICT_UNKNOWN_ALGORITHM] = "unknown algorithm",
};

DEFINE_STRING_TABLE_TO_STRING(sign_verdict, enum sign_verdict, _SIGN_VERDICT_MAX)

enum sign_verdict sign_record_verify(const struct sign_record *rec, const char *name,
				     const uint8_t manifest_sha256[32])
{
	_cleanup_(sign_key_freep) struct sign_key *k = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
	uint8_t msg[SIGN_MESSAGE_BYTES_MAX], id[SIGN_KEY_ID_BYTES];
	size_t msg_len;
	int ok;

	if (rec->algorithm != SIGN_ALGORITHM_ED25519)
		return SIGN_VERDICT_UNKNOWN_ALGORITHM;
	key_id_of(rec->public_key, id);
	if (memcmp(id, rec->key_id, sizeof(id)) != 0)
		return SIGN_VERDICT_BAD_KEY_ID;
	/* the record's copy only explains a failure; the check below uses @manifest_sha256 */
	if (memcmp(rec->manifest_sha256, manifest_sha256, 32) != 0)
		return SIGN_VERDICT_OTHER_MANIFEST;
	msg_len = message_build(name, manifest_sha256, rec->signed_unix, msg);
	if (msg_len == 0 || sign_key_from_raw_public(rec->public_key, &k) < 0)
		return SIGN_VERDICT_BAD_SIGNATURE;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return SIGN_VERDICT_BAD_SIGNATURE; /* out of memory: never "valid" */
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestVerify(ctx, rec->signature, SIGN_SIGNATURE_BYTES, msg, msg_len) == 1;
	ERR_clear_error();
	return ok ? SIGN_VERDICT_VALID : SIGN_VERDICT_BAD_SIGNATURE;
}

bool sign_record_is_by(const struct sign_record *rec, const struct sign_key *k)
{
	return rec && k && memcmp(rec->public_key, k->pub, SIGN_PUBLIC_KEY_BYTES) == 0;
}

/* ---- the .sig file ---- */

static void put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

int sign_file_encode(const struct sign_record *recs, size_t n, void **ret, size_t *ret_size)
{
	size_t size = SIGN_FILE_HEADER_BYTES + n * SIGN_FILE_RECORD_BYTES;
	uint8_t *buf, *p;

	if ((n > 0 && !recs) || n > SIGN_RECORDS_MAX || !ret || !ret_size)
		return -EINVAL;
	buf = calloc(1, size);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, sign_file_magic, sizeof(sign_file_magic));
	put_le16(buf + 8, SIGN_FILE_VERSION_MAJOR);
	put_le16(buf + 10, SIGN_FILE_VERSION_MINOR);
	put_le32(buf + 12, SIGN_FILE_HEADER_BYTES);
	put_le32(buf + 16, SIGN_FILE_RECORD_BYTES);
	put_le32(buf + 20, (uint32_t) n);
	/* 24: flags, 28: reserved, both 0 */
	for (size_t i = 0; i < n; i++) {
		const struct sign_record *r = &recs[i];
		p = buf + SIGN_FILE_HEADER_BYTES + i * SIGN_FILE_RECORD_BYTES;
		p[0] = r->algorithm;
		put_le64(p + 8, (uint64_t) r->signed_unix);
		memcpy(p + 16, r->key_id, SIGN_KEY_ID_BYTES);
		memcpy(p + 24, r->public_key, SIGN_PUBLIC_KEY_BYTES);
		memcpy(p + 56, r->manifest_sha256, 32);
		memcpy(p + 88, r->signature, SIGN_SIGNATURE_BYTES);
	}
	*ret = buf;
	*ret_size = size;
	return 0;
}

int sign_file_decode(const void *data, size_t size, struct sign_record **ret, size_t *ret_n)
{
	const uint8_t *d = data;
	_cleanup_free_ struct sign_record *recs = NULL;
	uint32_t header_size, record_size, n, flags;
	uint16_t major;

	if (!data || !ret || !ret_n)
		return -EINVAL;
	if (size < SIGN_FILE_HEADER_BYTES || size > SIGN_FILE_BYTES_MAX)
		return -EBADMSG;
	if (memcmp(d, sign_file_magic, sizeof(sign_file_magic)) != 0)
		return -EBADMSG;
	major = get_le16(d + 8);
	if (major == 0)
		return -EBADMSG;
	if (major > SIGN_FILE_VERSION_MAJOR)
		return -EPROTONOSUPPORT;
	/* d + 10: version_minor; a newer minor only appends, which the sizes below skip */
	header_size = get_le32(d + 12);
	record_size = get_le32(d + 16);
	n = get_le32(d + 20);
	flags = get_le32(d + 24);
	if (header_size < SIGN_FILE_HEADER_BYTES || header_size > SIGN_FILE_PART_BYTES_MAX ||
	    record_size < SIGN_FILE_RECORD_BYTES || record_size > SIGN_FILE_PART_BYTES_MAX ||
	    n > SIGN_RECORDS_MAX)
		return -EBADMSG;
	if (flags != 0)
		return -EPROTONOSUPPORT;
	/* all three are bounded above, so this cannot overflow */
	if ((uint64_t) header_size + (uint64_t) n * record_size != size)
		return -EBADMSG;
	recs = calloc(n > 0 ? n : 1, sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = d + header_size + (size_t) i * record_size;
		struct sign_record *r = &recs[i];

		r->algorithm = p[0];
		r->signed_unix = (int64_t) get_le64(p + 8);
		memcpy(r->key_id, p + 16, SIGN_KEY_ID_BYTES);
		memcpy(r->public_key, p + 24, SIGN_PUBLIC_KEY_BYTES);
		memcpy(r->manifest_sha256, p + 56, 32);
		memcpy(r->signature, p + 88, SIGN_SIGNATURE_BYTES);
	}
	*ret = TAKE_PTR(recs);
	*ret_n = n;
	return 0;
}

/* ---- in a store ---- */

/* "images/NAME.sig" beside "images/NAME.manifest" */
static int sig_relpath(enum manifest_kind kind, const char *name, char **ret)
{
	_cleanup_free_ char *manifest = NULL;
	size_t len;
	char *p;
	int r;

	r = store_manifest_relpath(kind, name, &manifest);
	if (r < 0)
		return r;
	len = strlen(manifest);
	if (len < strlen(MANIFEST_SUFFIX) ||
	    strcmp(manifest + len - strlen(MANIFEST_SUFFIX), MANIFEST_SUFFIX) != 0)
		return -EINVAL;
	if (asprintf(&p, "%.*s" SIGN_SUFFIX, (int) (len - strlen(MANIFEST_SUFFIX)), manifest) < 0)
		return -ENOMEM;
	*ret = p;
	return 0;
}

/* Reads a whole regular file from @fd; larger than @max_bytes: -EBADMSG. */
static int read_fd_bounded(int fd, uint64_t max_bytes, void **ret, size_t *ret_size)
{
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	size_t n;
	uint8_t extra;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t) st.st_size > max_bytes)
		return -EBADMSG;
	buf = malloc(MAX((size_t) st.st_size, (size_t) 1));
	if (!buf)
		return -ENOMEM;
	r = pread_full(fd, buf, (size_t) st.st_size, 0, &n);
	if (r < 0)
		return r;
	if (n != (size_t) st.st_size)
		return -EBADMSG; /* shrank under us */
	r = pread_full(fd, &extra, 1, n, &n);
	if (r < 0)
		return r;
	if (n != 0)
		return -EBADMSG; /* grew under us */
	*ret_size = (size_t) st.st_size;
	*ret = TAKE_PTR(buf);
	return 0;
}

static int open_manifest(struct store *s, enum manifest_kind kind, const char *name, int *ret_fd)
{
	_cleanup_free_ char *path = NULL;
	int fd, r;

	if (!s || !name)
		return -EINVAL;
	r = store_manifest_relpath(kind, name, &path);
	if (r == -EINVAL)
		return -ENOENT; /* an invalid name names no manifest */
	if (r < 0)
		return r;
	fd = openat(store_dir_fd(s), path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

int sign_read_manifest(struct store *s, enum manifest_kind kind, const char *name, void **ret,
		       size_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (!ret || !ret_size)
		return -EINVAL;
	r = open_manifest(s, kind, name, &fd);
	if (r < 0)
		return r;
	return read_fd_bounded(fd, MANIFEST_BYTES_MAX, ret, ret_size);
}

int sign_load(struct store *s, enum manifest_kind kind, const char *name,
	      struct sign_record **ret, size_t *ret_n)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ void *data = NULL;
	_cleanup_close_ int fd = -EBADF;
	size_t size;
	int r;

	if (!s || !name || !ret || !ret_n)
		return -EINVAL;
	r = sig_relpath(kind, name, &path);
	if (r == -EINVAL)
		return -ENOENT;
	if (r < 0)
		return r;
	fd = openat(store_dir_fd(s), path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return errno == ELOOP ? -EBADMSG : -errno;
	r = read_fd_bounded(fd, SIGN_FILE_BYTES_MAX, &data, &size);
	if (r < 0)
		return r;
	return sign_file_decode(data, size, ret, ret_n);
}

int sign_add(struct store *s, enum manifest_kind kind, const char *name, const struct sign_key *k,
	     int64_t signed_unix, struct sign_record *ret_record)
{
	_cleanup_free_ struct sign_record *recs = NULL;
	_cleanup_free_ char *sig_path = NULL;
	_cleanup_free_ void *manifest = NULL, *file = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct manifest *m = NULL;
	struct sign_record rec;
	size_t manifest_size, file_size, n = 0, i;
	uint8_t sha[32];
	int r;

	if (!s || !name || !sign_key_has_private(k))
		return -EINVAL;
	r = sig_relpath(kind, name, &sig_path);
	if (r < 0)
		return r == -EINVAL ? -ENOENT : r;
	r = open_manifest(s, kind, name, &fd);
	if (r < 0)
		return r;
	/* the manifest file never changes or moves: a stable thing to serialise signers on */
	if (flock(fd, LOCK_EX) < 0)
		return -errno;
	r = read_fd_bounded(fd, MANIFEST_BYTES_MAX, &manifest, &manifest_size);
	if (r < 0)
		return r;
	/* never sign what does not read back: a damaged, foreign or misplaced manifest */
	r = store_decode_manifest(s, kind, name, manifest, manifest_size, &m); /* unseals */
	if (r < 0)
		return r;
	r = strcmp(m->name, name) != 0 || m->kind != kind ? -EBADMSG : 0;
	manifest_free(m);
	if (r < 0)
		return r;
	sign_manifest_sha256(manifest, manifest_size, sha);
	r = sign_record_create(k, name, sha, signed_unix, &rec);
	if (r < 0)
		return r;

	r = sign_load(s, kind, name, &recs, &n);
	if (r == -ENOENT)
		n = 0;
	else if (r < 0)
		return r; /* a damaged .sig: do not silently drop the signatures it held */
	/* one record per key: re-signing replaces the key's earlier signature */
	for (i = 0; i < n; i++)
		if (memcmp(recs[i].public_key, rec.public_key, SIGN_PUBLIC_KEY_BYTES) == 0)
			break;
	if (i == n) {
		struct sign_record *nr;
		if (n >= SIGN_RECORDS_MAX)
			return -E2BIG;
		nr = realloc(recs, (n + 1) * sizeof(*recs));
		if (!nr)
			return -ENOMEM;
		recs = nr;
		n++;
	}
	/* a second record by the same key (not written by us) goes too */
	recs[i] = rec;
	for (size_t j = i + 1; j < n;)
		if (memcmp(recs[j].public_key, rec.public_key, SIGN_PUBLIC_KEY_BYTES) == 0)
			recs[j] = recs[--n];
		else
			j++;
	r = sign_file_encode(recs, n, &file, &file_size);
	if (r < 0)
		return r;
	r = write_file_atomic_replace(store_dir_fd(s), sig_path, file, file_size);
	if (r < 0)
		return r;
	if (ret_record)
		*ret_record = rec;
	return 0;
}

int sign_prepare_publish(struct store *s, const struct manifest *m, const struct sign_key *k,
			 int64_t signed_unix)
{
	_cleanup_free_ char *manifest_path = NULL, *sig_path = NULL, *dir = NULL;
	_cleanup_free_ void *data = NULL, *file = NULL;
	struct sign_record rec;
	size_t size, file_size;
	uint8_t sha[32];
	char *slash;
	int r;

	if (!s || !m || (k && !sign_key_has_private(k)))
		return -EINVAL;
	r = store_manifest_relpath(m->kind, m->name, &manifest_path);
	if (r < 0)
		return r;
	r = sig_relpath(m->kind, m->name, &sig_path);
	if (r < 0)
		return r;
	if (faccessat(store_dir_fd(s), manifest_path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (errno != ENOENT)
		return -errno;
	if (!k) {
		r = sign_remove(s, m->kind, m->name);
		return r < 0 ? r : 0;
	}
	/* the very bytes store_put_manifest() will write */
	r = store_encode_manifest(s, m, &data, &size); /* sealed in an encrypted store */
	if (r < 0)
		return r;
	sign_manifest_sha256(data, size, sha);
	r = sign_record_create(k, m->name, sha, signed_unix, &rec);
	if (r < 0)
		return r;
	r = sign_file_encode(&rec, 1, &file, &file_size);
	if (r < 0)
		return r;
	dir = strdup(sig_path);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = 0;
		/* snapshots/ is missing in a store made before snapshots */
		r = mkdir_p_at(store_dir_fd(s), dir, 0755);
		if (r < 0)
			return r;
	}
	return write_file_atomic_replace(store_dir_fd(s), sig_path, file, file_size);
}

int sign_remove(struct store *s, enum manifest_kind kind, const char *name)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (!s)
		return -EINVAL;
	r = sig_relpath(kind, name, &path);
	if (r < 0)
		return r;
	if (unlinkat(store_dir_fd(s), path, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	r = fsync_parent_at(store_dir_fd(s), path);
	return r < 0 ? r : 1;
}
