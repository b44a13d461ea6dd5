/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager images deprecate NAME --state ACTIVE|DEPRECATED|OBSOLETE|DELETED
 *                         [--replacement IMAGE] [--deprecate-on TIME]
 *                         [--obsolete-on TIME] [--delete-on TIME] [--store DIR]
 *
 * Replaces the image's deprecation record as a whole (as gcloud's
 * `images deprecate` does): options not given are cleared. --state ACTIVE
 * with nothing scheduled removes the record.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "imager/lifecycle.h"
#include "imager/store.h"
#include "lifecycle.h"
#include "output.h"
#include "target.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)

static const char *arg_store, *arg_replacement;
static enum deprecation_state arg_state = _DEPRECATION_STATE_INVALID;
static int64_t arg_deprecate_on = DEPRECATION_TIME_UNSET, arg_obsolete_on = DEPRECATION_TIME_UNSET,
	       arg_delete_on = DEPRECATION_TIME_UNSET;

static void help(void)
{
	printf("Usage: imager images deprecate NAME --state STATE [OPTIONS]\n\n"
	       "Set the deprecation state of an image (Compute Engine's states):\n"
	       "  ACTIVE      usable\n"
	       "  DEPRECATED  usable, with a warning naming the replacement\n"
	       "  OBSOLETE    new uses (flash, export, create --source-image) are refused\n"
	       "  DELETED     as OBSOLETE; the data stays until 'images delete' and 'store gc'\n\n"
	       "     --state STATE        required\n"
	       "     --replacement IMAGE  the image to use instead (must exist)\n"
	       "     --deprecate-on TIME  become DEPRECATED at TIME (ISO 8601 UTC, e.g.\n"
	       "                          2026-12-01T00:00:00Z)\n"
	       "     --obsolete-on TIME   become OBSOLETE at TIME\n"
	       "     --delete-on TIME     become DELETED at TIME\n"
	       "  -s --store DIR          store directory (default $IMAGER_STORE, then %s)\n\n"
	       "Scheduled states take effect by themselves when their time comes; the\n"
	       "record is replaced as a whole, so options not given are cleared.\n",
	       IMAGER_STORE_DEFAULT);
}

static int parse_time(const char *opt, const char *s, int64_t *ret)
{
	if (parse_timestamp(s, ret) < 0 || *ret <= -DEPRECATION_TIME_LIMIT ||
	    *ret >= DEPRECATION_TIME_LIMIT)
		return usage_error("images deprecate",
				   "invalid %s '%s': want a time like 2026-12-01T00:00:00Z", opt, s);
	return 0;
}

static int parse_argv(int argc, char *argv[])
{
	enum {
		ARG_STATE = 0x100,
		ARG_REPLACEMENT,
		ARG_DEPRECATE_ON,
		ARG_OBSOLETE_ON,
		ARG_DELETE_ON,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "state", required_argument, NULL, ARG_STATE },
		{ "replacement", required_argument, NULL, ARG_REPLACEMENT },
		{ "deprecate-on", required_argument, NULL, ARG_DEPRECATE_ON },
		{ "obsolete-on", required_argument, NULL, ARG_OBSOLETE_ON },
		{ "delete-on", required_argument, NULL, ARG_DELETE_ON },
		{}
	};
	int c, r;

	while ((c = getopt_long(argc, argv, "hs:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case ARG_STATE:
			arg_state = deprecation_state_from_string(optarg);
			if ((int) arg_state < 0)
				return usage_error("images deprecate",
						   "unknown --state '%s': use ACTIVE, DEPRECATED, "
						   "OBSOLETE or DELETED",
						   optarg);
			break;
		case ARG_REPLACEMENT:
			if (!manifest_name_is_valid(optarg))
				return usage_error("images deprecate",
						   "invalid --replacement image name '%s'", optarg);
			arg_replacement = optarg;
			break;
		case ARG_DEPRECATE_ON:
			r = parse_time("--deprecate-on", optarg, &arg_deprecate_on);
			if (r < 0)
				return r;
			break;
		case ARG_OBSOLETE_ON:
			r = parse_time("--obsolete-on", optarg, &arg_obsolete_on);
			if (r < 0)
				return r;
			break;
		case ARG_DELETE_ON:
			r = parse_time("--delete-on", optarg, &arg_delete_on);
			if (r < 0)
				return r;
			break;
		default:
			return usage_error("images deprecate", "bad option");
		}
	if (argc - optind != 1)
		return usage_error("images deprecate", "exactly one image NAME is required");
	if ((int) arg_state < 0)
		return usage_error("images deprecate", "--state is required");
	if (streq_ptr(arg_replacement, argv[optind]))
		return usage_error("images deprecate", "an image cannot replace itself");
	if ((arg_deprecate_on != DEPRECATION_TIME_UNSET && arg_obsolete_on != DEPRECATION_TIME_UNSET &&
	     arg_deprecate_on > arg_obsolete_on) ||
	    (arg_deprecate_on != DEPRECATION_TIME_UNSET && arg_delete_on != DEPRECATION_TIME_UNSET &&
	     arg_deprecate_on > arg_delete_on) ||
	    (arg_obsolete_on != DEPRECATION_TIME_UNSET && arg_delete_on != DEPRECATION_TIME_UNSET &&
	     arg_obsolete_on > arg_delete_on))
		return usage_error("images deprecate",
				   "the times must come in order: --deprecate-on, then --obsolete-on, "
				   "then --delete-on");
	return 1;
}

int images_deprecate(int argc, char *argv[])
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	struct deprecation d = DEPRECATION_INIT;
	const char *name;
	enum deprecation_state now_state;
	char buf[64];
	int64_t now;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	name = argv[optind];
	r = cli_now(&now);
	if (r < 0)
		return r;
	r = cli_load_manifest(arg_store, MANIFEST_KIND_IMAGE, name, IMAGE_USE_INSPECT, &s, &m);
	if (r < 0)
		return r;
	if (arg_replacement) {
		_cleanup_(manifest_freep) struct manifest *rm = NULL;
		r = store_get_manifest_of_kind(s, MANIFEST_KIND_IMAGE, arg_replacement, &rm);
		if (r == -ENOENT)
			return log_error_errno(r, "Replacement image '%s' does not exist in store '%s'.",
					       arg_replacement, store_path(s));
		if (r < 0 && r != -EBADMSG)
			return log_error_errno(r, "Failed to load replacement image '%s': %m",
					       arg_replacement);
	}
	r = cli_store_lock(s, STORE_LOCK_SHARED, true, &lock_fd);
	if (r < 0)
		return r;

	d.state = arg_state;
	d.replacement = (char *) arg_replacement;
	d.deprecate_on = arg_deprecate_on;
	d.obsolete_on = arg_obsolete_on;
	d.delete_on = arg_delete_on;
	d.changed_unix = now;
	if (arg_state == DEPRECATION_ACTIVE && !arg_replacement &&
	    arg_deprecate_on == DEPRECATION_TIME_UNSET && arg_obsolete_on == DEPRECATION_TIME_UNSET &&
	    arg_delete_on == DEPRECATION_TIME_UNSET)
		r = store_put_deprecation(s, name, NULL); /* plain ACTIVE: no record at all */
	else
		r = store_put_deprecation(s, name, &d);
	if (r < 0)
		return log_error_errno(r, "Failed to set the deprecation state of '%s': %m", name);

	if (arg_quiet)
		return 0;
	now_state = deprecation_effective_state(&d, now);
	printf("Image '%s' is now %s", name, deprecation_state_to_string(now_state));
	if (arg_replacement && now_state != DEPRECATION_ACTIVE)
		printf("; use '%s' instead", arg_replacement);
	printf(".\n");
	{
		const int64_t t[] = { arg_deprecate_on, arg_obsolete_on, arg_delete_on };
		const enum deprecation_state st[] = { DEPRECATION_DEPRECATED, DEPRECATION_OBSOLETE,
						      DEPRECATION_DELETED };
		for (size_t i = 0; i < ELEMENTSOF(t); i++)
			if (t[i] != DEPRECATION_TIME_UNSET && t[i] > now && st[i] > now_state)
				printf("Image '%s' becomes %s on %s.\n", name,
				       deprecation_state_to_string(st[i]),
				       format_timestamp(buf, sizeof(buf), t[i]));
	}
	return 0;
}
