/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager images create NAME SOURCE [--family F] [--description TEXT]
 *                      [--label K=V]... [--store DIR] [--backing-file F]
 *                      [--allow-dirty] [--freeze] [--progress=MODE] [--report FILE]
 *
 * SOURCE is exactly one of the --source-* options. Each source kind is one
 * enum value, one option and one case in images_create(): disks (a
 * capture), an image, a family or a snapshot (a new manifest naming the
 * same chunks: no chunk data is copied), and the two imports (--source-tar,
 * --source-vdisk: images-import.c).
 */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture-run.h"
#include "cli.h"
#include "imager/store.h"
#include "import.h"
#include "lifecycle.h"
#include "output.h"
#include "target.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)

#define SOURCE_DISKS_MAX 16

enum create_source {
	SOURCE_NONE,
	SOURCE_TAR,    /* --source-tar FILE.tar.gz */
	SOURCE_VDISK,  /* --source-vdisk FILE */
	SOURCE_DISK,   /* --source-disk DISK, repeated for a multi-disk image */
	SOURCE_IMAGE,  /* --source-image IMAGE */
	SOURCE_FAMILY, /* --source-family FAMILY: its newest active image */
	SOURCE_SNAPSHOT, /* --source-snapshot SNAPSHOT */
	_SOURCE_MAX,
	_SOURCE_INVALID = -EINVAL,
};

static const char *const source_option[_SOURCE_MAX] = {
	[SOURCE_TAR] = "--source-tar",
	[SOURCE_VDISK] = "--source-vdisk",
	[SOURCE_DISK] = "--source-disk",
	[SOURCE_IMAGE] = "--source-image",
	[SOURCE_FAMILY] = "--source-family",
	[SOURCE_SNAPSHOT] = "--source-snapshot",
};

static const char *arg_store, *arg_description, *arg_family, *arg_report, *arg_backing_file;
static const char *arg_source_path;
static enum create_source arg_source = SOURCE_NONE;
static char *arg_disks[SOURCE_DISKS_MAX];
static size_t arg_n_disks;
static char *arg_labels[MANIFEST_LABELS_MAX + 1];
static size_t arg_n_labels;
static bool arg_allow_dirty, arg_freeze;
static enum progress_mode arg_progress = PROGRESS_AUTO;

static void help(void)
{
	printf("Usage: imager images create NAME SOURCE [OPTIONS]\n\n"
	       "Create an image from a source. SOURCE is one of:\n"
	       "     --source-disk DISK  capture disks (block devices or disk-image files);\n"
	       "                         repeat it for a multi-disk image\n"
	       "     --source-image IMG  a new image of the same content: no chunk data is copied\n"
	       "     --source-family F   the same, from the newest active image of family F\n"
	       "     --source-snapshot S the same, from a snapshot\n"
	       "     --source-tar FILE   a tar (gzip'ed or not) holding one member, disk.raw\n"
	       "                         (the Compute Engine image format; GNU sparse too),\n"
	       "                         read once as a stream\n"
	       "     --source-vdisk FILE a virtual disk: qcow2, VMDK (monolithicSparse,\n"
	       "                         streamOptimized), VHD (fixed, dynamic), VHDX or raw\n\n"
	       "  -s --store DIR         store directory (default $IMAGER_STORE, then %s)\n"
	       "     --family NAME       image family: 'flash --family NAME' picks its newest\n"
	       "                         active image\n"
	       "     --description TEXT\n"
	       "     --label KEY=VALUE   may be repeated\n"
	       "     --backing-file FILE the backing file of a qcow2 --source-vdisk\n"
	       "     --allow-dirty       capture ext file systems that were not cleanly unmounted\n"
	       "     --freeze            freeze mounted ext4 file systems (--source-disk)\n"
	       "     --progress=MODE     auto, tty, json or none\n"
	       "     --report FILE       write a JSON report of the run (also on failure)\n\n"
	       "Only the blocks the disk's file systems use are stored. An import records\n"
	       "the file and its format (qcow2, vmdk, vhd, vhdx, raw, tar) as its source.\n",
	       IMAGER_STORE_DEFAULT);
}

static int set_source(enum create_source s, const char *path)
{
	if (s == SOURCE_DISK && arg_source == SOURCE_DISK) {
		if (arg_n_disks >= SOURCE_DISKS_MAX)
			return usage_error("images create", "at most %d disks", SOURCE_DISKS_MAX);
		arg_disks[arg_n_disks++] = (char *) path;
		return 0;
	}
	if (arg_source != SOURCE_NONE)
		return usage_error("images create", "%s and %s: give exactly one source",
				   source_option[arg_source], source_option[s]);
	if ((s == SOURCE_IMAGE || s == SOURCE_SNAPSHOT || s == SOURCE_FAMILY) &&
	    !manifest_name_is_valid(path))
		return usage_error("images create", "%s: invalid name '%s'", source_option[s],
				   path);
	arg_source = s;
	arg_source_path = path;
	if (s == SOURCE_DISK)
		arg_disks[arg_n_disks++] = (char *) path;
	return 0;
}

static int parse_argv(int argc, char *argv[])
{
	enum {
		ARG_SOURCE_TAR = 0x100,
		ARG_SOURCE_VDISK,
		ARG_SOURCE_DISK,
		ARG_SOURCE_IMAGE,
		ARG_SOURCE_FAMILY,
		ARG_SOURCE_SNAPSHOT,
		ARG_FREEZE,
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
		{ "source-disk", required_argument, NULL, ARG_SOURCE_DISK },
		{ "source-image", required_argument, NULL, ARG_SOURCE_IMAGE },
		{ "source-family", required_argument, NULL, ARG_SOURCE_FAMILY },
		{ "source-snapshot", required_argument, NULL, ARG_SOURCE_SNAPSHOT },
		{ "freeze", no_argument, NULL, ARG_FREEZE },
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
		case ARG_SOURCE_DISK:
			r = set_source(SOURCE_DISK, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_SOURCE_IMAGE:
			r = set_source(SOURCE_IMAGE, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_SOURCE_FAMILY:
			r = set_source(SOURCE_FAMILY, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_SOURCE_SNAPSHOT:
			r = set_source(SOURCE_SNAPSHOT, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_FREEZE:
			arg_freeze = true;
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
			if (arg_n_labels >= MANIFEST_LABELS_MAX - 1)
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
		return usage_error("images create",
				   "no source given (--source-disk, --source-image, --source-family, "
				   "--source-snapshot, --source-tar or --source-vdisk)");
	if (arg_freeze && arg_source != SOURCE_DISK)
		return usage_error("images create", "--freeze applies to --source-disk only");
	if (arg_backing_file && arg_source != SOURCE_VDISK)
		return usage_error("images create", "--backing-file applies to --source-vdisk only");
	return 1;
}

/* Family and provenance, set just before a capture or import publishes its manifest. */
static int decorate(struct manifest *m, void *userdata)
{
	if (arg_family) {
		free(m->family);
		m->family = strdup(arg_family);
		if (!m->family)
			return log_oom();
	}
	if (arg_source == SOURCE_TAR || arg_source == SOURCE_VDISK) {
		_cleanup_free_ char *copy = strdup(arg_source_path);

		if (!copy)
			return log_oom();
		manifest_source_done(&m->source);
		m->source.type = MANIFEST_SOURCE_FILE;
		m->source.name = strdup(basename(copy));
		m->source.format = arg_source == SOURCE_TAR ? strdup("tar") : NULL;
		if (!m->source.name || (arg_source == SOURCE_TAR && !m->source.format))
			return log_oom();
	}
	return 0;
}

/* A copy of @m through the encoder, so that nothing is shared with it. */
static int manifest_copy(const struct manifest *m, struct manifest **ret)
{
	_cleanup_free_ void *data = NULL;
	size_t size;
	int r;

	r = manifest_encode(m, &data, &size);
	if (r < 0)
		return r;
	return manifest_decode(data, size, ret);
}

/*
 * --source-image, --source-family, --source-snapshot: a new manifest with
 * the parent's disks and chunk IDs. No chunk is read or written; the
 * store's shared lock keeps gc away until the new manifest is published.
 */
static int create_derived(const char *name)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(manifest_freep) struct manifest *parent = NULL, *m = NULL;
	_cleanup_free_ char *resolved = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	enum manifest_kind kind = arg_source == SOURCE_SNAPSHOT ? MANIFEST_KIND_SNAPSHOT
							       : MANIFEST_KIND_IMAGE;
	const char *parent_name = arg_source_path;
	uint64_t used = 0, chunks = 0;
	int64_t now;
	int r;

	r = cli_now(&now);
	if (r < 0)
		return r;
	if (arg_source == SOURCE_FAMILY) {
		_cleanup_(store_freep) struct store *fs = NULL;
		const char *path = cli_store_path(arg_store);

		r = cli_store_open(path, false, &fs);
		if (r < 0)
			return r;
		r = cli_resolve_family(fs, arg_source_path, &resolved);
		if (r < 0)
			return r;
		parent_name = resolved;
	}
	r = cli_load_manifest(arg_store, kind, parent_name, IMAGE_USE_NEW, &s, &parent);
	if (r < 0)
		return r;
	r = cli_store_lock(s, STORE_LOCK_SHARED, true, &lock_fd);
	if (r < 0)
		return r;
	{
		_cleanup_(manifest_freep) struct manifest *old = NULL;
		r = store_get_manifest_of_kind(s, MANIFEST_KIND_IMAGE, name, &old);
		if (r >= 0 || r == -EBADMSG)
			return log_error_errno(-EEXIST, "Image '%s' already exists in store '%s'.",
					       name, store_path(s));
	}

	/* every chunk the new image names must be there now: it will not be copied later */
	for (size_t i = 0; i < parent->n_disks; i++) {
		const struct manifest_disk *d = &parent->disks[i];

		used += d->used_bytes;
		for (size_t k = 0; k < d->n_chunks; k++) {
			char hex[CHUNK_ID_STRING_MAX];

			r = store_has_chunk(s, &d->chunks[k].id);
			if (r < 0)
				return log_error_errno(r, "Failed to look up a chunk: %m");
			if (r == 0)
				return log_error_errno(-ENODATA, "%s '%s' is incomplete: chunk %s is "
						       "missing.",
						       kind == MANIFEST_KIND_SNAPSHOT ? "Snapshot"
										      : "Image",
						       parent_name, chunk_id_to_string(&d->chunks[k].id, hex));
			chunks++;
		}
	}

	r = manifest_copy(parent, &m);
	if (r < 0)
		return log_error_errno(r, "Failed to copy the manifest of '%s': %m", parent_name);
	free(m->name);
	free(m->description);
	free(m->family);
	free(m->tool_version);
	strv_free(m->labels);
	manifest_source_done(&m->source);
	m->labels = NULL;
	m->kind = MANIFEST_KIND_IMAGE;
	m->name = strdup(name);
	m->description = arg_description ? strdup(arg_description) : NULL;
	m->family = arg_family ? strdup(arg_family) : NULL;
	m->tool_version = strdup(IMAGER_VERSION);
	m->created_unix = now;
	m->source = (struct manifest_source){
		.type = kind == MANIFEST_KIND_SNAPSHOT ? MANIFEST_SOURCE_SNAPSHOT : MANIFEST_SOURCE_IMAGE,
		.name = strdup(parent_name),
		.has_digest = true,
	};
	memcpy(m->source.digest, parent->content_digest, sizeof(m->source.digest));
	if (!m->name || !m->tool_version || !m->source.name ||
	    (arg_description && !m->description) || (arg_family && !m->family))
		return log_oom();
	if (arg_n_labels > 0) {
		m->labels = calloc(arg_n_labels + 1, sizeof(char *));
		if (!m->labels)
			return log_oom();
		for (size_t i = 0; i < arg_n_labels; i++)
			if (!(m->labels[i] = strdup(arg_labels[i])))
				return log_oom();
	}

	r = store_put_manifest(s, m);
	if (r == -EEXIST)
		return log_error_errno(r, "Image '%s' already exists in store '%s'.", name,
				       store_path(s));
	if (r < 0)
		return log_error_errno(r, "Failed to publish image '%s': %m", name);

	if (arg_progress == PROGRESS_JSON) {
		char digest[65];
		hex_encode(m->content_digest, sizeof(m->content_digest), digest);
		printf("{\"phase\":\"done\",\"kind\":\"image\",\"image\":\"%s\",\"source\":\"%s\","
		       "\"source_kind\":\"%s\",\"disks\":%zu,\"used_bytes\":%llu,"
		       "\"new_stored_bytes\":0,\"chunks\":%llu,\"new_chunks\":0,\"digest\":\"%s\"}\n",
		       name, parent_name, manifest_kind_to_string(kind), m->n_disks,
		       (unsigned long long) used, (unsigned long long) chunks, digest);
	} else if (!arg_quiet) {
		char u[FORMAT_BYTES_MAX];
		printf("Created image '%s' from %s '%s': %zu disk%s, %s used, no chunk data copied "
		       "(%llu chunks shared).\n",
		       name, manifest_kind_to_string(kind), parent_name, m->n_disks,
		       m->n_disks == 1 ? "" : "s", format_bytes(u, sizeof(u), used),
		       (unsigned long long) chunks);
	}
	return 0;
}

int images_create(int argc, char *argv[])
{
	struct capture_request req;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	if (arg_source == SOURCE_IMAGE || arg_source == SOURCE_FAMILY ||
	    arg_source == SOURCE_SNAPSHOT)
		return create_derived(argv[optind]);

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
		.kind = MANIFEST_KIND_IMAGE,
		.decorate = decorate,
	};

	switch (arg_source) {
	case SOURCE_DISK:
		req.action = "capture";
		req.disks = arg_disks;
		req.n_disks = arg_n_disks;
		req.freeze = arg_freeze;
		return capture_run(&req);
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
