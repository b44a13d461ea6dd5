/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "io.h"

int pread_full(int fd, void *buf, size_t size, uint64_t offset_bytes, size_t *ret_size)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < size) {
		ssize_t k = pread(fd, p + done, size - done, (off_t) (offset_bytes + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		done += (size_t) k;
	}
	*ret_size = done;
	return 0;
}

int pread_all(int fd, void *buf, size_t size, uint64_t offset_bytes)
{
	size_t n;
	int r = pread_full(fd, buf, size, offset_bytes, &n);

	if (r < 0)
		return r;
	return n == size ? 0 : -EIO;
}

int pwrite_all(int fd, const void *buf, size_t size, uint64_t offset_bytes)
{
	const uint8_t *p = buf;

	while (size > 0) {
		ssize_t k = pwrite(fd, p, size, (off_t) offset_bytes);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k, size -= (size_t) k, offset_bytes += (uint64_t) k;
	}
	return 0;
}

int write_all(int fd, const void *buf, size_t size)
{
	const uint8_t *p = buf;

	while (size > 0) {
		ssize_t k = write(fd, p, size);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k, size -= (size_t) k;
	}
	return 0;
}

int read_full(int fd, void *buf, size_t size, size_t *ret_size)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < size) {
		ssize_t k = read(fd, p + done, size - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		done += (size_t) k;
	}
	*ret_size = done;
	return 0;
}

int read_file_at(int dir_fd, const char *path, size_t max_bytes, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t n;
	int r;

	fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > max_bytes)
		return -EFBIG;
	/* sysfs files report size 4096; read up to max_bytes + 1 to detect overflow */
	buf = malloc(max_bytes + 1);
	if (!buf)
		return -ENOMEM;
	r = read_full(fd, buf, max_bytes + 1, &n);
	if (r < 0)
		return r;
	if (n > max_bytes)
		return -EFBIG;
	buf[n] = 0;
	*ret = TAKE_PTR(buf);
	if (ret_size)
		*ret_size = n;
	return 0;
}

int read_one_line(const char *path, char **ret)
{
	char *s;
	size_t n;
	int r = read_file_at(AT_FDCWD, path, 4096, &s, &n);

	if (r < 0)
		return r;
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
	*ret = s;
	return 0;
}

int fsync_parent_at(int dir_fd, const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	_cleanup_close_ int fd = -EBADF;
	char *slash;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	fd = openat(dir_fd, slash ? (*dir ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

/* The O_DIRECT part of write_file_tmp_at(): whole 4 KiB blocks by DMA, the tail buffered. */
static int write_direct(int dir_fd, const char *tmp, int fd, const void *data, size_t size)
{
	_cleanup_close_ int tail_fd = -EBADF;
	size_t head = size & ~(size_t) (WRITE_TMP_DIRECT_ALIGN - 1);
	int r;

	r = pwrite_all(fd, data, head, 0);
	if (r < 0)
		return r;
	if (head == size)
		return 0;
	/* the last partial block through the page cache, on a second descriptor */
	tail_fd = openat(dir_fd, tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (tail_fd < 0)
		return -errno;
	return pwrite_all(tail_fd, (const uint8_t *) data + head, size - head, head);
}

int write_file_tmp_at(int dir_fd, const char *path, const void *data, size_t size,
		      unsigned flags, char **ret_tmp)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	unsigned long long rnd;
	bool direct = (flags & WRITE_TMP_DIRECT) && size >= WRITE_TMP_DIRECT_ALIGN &&
		      (uintptr_t) data % WRITE_TMP_DIRECT_ALIGN == 0;
	int r;

	for (int attempt = 0; attempt < 100; attempt++) {
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd))
			return -EIO;
		free(tmp);
		if (asprintf(&tmp, "%s.tmp.%016llx", path, rnd) < 0)
			return -ENOMEM;
		fd = openat(dir_fd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
		if (fd < 0 && direct && errno == EINVAL) {
			/* a file system without O_DIRECT (tmpfs): buffered */
			direct = false;
			fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		}
		if (fd >= 0)
			break;
		if (errno != EEXIST)
			return -errno;
	}
	if (fd < 0)
		return -EEXIST;
	r = direct ? write_direct(dir_fd, tmp, fd, data, size) : write_all(fd, data, size);
	if (r >= 0 && (flags & WRITE_TMP_SYNC) && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		(void) unlinkat(dir_fd, tmp, 0);
		return r;
	}
	*ret_tmp = TAKE_PTR(tmp);
	return 0;
}

static int publish(int dir_fd, const char *path, const void *data, size_t size, bool replace)
{
	_cleanup_free_ char *tmp = NULL;
	int r = write_file_tmp_at(dir_fd, path, data, size, WRITE_TMP_SYNC, &tmp);

	if (r < 0)
		return r;
	if (replace)
		r = renameat(dir_fd, tmp, dir_fd, path) < 0 ? -errno : 0;
	else
		r = renameat2(dir_fd, tmp, dir_fd, path, RENAME_NOREPLACE) < 0 ? -errno : 0;
	if (r < 0) {
		(void) unlinkat(dir_fd, tmp, 0);
		return r;
	}
	return fsync_parent_at(dir_fd, path);
}

int write_file_atomic_noreplace(int dir_fd, const char *path, const void *data, size_t size)
{
	return publish(dir_fd, path, data, size, false);
}

int write_file_atomic_replace(int dir_fd, const char *path, const void *data, size_t size)
{
	return publish(dir_fd, path, data, size, true);
}

int reopen_direct(int fd, int flags)
{
	struct statfs sfs;
	struct stat st;
	char path[64];
	int r;

	/* An import's FUSE file is served by a thread of this very process, and
	 * the kernel waits for a FUSE direct read uninterruptibly: one in flight
	 * when kill -9 comes and the process can never exit. Buffered FUSE reads
	 * wait killably. So no O_DIRECT on FUSE, nor on anything but block
	 * devices and regular files. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return -EOPNOTSUPP;
	if (S_ISREG(st.st_mode) && (fstatfs(fd, &sfs) < 0 || sfs.f_type == FUSE_SUPER_MAGIC))
		return -EOPNOTSUPP;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, flags | O_DIRECT | O_CLOEXEC | O_NOCTTY);
	return r < 0 ? -errno : r;
}

int mkdir_p_at(int dir_fd, const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1;; s++) {
		bool end = *s == 0;
		if (*s == '/' || end) {
			*s = 0;
			if (mkdirat(dir_fd, p, mode) < 0 && errno != EEXIST)
				return -errno;
			if (end)
				break;
			*s = '/';
		}
	}
	return 0;
}
