/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The command-line side of signed images (imager/include/imager/sign.h): the
 * trust policy of flash and verify (--require-signed, --trust KEY), signing
 * at capture, and the signatures shown by `images describe`.
 */

#include <stdbool.h>
#include <stddef.h>

#include "imager/manifest.h"
#include "imager/sign.h"
#include "imager/store.h"
#include "util/json.h"

#define TRUST_KEYS_MAX 64

/* What --require-signed and --trust asked for; all zero: no policy. */
struct trust_policy {
	bool require_signed;
	const char *keys[TRUST_KEYS_MAX]; /* public key files, as given */
	size_t n_keys;
};

#define TRUST_OPTIONS_HELP                                                                         \
	"     --require-signed refuse an image without a valid signature by a --trust key\n"       \
	"     --trust KEY.pub  trust this public key (repeatable); implies --require-signed\n"

/* For getopt: --trust KEY; a usage error (-EINVAL) past TRUST_KEYS_MAX. */
int trust_policy_add_key(struct trust_policy *p, const char *verb, const char *path);
/* After getopt: --trust implies --require-signed; --require-signed needs a --trust. */
int trust_policy_finish(struct trust_policy *p, const char *verb);
bool trust_policy_enabled(const struct trust_policy *p);

/*
 * The trust check, before anything is written: with no policy (@p NULL or
 * empty) returns 0 at once. Otherwise loads the trusted keys, reads *@m's
 * manifest file as stored and its signatures, and accepts it only if one
 * signature is valid and by a trusted key (signatures by other keys are
 * ignored). On success replaces *@m with the manifest decoded from exactly
 * the bytes that were verified (so what is flashed is what was signed) and
 * returns 0. Refusals are logged ("Refusing to flash 'X': it is not signed by
 * a trusted key.", with a line per signature saying why it did not count)
 * and return -EKEYREJECTED (exit 4); a bad --trust file is logged too.
 * @action is the verb for messages: "flash", "verify", "restore".
 */
int cli_check_trust(struct store *s, const struct trust_policy *p, const char *action,
		    struct manifest **m);

/* Loads a private signing key (--sign-key, --key) with clear errors. */
int cli_load_sign_key(const char *path, struct sign_key **ret);
/*
 * For a capture, just before store_put_manifest(@m): publishes @m's .sig
 * with a signature by @k (NULL: only clears a stale .sig of a deleted image
 * of that name), so that the image is signed from the moment it is listed.
 * Logs its errors.
 */
int cli_sign_before_publish(struct store *s, const struct manifest *m, const struct sign_key *k);

/* The signatures of a manifest and their verdicts, for `describe`. */
struct cli_signatures {
	int error;                   /* 0, or why the .sig could not be read (-EBADMSG: damaged) */
	struct sign_record *records;
	enum sign_verdict *verdicts;
	size_t n;
};
void cli_signatures_load(struct store *s, const struct manifest *m, struct cli_signatures *ret);
void cli_signatures_done(struct cli_signatures *sigs);
/* "Signature:   signed by 0123456789abcdef (valid), 2026-11-27T19:33:37Z" lines */
void cli_signatures_print_text(const struct cli_signatures *sigs);
/* "signatures": [{"key_id", "valid", "time", "problem"}]; null if the .sig is damaged */
void cli_signatures_print_json(struct json *j, const struct cli_signatures *sigs);
