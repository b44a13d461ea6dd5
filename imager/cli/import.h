/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Imports: a capture whose disk comes from a file that is not a plain disk
 * image (docs/IMPORT.md). images-create.c calls import_capture() for
 * --source-tar and --source-vdisk.
 */

#include <errno.h>

#include "capture-run.h"

enum import_kind {
	IMPORT_TAR,    /* a (gzip'ed) tar holding one member, disk.raw */
	IMPORT_VDISK,  /* qcow2, VMDK, VHD, VHDX or raw, detected by magic */
	_IMPORT_KIND_MAX,
	_IMPORT_KIND_INVALID = -EINVAL,
};

/*
 * Opens @source_path (streams it into the store, for a tar), exposes the
 * disk as a file (FUSE, vdisk_fuse_mount()), points req->disks at it, runs
 * capture_run() and cleans up: unmounts, and removes the raw chunks a tar
 * import wrote that the new image does not use. A raw file is captured
 * directly. Records the source in the manifest's SOURCE section: type
 * "file", the file's base name, its format ("qcow2", "vmdk", "vhd", "vhdx",
 * "raw" or "tar"), through req->decorate after calling the caller's own
 * decorate. A tar import holds the store's SHARED lock while its raw chunks
 * are unreferenced, and removes them under the EXCLUSIVE lock afterwards
 * (if the store is busy they stay for gc). @backing_path: the backing file
 * of a qcow2 (NULL: a qcow2 with a backing file is refused). Logs its
 * errors; returns 0 or -errno (import_exit_status() maps it to an exit code).
 */
int import_capture(const char *source_path, enum import_kind kind, const char *backing_path,
		   struct capture_request *req);

/*
 * The exit status for an import_capture() error: DATA (3) for a damaged or
 * foreign file, REFUSED (4) for something we will not do (a backing file
 * not given, an unsupported feature, too big), else as exit_status_from_errno().
 */
int import_exit_status(int r);
