/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The only callers of read(2)/write(2)/pread(2)/pwrite(2). Every helper loops
 * over short transfers and EINTR. Offsets are uint64_t, never off_t.
 * All return 0 on success or -errno; a premature end of file is -EIO for
 * the *_all() writers and reported through ret_size for readers.
 */

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

/* Like the above but replaces an existing file (rename(2)). */
int write_file_atomic_replace(int dir_fd, const char *path, const void *data, size_t size);

/* fsync()s the directory holding @path (relative to @dir_fd). */
int fsync_parent_at(int dir_fd, const char *path);

/* mkdir -p relative to @dir_fd; existing directories are fine. */
int mkdir_p_at(int dir_fd, const char *path, mode_t mode);
