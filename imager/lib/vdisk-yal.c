/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * VMDK (libvmdk) and VHD/VHDX (libvhdi) backends: Debian's packaged readers
 * (libyal), which handle what we need (monolithicSparse and streamOptimized
 * VMDK with compressed grains; fixed and dynamic VHD; VHDX). This file is
 * the only one that sees their error type: every failure becomes -EBADMSG
 * with the library's innermost message as the reason.
 *
 * What the libraries would allow but we refuse: VMDK with several extents
 * or separate extent files (libvmdk would open any file a descriptor names,
 * so only our own file is ever handed to it, through a libbfio pool), VMDK
 * delta disks and differencing VHD/VHDX (they need a parent disk).
 * libyal handles are not known to be safe for concurrent reads: one mutex
 * per disk serialises them.
 */
#include <libvhdi.h>
#include <libvmdk.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imager/vdisk.h"
#include "util/cleanup.h"
#include "util/log.h"

/* libyal error texts are "function: message." lines, outermost last; we keep the innermost. */
#define YAL_ERROR_BYTES 4096

static char *yal_text(char *buf)
{
	char *line = buf, *nl;

	/* the backtrace lists the innermost error first */
	nl = strchr(line, '\n');
	if (nl)
		*nl = 0;
	/* drop the "libxxx_function: " prefix */
	char *colon = strstr(line, ": ");
	if (colon && colon - line < 80 && !memchr(line, ' ', (size_t) (colon - line)))
		line = colon + 2;
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '.' || line[n - 1] == ' '))
		line[--n] = 0;
	return line;
}

static int vmdk_reason(char **ret_reason, libvmdk_error_t **e, const char *what)
{
	char buf[YAL_ERROR_BYTES] = "";

	if (e && *e) {
		(void) libvmdk_error_backtrace_sprint(*e, buf, sizeof(buf));
		libvmdk_error_free(e);
	}
	return vdisk_reason(ret_reason, -EBADMSG, "%s%s%s", what, buf[0] ? ": " : "",
			    buf[0] ? yal_text(buf) : "");
}

static int vhdi_reason(char **ret_reason, libvhdi_error_t **e, const char *what)
{
	char buf[YAL_ERROR_BYTES] = "";

	if (e && *e) {
		(void) libvhdi_error_backtrace_sprint(*e, buf, sizeof(buf));
		libvhdi_error_free(e);
	}
	return vdisk_reason(ret_reason, -EBADMSG, "%s%s%s", what, buf[0] ? ": " : "",
			    buf[0] ? yal_text(buf) : "");
}

/* --- VMDK ---------------------------------------------------------------------- */

struct vmdk {
	struct vdisk v;
	pthread_mutex_t lock;
	libvmdk_handle_t *handle;
	libbfio_pool_t *pool;
};

static void vmdk_close(struct vdisk *v)
{
	struct vmdk *d = (struct vmdk *) v;

	if (d->handle) {
		(void) libvmdk_handle_close(d->handle, NULL);
		(void) libvmdk_handle_free(&d->handle, NULL);
	}
	if (d->pool)
		(void) libbfio_pool_free(&d->pool, NULL);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static int vmdk_pread(struct vdisk *v, void *buf, size_t n, uint64_t offset_bytes)
{
	struct vmdk *d = (struct vmdk *) v;
	libvmdk_error_t *e = NULL;
	_cleanup_free_ char *why = NULL;
	ssize_t k;

	pthread_mutex_lock(&d->lock);
	k = libvmdk_handle_read_buffer_at_offset(d->handle, buf, n, (off64_t) offset_bytes, &e);
	pthread_mutex_unlock(&d->lock);
	if (k == (ssize_t) n)
		return 0;
	(void) vmdk_reason(&why, &e, "libvmdk");
	return vdisk_set_error(v, -EBADMSG, "cannot read %zu bytes at byte %llu of the disk: %s", n,
			       (unsigned long long) offset_bytes, why ? why : "short read");
}

static const char *vmdk_disk_type_name(int t)
{
	switch (t) {
	case LIBVMDK_DISK_TYPE_MONOLITHIC_SPARSE:
		return "monolithicSparse";
	case LIBVMDK_DISK_TYPE_STREAM_OPTIMIZED:
		return "streamOptimized";
	case LIBVMDK_DISK_TYPE_2GB_EXTENT_FLAT:
		return "twoGbMaxExtentFlat";
	case LIBVMDK_DISK_TYPE_2GB_EXTENT_SPARSE:
		return "twoGbMaxExtentSparse";
	case LIBVMDK_DISK_TYPE_MONOLITHIC_FLAT:
		return "monolithicFlat";
	default:
		return "another kind";
	}
}

int vdisk_open_vmdk(int fd, const char *path, struct vdisk **ret, char **ret_reason)
{
	struct vmdk *d;
	libvmdk_error_t *e = NULL;
	libbfio_error_t *be = NULL;
	libbfio_handle_t *fh = NULL;
	libvmdk_extent_descriptor_t *ext = NULL;
	size64_t size = 0;
	uint32_t parent_cid = 0;
	int disk_type = 0, n_extents = 0, ext_type = 0, entry = 0, r;

	safe_close(fd); /* libvmdk opens by name; only this one file, see below */
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	vdisk_init(&d->v, VDISK_VMDK, 0);
	d->v.pread = vmdk_pread;
	d->v.close = vmdk_close;

	if (libvmdk_handle_initialize(&d->handle, &e) != 1) {
		r = vmdk_reason(ret_reason, &e, "cannot initialise libvmdk");
		goto fail;
	}
	if (libvmdk_handle_open(d->handle, path, LIBVMDK_OPEN_READ, &e) != 1) {
		r = vmdk_reason(ret_reason, &e, "not a readable VMDK");
		goto fail;
	}
	if (libvmdk_handle_get_disk_type(d->handle, &disk_type, &e) != 1) {
		r = vmdk_reason(ret_reason, &e, "no VMDK disk type");
		goto fail;
	}
	if (disk_type != LIBVMDK_DISK_TYPE_MONOLITHIC_SPARSE &&
	    disk_type != LIBVMDK_DISK_TYPE_STREAM_OPTIMIZED) {
		r = vdisk_reason(ret_reason, -EOPNOTSUPP,
				 "VMDK disks of type %s are not supported (only monolithicSparse and "
				 "streamOptimized)",
				 vmdk_disk_type_name(disk_type));
		goto fail;
	}
	if (libvmdk_handle_get_number_of_extents(d->handle, &n_extents, &e) != 1 || n_extents != 1) {
		r = e ? vmdk_reason(ret_reason, &e, "cannot count the VMDK extents")
		      : vdisk_reason(ret_reason, -EOPNOTSUPP,
				     "the VMDK descriptor lists %d extents; only one is supported",
				     n_extents);
		goto fail;
	}
	if (libvmdk_handle_get_extent_descriptor(d->handle, 0, &ext, &e) != 1 ||
	    libvmdk_extent_descriptor_get_type(ext, &ext_type, &e) != 1) {
		r = vmdk_reason(ret_reason, &e, "cannot read the VMDK extent descriptor");
		if (ext)
			(void) libvmdk_extent_descriptor_free(&ext, NULL);
		goto fail;
	}
	(void) libvmdk_extent_descriptor_free(&ext, NULL);
	if (ext_type != LIBVMDK_EXTENT_TYPE_SPARSE) {
		r = vdisk_reason(ret_reason, -EOPNOTSUPP,
				 "the VMDK extent is not a sparse extent in this file");
		goto fail;
	}
	r = libvmdk_handle_get_parent_content_identifier(d->handle, &parent_cid, &e);
	if (r < 0) {
		r = vmdk_reason(ret_reason, &e, "cannot read the VMDK parent identifier");
		goto fail;
	}
	if (r == 1 && parent_cid != UINT32_C(0xffffffff)) {
		r = vdisk_reason(ret_reason, -EOPNOTSUPP,
				 "this VMDK is a delta disk with a parent (parentCID %08x); "
				 "merge it first (qemu-img convert)",
				 parent_cid);
		goto fail;
	}

	/* the extent data: exactly this file, whatever name the descriptor gives */
	if (libbfio_file_initialize(&fh, &be) != 1 ||
	    libbfio_file_set_name(fh, path, strlen(path), &be) != 1 ||
	    libbfio_pool_initialize(&d->pool, 0, LIBBFIO_POOL_UNLIMITED_NUMBER_OF_OPEN_HANDLES, &be) != 1 ||
	    libbfio_pool_append_handle(d->pool, &entry, fh, LIBBFIO_OPEN_READ, &be) != 1) {
		if (be)
			libbfio_error_free(&be);
		if (fh)
			(void) libbfio_handle_free(&fh, NULL);
		r = -ENOMEM;
		goto fail;
	}
	fh = NULL; /* the pool owns it */
	if (libvmdk_handle_open_extent_data_files_file_io_pool(d->handle, d->pool, &e) != 1) {
		r = vmdk_reason(ret_reason, &e, "cannot read the VMDK extent");
		goto fail;
	}
	if (libvmdk_handle_get_media_size(d->handle, &size, &e) != 1) {
		r = vmdk_reason(ret_reason, &e, "no VMDK disk size");
		goto fail;
	}
	r = vdisk_check_size(size, ret_reason);
	if (r < 0)
		goto fail;
	d->v.size_bytes = size;
	log_debug("vmdk %s: %llu bytes", vmdk_disk_type_name(disk_type), (unsigned long long) size);
	*ret = &d->v;
	return 0;
fail:
	vdisk_free(&d->v);
	return r;
}

/* --- VHD and VHDX -------------------------------------------------------------- */

struct vhdi {
	struct vdisk v;
	pthread_mutex_t lock;
	libvhdi_file_t *file;
};

static void vhdi_close(struct vdisk *v)
{
	struct vhdi *d = (struct vhdi *) v;

	if (d->file) {
		(void) libvhdi_file_close(d->file, NULL);
		(void) libvhdi_file_free(&d->file, NULL);
	}
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static int vhdi_pread(struct vdisk *v, void *buf, size_t n, uint64_t offset_bytes)
{
	struct vhdi *d = (struct vhdi *) v;
	libvhdi_error_t *e = NULL;
	_cleanup_free_ char *why = NULL;
	ssize_t k;

	pthread_mutex_lock(&d->lock);
	k = libvhdi_file_read_buffer_at_offset(d->file, buf, n, (off64_t) offset_bytes, &e);
	pthread_mutex_unlock(&d->lock);
	if (k == (ssize_t) n)
		return 0;
	(void) vhdi_reason(&why, &e, "libvhdi");
	return vdisk_set_error(v, -EBADMSG, "cannot read %zu bytes at byte %llu of the disk: %s", n,
			       (unsigned long long) offset_bytes, why ? why : "short read");
}

int vdisk_open_vhdi(int fd, const char *path, enum vdisk_format format, struct vdisk **ret,
		    char **ret_reason)
{
	const char *name = format == VDISK_VHDX ? "VHDX" : "VHD";
	struct vhdi *d;
	libvhdi_error_t *e = NULL;
	size64_t size = 0;
	uint32_t disk_type = 0;
	int file_type = 0, r;

	safe_close(fd);
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	vdisk_init(&d->v, format, 0);
	d->v.pread = vhdi_pread;
	d->v.close = vhdi_close;

	if (libvhdi_file_initialize(&d->file, &e) != 1) {
		r = vhdi_reason(ret_reason, &e, "cannot initialise libvhdi");
		goto fail;
	}
	if (libvhdi_file_open(d->file, path, LIBVHDI_OPEN_READ, &e) != 1) {
		r = vhdi_reason(ret_reason, &e,
				format == VDISK_VHDX ? "not a readable VHDX" : "not a readable VHD");
		goto fail;
	}
	if (libvhdi_file_get_file_type(d->file, &file_type, &e) != 1 ||
	    libvhdi_file_get_disk_type(d->file, &disk_type, &e) != 1) {
		r = vhdi_reason(ret_reason, &e, "cannot read the disk type");
		goto fail;
	}
	if ((format == VDISK_VHDX) != (file_type == LIBVHDI_FILE_TYPE_VHDX)) {
		r = vdisk_reason(ret_reason, -EBADMSG, "the %s signature and the file disagree", name);
		goto fail;
	}
	if (disk_type == LIBVHDI_DISK_TYPE_DIFFERENTIAL) {
		r = vdisk_reason(ret_reason, -EOPNOTSUPP,
				 "this is a differencing %s, which needs its parent disk; merge "
				 "it first (qemu-img convert)",
				 name);
		goto fail;
	}
	if (disk_type != LIBVHDI_DISK_TYPE_FIXED && disk_type != LIBVHDI_DISK_TYPE_DYNAMIC) {
		r = vdisk_reason(ret_reason, -EOPNOTSUPP, "unknown %s disk type %u", name, disk_type);
		goto fail;
	}
	if (libvhdi_file_get_media_size(d->file, &size, &e) != 1) {
		r = vhdi_reason(ret_reason, &e, "no disk size");
		goto fail;
	}
	r = vdisk_check_size(size, ret_reason);
	if (r < 0)
		goto fail;
	d->v.size_bytes = size;
	log_debug("%s %s: %llu bytes", name, disk_type == LIBVHDI_DISK_TYPE_FIXED ? "fixed" : "dynamic",
		  (unsigned long long) size);
	*ret = &d->v;
	return 0;
fail:
	vdisk_free(&d->v);
	return r;
}
