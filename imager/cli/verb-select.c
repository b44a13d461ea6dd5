/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager select HINTS|DEVICE [--all] [--exclude DEV]...
 *
 * Resolves disk hints (imager/select.h) or a device path to whole-disk nodes,
 * one per line on stdout. The appliance's scripts use it to turn
 * imager.target=serial=...,size=... into /dev/sdX, and to refuse when the
 * hints name no disk, several disks, or a disk that must not be touched
 * (the running system's disk, or an --exclude'd one such as the appliance's
 * own medium). It only reads.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cli.h"
#include "imager/blkdev.h"
#include "imager/select.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

#define EXCLUDES_MAX 16

static bool arg_all;
static const char *arg_excludes[EXCLUDES_MAX];
static size_t arg_n_excludes;

DEFINE_CLEANUP(struct blkdev **, blkdev_list_free)

static void help(void)
{
	printf("Usage: imager select HINTS|DEVICE [--all] [--exclude DEV]...\n\n"
	       "Print the whole disks that match HINTS, one node per line. HINTS is a\n"
	       "comma-separated list of KEY=VALUE that must all match:\n"
	       "  serial=S  wwn=W  model=GLOB-OR-SUBSTRING  size=MIN-MAX (bytes or K/M/G/T)\n"
	       "  transport=sata|sas|nvme|usb|virtio|mmc|scsi|loop  rotational=0|1\n"
	       "A DEVICE (a path starting with '/') is checked the same way and printed.\n"
	       "The disk holding the running system and every --exclude'd disk never match.\n\n"
	       "  -a --all            print every match (default: refuse when several match)\n"
	       "  -x --exclude DEV    never select DEV (a disk, or the disk of a partition)\n"
	       "  -h --help           this text\n\n"
	       "Exit codes: 0 printed, 2 bad hints, 4 no match or several (without --all)\n"
	       "or DEVICE is excluded, 5 DEVICE does not exist, 7 DEVICE is not a whole disk.\n");
}

static int parse_argv(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "all", no_argument, NULL, 'a' },
		{ "exclude", required_argument, NULL, 'x' },
		{}
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hax:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return 0;
		case 'a':
			arg_all = true;
			break;
		case 'x':
			if (arg_n_excludes >= EXCLUDES_MAX)
				return usage_error("select", "at most %d --exclude options", EXCLUDES_MAX);
			arg_excludes[arg_n_excludes++] = optarg;
			break;
		default:
			return usage_error("select", "unknown option '%s'", argv[optind - 1]);
		}
	if (argc - optind != 1)
		return usage_error("select", "exactly one HINTS or DEVICE argument is required");
	return 1;
}

/*
 * The kernel name of the whole disk behind @path: "sda" for /dev/sda,
 * /dev/sda3 and /dev/disk/by-id links to either. NULL if @path is not a
 * block device (an --exclude that does not exist excludes nothing).
 */
static char *disk_sysname_of(const char *path)
{
	_cleanup_free_ char *link = NULL, *dir = NULL, *part = NULL;
	struct stat st;
	char *slash;

	if (stat(path, &st) < 0 || !S_ISBLK(st.st_mode))
		return NULL;
	if (asprintf(&link, "/sys/dev/block/%u:%u", major(st.st_rdev), minor(st.st_rdev)) < 0)
		return NULL;
	dir = realpath(link, NULL);
	if (!dir)
		return NULL;
	if (asprintf(&part, "%s/partition", dir) < 0)
		return NULL;
	if (access(part, F_OK) == 0) {
		/* a partition: its directory sits inside the disk's */
		slash = strrchr(dir, '/');
		if (!slash)
			return NULL;
		*slash = 0;
	}
	slash = strrchr(dir, '/');
	return slash ? strdup(slash + 1) : NULL;
}

/* Why @d may not be selected, or NULL. */
static const char *excluded_reason(const struct blkdev *d, char *const *excluded)
{
	if (d->system_disk)
		return "it holds the running system";
	for (size_t i = 0; i < arg_n_excludes; i++)
		if (excluded[i] && d->sysname && strcmp(excluded[i], d->sysname) == 0)
			return "it is excluded";
	return NULL;
}

static void describe(FILE *f, const struct blkdev *d)
{
	char size[FORMAT_BYTES_MAX];
	_cleanup_free_ char *model = d->model ? strdup_strip(d->model) : NULL;

	fprintf(f, "  %s  %s  model %s  serial %s  %s\n", d->node,
		format_bytes(size, sizeof(size), d->size_bytes), model ? model : "-",
		d->serial ? d->serial : "-", d->transport ? d->transport : "-");
}

static int select_device(const char *path, struct blkdev **disks, size_t n, char *const *excluded)
{
	_cleanup_free_ char *sysname = NULL;
	struct blkdev *d;
	struct stat st;
	const char *why;

	if (stat(path, &st) < 0)
		return log_error_errno(-errno, "'%s' does not exist.", path);
	if (!S_ISBLK(st.st_mode))
		return log_error_errno(-ENOTBLK, "'%s' is not a block device.", path);
	sysname = disk_sysname_of(path);
	for (size_t i = 0; i < n; i++) {
		d = disks[i];
		if (d->is_file || d->devnum != st.st_rdev)
			continue;
		why = excluded_reason(d, excluded);
		if (why) {
			log_error("Refusing '%s': %s.", path, why);
			return IMAGER_EXIT_REFUSED;
		}
		printf("%s\n", d->node);
		return 0;
	}
	if (sysname) {
		/* a partition of a listed disk */
		for (size_t i = 0; i < n; i++)
			if (disks[i]->sysname && strcmp(disks[i]->sysname, sysname) == 0)
				return log_error_errno(-ENOTBLK, "'%s' is a partition, not a whole disk.",
						       path);
	}
	return log_error_errno(-ENODEV, "'%s' is not one of this machine's disks.", path);
}

static int select_hints(const char *hints_arg, struct blkdev **disks, size_t n,
			char *const *excluded)
{
	_cleanup_(select_hints_done) struct select_hints hints = {};
	_cleanup_free_ struct blkdev **matches = NULL;
	const char *error = "invalid hints";
	size_t n_matches = 0, n_excluded = 0;
	int r;

	r = select_hints_parse(hints_arg, &hints, &error);
	if (r == -ENOMEM)
		return log_oom();
	if (r < 0)
		return usage_error("select", "bad hints '%s': %s", hints_arg, error);

	matches = calloc(n + 1, sizeof(*matches));
	if (!matches)
		return log_oom();
	for (size_t i = 0; i < n; i++) {
		if (disks[i]->is_file || !select_hints_match(&hints, disks[i]))
			continue;
		if (excluded_reason(disks[i], excluded)) {
			n_excluded++;
			continue;
		}
		matches[n_matches++] = disks[i];
	}

	if (n_matches == 0) {
		if (n_excluded > 0) {
			log_error("Refusing: only excluded disks match '%s':", hints_arg);
			for (size_t i = 0; i < n; i++)
				if (!disks[i]->is_file && select_hints_match(&hints, disks[i]) &&
				    excluded_reason(disks[i], excluded)) {
					fprintf(stderr, "  %s: %s\n", disks[i]->node,
						excluded_reason(disks[i], excluded));
				}
		} else
			log_error("Refusing: no disk matches '%s' (%zu disk%s looked at).", hints_arg,
				  n, n == 1 ? "" : "s");
		return IMAGER_EXIT_REFUSED;
	}
	if (n_matches > 1 && !arg_all) {
		log_error("Refusing: %zu disks match '%s'; add hints, or take them all with --all:",
			  n_matches, hints_arg);
		for (size_t i = 0; i < n_matches; i++)
			describe(stderr, matches[i]);
		return IMAGER_EXIT_REFUSED;
	}
	for (size_t i = 0; i < n_matches; i++)
		printf("%s\n", matches[i]->node);
	return 0;
}

int verb_select(int argc, char *argv[])
{
	_cleanup_(blkdev_list_freep) struct blkdev **disks = NULL;
	char *excluded[EXCLUDES_MAX] = {};
	const char *what;
	int n, r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	what = argv[optind];

	for (size_t i = 0; i < arg_n_excludes; i++) {
		excluded[i] = disk_sysname_of(arg_excludes[i]);
		if (!excluded[i])
			log_warning("--exclude '%s' is not a block device, ignoring.", arg_excludes[i]);
	}
	n = blkdev_enumerate(&disks);
	if (n < 0) {
		r = log_error_errno(n, "Failed to list disks: %m");
		goto out;
	}
	if (what[0] == '/')
		r = select_device(what, disks, (size_t) n, excluded);
	else
		r = select_hints(what, disks, (size_t) n, excluded);
out:
	for (size_t i = 0; i < arg_n_excludes; i++)
		free(excluded[i]);
	return r;
}
