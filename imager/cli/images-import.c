/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Imports (docs/IMPORT.md): the disk of a virtual-disk file or of a
 * disk.raw tar is opened as a struct vdisk, exposed as a file through a
 * private FUSE mount, and captured like any disk image, so only the blocks
 * its file systems use are stored.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "import.h"
#include "imager/blkdev.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "imager/vdisk.h"
#include "output.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct vdisk *, vdisk_free)
DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)

#define SOURCE_LABEL_KEY "source="

struct import_ctx {
	/* the caller's own decorate hook, called first */
	int (*decorate)(struct manifest *m, void *userdata);
	void *userdata;
	char *label;
};

int import_exit_status(int r)
{
	if (r == -EOPNOTSUPP || r == -EFBIG)
		return IMAGER_EXIT_REFUSED;
	if (r == -EMEDIUMTYPE)
		return IMAGER_EXIT_NOT_DISK;
	return exit_status_from_errno(r);
}

static int import_decorate(struct manifest *m, void *userdata)
{
	struct import_ctx *c = userdata;
	size_t n = 0;
	char **l;
	int r;

	if (c->decorate) {
		r = c->decorate(m, c->userdata);
		if (r < 0)
			return r;
	}
	for (char **p = m->labels; p && *p; p++, n++)
		if (startswith(*p, SOURCE_LABEL_KEY))
			return 0; /* the user named the source: keep theirs */
	if (n >= MANIFEST_LABELS_MAX) {
		log_warning("Image has %zu labels already; not recording '%s'.", n, c->label);
		return 0;
	}
	l = reallocarray(m->labels, n + 2, sizeof(char *));
	if (!l)
		return log_oom();
	m->labels = l;
	l[n] = strdup(c->label);
	l[n + 1] = NULL;
	if (!l[n])
		return log_oom();
	return 0;
}

/* "source=vdisk:qcow2:<basename>" or "source=tar:<basename>" */
static int source_label(const char *path, const char *kind, char **ret)
{
	_cleanup_free_ char *copy = strdup(path);
	char *s;

	if (!copy)
		return -ENOMEM;
	if (asprintf(&s, SOURCE_LABEL_KEY "%s:%s", kind, basename(copy)) < 0)
		return -ENOMEM;
	for (char *c = s; *c; c++)
		if ((unsigned char) *c < 0x20 || *c == 0x7f)
			*c = '?';
	*ret = s;
	return 0;
}

/* Runs the capture of one disk file with our label added. */
static int capture_one(struct capture_request *req, char *disk, const char *label)
{
	struct import_ctx ctx = {
		.decorate = req->decorate, .userdata = req->userdata, .label = (char *) label,
	};
	struct capture_request r2 = *req;
	char *disks[] = { disk, NULL };

	r2.disks = disks;
	r2.n_disks = 1;
	r2.decorate = import_decorate;
	r2.userdata = &ctx;
	if (!r2.action)
		r2.action = "import";
	return capture_run(&r2);
}

static int open_error(int r, const char *path, const char *what, const char *reason)
{
	if (r == -ENOENT)
		return log_error_errno(r, "%s '%s' does not exist.", what, path);
	if (r == -EACCES || r == -EPERM)
		return log_error_errno(r, "Cannot open %s '%s': %m", what, path);
	if (r == -EISDIR || r == -EMEDIUMTYPE)
		return log_error_errno(-EMEDIUMTYPE, "%s '%s' is not a regular file.", what, path);
	if (r == -EOPNOTSUPP || r == -EFBIG)
		return log_error_errno(r, "Refusing to import '%s': %s%s.", path,
				       reason ? reason : strerror(-r),
				       reason && startswith(reason, "it has a backing file")
					       ? " (--backing-file FILE)"
					       : "");
	if (r == -EINVAL && reason)
		return log_error_errno(r, "Cannot import '%s': %s.", path, reason);
	if (r == -EBADMSG)
		return log_error_errno(r, "Cannot import '%s': %s.", path,
				       reason ? reason : "damaged file");
	return log_error_errno(r, "Cannot import '%s': %s", path, reason ? reason : strerror(-r));
}

/* Exposes @v through FUSE and captures it; reports the vdisk's own read error if any. */
static int capture_vdisk(struct vdisk *v, const char *source_path, struct capture_request *req,
			 const char *label)
{
	_cleanup_free_ char *fuse_path = NULL;
	struct vdisk_fuse *f = NULL;
	struct blkdev *d = NULL;
	const char *why;
	int r, verr = 0;

	r = vdisk_fuse_mount(v, NULL, &f);
	if (r == -ENODEV)
		return log_error_errno(r, "Cannot import '%s': FUSE is not available (no /dev/fuse; "
					  "load the fuse module).",
				       source_path);
	if (r < 0)
		return log_error_errno(r, "Cannot expose the disk of '%s' through FUSE: %m",
				       source_path);
	fuse_path = strdup(vdisk_fuse_path(f));
	if (!fuse_path) {
		f = vdisk_fuse_unmount(f);
		return log_oom();
	}
	log_debug("Disk of '%s' served at '%s'.", source_path, fuse_path);

	/* the capture would name the FUSE path; say it in terms of the source */
	r = blkdev_new_from_path(vdisk_fuse_path(f), &d);
	why = vdisk_error(v, &verr);
	if (r < 0 && why) {
		f = vdisk_fuse_unmount(f);
		return log_error_errno(verr < 0 ? verr : -EBADMSG, "Cannot import '%s': %s.",
				       source_path, why);
	}
	if (r == -EMEDIUMTYPE) {
		f = vdisk_fuse_unmount(f);
		return log_error_errno(r, "Cannot import '%s': its %s disk holds neither a partition "
					  "table nor a file system, and is not blank.",
				       source_path, vdisk_format_to_string(v->format));
	}
	d = blkdev_free(d);

	r = capture_one(req, (char *) vdisk_fuse_path(f), label);
	f = vdisk_fuse_unmount(f);
	why = vdisk_error(v, &verr);
	if (r < 0 && why)
		/* the capture saw EIO; this is what was wrong with the file */
		return log_error_errno(verr < 0 ? verr : -EBADMSG, "Cannot import '%s': %s.",
				       source_path, why);
	if (r < 0)
		log_error("Import of '%s' failed (its disk was read as '%s').", source_path,
			  fuse_path);
	return r;
}

static int import_vdisk(const char *source_path, const char *backing_path,
			struct capture_request *req)
{
	_cleanup_(vdisk_freep) struct vdisk *v = NULL;
	_cleanup_free_ char *reason = NULL, *label = NULL, *kind = NULL;
	int r;

	r = vdisk_open(source_path, backing_path, &v, &reason);
	if (r < 0)
		return open_error(r, source_path, "Source disk", reason);
	if (asprintf(&kind, "vdisk:%s", vdisk_format_to_string(v->format)) < 0)
		return log_oom();
	r = source_label(source_path, kind, &label);
	if (r < 0)
		return log_oom();
	if (v->format == VDISK_RAW) {
		/* a plain disk image needs no translation: capture the file itself */
		v = vdisk_free(v);
		return capture_one(req, (char *) source_path, label);
	}
	return capture_vdisk(v, source_path, req, label);
}

static int import_tar(const char *source_path, struct capture_request *req)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(vdisk_freep) struct vdisk *v = NULL;
	_cleanup_free_ char *reason = NULL, *label = NULL;
	int r, k;

	r = cli_store_open(req->store_path, true, &s);
	if (r < 0)
		return r;
	r = source_label(source_path, "tar", &label);
	if (r < 0)
		return log_oom();

	r = vdisk_import_tar(source_path, s, cli_progress, &req->progress, &v, &reason);
	cli_progress_end(req->progress);
	if (r < 0)
		return open_error(r, source_path, "Source archive", reason);

	r = capture_vdisk(v, source_path, req, label);

	/* the raw chunks are scaffolding: keep only those an image uses */
	k = vdisk_chunks_drop_new(v, s);
	if (k < 0)
		log_warning_errno(k, "Cannot remove the raw chunks the import of '%s' wrote, "
				     "ignoring (imager store gc removes them): %m",
				  source_path);
	else
		log_debug("Removed %d raw chunks of '%s' that no image uses.", k, source_path);
	return r;
}

int import_capture(const char *source_path, enum import_kind kind, const char *backing_path,
		   struct capture_request *req)
{
	if (!source_path || !req || !req->name)
		return -EINVAL;

	/* fail early rather than after streaming gigabytes */
	{
		_cleanup_(store_freep) struct store *s = NULL;
		_cleanup_(manifest_freep) struct manifest *old = NULL;
		int r = cli_store_open_if_exists(req->store_path, &s);

		if (r < 0 && r != -ENOENT)
			return r; /* e.g. a wrong key: say so now, not after the import */
		if (r >= 0) {
			r = store_get_manifest(s, req->name, &old);
			if (r >= 0 || r == -EBADMSG)
				return log_error_errno(-EEXIST,
						       "Image '%s' already exists in store '%s'.",
						       req->name, req->store_path);
		}
	}

	switch (kind) {
	case IMPORT_TAR:
		if (backing_path)
			return log_error_errno(-EINVAL, "--backing-file applies to --source-vdisk only.");
		return import_tar(source_path, req);
	case IMPORT_VDISK:
		return import_vdisk(source_path, backing_path, req);
	default:
		return -EINVAL;
	}
}
