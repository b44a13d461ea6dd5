/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Signed images on the command line: the trust policy checked before any
 * write (flash, verify), signing at capture, and describe's signature lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lifecycle.h"
#include "trust.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct sign_key *, sign_key_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)

int trust_policy_add_key(struct trust_policy *p, const char *verb, const char *path)
{
	if (p->n_keys >= TRUST_KEYS_MAX)
		return usage_error(verb, "at most %d --trust keys", TRUST_KEYS_MAX);
	if (!path || !*path)
		return usage_error(verb, "--trust wants a public key file");
	p->keys[p->n_keys++] = path;
	return 0;
}

int trust_policy_finish(struct trust_policy *p, const char *verb)
{
	if (p->n_keys > 0)
		p->require_signed = true;
	if (p->require_signed && p->n_keys == 0)
		return usage_error(verb, "--require-signed needs at least one --trust KEY.pub");
	return 0;
}

bool trust_policy_enabled(const struct trust_policy *p)
{
	return p && (p->require_signed || p->n_keys > 0);
}

static int load_trusted_key(const char *path, struct sign_key **ret)
{
	int r = sign_key_load_public(AT_FDCWD, path, ret);

	if (r == -ENOENT)
		return log_error_errno(r, "Trusted key '%s' does not exist.", path);
	if (r == -EBADMSG)
		return log_error_errno(r, "Trusted key '%s' is not an Ed25519 public key in PEM "
				       "form (a .pub file from 'imager keys generate').", path);
	if (r < 0)
		return log_error_errno(r, "Failed to read trusted key '%s': %m", path);
	return 0;
}

static const char *kind_word(enum manifest_kind kind)
{
	return kind == MANIFEST_KIND_SNAPSHOT ? "Snapshot" : "Image";
}

int cli_check_trust(struct store *s, const struct trust_policy *p, const char *action,
		    struct manifest **m)
{
	struct sign_key *keys[TRUST_KEYS_MAX] = {};
	_cleanup_free_ struct sign_record *recs = NULL;
	_cleanup_free_ void *bytes = NULL;
	_cleanup_(manifest_freep) struct manifest *verified = NULL;
	const char *name = (*m)->name, *what = kind_word((*m)->kind);
	char id[SIGN_KEY_ID_STRING_MAX], when[32];
	size_t size, n = 0, good = SIZE_MAX;
	uint8_t sha[32];
	int r;

	if (!trust_policy_enabled(p))
		return 0;
	for (size_t i = 0; i < p->n_keys; i++) {
		r = load_trusted_key(p->keys[i], &keys[i]);
		if (r < 0)
			goto out;
	}

	r = sign_read_manifest(s, (*m)->kind, name, &bytes, &size);
	if (r < 0) {
		r = log_error_errno(r, "Refusing to %s '%s': cannot read its manifest: %m", action,
				    name);
		goto out;
	}
	sign_manifest_sha256(bytes, size, sha);
	r = sign_load(s, (*m)->kind, name, &recs, &n);
	if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
		r = log_error_errno(-EKEYREJECTED, "Refusing to %s '%s': its signature file is %s.",
				    action, name,
				    r == -EBADMSG ? "damaged"
						  : "of a newer format than this imager reads");
		goto out;
	}
	if (r < 0 && r != -ENOENT) {
		r = log_error_errno(r, "Refusing to %s '%s': cannot read its signatures: %m",
				    action, name);
		goto out;
	}
	if (r == -ENOENT)
		n = 0;

	/* one valid signature by a trusted key suffices; the others are ignored */
	for (size_t i = 0; i < n && good == SIZE_MAX; i++)
		for (size_t k = 0; k < p->n_keys; k++)
			if (sign_record_is_by(&recs[i], keys[k]) &&
			    sign_record_verify(&recs[i], name, sha) == SIGN_VERDICT_VALID) {
				good = i;
				break;
			}
	if (good == SIZE_MAX) {
		/* say why each signature did not count, then refuse */
		if (n == 0)
			log_notice("%s '%s' has no signature.", what, name);
		for (size_t i = 0; i < n; i++) {
			enum sign_verdict v = sign_record_verify(&recs[i], name, sha);

			sign_key_id_to_string(recs[i].key_id, id);
			if (v != SIGN_VERDICT_VALID)
				log_notice("INVALID signature by %s: %s.", id,
					   sign_verdict_to_string(v));
			else
				log_notice("The signature by %s is valid, but that key is not "
					   "trusted.", id);
		}
		r = log_error_errno(-EKEYREJECTED,
				    "Refusing to %s '%s': it is not signed by a trusted key.",
				    action, name);
		goto out;
	}

	/* flash what was verified: the manifest decoded from exactly these bytes */
	r = store_decode_manifest(s, (*m)->kind, name, bytes, size, &verified);
	if (r >= 0 && (strcmp(verified->name, name) != 0 || verified->kind != (*m)->kind ||
		       memcmp(verified->content_digest, (*m)->content_digest, 32) != 0))
		r = -EBADMSG;
	if (r < 0) {
		r = log_error_errno(-EKEYREJECTED,
				    "Refusing to %s '%s': its manifest changed while it was "
				    "being checked.", action, name);
		goto out;
	}
	sign_key_id_to_string(recs[good].key_id, id);
	log_info("%s '%s' is signed by trusted key %s (signed %s).", what, name, id,
		 format_timestamp(when, sizeof(when), recs[good].signed_unix));
	manifest_free(*m); /* @name pointed into it */
	*m = TAKE_PTR(verified);
	r = 0;
out:
	for (size_t i = 0; i < p->n_keys; i++)
		sign_key_free(keys[i]);
	return r;
}

int cli_load_sign_key(const char *path, struct sign_key **ret)
{
	int r = sign_key_load_private(AT_FDCWD, path, ret);

	if (r == -ENOENT)
		return log_error_errno(r, "Signing key '%s' does not exist.", path);
	if (r == -EBADMSG)
		return log_error_errno(r, "Signing key '%s' is not an unencrypted Ed25519 private "
				       "key in PEM form (a .key file from 'imager keys generate').",
				       path);
	if (r < 0)
		return log_error_errno(r, "Failed to read signing key '%s': %m", path);
	return 0;
}

int cli_sign_before_publish(struct store *s, const struct manifest *m, const struct sign_key *k)
{
	int64_t now;
	int r;

	r = cli_now(&now);
	if (r < 0)
		return r;
	r = sign_prepare_publish(s, m, k, now);
	if (r == -EEXIST)
		return log_error_errno(r, "%s '%s' already exists in store '%s'.",
				       kind_word(m->kind), m->name, store_path(s));
	if (r < 0 && k)
		return log_error_errno(r, "Failed to sign %s '%s': %m",
				       manifest_kind_to_string(m->kind), m->name);
	if (r < 0)
		return log_error_errno(r, "Failed to remove the stale signatures of %s '%s': %m",
				       manifest_kind_to_string(m->kind), m->name);
	return 0;
}

void cli_signatures_load(struct store *s, const struct manifest *m, struct cli_signatures *ret)
{
	_cleanup_free_ void *bytes = NULL;
	struct cli_signatures sigs = {};
	uint8_t sha[32];
	size_t size;
	int r;

	r = sign_load(s, m->kind, m->name, &sigs.records, &sigs.n);
	if (r == -ENOENT) {
		*ret = (struct cli_signatures){};
		return;
	}
	if (r >= 0) {
		r = sign_read_manifest(s, m->kind, m->name, &bytes, &size);
		sigs.verdicts = calloc(sigs.n > 0 ? sigs.n : 1, sizeof(*sigs.verdicts));
		if (r >= 0 && !sigs.verdicts)
			r = -ENOMEM;
	}
	if (r < 0) {
		cli_signatures_done(&sigs);
		*ret = (struct cli_signatures){ .error = r };
		return;
	}
	sign_manifest_sha256(bytes, size, sha);
	for (size_t i = 0; i < sigs.n; i++)
		sigs.verdicts[i] = sign_record_verify(&sigs.records[i], m->name, sha);
	*ret = sigs;
}

void cli_signatures_done(struct cli_signatures *sigs)
{
	free(sigs->records);
	free(sigs->verdicts);
	*sigs = (struct cli_signatures){};
}

void cli_signatures_print_text(const struct cli_signatures *sigs)
{
	char id[SIGN_KEY_ID_STRING_MAX], when[32];

	if (sigs->error == -EBADMSG) {
		printf("Signature:   the signature file is damaged\n");
		return;
	}
	if (sigs->error < 0) {
		printf("Signature:   unreadable (%s)\n", strerror(-sigs->error));
		return;
	}
	if (sigs->n == 0) {
		printf("Signature:   none (unsigned)\n");
		return;
	}
	for (size_t i = 0; i < sigs->n; i++) {
		const struct sign_record *rec = &sigs->records[i];

		sign_key_id_to_string(rec->key_id, id);
		format_timestamp(when, sizeof(when), rec->signed_unix);
		if (sigs->verdicts[i] == SIGN_VERDICT_VALID)
			printf("Signature:   signed by %s (valid), %s\n", id, when);
		else
			printf("Signature:   INVALID signature by %s (%s), %s\n", id,
			       sign_verdict_to_string(sigs->verdicts[i]), when);
	}
}

void cli_signatures_print_json(struct json *j, const struct cli_signatures *sigs)
{
	char id[SIGN_KEY_ID_STRING_MAX];

	if (sigs->error < 0) {
		json_null(j, "signatures");
		return;
	}
	json_array_begin(j, "signatures");
	for (size_t i = 0; i < sigs->n; i++) {
		const struct sign_record *rec = &sigs->records[i];
		bool valid = sigs->verdicts[i] == SIGN_VERDICT_VALID;

		json_object_begin(j, NULL);
		json_string(j, "key_id", sign_key_id_to_string(rec->key_id, id));
		json_bool(j, "valid", valid);
		json_i64(j, "time", rec->signed_unix);
		json_string(j, "problem", valid ? NULL : sign_verdict_to_string(sigs->verdicts[i]));
		json_object_end(j);
	}
	json_array_end(j);
}
