/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager images sign NAME --key KEY [--store DIR]: add a signature to a
 * published image (docs/FORMAT.md, "Signatures"). The manifest is not
 * touched; NAME.sig beside it is replaced atomically.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "lifecycle.h"
#include "target.h"
#include "trust.h"
#include "util/cleanup.h"
#include "util/log.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)
DEFINE_CLEANUP(struct sign_key *, sign_key_free)

int images_sign(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "key", required_argument, NULL, 'k' },
		{}
	};
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_(sign_key_freep) struct sign_key *k = NULL;
	_cleanup_free_ struct sign_record *recs = NULL;
	const char *arg_store = NULL, *arg_key = NULL, *name;
	struct sign_record rec;
	char id[SIGN_KEY_ID_STRING_MAX];
	size_t n = 0;
	int64_t now;
	int c, r;

	while ((c = getopt_long(argc, argv, "hs:k:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: imager images sign NAME --key KEY [--store DIR]\n\n"
			       "Sign an image with a private key from 'imager keys generate'.\n"
			       "An image may carry several signatures, one per key; signing\n"
			       "again with a key replaces that key's signature.\n");
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'k':
			arg_key = optarg;
			break;
		default:
			return usage_error("images sign", "bad option");
		}
	if (argc - optind != 1)
		return usage_error("images sign", "exactly one image NAME, please");
	if (!arg_key)
		return usage_error("images sign", "--key KEY is required");
	name = argv[optind];

	r = cli_now(&now);
	if (r < 0)
		return r;
	r = cli_load_sign_key(arg_key, &k);
	if (r < 0)
		return r;
	/* clear errors for a missing or damaged image; signing re-reads and re-checks it */
	r = cli_load_manifest(arg_store, MANIFEST_KIND_IMAGE, name, IMAGE_USE_INSPECT, &s, &m);
	if (r < 0)
		return r;
	r = sign_add(s, MANIFEST_KIND_IMAGE, name, k, now, &rec);
	if (r == -ENOENT)
		return log_error_errno(r, "Image '%s' does not exist in store '%s'.", name,
				       store_path(s));
	if (r == -EBADMSG) {
		/* the manifest read fine a moment ago: its .sig is what is damaged */
		if (sign_load(s, MANIFEST_KIND_IMAGE, name, &recs, &n) == -EBADMSG)
			return log_error_errno(r, "The signature file of image '%s' is damaged; "
					       "remove images/%s.sig from the store to sign it "
					       "afresh.", name, name);
		return log_error_errno(r, "Image '%s' is damaged (its manifest does not verify).",
				       name);
	}
	if (r == -E2BIG)
		return log_error_errno(r, "Image '%s' has %d signatures already.", name,
				       SIGN_RECORDS_MAX);
	if (r < 0)
		return log_error_errno(r, "Failed to sign image '%s': %m", name);
	if (sign_load(s, MANIFEST_KIND_IMAGE, name, &recs, &n) < 0)
		n = 1;
	if (!arg_quiet)
		printf("Signed image '%s' with key %s; it has %zu signature%s.\n", name,
		       sign_key_id_to_string(rec.key_id, id), n, n == 1 ? "" : "s");
	return 0;
}
