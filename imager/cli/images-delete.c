/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager images delete NAME... [--store DIR]: removes images (the manifest
 * and the deprecation record). Their chunks stay until `imager store gc`,
 * which keeps every chunk another image or snapshot still names.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "imager/gc.h"
#include "imager/lifecycle.h"
#include "imager/sign.h"
#include "imager/store.h"
#include "lifecycle.h"
#include "output.h"
#include "show.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/log.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)

static const char *arg_store;

int cli_delete_manifests(enum manifest_kind kind, const char *store_arg, char **names,
			 size_t n_names)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	const char *path = cli_store_path(store_arg);
	const char *what = kind == MANIFEST_KIND_SNAPSHOT ? "Snapshot" : "Image";
	int r;

	r = cli_store_open(path, false, &s);
	if (r < 0)
		return r;
	/* check them all first: either every name is deleted, or none */
	for (size_t i = 0; i < n_names; i++) {
		_cleanup_(manifest_freep) struct manifest *m = NULL;

		if (!manifest_name_is_valid(names[i]))
			return log_error_errno(-ENOENT, "%s '%s' does not exist in store '%s'.", what,
					       names[i], path);
		r = store_get_manifest_of_kind(s, kind, names[i], &m);
		if (r == -ENOENT)
			return log_error_errno(r, "%s '%s' does not exist in store '%s'.", what,
					       names[i], path);
		/* a damaged manifest can be deleted: that is how a store is repaired */
		if (r < 0 && r != -EBADMSG && r != -EPROTONOSUPPORT)
			return log_error_errno(r, "Failed to load %s '%s': %m",
					       manifest_kind_to_string(kind), names[i]);
	}
	r = cli_store_lock(s, STORE_LOCK_SHARED, true, &lock_fd);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_names; i++) {
		/* the record first: a crash in between leaves an ACTIVE image, never a stale record */
		if (kind == MANIFEST_KIND_IMAGE) {
			r = store_put_deprecation(s, names[i], NULL);
			if (r < 0)
				return log_error_errno(r, "Failed to remove the deprecation record of "
						       "'%s': %m", names[i]);
		}
		/* its signatures too, first: a crash leaves an unsigned image, not a stale .sig */
		r = sign_remove(s, kind, names[i]);
		if (r < 0)
			return log_error_errno(r, "Failed to remove the signatures of '%s': %m",
					       names[i]);
		r = store_remove_manifest(s, kind, names[i]);
		if (r < 0)
			return log_error_errno(r, "Failed to delete %s '%s': %m",
					       manifest_kind_to_string(kind), names[i]);
		if (!arg_quiet)
			printf("Deleted %s '%s'; chunks no other image or snapshot uses are freed by "
			       "'imager store gc'.\n", manifest_kind_to_string(kind), names[i]);
	}
	return 0;
}

int images_delete(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "hs:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: imager images delete NAME... [--store DIR]\n\n"
			       "Delete images: their manifests and deprecation records. Chunks that\n"
			       "no other image or snapshot uses are freed by 'imager store gc'.\n");
			return 0;
		case 's':
			arg_store = optarg;
			break;
		default:
			return usage_error("images delete", "bad option");
		}
	if (optind >= argc)
		return usage_error("images delete", "no image NAME given");
	return cli_delete_manifests(MANIFEST_KIND_IMAGE, arg_store, argv + optind,
				    (size_t) (argc - optind));
}
