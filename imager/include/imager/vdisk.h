/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Virtual disks: read-only, random-access views of a disk that is not a
 * plain file or block device (docs/IMPORT.md). Each backend checks every
 * size, offset and table entry it reads from the file against the file's
 * size before using it; a damaged or hostile file gives -EBADMSG with a
 * one-line reason, never a crash and never bytes from outside the file.
 *
 * Backends: raw files; qcow2 v2/v3 (own reader: zlib and zstd compressed
 * clusters, extended L2 entries, an explicitly given backing file);
 * VMDK monolithicSparse and streamOptimized (libvmdk); VHD fixed and
 * dynamic, and VHDX (libvhdi); and a disk assembled from store chunks
 * (vdisk_chunks_new(), vdisk_chunks_stream_tar()).
 *
 * All reads may come from several threads at once (the FUSE server in
 * vdisk-fuse.c runs a thread pool); backends serialise what must be.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imager/chunk.h"
#include "imager/progress.h"

struct store;

/* The largest disk we import; a bigger virtual size is refused with -EFBIG. */
#define VDISK_SIZE_MAX (UINT64_C(64) << 40)
/* No real disk is this big: a header claiming more is damaged (-EBADMSG). */
#define VDISK_SIZE_ABSURD (UINT64_C(1) << 56)

enum vdisk_format {
	VDISK_RAW,
	VDISK_QCOW2,
	VDISK_VMDK,
	VDISK_VHD,
	VDISK_VHDX,
	VDISK_CHUNKS,   /* assembled from store chunks (a streamed tar) */
	_VDISK_FORMAT_MAX,
	_VDISK_FORMAT_INVALID = -EINVAL,
};
const char *vdisk_format_to_string(enum vdisk_format f);
enum vdisk_format vdisk_format_from_string(const char *s);

struct vdisk {
	uint64_t size_bytes;            /* the virtual disk's size */
	enum vdisk_format format;
	/*
	 * Reads exactly @n bytes at @offset_bytes, which the caller keeps
	 * inside [0, size_bytes). Returns 0 or -errno (-EBADMSG: the file
	 * is damaged; the reason is kept, see vdisk_error()).
	 */
	int (*pread)(struct vdisk *v, void *buf, size_t n, uint64_t offset_bytes);
	/* Frees the backend's state and @v itself. */
	void (*close)(struct vdisk *v);

	/* private to vdisk.c */
	pthread_mutex_t error_lock;
	char *error;
	int error_errno;
};

/*
 * Detects the format of the file open on @fd from its magic numbers: qcow2
 * ("QFI\xfb"), VMDK sparse extent ("KDMV"), VHDX ("vhdxfile"), VHD
 * ("conectix" at the start or in the footer); anything else is raw.
 * -EOPNOTSUPP (with *ret_reason) for formats recognised but not supported
 * (qcow v1, a VMDK text descriptor with separate extent files, COWD).
 */
int vdisk_detect(int fd, uint64_t file_bytes, enum vdisk_format *ret, char **ret_reason);

/*
 * Opens the virtual disk in @path (format detected by magic). A qcow2 with a
 * backing file is refused with -EOPNOTSUPP naming the backing file, unless
 * @backing_path gives it (then reads of unallocated clusters come from
 * there; a backing file with a backing file of its own is refused).
 * Errors: -ENOENT, -EACCES; -EBADMSG damaged; -EOPNOTSUPP unsupported
 * feature (encryption, external data file, differencing VHD, VMDK delta
 * disk...); -EFBIG bigger than VDISK_SIZE_MAX; -EINVAL @backing_path given
 * for a disk without a backing file. On error *ret_reason (if non-NULL)
 * gets a one-line reason, without the file's name.
 */
int vdisk_open(const char *path, const char *backing_path, struct vdisk **ret, char **ret_reason);
/* Like vdisk_open() without detection (for backing files named by format). */
int vdisk_open_format(const char *path, enum vdisk_format format, const char *backing_path,
		      struct vdisk **ret, char **ret_reason);

/*
 * Bounds-checked read: the range must lie inside the disk (-EINVAL
 * otherwise). On failure the first error's reason is kept for vdisk_error().
 */
int vdisk_pread(struct vdisk *v, void *buf, size_t n, uint64_t offset_bytes);
/* The reason of the first failed read, or NULL; stays valid until vdisk_free(). */
const char *vdisk_error(struct vdisk *v, int *ret_errno);
struct vdisk *vdisk_free(struct vdisk *v);

/* For backends: initialise the common part, record a read error (returns @r). */
void vdisk_init(struct vdisk *v, enum vdisk_format format, uint64_t size_bytes);
int vdisk_set_error(struct vdisk *v, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets *ret to a formatted reason (if @ret is non-NULL) and returns @r. */
int vdisk_reason(char **ret, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Checks a virtual size read from a header: -EBADMSG absurd, -EFBIG too big, -EBADMSG zero. */
int vdisk_check_size(uint64_t size_bytes, char **ret_reason);

/* Backends (vdisk-*.c); @fd is taken over in every case. */
int vdisk_open_raw(int fd, uint64_t file_bytes, struct vdisk **ret, char **ret_reason);
int vdisk_open_qcow2(int fd, uint64_t file_bytes, const char *backing_path, struct vdisk **ret,
		     char **ret_reason);
int vdisk_open_vmdk(int fd, const char *path, struct vdisk **ret, char **ret_reason);
int vdisk_open_vhdi(int fd, const char *path, enum vdisk_format format, struct vdisk **ret,
		    char **ret_reason);

/*
 * A disk assembled from chunks of @s (which must outlive it): empty (size 0)
 * until vdisk_chunks_stream_tar() fills it.
 */
int vdisk_chunks_new(struct store *s, struct vdisk **ret);

/*
 * Streams the tar at @path (gzip-compressed or not; ustar, pax or GNU,
 * sparse members included) once, without unpacking it, into @v (from
 * vdisk_chunks_new()): the archive must hold exactly one regular member,
 * named "disk.raw". Every non-zero CHUNK_SIZE_BYTES-aligned chunk of it goes
 * into the store as it streams by; afterwards @v reads the disk back from
 * those chunks (re-verified on every read, a few decoded chunks cached).
 * The chunks newly added to the store are remembered, also when the stream
 * fails: vdisk_chunks_drop_new() removes them.
 * Errors: -EBADMSG (not a tar, truncated, a member other than disk.raw, a
 * bad size), -EFBIG, -ENOENT, -errno; *ret_reason says which.
 * @progress (may be NULL) gets phase "import" reports: bytes of the disk
 * streamed so far, of its size.
 */
int vdisk_chunks_stream_tar(struct vdisk *v, const char *path, progress_fn progress,
			    void *userdata, char **ret_reason);

/*
 * For a vdisk from vdisk_chunks_new(): removes from its store every chunk
 * the stream newly wrote that no image or snapshot references (an image
 * captured from it keeps the chunks it shares). Refuses (-EBADMSG) if a
 * manifest cannot be read. The caller must hold the store lock EXCLUSIVE
 * (gc.h): a capture in flight may have found one of these chunks present.
 * Empties @v: it must not be read afterwards. Returns the number of chunks
 * removed, or -errno.
 */
int vdisk_chunks_drop_new(struct vdisk *v);

/*
 * Exposes @v as a file: a private, read-only FUSE file system mounted on a
 * fresh directory under @parent_dir (NULL: /run/imager if root, else
 * $TMPDIR or /tmp), serving exactly one file, "disk.raw", of v->size_bytes,
 * from a background thread pool. Needs /dev/fuse (and root, or fusermount3).
 * When root and single-threaded, the calling process first moves into a
 * mount namespace of its own (unshare(CLONE_NEWNS), propagation off), so the
 * mount is private and disappears with the process even on SIGKILL.
 * Otherwise mount points left by a killed run are detected by their
 * "import-<pid>-" name and lazily unmounted when that process is gone; empty
 * leftover directories are removed the same way. Every file descriptor on
 * the served file must be closed before vdisk_fuse_unmount(). @v must
 * outlive the returned object.
 */
struct vdisk_fuse;
int vdisk_fuse_mount(struct vdisk *v, const char *parent_dir, struct vdisk_fuse **ret);
/* The path of the served file. */
const char *vdisk_fuse_path(const struct vdisk_fuse *f);
/* Unmounts, stops the thread pool, removes the directory; NULL-safe; returns NULL. */
struct vdisk_fuse *vdisk_fuse_unmount(struct vdisk_fuse *f);
