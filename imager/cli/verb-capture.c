/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager capture DISK... --image NAME [--store DIR] [--description TEXT]
 *                [--label K=V]... [--family F] [--allow-dirty] [--freeze]
 *                [--progress=MODE] [--report FILE] [--sign-key KEY]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture-run.h"
#include "cli.h"
#include "output.h"
#include "trust.h"
#include "util/cleanup.h"
#include "util/log.h"

DEFINE_CLEANUP(struct sign_key *, sign_key_free)

#define DISKS_MAX 16

static const char *arg_store, *arg_image, *arg_description, *arg_report, *arg_family;
static char *arg_labels[MANIFEST_LABELS_MAX + 1];
static size_t arg_n_labels;
static bool arg_allow_dirty, arg_freeze;
static const char *arg_sign_key;
static enum progress_mode arg_progress = PROGRESS_AUTO;

static void help(void)
{
	printf("Usage: imager capture DISK... --image NAME [OPTIONS]\n\n"
	       "Capture disks (block devices or disk-image files) into an image in a store.\n\n"
	       "  -s --store DIR        store directory (default $IMAGER_STORE, then %s)\n"
	       "  -i --image NAME       image name: lowercase letters, digits, hyphens\n"
	       "     --description TEXT\n"
	       "     --label KEY=VALUE  may be repeated\n"
	       "     --family NAME      image family: 'flash --family NAME' picks its newest\n"
	       "                        active image\n"
	       "     --allow-dirty      capture ext file systems that were not cleanly unmounted\n"
	       "     --freeze           freeze mounted ext4 file systems (FIFREEZE) while reading\n"
	       "     --progress=MODE    auto, tty, json or none\n"
	       "     --report FILE      write a JSON report of the run (also on failure)\n"
	       "     --sign-key KEY     sign the image with this private key (keys generate)\n",
	       IMAGER_STORE_DEFAULT);
}

static int parse_argv(int argc, char *argv[])
{
	enum {
		ARG_DESCRIPTION = 0x100,
		ARG_LABEL,
		ARG_ALLOW_DIRTY,
		ARG_FREEZE,
		ARG_PROGRESS,
		ARG_REPORT,
		ARG_FAMILY,
		ARG_SIGN_KEY,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "image", required_argument, NULL, 'i' },
		{ "description", required_argument, NULL, ARG_DESCRIPTION },
		{ "label", required_argument, NULL, ARG_LABEL },
		{ "allow-dirty", no_argument, NULL, ARG_ALLOW_DIRTY },
		{ "freeze", no_argument, NULL, ARG_FREEZE },
		{ "progress", required_argument, NULL, ARG_PROGRESS },
		{ "report", required_argument, NULL, ARG_REPORT },
		{ "family", required_argument, NULL, ARG_FAMILY },
		{ "sign-key", required_argument, NULL, ARG_SIGN_KEY },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "hs:i:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'i':
			arg_image = optarg;
			break;
		case ARG_DESCRIPTION:
			arg_description = optarg;
			break;
		case ARG_LABEL:
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return usage_error("capture", "--label wants KEY=VALUE, got '%s'", optarg);
			if (arg_n_labels >= MANIFEST_LABELS_MAX)
				return usage_error("capture", "too many --label options");
			arg_labels[arg_n_labels++] = optarg;
			break;
		case ARG_ALLOW_DIRTY:
			arg_allow_dirty = true;
			break;
		case ARG_FREEZE:
			arg_freeze = true;
			break;
		case ARG_PROGRESS:
			arg_progress = progress_mode_from_string(optarg);
			if ((int) arg_progress < 0)
				return usage_error("capture", "unknown --progress mode '%s'", optarg);
			break;
		case ARG_REPORT:
			arg_report = optarg;
			break;
		case ARG_FAMILY:
			if (!manifest_name_is_valid(optarg))
				return usage_error("capture",
						   "invalid family name '%s': use lowercase letters, "
						   "digits and hyphens, start with a letter",
						   optarg);
			arg_family = optarg;
			break;
		case ARG_SIGN_KEY:
			arg_sign_key = optarg;
			break;
		default:
			return usage_error("capture", "bad option");
		}
	if (!arg_image)
		return usage_error("capture", "--image NAME is required");
	if (!manifest_name_is_valid(arg_image))
		return usage_error("capture",
				   "invalid image name '%s': use lowercase letters, digits and "
				   "hyphens, start with a letter, at most 63 characters",
				   arg_image);
	if (optind >= argc)
		return usage_error("capture", "no DISK given");
	if (argc - optind > DISKS_MAX)
		return usage_error("capture", "at most %d disks", DISKS_MAX);
	return 1;
}

static int decorate(struct manifest *m, void *userdata)
{
	if (!arg_family)
		return 0;
	free(m->family);
	m->family = strdup(arg_family);
	return m->family ? 0 : log_oom();
}

int verb_capture(int argc, char *argv[])
{
	_cleanup_(sign_key_freep) struct sign_key *key = NULL;
	struct capture_request req;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	/* a bad key is found before the disks are read, not after */
	if (arg_sign_key) {
		r = cli_load_sign_key(arg_sign_key, &key);
		if (r < 0)
			return r;
	}
	req = (struct capture_request){
		.store_path = cli_store_path(arg_store),
		.name = arg_image,
		.description = arg_description,
		.labels = arg_labels,
		.n_labels = arg_n_labels,
		.disks = argv + optind,
		.n_disks = (size_t) (argc - optind),
		.allow_dirty = arg_allow_dirty,
		.freeze = arg_freeze,
		.progress = arg_progress,
		.report_path = arg_report,
		.decorate = decorate,
		.sign_key = key,
	};
	return capture_run(&req);
}
