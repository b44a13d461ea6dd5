/* SPDX-License-Identifier: GPL-2.0-or-later */
/* imager verify IMAGE DISK... [--store DIR]: compare disks with an image, writing nothing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "imager/flash.h"
#include "output.h"
#include "target.h"
#include "trust.h"
#include "util/cleanup.h"
#include "util/log.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)

static const char *arg_store;
static enum progress_mode arg_progress = PROGRESS_AUTO;
static struct trust_policy arg_trust;

int verb_verify(int argc, char *argv[])
{
	enum { ARG_PROGRESS = 0x100, ARG_REQUIRE_SIGNED, ARG_TRUST };
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "progress", required_argument, NULL, ARG_PROGRESS },
		{ "require-signed", no_argument, NULL, ARG_REQUIRE_SIGNED },
		{ "trust", required_argument, NULL, ARG_TRUST },
		{}
	};
	_cleanup_(store_freep) struct store *store = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	size_t n;
	int c, r;

	while ((c = getopt_long(argc, argv, "hs:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: imager verify IMAGE DISK... [--store DIR]\n\n"
			       "Compare disks with an image (partition table, boot code, every data\n"
			       "extent read back with O_DIRECT). Exit 3 if they differ.\n\n"
			       TRUST_OPTIONS_HELP);
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case ARG_PROGRESS:
			arg_progress = progress_mode_from_string(optarg);
			if ((int) arg_progress < 0)
				return usage_error("verify", "unknown --progress mode '%s'", optarg);
			break;
		case ARG_REQUIRE_SIGNED:
			arg_trust.require_signed = true;
			break;
		case ARG_TRUST:
			if (trust_policy_add_key(&arg_trust, "verify", optarg) < 0)
				return -EINVAL;
			break;
		default:
			return usage_error("verify", "bad option");
		}
	if (trust_policy_finish(&arg_trust, "verify") < 0)
		return -EINVAL;
	if (argc - optind < 2)
		return usage_error("verify", "IMAGE and DISK are required");
	n = (size_t) (argc - optind - 1);

	/* checking disks made from an image is not a new use: OBSOLETE ones only warn */
	r = cli_load_manifest(arg_store, MANIFEST_KIND_IMAGE, argv[optind], IMAGE_USE_EXISTING,
			      &store, &m);
	if (r < 0)
		return r;
	r = cli_check_trust(store, &arg_trust, "verify", &m);
	if (r < 0)
		return r;
	if (n != m->n_disks)
		return usage_error("verify", "image '%s' has %zu disks, %zu given", argv[optind],
				   m->n_disks, n);
	for (size_t i = 0; i < n; i++) {
		const char *path = argv[optind + 1 + i];
		_cleanup_(cli_target_done) struct target t = { .fd = -EBADF };
		_cleanup_free_ char *reason = NULL;
		struct flash_options o = { .disk_index = (unsigned) i, .progress = cli_progress,
					   .userdata = &arg_progress };
		struct flash_stats st = {};

		r = cli_target_inspect(path, &m->disks[i], 0, false, &t);
		if (r < 0)
			return r;
		if (t.is_file && t.file_created)
			return log_error_errno(-ENOENT, "'%s' does not exist.", path);
		r = cli_target_open_read(&t);
		if (r < 0)
			return r;
		r = verify_disk(t.fd, t.size_bytes, &m->disks[i], store, &o, &st, &reason);
		cli_progress_end(arg_progress);
		if (r == -EBADMSG)
			return log_error_errno(r, "'%s' differs from image '%s': %s.", path, m->name,
					       reason ? reason : "content differs");
		if (r < 0)
			return log_error_errno(r, "Failed to verify '%s': %m", path);
		if (!arg_quiet)
			printf("'%s' matches image '%s' (%llu bytes compared).\n", path, m->name,
			       (unsigned long long) st.verified_bytes);
	}
	return 0;
}
