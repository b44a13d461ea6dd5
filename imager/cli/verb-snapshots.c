/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager snapshots create DISK --name NAME [--description TEXT] [--label K=V]...
 *                  [--allow-dirty] [--freeze] [--progress=MODE] [--report FILE]
 * imager snapshots list [--json]
 * imager snapshots describe NAME [--json]
 * imager snapshots delete NAME...
 * imager snapshots restore NAME DISK [--yes] [--grow] [--no-verify] [--dry-run]
 *                  [--discard] [--size SIZE] [--progress=MODE] [--report FILE]
 * (all with [--store DIR])
 *
 * A snapshot is a manifest of kind "snapshot" in snapshots/ (docs/FORMAT.md):
 * always exactly one disk, captured like an image. Content addressing makes
 * it incremental: it stores only the chunks the store does not hold yet,
 * whichever image or snapshot holds them, and each snapshot names all of
 * its chunks, so deleting one never takes data another needs.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "capture-run.h"
#include "cli.h"
#include "flash-run.h"
#include "output.h"
#include "show.h"
#include "util/log.h"
#include "util/strutil.h"

static const char *arg_store;

static int snapshots_create(int argc, char *argv[])
{
	enum {
		ARG_NAME = 0x100,
		ARG_DESCRIPTION,
		ARG_LABEL,
		ARG_ALLOW_DIRTY,
		ARG_FREEZE,
		ARG_PROGRESS,
		ARG_REPORT,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, ARG_NAME },
		{ "description", required_argument, NULL, ARG_DESCRIPTION },
		{ "label", required_argument, NULL, ARG_LABEL },
		{ "allow-dirty", no_argument, NULL, ARG_ALLOW_DIRTY },
		{ "freeze", no_argument, NULL, ARG_FREEZE },
		{ "progress", required_argument, NULL, ARG_PROGRESS },
		{ "report", required_argument, NULL, ARG_REPORT },
		{}
	};
	static char *labels[MANIFEST_LABELS_MAX + 1];
	struct capture_request req = {
		.action = "snapshot",
		.kind_word = "snapshot",
		.kind = MANIFEST_KIND_SNAPSHOT,
		.progress = PROGRESS_AUTO,
		.labels = labels,
	};
	const char *name = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "hs:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: imager snapshots create DISK --name NAME [OPTIONS]\n\n"
			       "Capture one disk into a snapshot. Only chunks the store does not hold\n"
			       "yet are written; the summary says how many bytes were new.\n\n"
			       "  -s --store DIR        store directory (default $IMAGER_STORE, then %s)\n"
			       "     --name NAME        snapshot name: lowercase letters, digits, hyphens\n"
			       "     --description TEXT\n"
			       "     --label KEY=VALUE  may be repeated\n"
			       "     --allow-dirty      capture ext file systems not cleanly unmounted\n"
			       "     --freeze           freeze mounted ext4 file systems while reading\n"
			       "     --progress=MODE    auto, tty, json or none\n"
			       "     --report FILE      write a JSON report of the run\n",
			       IMAGER_STORE_DEFAULT);
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case ARG_NAME:
			name = optarg;
			break;
		case ARG_DESCRIPTION:
			req.description = optarg;
			break;
		case ARG_LABEL:
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return usage_error("snapshots create", "--label wants KEY=VALUE, got '%s'",
						   optarg);
			if (req.n_labels >= MANIFEST_LABELS_MAX)
				return usage_error("snapshots create", "too many --label options");
			labels[req.n_labels++] = optarg;
			break;
		case ARG_ALLOW_DIRTY:
			req.allow_dirty = true;
			break;
		case ARG_FREEZE:
			req.freeze = true;
			break;
		case ARG_PROGRESS:
			req.progress = progress_mode_from_string(optarg);
			if ((int) req.progress < 0)
				return usage_error("snapshots create", "unknown --progress mode '%s'",
						   optarg);
			break;
		case ARG_REPORT:
			req.report_path = optarg;
			break;
		default:
			return usage_error("snapshots create", "bad option");
		}
	if (!name)
		return usage_error("snapshots create", "--name NAME is required");
	if (!manifest_name_is_valid(name))
		return usage_error("snapshots create",
				   "invalid snapshot name '%s': use lowercase letters, digits and "
				   "hyphens, start with a letter, at most 63 characters",
				   name);
	if (optind >= argc)
		return usage_error("snapshots create", "no DISK given");
	if (argc - optind > 1)
		return usage_error("snapshots create",
				   "a snapshot captures exactly one disk, %d were given; use "
				   "'imager capture' for an image of several disks",
				   argc - optind);
	req.store_path = cli_store_path(arg_store);
	req.name = name;
	req.disks = argv + optind;
	req.n_disks = 1;
	return capture_run(&req);
}

static int snapshots_restore(int argc, char *argv[])
{
	enum { ARG_GROW = 0x100, ARG_NO_VERIFY, ARG_DISCARD, ARG_SIZE, ARG_PROGRESS, ARG_REPORT };
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
		{}
	};
	struct flash_request req = {
		.kind = MANIFEST_KIND_SNAPSHOT,
		.verify = true,
		.progress = PROGRESS_AUTO,
		.action = "restore",
	};
	int c;

	while ((c = getopt_long(argc, argv, "hs:yn", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: imager snapshots restore NAME DISK [OPTIONS]\n\n"
			       "Write a snapshot onto a disk, as 'imager flash' writes an image, and\n"
			       "verify it. Options as for flash: --yes, --grow, --no-verify, --dry-run,\n"
			       "--discard, --size SIZE, --progress=MODE, --report FILE, --store DIR.\n");
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'y':
			req.yes = true;
			break;
		case ARG_GROW:
			req.grow = true;
			break;
		case ARG_NO_VERIFY:
			req.verify = false;
			break;
		case 'n':
			req.dry_run = true;
			break;
		case ARG_DISCARD:
			req.discard = true;
			break;
		case ARG_SIZE:
			if (parse_size(optarg, &req.size_bytes) < 0 || req.size_bytes == 0)
				return usage_error("snapshots restore", "invalid --size '%s'", optarg);
			break;
		case ARG_PROGRESS:
			req.progress = progress_mode_from_string(optarg);
			if ((int) req.progress < 0)
				return usage_error("snapshots restore", "unknown --progress mode '%s'",
						   optarg);
			break;
		case ARG_REPORT:
			req.report_path = optarg;
			break;
		default:
			return usage_error("snapshots restore", "bad option");
		}
	if (argc - optind != 2)
		return usage_error("snapshots restore", "exactly a snapshot NAME and one DISK, please");
	if (!manifest_name_is_valid(argv[optind]))
		return usage_error("snapshots restore", "invalid snapshot name '%s'", argv[optind]);
	req.store_arg = arg_store;
	req.name = argv[optind];
	req.targets = argv + optind + 1;
	req.n_targets = 1;
	return flash_run(&req);
}

/* list, describe and delete: --store and --json only */
static int snapshots_simple(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'J' },
		{}
	};
	const char *sub = argv[0];
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "hs:J", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			if (strcmp(sub, "list") == 0)
				printf("Usage: imager snapshots list [--json] [--store DIR]\n");
			else if (strcmp(sub, "describe") == 0)
				printf("Usage: imager snapshots describe NAME [--json] [--store DIR]\n");
			else
				printf("Usage: imager snapshots delete NAME... [--store DIR]\n\n"
				       "Chunks no other snapshot or image uses are freed by "
				       "'imager store gc'.\n");
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'J':
			json = true;
			break;
		default:
			return usage_error("snapshots", "bad option");
		}
	if (strcmp(sub, "list") == 0) {
		if (optind != argc)
			return usage_error("snapshots list", "unexpected argument '%s'", argv[optind]);
		return cli_list_manifests(MANIFEST_KIND_SNAPSHOT, arg_store, NULL, true, json);
	}
	if (strcmp(sub, "describe") == 0) {
		if (argc - optind != 1)
			return usage_error("snapshots describe", "exactly one snapshot NAME is required");
		return cli_describe_manifest(MANIFEST_KIND_SNAPSHOT, arg_store, argv[optind], json);
	}
	if (optind >= argc)
		return usage_error("snapshots delete", "no snapshot NAME given");
	if (json)
		return usage_error("snapshots delete", "--json applies to list and describe");
	return cli_delete_manifests(MANIFEST_KIND_SNAPSHOT, arg_store, argv + optind,
				    (size_t) (argc - optind));
}

static const struct verb snapshot_verbs[] = {
	{ "create", "Capture one disk into a snapshot (stores only new chunks)", snapshots_create },
	{ "list", "List the snapshots of a store", snapshots_simple },
	{ "describe", "Show a snapshot: disk, source, storage", snapshots_simple },
	{ "delete", "Delete snapshots (their chunks go with 'store gc')", snapshots_simple },
	{ "restore", "Write a snapshot onto a disk (the flash path)", snapshots_restore },
	{}
};

int verb_snapshots(int argc, char *argv[])
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("Usage: imager snapshots SUBCOMMAND [ARGS]\n\n");
		for (const struct verb *v = snapshot_verbs; v->name; v++)
			printf("  %-12s %s\n", v->name, v->summary);
		return argc < 2 ? -EINVAL : 0;
	}
	for (const struct verb *v = snapshot_verbs; v->name; v++)
		if (strcmp(v->name, argv[1]) == 0)
			return v->run(argc - 1, argv + 1);
	return usage_error("snapshots", "unknown subcommand '%s'", argv[1]);
}
