/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager images create NAME SOURCE [--family F] [--description TEXT]
 *                      [--label K=V]... [--store DIR] [--backing-file F]
 *                      [--allow-dirty] [--progress=MODE] [--report FILE]
 *
 * SOURCE is exactly one of the --source-* options. Each source kind is one
 * enum value, one option and one case in images_create(); so far the two
 * imports (--source-tar, --source-vdisk: images-import.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "capture-run.h"
#include "cli.h"
#include "import.h"
#include "output.h"
#include "util/log.h"

enum create_source {
	SOURCE_NONE,
	SOURCE_TAR,    /* --source-tar FILE.tar.gz */
	SOURCE_VDISK,  /* --source-vdisk FILE */
	_SOURCE_MAX,
	_SOURCE_INVALID = -EINVAL,
};

static const char *const source_option[_SOURCE_MAX] = {
	[SOURCE_TAR] = "--source-tar",
	[SOURCE_VDISK] = "--source-vdisk",
};

static const char *arg_store, *arg_description, *arg_family, *arg_report, *arg_backing_file;
static const char *arg_source_path;
static enum create_source arg_source = SOURCE_NONE;
/* the user's labels, plus one for --family */
static char *arg_labels[MANIFEST_LABELS_MAX + 2];
static size_t arg_n_labels;
static char arg_family_label[MANIFEST_STRING_MAX + 8];
static bool arg_allow_dirty;
static enum progress_mode arg_progress = PROGRESS_AUTO;

static void help(void)
{
	printf("Usage: imager images create NAME SOURCE [OPTIONS]\n\n"
	       "Create an image from a source. SOURCE is one of:\n"
	       "     --source-tar FILE   a tar (gzip'ed or not) holding one member, disk.raw\n"
	       "                         (the Compute Engine image format; GNU sparse too),\n"
	       "                         read once as a stream\n"
	       "     --source-vdisk FILE a virtual disk: qcow2, VMDK (monolithicSparse,\n"
	       "                         streamOptimized), VHD (fixed, dynamic), VHDX or raw\n\n"
	       "  -s --store DIR         store directory (default $IMAGER_STORE, then %s)\n"
	       "     --family NAME       image family (recorded as the label family=NAME)\n"
	       "     --description TEXT\n"
	       "     --label KEY=VALUE   may be repeated\n"
	       "     --backing-file FILE the backing file of a qcow2 --source-vdisk\n"
	       "     --allow-dirty       capture ext file systems that were not cleanly unmounted\n"
	       "     --progress=MODE     auto, tty, json or none\n"
	       "     --report FILE       write a JSON report of the run (also on failure)\n\n"
	       "Only the blocks the disk's file systems use are stored. The image gets the\n"
	       "label source=vdisk:FORMAT:FILE or source=tar:FILE.\n",
	       IMAGER_STORE_DEFAULT);
}

static int set_source(enum create_source s, const char *path)
{
	if (arg_source != SOURCE_NONE)
		return usage_error("images create", "%s and %s: give exactly one source",
				   source_option[arg_source], source_option[s]);
	arg_source = s;
	arg_source_path = path;
	return 0;
}

static int parse_argv(int argc, char *argv[])
{
	enum {
		ARG_SOURCE_TAR = 0x100,
		ARG_SOURCE_VDISK,
		ARG_FAMILY,
		ARG_DESCRIPTION,
		ARG_LABEL,
		ARG_BACKING_FILE,
		ARG_ALLOW_DIRTY,
		ARG_PROGRESS,
		ARG_REPORT,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "source-tar", required_argument, NULL, ARG_SOURCE_TAR },
		{ "source-vdisk", required_argument, NULL, ARG_SOURCE_VDISK },
		{ "family", required_argument, NULL, ARG_FAMILY },
		{ "description", required_argument, NULL, ARG_DESCRIPTION },
		{ "label", required_argument, NULL, ARG_LABEL },
		{ "backing-file", required_argument, NULL, ARG_BACKING_FILE },
		{ "allow-dirty", no_argument, NULL, ARG_ALLOW_DIRTY },
		{ "progress", required_argument, NULL, ARG_PROGRESS },
		{ "report", required_argument, NULL, ARG_REPORT },
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
		case ARG_SOURCE_TAR:
			r = set_source(SOURCE_TAR, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_SOURCE_VDISK:
			r = set_source(SOURCE_VDISK, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_FAMILY:
			if (!manifest_name_is_valid(optarg))
				return usage_error("images create",
						   "invalid family name '%s': use lowercase letters, "
						   "digits and hyphens, start with a letter",
						   optarg);
			arg_family = optarg;
			break;
		case ARG_DESCRIPTION:
			arg_description = optarg;
			break;
		case ARG_LABEL:
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return usage_error("images create", "--label wants KEY=VALUE, got '%s'",
						   optarg);
			if (arg_n_labels >= MANIFEST_LABELS_MAX - 2)
				return usage_error("images create", "too many --label options");
			arg_labels[arg_n_labels++] = optarg;
			break;
		case ARG_BACKING_FILE:
			arg_backing_file = optarg;
			break;
		case ARG_ALLOW_DIRTY:
			arg_allow_dirty = true;
			break;
		case ARG_PROGRESS:
			arg_progress = progress_mode_from_string(optarg);
			if ((int) arg_progress < 0)
				return usage_error("images create", "unknown --progress mode '%s'",
						   optarg);
			break;
		case ARG_REPORT:
			arg_report = optarg;
			break;
		default:
			return usage_error("images create", "bad option");
		}
	if (optind >= argc)
		return usage_error("images create", "no image NAME given");
	if (argc - optind > 1)
		return usage_error("images create", "unexpected argument '%s'", argv[optind + 1]);
	if (!manifest_name_is_valid(argv[optind]))
		return usage_error("images create",
				   "invalid image name '%s': use lowercase letters, digits and "
				   "hyphens, start with a letter, at most 63 characters",
				   argv[optind]);
	if (arg_source == SOURCE_NONE)
		return usage_error("images create", "no source given (--source-tar or --source-vdisk)");
	if (arg_backing_file && arg_source != SOURCE_VDISK)
		return usage_error("images create", "--backing-file applies to --source-vdisk only");
	return 1;
}

int images_create(int argc, char *argv[])
{
	struct capture_request req;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	if (arg_family) {
		/* until manifests have a FAMILY section */
		snprintf(arg_family_label, sizeof(arg_family_label), "family=%s", arg_family);
		arg_labels[arg_n_labels++] = arg_family_label;
	}
	req = (struct capture_request){
		.store_path = cli_store_path(arg_store),
		.name = argv[optind],
		.description = arg_description,
		.labels = arg_labels,
		.n_labels = arg_n_labels,
		.allow_dirty = arg_allow_dirty,
		.progress = arg_progress,
		.report_path = arg_report,
		.action = "import",
		.kind_word = "image",
	};

	switch (arg_source) {
	case SOURCE_TAR:
		r = import_capture(arg_source_path, IMPORT_TAR, NULL, &req);
		break;
	case SOURCE_VDISK:
		r = import_capture(arg_source_path, IMPORT_VDISK, arg_backing_file, &req);
		break;
	default:
		return -EINVAL;
	}
	return r < 0 ? import_exit_status(r) : 0;
}
