/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fixture.h"
#include "unit.h"
#include "imager/chunk.h"
#include "imager/manifest.h"
#include "imager/sign.h"
#include "imager/store.h"
#include "util/cleanup.h"

static void write_bytes(const char *path, const void *data, size_t size)
{
	FILE *f = fopen(path, "we");

	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
}

static void *read_bytes(const char *path, size_t *ret_size)
{
	FILE *f = fopen(path, "re");
	uint8_t *buf = malloc(1 << 20);
	size_t n;

	if (!f || !buf)
		abort();
	n = fread(buf, 1, 1 << 20, f);
	fclose(f);
	*ret_size = n;
	return buf;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return (mode_t) -1;
	return st.st_mode & 07777;
}

static void write_pkey(const char *path, EVP_PKEY *pkey, const EVP_CIPHER *cipher)
{
	FILE *f = fopen(path, "we");

	if (!f)
		abort();
	if (cipher) {
		if (PEM_write_PKCS8PrivateKey(f, pkey, cipher, "secret", 6, NULL, NULL) != 1)
			abort();
	} else if (PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1)
		abort();
	fclose(f);
}

TEST(keys_generate_save_load)
{
	char *dir = make_tmpdir(), *priv = join(dir, "k.key"), *pub = join(dir, "k.pub");
	struct sign_key *k, *kp, *kq;
	uint8_t a[SIGN_PUBLIC_KEY_BYTES], b[SIGN_PUBLIC_KEY_BYTES], ia[SIGN_KEY_ID_BYTES],
		ib[SIGN_KEY_ID_BYTES];
	char ida[SIGN_KEY_ID_STRING_MAX];
	size_t n;
	char *text;

	ASSERT_OK(sign_key_generate(&k));
	ASSERT_TRUE(sign_key_has_private(k));
	ASSERT_OK(sign_key_save_private(k, AT_FDCWD, priv));
	ASSERT_OK(sign_key_save_public(k, AT_FDCWD, pub));
	ASSERT_EQ_U64(mode_of(priv), 0600);
	ASSERT_EQ_U64(mode_of(pub) & 0600, 0600);
	ASSERT_EQ_U64(mode_of(pub) & 0077 & ~(mode_t) 0044, 0); /* never group/other writable */
	/* never over an existing file */
	ASSERT_ERR(sign_key_save_private(k, AT_FDCWD, priv), -EEXIST);
	ASSERT_ERR(sign_key_save_public(k, AT_FDCWD, pub), -EEXIST);

	text = read_bytes(priv, &n);
	ASSERT_TRUE(n > 0 && memmem(text, n, "-----BEGIN PRIVATE KEY-----", 27));
	free(text);
	text = read_bytes(pub, &n);
	ASSERT_TRUE(n > 0 && memmem(text, n, "-----BEGIN PUBLIC KEY-----", 26));
	free(text);

	ASSERT_OK(sign_key_load_private(AT_FDCWD, priv, &kp));
	ASSERT_OK(sign_key_load_public(AT_FDCWD, pub, &kq));
	ASSERT_TRUE(sign_key_has_private(kp));
	ASSERT_TRUE(!sign_key_has_private(kq));
	sign_key_public_raw(k, a);
	sign_key_public_raw(kq, b);
	ASSERT_MEMEQ(a, b, sizeof(a));
	sign_key_public_raw(kp, b);
	ASSERT_MEMEQ(a, b, sizeof(a));
	sign_key_id(k, ia);
	sign_key_id(kq, ib);
	ASSERT_MEMEQ(ia, ib, sizeof(ia));
	ASSERT_EQ_U64(strlen(sign_key_id_to_string(ia, ida)), 16);
	/* a public key cannot sign */
	ASSERT_ERR(sign_key_save_private(kq, AT_FDCWD, "nowhere.key"), -EINVAL);

	sign_key_free(k);
	sign_key_free(kp);
	sign_key_free(kq);
	free(priv);
	free(pub);
	rm_rf(dir);
}

TEST(keys_wrong_type_and_garbage)
{
	char *dir = make_tmpdir(), *priv = join(dir, "k.key"), *pub = join(dir, "k.pub"),
	     *p = join(dir, "x");
	struct sign_key *k = NULL;
	EVP_PKEY *ec = EVP_EC_gen("P-256"), *ed = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	const char *truncated_pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n"
				    "-----END PUBLIC KEY-----\n";
	char *big;

	ASSERT_TRUE(ec && ctx);
	ASSERT_OK(sign_key_generate(&k));
	ASSERT_OK(sign_key_save_private(k, AT_FDCWD, priv));
	ASSERT_OK(sign_key_save_public(k, AT_FDCWD, pub));
	k = sign_key_free(k);

	/* the other half */
	ASSERT_ERR(sign_key_load_public(AT_FDCWD, priv, &k), -EBADMSG);
	ASSERT_ERR(sign_key_load_private(AT_FDCWD, pub, &k), -EBADMSG);
	/* missing */
	ASSERT_ERR(sign_key_load_public(AT_FDCWD, "/nonexistent/k.pub", &k), -ENOENT);
	/* garbage, empty, truncated PEM, too large */
	write_bytes(p, "hello, world\n", 13);
	ASSERT_ERR(sign_key_load_public(AT_FDCWD, p, &k), -EBADMSG);
	ASSERT_ERR(sign_key_load_private(AT_FDCWD, p, &k), -EBADMSG);
	write_bytes(p, "", 0);
	ASSERT_ERR(sign_key_load_public(AT_FDCWD, p, &k), -EBADMSG);
	write_bytes(p, truncated_pem, strlen(truncated_pem));
	ASSERT_ERR(sign_key_load_public(AT_FDCWD, p, &k), -EBADMSG);
	big = malloc(SIGN_KEY_FILE_BYTES_MAX + 1);
	memset(big, 'A', SIGN_KEY_FILE_BYTES_MAX + 1);
	write_bytes(p, big, SIGN_KEY_FILE_BYTES_MAX + 1);
	free(big);
	ASSERT_ERR(sign_key_load_public(AT_FDCWD, p, &k), -EBADMSG);
	/* another algorithm */
	write_pkey(p, ec, NULL);
	ASSERT_ERR(sign_key_load_private(AT_FDCWD, p, &k), -EBADMSG);
	/* a passphrase-protected Ed25519 key: refused, never a prompt */
	ASSERT_TRUE(EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &ed) == 1);
	write_pkey(p, ed, EVP_aes_256_cbc());
	ASSERT_ERR(sign_key_load_private(AT_FDCWD, p, &k), -EBADMSG);
	/* the same key unencrypted loads */
	unlink(p);
	write_pkey(p, ed, NULL);
	ASSERT_OK(sign_key_load_private(AT_FDCWD, p, &k));
	ASSERT_TRUE(k != NULL);

	sign_key_free(k);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	EVP_PKEY_CTX_free(ctx);
	free(priv);
	free(pub);
	free(p);
	rm_rf(dir);
}

TEST(records_sign_and_verify)
{
	struct sign_key *k, *other, *pub;
	struct sign_record rec, bad;
	uint8_t sha[32], sha2[32], raw[SIGN_PUBLIC_KEY_BYTES];

	sign_manifest_sha256("manifest bytes", 14, sha);
	sign_manifest_sha256("manifest bytez", 14, sha2);
	ASSERT_OK(sign_key_generate(&k));
	ASSERT_OK(sign_key_generate(&other));
	ASSERT_OK(sign_record_create(k, "web-1", sha, 1700000000, &rec));
	ASSERT_EQ_U64(rec.algorithm, SIGN_ALGORITHM_ED25519);
	ASSERT_EQ_I64(rec.signed_unix, 1700000000);
	ASSERT_EQ_I64(sign_record_verify(&rec, "web-1", sha), SIGN_VERDICT_VALID);
	ASSERT_TRUE(sign_record_is_by(&rec, k));
	ASSERT_TRUE(!sign_record_is_by(&rec, other));
	sign_key_public_raw(k, raw);
	ASSERT_OK(sign_key_from_raw_public(raw, &pub));
	ASSERT_TRUE(sign_record_is_by(&rec, pub));
	/* a public key does not sign; names that are not image names are not signed */
	ASSERT_ERR(sign_record_create(pub, "web-1", sha, 0, &bad), -EINVAL);
	ASSERT_ERR(sign_record_create(k, "Web_1", sha, 0, &bad), -EINVAL);

	/* another name, another manifest, another time */
	ASSERT_EQ_I64(sign_record_verify(&rec, "web-2", sha), SIGN_VERDICT_BAD_SIGNATURE);
	ASSERT_EQ_I64(sign_record_verify(&rec, "web-1", sha2), SIGN_VERDICT_OTHER_MANIFEST);
	bad = rec;
	memcpy(bad.manifest_sha256, sha2, 32);
	ASSERT_EQ_I64(sign_record_verify(&bad, "web-1", sha2), SIGN_VERDICT_BAD_SIGNATURE);
	bad = rec;
	bad.signed_unix++;
	ASSERT_EQ_I64(sign_record_verify(&bad, "web-1", sha), SIGN_VERDICT_BAD_SIGNATURE);
	/* every bit of the signature matters */
	for (size_t i = 0; i < SIGN_SIGNATURE_BYTES; i++) {
		bad = rec;
		bad.signature[i] ^= (uint8_t) (1u << (i % 8));
		ASSERT_EQ_I64(sign_record_verify(&bad, "web-1", sha), SIGN_VERDICT_BAD_SIGNATURE);
	}
	/* the key ID must be its key's; a swapped key (with its own ID) does not verify */
	bad = rec;
	bad.key_id[0] ^= 1;
	ASSERT_EQ_I64(sign_record_verify(&bad, "web-1", sha), SIGN_VERDICT_BAD_KEY_ID);
	ASSERT_OK(sign_record_create(other, "web-1", sha, 1700000000, &bad));
	memcpy(bad.signature, rec.signature, SIGN_SIGNATURE_BYTES);
	ASSERT_EQ_I64(sign_record_verify(&bad, "web-1", sha), SIGN_VERDICT_BAD_SIGNATURE);
	bad = rec;
	bad.algorithm = 2;
	ASSERT_EQ_I64(sign_record_verify(&bad, "web-1", sha), SIGN_VERDICT_UNKNOWN_ALGORITHM);
	ASSERT_STREQ(sign_verdict_to_string(SIGN_VERDICT_VALID), "valid");
	ASSERT_TRUE(sign_verdict_to_string(_SIGN_VERDICT_MAX) == NULL);

	sign_key_free(k);
	sign_key_free(other);
	sign_key_free(pub);
}

TEST(sig_file_roundtrip_and_bounds)
{
	struct sign_key *k;
	struct sign_record recs[3], *back = NULL;
	uint8_t sha[32], *buf, *big;
	void *data;
	size_t size, n;

	sign_manifest_sha256("x", 1, sha);
	ASSERT_OK(sign_key_generate(&k));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(sign_record_create(k, "a", sha, 100 + i, &recs[i]));

	ASSERT_OK(sign_file_encode(recs, 0, &data, &size));
	ASSERT_EQ_U64(size, 32);
	ASSERT_OK(sign_file_decode(data, size, &back, &n));
	ASSERT_EQ_U64(n, 0);
	free(back);
	free(data);

	ASSERT_OK(sign_file_encode(recs, 3, &data, &size));
	ASSERT_EQ_U64(size, 32 + 3 * 160);
	buf = data;
	/* the layout of docs/FORMAT.md */
	ASSERT_MEMEQ(buf, "IMGSIGNS", 8);
	ASSERT_EQ_U64(buf[8], 1);
	ASSERT_EQ_U64(buf[12], 32);
	ASSERT_EQ_U64(buf[16], 160);
	ASSERT_EQ_U64(buf[20], 3);
	ASSERT_EQ_U64(buf[32 + 160], SIGN_ALGORITHM_ED25519);
	ASSERT_EQ_U64(buf[32 + 160 + 8], 101);
	ASSERT_MEMEQ(buf + 32 + 160 + 16, recs[1].key_id, 8);
	ASSERT_MEMEQ(buf + 32 + 160 + 24, recs[1].public_key, 32);
	ASSERT_MEMEQ(buf + 32 + 160 + 56, sha, 32);
	ASSERT_MEMEQ(buf + 32 + 160 + 88, recs[1].signature, 64);

	ASSERT_OK(sign_file_decode(data, size, &back, &n));
	ASSERT_EQ_U64(n, 3);
	for (int i = 0; i < 3; i++) {
		ASSERT_MEMEQ(&back[i].signature, recs[i].signature, 64);
		ASSERT_EQ_I64(back[i].signed_unix, 100 + i);
		ASSERT_EQ_I64(sign_record_verify(&back[i], "a", sha), SIGN_VERDICT_VALID);
	}
	free(back);

	/* every truncation and one extra byte */
	for (size_t len = 0; len < size; len++)
		ASSERT_ERR(sign_file_decode(data, len, &back, &n), -EBADMSG);
	big = calloc(1, size + 1);
	memcpy(big, data, size);
	ASSERT_ERR(sign_file_decode(big, size + 1, &back, &n), -EBADMSG);

	/* header fields */
	memcpy(big, data, size);
	big[0] ^= 1;
	ASSERT_ERR(sign_file_decode(big, size, &back, &n), -EBADMSG);
	memcpy(big, data, size);
	big[8] = 0;
	ASSERT_ERR(sign_file_decode(big, size, &back, &n), -EBADMSG);
	big[8] = 2;
	ASSERT_ERR(sign_file_decode(big, size, &back, &n), -EPROTONOSUPPORT);
	memcpy(big, data, size);
	big[24] = 1; /* a required feature this reader lacks */
	ASSERT_ERR(sign_file_decode(big, size, &back, &n), -EPROTONOSUPPORT);
	memcpy(big, data, size);
	big[20] = 65;
	ASSERT_ERR(sign_file_decode(big, size, &back, &n), -EBADMSG);
	big[20] = 2; /* count and size disagree */
	ASSERT_ERR(sign_file_decode(big, size, &back, &n), -EBADMSG);
	memcpy(big, data, size);
	big[16] = 159;
	ASSERT_ERR(sign_file_decode(big, size, &back, &n), -EBADMSG);
	memcpy(big, data, size);
	big[23] = 0x80; /* 2^31 records */
	ASSERT_ERR(sign_file_decode(big, size, &back, &n), -EBADMSG);
	free(big);

	/* every single-byte change decodes or fails cleanly, and never yields a valid
	 * signature over changed signed bytes */
	big = malloc(size);
	for (size_t i = 0; i < size; i++) {
		memcpy(big, data, size);
		big[i] ^= 0x40;
		if (sign_file_decode(big, size, &back, &n) < 0)
			continue;
		for (size_t j = 0; j < n; j++) {
			size_t at = 32 + j * 160;
			/* algorithm, time, key ID, key, digest, signature */
			bool in_rec = i >= at && i < at + 160;
			bool signed_part = in_rec && (i - at < 1 || (i - at >= 8 && i - at < 152));
			enum sign_verdict v = sign_record_verify(&back[j], "a", sha);
			if (signed_part)
				ASSERT_TRUE(v != SIGN_VERDICT_VALID);
		}
		free(back);
	}
	free(big);

	/* a newer minor: a longer header and longer records, skipped */
	{
		size_t hs = 40, rs = 170, nsize = hs + 3 * rs;
		uint8_t *nb = calloc(1, nsize);
		memcpy(nb, data, 32);
		nb[10] = 7;
		nb[12] = (uint8_t) hs;
		nb[16] = (uint8_t) rs;
		for (int i = 0; i < 3; i++)
			memcpy(nb + hs + i * rs, buf + 32 + i * 160, 160);
		ASSERT_OK(sign_file_decode(nb, nsize, &back, &n));
		ASSERT_EQ_U64(n, 3);
		ASSERT_EQ_I64(sign_record_verify(&back[2], "a", sha), SIGN_VERDICT_VALID);
		free(back);
		free(nb);
	}
	free(data);
	ASSERT_ERR(sign_file_encode(recs, SIGN_RECORDS_MAX + 1, &data, &size), -EINVAL);
	sign_key_free(k);
}

static struct manifest *small_manifest(const char *name)
{
	struct manifest *m = calloc(1, sizeof(*m));
	struct manifest_disk *d;

	m->version_major = MANIFEST_VERSION_MAJOR;
	m->version_minor = MANIFEST_VERSION_MINOR;
	m->name = strdup(name);
	m->tool_version = strdup("test");
	m->created_unix = 1700000000;
	m->n_disks = 1;
	m->disks = d = calloc(1, sizeof(*d));
	d->size_bytes = 64 << 20;
	d->logical_sector_bytes = d->physical_sector_bytes = 512;
	d->label = strdup("none");
	d->n_extents = 1;
	d->extents = calloc(1, sizeof(*d->extents));
	d->extents[0] = (struct manifest_extent){ 4096, 8192 };
	d->used_bytes = 8192;
	d->n_chunks = 1;
	d->chunks = calloc(1, sizeof(*d->chunks));
	d->chunks[0].offset_bytes = 0;
	d->chunks[0].size_bytes = CHUNK_SIZE_BYTES;
	chunk_id_compute(name, strlen(name), &d->chunks[0].id);
	manifest_compute_digest(m, m->content_digest);
	return m;
}

/* The verdict of every record of @name's .sig against the manifest as stored. */
static size_t count_valid(struct store *s, enum manifest_kind kind, const char *name,
			  size_t *ret_n)
{
	struct sign_record *recs = NULL;
	void *bytes;
	size_t size, n = 0, valid = 0;
	uint8_t sha[32];

	if (sign_read_manifest(s, kind, name, &bytes, &size) < 0)
		abort();
	sign_manifest_sha256(bytes, size, sha);
	free(bytes);
	if (sign_load(s, kind, name, &recs, &n) < 0)
		n = 0;
	for (size_t i = 0; i < n; i++)
		valid += sign_record_verify(&recs[i], name, sha) == SIGN_VERDICT_VALID;
	free(recs);
	*ret_n = n;
	return valid;
}

TEST(store_sign_add_prepare_remove)
{
	char *dir = make_tmpdir(), *p;
	struct manifest *m = small_manifest("web-1"), *m2 = small_manifest("db");
	struct sign_key *a, *b, *pub;
	struct sign_record *recs, rec;
	struct store *s;
	uint8_t raw[SIGN_PUBLIC_KEY_BYTES], *sig;
	size_t n, size;

	ASSERT_OK(sign_key_generate(&a));
	ASSERT_OK(sign_key_generate(&b));
	sign_key_public_raw(a, raw);
	ASSERT_OK(sign_key_from_raw_public(raw, &pub));
	ASSERT_OK(store_open(dir, true, &s));

	/* a capture: the .sig first, then the manifest; the signature covers its bytes */
	ASSERT_OK(sign_prepare_publish(s, m, a, 1700000100));
	p = join(dir, "images/web-1.sig");
	ASSERT_OK(access(p, F_OK));
	ASSERT_OK(store_put_manifest(s, m));
	ASSERT_EQ_U64(count_valid(s, MANIFEST_KIND_IMAGE, "web-1", &n), 1);
	ASSERT_EQ_U64(n, 1);
	/* once published, a capture of the same name leaves the .sig alone */
	ASSERT_ERR(sign_prepare_publish(s, m, b, 1), -EEXIST);
	ASSERT_EQ_U64(count_valid(s, MANIFEST_KIND_IMAGE, "web-1", &n), 1);

	/* a second signer; the first signer again replaces its own record */
	ASSERT_OK(sign_add(s, MANIFEST_KIND_IMAGE, "web-1", b, 1700000200, &rec));
	ASSERT_TRUE(sign_record_is_by(&rec, b));
	ASSERT_EQ_U64(count_valid(s, MANIFEST_KIND_IMAGE, "web-1", &n), 2);
	ASSERT_EQ_U64(n, 2);
	ASSERT_OK(sign_add(s, MANIFEST_KIND_IMAGE, "web-1", a, 1700000300, NULL));
	ASSERT_EQ_U64(count_valid(s, MANIFEST_KIND_IMAGE, "web-1", &n), 2);
	ASSERT_EQ_U64(n, 2);
	ASSERT_OK(sign_load(s, MANIFEST_KIND_IMAGE, "web-1", &recs, &n));
	for (size_t i = 0; i < n; i++)
		if (sign_record_is_by(&recs[i], pub))
			ASSERT_EQ_I64(recs[i].signed_unix, 1700000300);
	free(recs);

	ASSERT_ERR(sign_add(s, MANIFEST_KIND_IMAGE, "web-1", pub, 1, NULL), -EINVAL);
	ASSERT_ERR(sign_add(s, MANIFEST_KIND_IMAGE, "nope", a, 1, NULL), -ENOENT);
	ASSERT_ERR(sign_add(s, MANIFEST_KIND_IMAGE, "../x", a, 1, NULL), -ENOENT);
	ASSERT_ERR(sign_add(s, MANIFEST_KIND_SNAPSHOT, "web-1", a, 1, NULL), -ENOENT);

	/* a damaged .sig: reported, and not silently replaced */
	sig = read_bytes(p, &size);
	sig[3] ^= 1;
	unlink(p);
	write_bytes(p, sig, size);
	ASSERT_ERR(sign_load(s, MANIFEST_KIND_IMAGE, "web-1", &recs, &n), -EBADMSG);
	ASSERT_ERR(sign_add(s, MANIFEST_KIND_IMAGE, "web-1", a, 1, NULL), -EBADMSG);
	free(sig);

	/* delete: the .sig goes; a new unsigned image of that name finds none */
	ASSERT_EQ_I64(sign_remove(s, MANIFEST_KIND_IMAGE, "web-1"), 1);
	ASSERT_EQ_I64(sign_remove(s, MANIFEST_KIND_IMAGE, "web-1"), 0);
	ASSERT_ERR(sign_load(s, MANIFEST_KIND_IMAGE, "web-1", &recs, &n), -ENOENT);
	ASSERT_EQ_U64(count_valid(s, MANIFEST_KIND_IMAGE, "web-1", &n), 0);

	/* a stale .sig from a deleted image: replaced by a signed capture, removed by an
	 * unsigned one */
	ASSERT_OK(sign_prepare_publish(s, m2, b, 5));
	ASSERT_OK(sign_prepare_publish(s, m2, a, 6));
	ASSERT_OK(sign_load(s, MANIFEST_KIND_IMAGE, "db", &recs, &n));
	ASSERT_EQ_U64(n, 1);
	ASSERT_TRUE(sign_record_is_by(&recs[0], pub));
	free(recs);
	ASSERT_OK(sign_prepare_publish(s, m2, NULL, 7));
	ASSERT_ERR(sign_load(s, MANIFEST_KIND_IMAGE, "db", &recs, &n), -ENOENT);

	/* a damaged manifest is not signed; a changed one invalidates its signatures */
	free(p);
	ASSERT_OK(sign_add(s, MANIFEST_KIND_IMAGE, "web-1", a, 1700000400, NULL));
	p = join(dir, "images/web-1.manifest");
	sig = read_bytes(p, &size);
	sig[size - 1] ^= 1;
	unlink(p);
	write_bytes(p, sig, size);
	free(sig);
	ASSERT_ERR(sign_add(s, MANIFEST_KIND_IMAGE, "web-1", b, 1, NULL), -EBADMSG);
	ASSERT_EQ_U64(count_valid(s, MANIFEST_KIND_IMAGE, "web-1", &n), 0);
	ASSERT_EQ_U64(n, 1);
	free(p);

	/* snapshots: their .sig sits beside them */
	m2->kind = MANIFEST_KIND_SNAPSHOT;
	manifest_compute_digest(m2, m2->content_digest);
	ASSERT_OK(sign_prepare_publish(s, m2, a, 8));
	ASSERT_OK(store_put_manifest(s, m2));
	p = join(dir, "snapshots/db.sig");
	ASSERT_OK(access(p, F_OK));
	free(p);
	ASSERT_EQ_U64(count_valid(s, MANIFEST_KIND_SNAPSHOT, "db", &n), 1);

	store_free(s);
	manifest_free(m);
	manifest_free(m2);
	sign_key_free(a);
	sign_key_free(b);
	sign_key_free(pub);
	rm_rf(dir);
}
