/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager flash IMAGE DISK... [--store DIR] [--yes] [--grow] [--no-verify]
 *              [--dry-run] [--discard] [--size SIZE] [--progress=MODE]
 * imager flash --family FAMILY DISK... [OPTIONS]
 *
 * Parses the command line; the run itself is flash_run() (flash-run.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flash-run.h"
#include "imager/store.h"
#include "lifecycle.h"
#include "output.h"
#include "trust.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)

#define TARGETS_MAX FLASH_TARGETS_MAX

static const char *arg_store, *arg_report, *arg_family;
static bool arg_yes, arg_grow, arg_verify = true, arg_dry_run, arg_discard;
static uint64_t arg_size_bytes;
static enum progress_mode arg_progress = PROGRESS_AUTO;
static struct trust_policy arg_trust;

static void help(void)
{
	printf("Usage: imager flash IMAGE DISK... [OPTIONS]\n"
	       "       imager flash --family FAMILY DISK... [OPTIONS]\n\n"
	       "Write an image onto disks (block devices, or regular files as sparse images);\n"
	       "the image's disks map to the DISKs in order.\n\n"
	       "  -s --store DIR      store directory (default $IMAGER_STORE, then %s)\n"
	       "     --family FAMILY  flash the newest active image of FAMILY (and say which)\n"
	       "  -y --yes            do not ask before overwriting\n"
	       "     --grow           extend the last partition and its ext file system to the end\n"
	       "     --no-verify      skip the read-back verification\n"
	       "  -n --dry-run        print what would be written, write nothing\n"
	       "     --discard        TRIM the whole target before writing\n"
	       "     --size SIZE      size of a file target (default: the image disk's size)\n"
	       "     --progress=MODE  auto, tty, json or none\n"
	       "     --report FILE    write a JSON report of the run (also on failure)\n"
	       TRUST_OPTIONS_HELP,
	       IMAGER_STORE_DEFAULT);
}

static int parse_argv(int argc, char *argv[])
{
	enum {
		ARG_GROW = 0x100,
		ARG_NO_VERIFY,
		ARG_DISCARD,
		ARG_SIZE,
		ARG_PROGRESS,
		ARG_REPORT,
		ARG_FAMILY,
		ARG_REQUIRE_SIGNED,
		ARG_TRUST,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "yes", no_argument, NULL, 'y' },
		{ "grow", no_argument, NULL, ARG_GROW },
		{ "no-verify", no_argument, NULL, ARG_NO_VERIFY },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "discard", no_argument, NULL, ARG_DISCARD },
		{ "size", required_argument, NULL, ARG_SIZE },
		{ "progress", required_argument, NULL, ARG_PROGRESS },
		{ "report", required_argument, NULL, ARG_REPORT },
		{ "family", required_argument, NULL, ARG_FAMILY },
		{ "require-signed", no_argument, NULL, ARG_REQUIRE_SIGNED },
		{ "trust", required_argument, NULL, ARG_TRUST },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "hs:yn", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'y':
			arg_yes = true;
			break;
		case ARG_GROW:
			arg_grow = true;
			break;
		case ARG_NO_VERIFY:
			arg_verify = false;
			break;
		case 'n':
			arg_dry_run = true;
			break;
		case ARG_DISCARD:
			arg_discard = true;
			break;
		case ARG_SIZE:
			if (parse_size(optarg, &arg_size_bytes) < 0 || arg_size_bytes == 0)
				return usage_error("flash", "invalid --size '%s'", optarg);
			break;
		case ARG_PROGRESS:
			arg_progress = progress_mode_from_string(optarg);
			if ((int) arg_progress < 0)
				return usage_error("flash", "unknown --progress mode '%s'", optarg);
			break;
		case ARG_REPORT:
			arg_report = optarg;
			break;
		case ARG_FAMILY:
			if (!manifest_name_is_valid(optarg))
				return usage_error("flash", "invalid family name '%s'", optarg);
			arg_family = optarg;
			break;
		case ARG_REQUIRE_SIGNED:
			arg_trust.require_signed = true;
			break;
		case ARG_TRUST:
			if (trust_policy_add_key(&arg_trust, "flash", optarg) < 0)
				return -EINVAL;
			break;
		default:
			return usage_error("flash", "bad option");
		}
	if (trust_policy_finish(&arg_trust, "flash") < 0)
		return -EINVAL;
	if (arg_family) {
		if (argc - optind < 1)
			return usage_error("flash", "DISK is required");
		if (argc - optind > TARGETS_MAX)
			return usage_error("flash", "at most %d disks", TARGETS_MAX);
		return 1;
	}
	if (argc - optind < 2)
		return usage_error("flash", "IMAGE and DISK are required");
	if (argc - optind - 1 > TARGETS_MAX)
		return usage_error("flash", "at most %d disks", TARGETS_MAX);
	return 1;
}

int verb_flash(int argc, char *argv[])
{
	_cleanup_free_ char *resolved = NULL;
	struct flash_request req;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	if (arg_family) {
		_cleanup_(store_freep) struct store *s = NULL;
		const char *path = cli_store_path(arg_store);

		r = cli_store_open(path, false, &s);
		if (r < 0)
			return r;
		r = cli_resolve_family(s, arg_family, &resolved);
		if (r < 0)
			return r;
	}
	req = (struct flash_request){
		.store_arg = arg_store,
		.kind = MANIFEST_KIND_IMAGE,
		.name = resolved ? resolved : argv[optind],
		.targets = argv + optind + (resolved ? 0 : 1),
		.n_targets = (size_t) (argc - optind - (resolved ? 0 : 1)),
		.yes = arg_yes,
		.grow = arg_grow,
		.verify = arg_verify,
		.dry_run = arg_dry_run,
		.discard = arg_discard,
		.size_bytes = arg_size_bytes,
		.progress = arg_progress,
		.report_path = arg_report,
		.action = "flash",
		.trust = &arg_trust,
	};
	return flash_run(&req);
}
