/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The only callers of read(2)/write(2)/pread(2)/pwrite(2). Every helper loops
 * over short transfers and EINTR. Offsets are uint64_t, never off_t.
 * All return 0 on success or -errno; a premature end of file is -EIO for
 * the *_all() writers and reported through ret_size for readers.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads up to @size bytes at @offset_bytes; stores the count read (short only at EOF). */
int pread_full(int fd, void *buf, size_t size, uint64_t offset_bytes, size_t *ret_size);
/* Like pread_full() but a short read is -EIO. */
int pread_all(int fd, void *buf, size_t size, uint64_t offset_bytes);
int pwrite_all(int fd, const void *buf, size_t size, uint64_t offset_bytes);
int write_all(int fd, const void *buf, size_t size);
int read_full(int fd, void *buf, size_t size, size_t *ret_size);

/*
 * Reads a whole (small) file into a NUL-terminated buffer. Files larger than
 * @max_bytes give -EFBIG. @dir_fd may be AT_FDCWD.
 */
int read_file_at(int dir_fd, const char *path, size_t max_bytes, char **ret, size_t *ret_size);

/*
 * Reads a one-line sysfs-style attribute, strips trailing whitespace.
 * Returns -ENOENT if missing.
 */
int read_one_line(const char *path, char **ret);

/*
 * Atomically publishes @data as @path inside @dir_fd: writes an O_TMPFILE-less
 * temporary "<path>.tmp.XXXXXX" with O_EXCL, fsyncs it, renames it without
 * replacing (renameat2 RENAME_NOREPLACE), and fsyncs the directory.
 * Returns -EEXIST if @path already exists (the temporary is removed).
 */
int write_file_atomic_noreplace(int dir_fd, const char *path, const void *data, size_t size);

/*
 * Step 1 of the above, for callers that batch their syncs (the chunk
 * store): writes @data to a new "<path>.tmp.<16 hex>" (O_EXCL, random name
 * from getrandom()) and returns its name in *ret_tmp. On failure nothing is
 * left behind. Flags:
 * WRITE_TMP_SYNC    fsync() the file;
 * WRITE_TMP_DIRECT  write the whole 4 KiB blocks with O_DIRECT (no copy into
 *                   the page cache) when @data is 4 KiB-aligned and the file
 *                   system allows it, the partial last block buffered; else
 *                   buffered. Durability still needs a sync.
 */
#define WRITE_TMP_SYNC (1u << 0)
#define WRITE_TMP_DIRECT (1u << 1)
#define WRITE_TMP_DIRECT_ALIGN 4096u
int write_file_tmp_at(int dir_fd, const char *path, const void *data, size_t size,
		      unsigned flags, char **ret_tmp);

/* Like write_file_atomic_noreplace() but replaces an existing file (rename(2)). */
int write_file_atomic_replace(int dir_fd, const char *path, const void *data, size_t size);

/* fsync()s the directory holding @path (relative to @dir_fd). */
int fsync_parent_at(int dir_fd, const char *path);

/*
 * A second descriptor for the file or device open as @fd, with O_DIRECT and
 * @flags (O_RDONLY, O_WRONLY), through /proc/self/fd; the fd or -errno (a
 * file system without O_DIRECT gives -EINVAL). -EOPNOTSUPP for anything but
 * a block device or a regular file, and for files on FUSE (io.c says why):
 * callers then stay buffered. It shares no file offset or flags with @fd,
 * and @fd's O_EXCL claim on a block device covers it.
 */
int reopen_direct(int fd, int flags);

/* mkdir -p relative to @dir_fd; existing directories are fine. */
int mkdir_p_at(int dir_fd, const char *path, mode_t mode);
