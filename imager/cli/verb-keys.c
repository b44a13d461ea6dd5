/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager keys generate --output PREFIX: an Ed25519 signing key pair,
 *	PREFIX.key (private, PKCS#8 PEM, mode 0600) and PREFIX.pub (public).
 * imager keys id KEYFILE: the key ID of a private or public key file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "imager/sign.h"
#include "util/cleanup.h"
#include "util/log.h"

DEFINE_CLEANUP(struct sign_key *, sign_key_free)

static int keys_generate(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "output", required_argument, NULL, 'o' },
		{}
	};
	_cleanup_(sign_key_freep) struct sign_key *k = NULL;
	_cleanup_free_ char *priv = NULL, *pub = NULL;
	const char *prefix = NULL;
	uint8_t id[SIGN_KEY_ID_BYTES];
	char ids[SIGN_KEY_ID_STRING_MAX];
	int c, r;

	while ((c = getopt_long(argc, argv, "ho:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: imager keys generate --output PREFIX\n\n"
			       "Make an Ed25519 signing key pair: PREFIX.key, the private key\n"
			       "(PEM PKCS#8, mode 0600: keep it secret) for 'capture --sign-key'\n"
			       "and 'images sign', and PREFIX.pub, the public key for\n"
			       "'flash --trust' and the appliance's APPLIANCE_TRUSTED_KEYS.\n"
			       "Never overwrites a file.\n");
			return 0;
		case 'o':
			prefix = optarg;
			break;
		default:
			return usage_error("keys generate", "bad option");
		}
	if (optind != argc)
		return usage_error("keys generate", "unexpected argument '%s'", argv[optind]);
	if (!prefix || !*prefix)
		return usage_error("keys generate", "--output PREFIX is required");
	if (asprintf(&priv, "%s.key", prefix) < 0 || asprintf(&pub, "%s.pub", prefix) < 0)
		return log_oom();
	/* both checked first, so a refusal leaves nothing behind */
	for (const char *p = priv; p; p = p == priv ? pub : NULL)
		if (faccessat(AT_FDCWD, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			return log_error_errno(-EEXIST, "'%s' exists; refusing to overwrite it.",
					       p);

	r = sign_key_generate(&k);
	if (r < 0)
		return log_error_errno(r, "Failed to generate a key pair: %m");
	r = sign_key_save_private(k, AT_FDCWD, priv);
	if (r == -EEXIST)
		return log_error_errno(r, "'%s' exists; refusing to overwrite it.", priv);
	if (r < 0)
		return log_error_errno(r, "Failed to write '%s': %m", priv);
	r = sign_key_save_public(k, AT_FDCWD, pub);
	if (r < 0) {
		(void) unlink(priv); /* ours, written a moment ago: no half pair */
		if (r == -EEXIST)
			return log_error_errno(r, "'%s' exists; refusing to overwrite it.", pub);
		return log_error_errno(r, "Failed to write '%s': %m", pub);
	}
	sign_key_id(k, id);
	if (!arg_quiet)
		printf("Key %s: private key '%s' (keep it secret), public key '%s'.\n",
		       sign_key_id_to_string(id, ids), priv, pub);
	return 0;
}

static int keys_id(int argc, char *argv[])
{
	_cleanup_(sign_key_freep) struct sign_key *k = NULL;
	uint8_t id[SIGN_KEY_ID_BYTES];
	char ids[SIGN_KEY_ID_STRING_MAX];
	bool private = false;
	int r;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: imager keys id KEYFILE\n\n"
		       "Print the key ID of a public (.pub) or private (.key) key file, as\n"
		       "'images describe' shows its signatures.\n");
		return 0;
	}
	if (argc != 2)
		return usage_error("keys id", "exactly one KEYFILE, please");
	r = sign_key_load_public(AT_FDCWD, argv[1], &k);
	if (r == -EBADMSG) {
		r = sign_key_load_private(AT_FDCWD, argv[1], &k);
		private = r >= 0;
	}
	if (r == -ENOENT)
		return log_error_errno(r, "Key file '%s' does not exist.", argv[1]);
	if (r == -EBADMSG)
		return log_error_errno(r, "'%s' is not an Ed25519 key in PEM form.", argv[1]);
	if (r < 0)
		return log_error_errno(r, "Failed to read '%s': %m", argv[1]);
	sign_key_id(k, id);
	printf("%s%s\n", sign_key_id_to_string(id, ids), private ? " (private key)" : "");
	return 0;
}

static const struct verb keys_verbs[] = {
	{ "generate", "Make an Ed25519 signing key pair (PREFIX.key, PREFIX.pub)", keys_generate },
	{ "id", "Print the key ID of a key file", keys_id },
	{}
};

int verb_keys(int argc, char *argv[])
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("Usage: imager keys SUBCOMMAND [ARGS]\n\n");
		for (const struct verb *v = keys_verbs; v->name; v++)
			printf("  %-12s %s\n", v->name, v->summary);
		return argc < 2 ? -EINVAL : 0;
	}
	for (const struct verb *v = keys_verbs; v->name; v++)
		if (strcmp(v->name, argv[1]) == 0)
			return v->run(argc - 1, argv + 1);
	return usage_error("keys", "unknown subcommand '%s'", argv[1]);
}
