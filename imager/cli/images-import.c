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
#include "imager/gc.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "imager/vdisk.h"
#include "lifecycle.h"
#include "output.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct vdisk *, vdisk_free)
DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)

struct import_ctx {
	/* the caller's own decorate hook, called first */
	int (*decorate)(struct manifest *m, void *userdata);
	void *userdata;
	const char *source_path;
	const char *format; /* "qcow2", "vmdk", "vhd", "vhdx", "raw", "tar" */
};

int import_exit_status(int r)
{
	if (r == -EOPNOTSUPP || r == -EFBIG)
		return IMAGER_EXIT_REFUSED;
	if (r == -EMEDIUMTYPE)
		return IMAGER_EXIT_NOT_DISK;
	return exit_status_from_errno(r);
}

/*
 * The manifest's SOURCE: the file (its base name) and its format, not the
 * FUSE path the capture read.
 */
static int import_decorate(struct manifest *m, void *userdata)
{
	struct import_ctx *c = userdata;
	int r;

	if (c->decorate) {
		r = c->decorate(m, c->userdata);
		if (r < 0)
			return r;
	}
	if (m->source.type != MANIFEST_SOURCE_FILE || !m->source.name) {
		_cleanup_free_ char *copy = strdup(c->source_path);

		if (!copy)
			return log_oom();
		manifest_source_done(&m->source);
		m->source.type = MANIFEST_SOURCE_FILE;
		m->source.name = strdup(basename(copy));
		if (!m->source.name)
			return log_oom();
	}
	strv_free(m->source.nodes);
	m->source.nodes = NULL;
	free(m->source.format);
	m->source.format = strdup(c->format);
	if (!m->source.format)
		return log_oom();
	for (char *p = m->source.name; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '?';
	return 0;
}

/* Runs the capture of one disk file, recording @source_path as the source. */
static int capture_one(struct capture_request *req, char *disk, const char *source_path,
		       const char *format)
{
	struct import_ctx ctx = {
		.decorate = req->decorate,
		.userdata = req->userdata,
		.source_path = source_path,
		.format = format,
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
static int capture_vdisk(struct vdisk *v, const char *source_path, const char *format,
			 struct capture_request *req)
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

	/* the capture would name the FUSE path: check first, and say it in terms of the source */
	r = blkdev_new_from_path(fuse_path, &d);
	why = vdisk_error(v, &verr);
	if (r < 0 && why) {
		f = vdisk_fuse_unmount(f);
		return log_error_errno(verr < 0 ? verr : -EBADMSG, "Cannot import '%s': %s.",
				       source_path, why);
	}
	if (r == -EMEDIUMTYPE) {
		f = vdisk_fuse_unmount(f);
		return log_error_errno(r, "Cannot import '%s': its disk holds neither a partition "
					  "table nor a file system, and is not blank.",
				       source_path);
	}
	d = blkdev_free(d);

	r = capture_one(req, fuse_path, source_path, format);
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
	_cleanup_free_ char *reason = NULL;
	const char *format;
	int r;

	r = vdisk_open(source_path, backing_path, &v, &reason);
	if (r < 0)
		return open_error(r, source_path, "Source disk", reason);
	format = vdisk_format_to_string(v->format);
	if (v->format == VDISK_RAW) {
		/* a plain disk image needs no translation: capture the file itself */
		v = vdisk_free(v);
		return capture_one(req, (char *) source_path, source_path, format);
	}
	return capture_vdisk(v, source_path, format, req);
}

/*
 * Removes the raw chunks of a tar stream that no image or snapshot uses.
 * Only under the EXCLUSIVE store lock, so that no capture in flight has
 * found one of them present; if the store is busy they stay for gc.
 */
static void drop_raw_chunks(struct store *s, struct vdisk *v, const char *source_path)
{
	_cleanup_close_ int lock_fd = -EBADF;
	int r;

	r = store_lock(s, STORE_LOCK_EXCLUSIVE, false, &lock_fd);
	if (r == -EAGAIN) {
		log_notice("Store '%s' is in use: the raw chunks the import of '%s' wrote stay "
			   "until 'imager store gc'.",
			   store_path(s), source_path);
		return;
	}
	if (r >= 0)
		r = vdisk_chunks_drop_new(v);
	if (r < 0)
		log_warning_errno(r, "Cannot remove the raw chunks the import of '%s' wrote, "
				     "ignoring ('imager store gc' removes them): %m",
				  source_path);
	else
		log_debug("Removed %d raw chunks of '%s' that no image uses.", r, source_path);
}

static int import_tar(const char *source_path, struct capture_request *req)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(vdisk_freep) struct vdisk *v = NULL;
	_cleanup_free_ char *reason = NULL;
	int lock_fd = -EBADF, r;

	r = cli_store_open(req->store_path, true, &s);
	if (r < 0)
		return r;
	/* raw chunks are unreferenced until the capture publishes: keep gc away meanwhile */
	r = cli_store_lock(s, STORE_LOCK_SHARED, true, &lock_fd);
	if (r < 0)
		return r;
	r = vdisk_chunks_new(s, &v);
	if (r < 0) {
		safe_close(lock_fd);
		return log_oom();
	}

	r = vdisk_chunks_stream_tar(v, source_path, cli_progress, &req->progress, &reason);
	cli_progress_end(req->progress);
	if (r < 0)
		r = open_error(r, source_path, "Source archive", reason);
	else
		r = capture_vdisk(v, source_path, "tar", req);

	/* the raw chunks are scaffolding: keep only those an image uses */
	lock_fd = safe_close(lock_fd);
	drop_raw_chunks(s, v, source_path);
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
