/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "lifecycle.h"
#include "output.h"
#include "store-key.h"
#include "target.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)

int cli_load_manifest(const char *store_arg, enum manifest_kind kind, const char *name,
		      enum image_use use, struct store **ret_store, struct manifest **ret)
{
	_cleanup_(store_freep) struct store *s = NULL;
	const char *path = cli_store_path(store_arg);
	const char *what = kind == MANIFEST_KIND_SNAPSHOT ? "Snapshot" : "Image";
	struct manifest *m = NULL;
	int r;

	r = cli_store_open(path, false, &s);
	if (r < 0)
		return r;
	r = store_get_manifest_of_kind(s, kind, name, &m);
	if (r == -ENOENT || r == -EINVAL)
		return log_error_errno(-ENOENT, "%s '%s' does not exist in store '%s'.", what, name,
				       path);
	if (r == -EBADMSG)
		return log_error_errno(r, "%s '%s' in store '%s' is damaged (its manifest does "
				       "not verify%s).", what, name, path,
				       store_is_encrypted(s) ? ": authentication failed" : "");
	if (r == -EPROTONOSUPPORT)
		return log_error_errno(r, "%s '%s' needs a newer imager (manifest version).", what,
				       name);
	if (r < 0)
		return log_error_errno(r, "Failed to load %s '%s': %m",
				       manifest_kind_to_string(kind), name);
	if (kind == MANIFEST_KIND_IMAGE) {
		r = cli_image_check_use(s, name, use);
		if (r < 0) {
			manifest_free(m);
			return r;
		}
	}
	*ret_store = TAKE_PTR(s);
	*ret = m;
	return 0;
}

int cli_load_image(const char *store_arg, const char *name, struct store **ret_store,
		   struct manifest **ret)
{
	return cli_load_manifest(store_arg, MANIFEST_KIND_IMAGE, name, IMAGE_USE_NEW, ret_store, ret);
}

int cli_target_inspect(const char *path, const struct manifest_disk *md, uint64_t file_size_bytes,
		       bool for_write, struct target *ret)
{
	_cleanup_free_ char *reason = NULL;
	struct blkdev *d = NULL;
	int r;

	*ret = (struct target){ .fd = -EBADF };
	r = blkdev_new_target(path, true, &d);
	if (r == -ENOENT)
		return log_error_errno(r, "Target '%s' does not exist.", path);
	if (r == -ENOTBLK || r == -EMEDIUMTYPE)
		return log_error_errno(r, "Target '%s' is neither a block device nor a regular file.",
				       path);
	if (r < 0)
		return log_error_errno(r, "Cannot open target '%s': %m", path);
	ret->dev = d;
	ret->is_file = d->is_file;
	if (d->is_file) {
		ret->logical_sector_bytes = md->logical_sector_bytes;
		ret->file_created = d->size_bytes == 0;
		/* an existing image file is a disk of its own size; a new one gets the image's */
		ret->size_bytes = file_size_bytes ? file_size_bytes
				  : d->size_bytes ? d->size_bytes : md->size_bytes;
		return 0;
	}
	ret->size_bytes = d->size_bytes;
	ret->logical_sector_bytes = d->logical_sector_bytes;
	if (!for_write)
		return 0;
	if (d->system_disk)
		return log_error_errno(-EBUSY, "Refusing to write '%s': it holds the running system.",
				       path);
	if (d->read_only)
		return log_error_errno(-EROFS, "Refusing to write '%s': it is read-only.", path);
	r = blkdev_in_use(d, &reason);
	if (r < 0)
		return log_error_errno(r, "Cannot tell whether '%s' is in use: %m", path);
	if (r > 0)
		return log_error_errno(-EBUSY, "Refusing to write '%s': %s.", path, reason);
	return 0;
}

int cli_target_open_write(struct target *t)
{
	int r;

	if (t->is_file) {
		int fd = open(t->dev->node, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return log_error_errno(-errno, "Cannot open target '%s': %m", t->dev->node);
		/* a fresh sparse file: all zero, so holes and zero chunks need no writes */
		if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t) t->size_bytes) < 0) {
			r = -errno;
			close(fd);
			return log_error_errno(r, "Cannot size target '%s': %m", t->dev->node);
		}
		t->fd = fd;
		return 0;
	}
	r = blkdev_open(t->dev, O_RDWR | O_EXCL, &t->fd);
	if (r == -EBUSY)
		return log_error_errno(r, "Refusing to write '%s': it is in use (mounted or held).",
				       t->dev->node);
	if (r < 0)
		return log_error_errno(r, "Cannot open target '%s' exclusively: %m", t->dev->node);
	return 0;
}

int cli_target_open_read(struct target *t)
{
	int r = blkdev_open(t->dev, O_RDONLY, &t->fd);

	if (r < 0)
		return log_error_errno(r, "Cannot open '%s': %m", t->dev->node);
	return 0;
}

void cli_target_done(struct target *t)
{
	t->fd = safe_close(t->fd);
	t->dev = blkdev_free(t->dev);
}

char *cli_target_describe(const struct target *t)
{
	char size[FORMAT_BYTES_MAX], *s = NULL;

	format_bytes(size, sizeof(size), t->size_bytes);
	if (t->is_file)
		(void) asprintf(&s, "file %s (%s)", t->dev->node, size);
	else
		(void) asprintf(&s, "%s (%s, serial %s, %s)", t->dev->node,
				t->dev->model ? t->dev->model : "unknown model",
				t->dev->serial ? t->dev->serial : "unknown", size);
	return s;
}
