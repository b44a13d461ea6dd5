/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Virtual disks: format detection by magic, the common part of every
 * backend (bounds-checked reads, the first read error kept for the caller's
 * message) and the raw backend.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imager/vdisk.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

static const char *const vdisk_format_name[_VDISK_FORMAT_MAX] = {
	[VDISK_RAW] = "raw",   [VDISK_QCOW2] = "qcow2", [VDISK_VMDK] = "vmdk",
	[VDISK_VHD] = "vhd",   [VDISK_VHDX] = "vhdx",   [VDISK_CHUNKS] = "chunks",
};

const char *vdisk_format_to_string(enum vdisk_format f)
{
	if ((int) f < 0 || f >= _VDISK_FORMAT_MAX)
		return NULL;
	return vdisk_format_name[f];
}

enum vdisk_format vdisk_format_from_string(const char *s)
{
	if (!s)
		return _VDISK_FORMAT_INVALID;
	for (int i = 0; i < _VDISK_FORMAT_MAX; i++)
		if (strcmp(s, vdisk_format_name[i]) == 0)
			return (enum vdisk_format) i;
	return _VDISK_FORMAT_INVALID;
}

int vdisk_reason(char **ret, int r, const char *fmt, ...)
{
	va_list ap;

	if (!ret)
		return r;
	free(*ret);
	*ret = NULL;
	va_start(ap, fmt);
	if (vasprintf(ret, fmt, ap) < 0)
		*ret = NULL;
	va_end(ap);
	return r;
}

void vdisk_init(struct vdisk *v, enum vdisk_format format, uint64_t size_bytes)
{
	v->format = format;
	v->size_bytes = size_bytes;
	v->error = NULL;
	v->error_errno = 0;
	pthread_mutex_init(&v->error_lock, NULL);
}

int vdisk_set_error(struct vdisk *v, int r, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	log_debug("vdisk: %s", s ? s : "(out of memory)");
	pthread_mutex_lock(&v->error_lock);
	if (!v->error && s) {
		v->error = s;
		v->error_errno = r;
		s = NULL;
	}
	pthread_mutex_unlock(&v->error_lock);
	free(s);
	return r;
}

const char *vdisk_error(struct vdisk *v, int *ret_errno)
{
	const char *e;

	if (!v)
		return NULL;
	pthread_mutex_lock(&v->error_lock);
	e = v->error;
	if (ret_errno)
		*ret_errno = v->error_errno;
	pthread_mutex_unlock(&v->error_lock);
	return e;
}

int vdisk_check_size(uint64_t size_bytes, char **ret_reason)
{
	char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];

	if (size_bytes == 0)
		return vdisk_reason(ret_reason, -EBADMSG, "the virtual disk size is 0");
	if (size_bytes >= VDISK_SIZE_ABSURD)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the header claims an absurd virtual size of %llu bytes",
				    (unsigned long long) size_bytes);
	if (size_bytes > VDISK_SIZE_MAX)
		return vdisk_reason(ret_reason, -EFBIG,
				    "the virtual size %s is larger than the %s an import may have",
				    format_bytes(a, sizeof(a), size_bytes),
				    format_bytes(b, sizeof(b), VDISK_SIZE_MAX));
	return 0;
}

int vdisk_pread(struct vdisk *v, void *buf, size_t n, uint64_t offset_bytes)
{
	int r;

	if (!v || (!buf && n > 0))
		return -EINVAL;
	if (offset_bytes > v->size_bytes || n > v->size_bytes - offset_bytes)
		return -EINVAL;
	if (n == 0)
		return 0;
	r = v->pread(v, buf, n, offset_bytes);
	if (r < 0 && !vdisk_error(v, NULL))
		(void) vdisk_set_error(v, r, "read of %zu bytes at byte %llu failed: %s", n,
				       (unsigned long long) offset_bytes, strerror(-r));
	return r;
}

struct vdisk *vdisk_free(struct vdisk *v)
{
	if (!v)
		return NULL;
	pthread_mutex_destroy(&v->error_lock);
	free(v->error);
	v->error = NULL;
	v->close(v); /* frees v */
	return NULL;
}

/* --- detection ----------------------------------------------------------------- */

#define QCOW_MAGIC "QFI\xfb"
#define VMDK_SPARSE_MAGIC "KDMV"
#define VMDK_COWD_MAGIC "COWD"
#define VMDK_DESCRIPTOR_MAGIC "# Disk DescriptorFile"
#define VHDX_MAGIC "vhdxfile"
#define VHD_MAGIC "conectix"
/* a VHD footer is 512 bytes; Virtual PC before 2004 wrote 511 (the VHD spec) */
#define VHD_FOOTER_BYTES 512u

static bool has_magic(const uint8_t *buf, size_t n, const char *magic)
{
	size_t m = strlen(magic);

	return n >= m && memcmp(buf, magic, m) == 0;
}

int vdisk_detect(int fd, uint64_t file_bytes, enum vdisk_format *ret, char **ret_reason)
{
	uint8_t head[512] = {}, tail[VHD_FOOTER_BYTES];
	size_t n;
	int r;

	r = pread_full(fd, head, sizeof(head), 0, &n);
	if (r < 0)
		return r;
	if (has_magic(head, n, QCOW_MAGIC)) {
		if (n >= 8 && head[4] == 0 && head[5] == 0 && head[6] == 0 && head[7] == 1)
			return vdisk_reason(ret_reason, -EOPNOTSUPP,
					    "qcow version 1 is not supported (convert it with "
					    "qemu-img convert -O qcow2)");
		*ret = VDISK_QCOW2;
		return 0;
	}
	if (has_magic(head, n, VMDK_SPARSE_MAGIC)) {
		*ret = VDISK_VMDK;
		return 0;
	}
	if (has_magic(head, n, VMDK_COWD_MAGIC))
		return vdisk_reason(ret_reason, -EOPNOTSUPP,
				    "ESX COWD sparse VMDK extents are not supported");
	if (has_magic(head, n, VMDK_DESCRIPTOR_MAGIC))
		return vdisk_reason(ret_reason, -EOPNOTSUPP,
				    "a VMDK descriptor with separate extent files is not supported; "
				    "use a monolithicSparse or streamOptimized VMDK");
	if (has_magic(head, n, VHDX_MAGIC)) {
		*ret = VDISK_VHDX;
		return 0;
	}
	if (has_magic(head, n, VHD_MAGIC)) {
		*ret = VDISK_VHD; /* dynamic: a copy of the footer leads the file */
		return 0;
	}
	if (file_bytes >= VHD_FOOTER_BYTES) {
		r = pread_all(fd, tail, sizeof(tail), file_bytes - VHD_FOOTER_BYTES);
		if (r < 0)
			return r;
		if (has_magic(tail, sizeof(tail), VHD_MAGIC)) {
			*ret = VDISK_VHD; /* fixed: raw data, then the footer */
			return 0;
		}
	}
	*ret = VDISK_RAW;
	return 0;
}

/* --- raw ----------------------------------------------------------------------- */

struct vdisk_raw {
	struct vdisk v;
	int fd;
};

static int raw_pread(struct vdisk *v, void *buf, size_t n, uint64_t offset_bytes)
{
	struct vdisk_raw *d = (struct vdisk_raw *) v;
	int r = pread_all(d->fd, buf, n, offset_bytes);

	if (r == -EIO)
		return vdisk_set_error(v, -EBADMSG, "the file ended before byte %llu (it shrank?)",
				       (unsigned long long) (offset_bytes + n));
	return r;
}

static void raw_close(struct vdisk *v)
{
	struct vdisk_raw *d = (struct vdisk_raw *) v;

	safe_close(d->fd);
	free(d);
}

int vdisk_open_raw(int fd, uint64_t file_bytes, struct vdisk **ret, char **ret_reason)
{
	struct vdisk_raw *d;
	int r;

	r = vdisk_check_size(file_bytes, ret_reason);
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		safe_close(fd);
		return -ENOMEM;
	}
	vdisk_init(&d->v, VDISK_RAW, file_bytes);
	d->fd = fd;
	d->v.pread = raw_pread;
	d->v.close = raw_close;
	*ret = &d->v;
	return 0;
}

/* --- open ---------------------------------------------------------------------- */

static int open_file(const char *path, int *ret_fd, uint64_t *ret_bytes)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EMEDIUMTYPE; /* block devices are captured directly, not imported */
	*ret_bytes = (uint64_t) st.st_size;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int open_fd_format(int fd, uint64_t file_bytes, const char *path, enum vdisk_format format,
			  const char *backing_path, struct vdisk **ret, char **ret_reason)
{
	if (backing_path && format != VDISK_QCOW2) {
		safe_close(fd);
		return vdisk_reason(ret_reason, -EINVAL,
				    "a backing file was given, but this %s disk has none",
				    vdisk_format_to_string(format));
	}
	switch (format) {
	case VDISK_RAW:
		return vdisk_open_raw(fd, file_bytes, ret, ret_reason);
	case VDISK_QCOW2:
		return vdisk_open_qcow2(fd, file_bytes, backing_path, ret, ret_reason);
	case VDISK_VMDK:
		return vdisk_open_vmdk(fd, path, ret, ret_reason);
	case VDISK_VHD:
	case VDISK_VHDX:
		return vdisk_open_vhdi(fd, path, format, ret, ret_reason);
	default:
		safe_close(fd);
		return -EINVAL;
	}
}

int vdisk_open_format(const char *path, enum vdisk_format format, const char *backing_path,
		      struct vdisk **ret, char **ret_reason)
{
	uint64_t file_bytes;
	int fd, r;

	if (!path || !ret)
		return -EINVAL;
	r = open_file(path, &fd, &file_bytes);
	if (r < 0)
		return r;
	return open_fd_format(fd, file_bytes, path, format, backing_path, ret, ret_reason);
}

int vdisk_open(const char *path, const char *backing_path, struct vdisk **ret, char **ret_reason)
{
	enum vdisk_format format;
	uint64_t file_bytes;
	int fd, r;

	if (!path || !ret)
		return -EINVAL;
	r = open_file(path, &fd, &file_bytes);
	if (r < 0)
		return r;
	r = vdisk_detect(fd, file_bytes, &format, ret_reason);
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	return open_fd_format(fd, file_bytes, path, format, backing_path, ret, ret_reason);
}
