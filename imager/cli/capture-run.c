/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The capture run shared by `capture`, `images create --source-disk`, the
 * imports and `snapshots create`: open each disk read-only and exclusively
 * (or freeze its live ext4), analyse it, store its chunks, and publish the
 * manifest last.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "capture-run.h"
#include "cli.h"
#include "imager/blkdev.h"
#include "imager/capture.h"
#include "imager/host.h"
#include "imager/manifest.h"
#include "imager/ptable.h"
#include "imager/store.h"
#include "lifecycle.h"
#include "report.h"
#include "store-key.h"
#include "trust.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct blkdev *, blkdev_free)
DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)
DEFINE_CLEANUP(struct ptable *, ptable_free)

struct frozen {
	int fds[64];
	size_t n;
};

static void thaw_all(struct frozen *f)
{
	for (size_t i = 0; i < f->n; i++) {
		if (ioctl(f->fds[i], FITHAW, 0) < 0)
			log_warning_errno(-errno, "Failed to thaw a frozen file system: %m");
		close(f->fds[i]);
	}
	f->n = 0;
}

static int freeze_mountpoints(char **mps, struct frozen *f)
{
	for (char **m = mps; m && *m; m++) {
		int mfd = open(*m, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;
		if (mfd < 0)
			return log_error_errno(-errno, "Failed to open mount point '%s': %m", *m);
		if (ioctl(mfd, FIFREEZE, 0) < 0) {
			r = -errno;
			close(mfd);
			return log_error_errno(r, "Failed to freeze '%s': %m", *m);
		}
		if (f->n >= ELEMENTSOF(f->fds)) {
			(void) ioctl(mfd, FITHAW, 0);
			close(mfd);
			return log_error_errno(-E2BIG, "Too many mounted file systems to freeze.");
		}
		f->fds[f->n++] = mfd;
	}
	return 0;
}

/* Freezes every mount point of @d and of its partitions. */
static int freeze_disk(const struct blkdev *d, struct frozen *f)
{
	_cleanup_(ptable_freep) struct ptable *pt = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = blkdev_open(d, O_RDONLY, &fd);
	if (r < 0)
		return log_error_errno(r, "Cannot open disk '%s': %m", d->node);
	r = ptable_read(fd, d->logical_sector_bytes, &pt);
	if (r < 0)
		return log_error_errno(r, "Cannot read the partition table of '%s': %m", d->node);
	for (size_t i = 0; i <= pt->n_entries; i++) {
		_cleanup_strv_free_ char **mps = NULL;
		_cleanup_free_ char *holder = NULL;
		bool swap = false;

		r = blkdev_partition_usage(d, i == 0 ? 0 : pt->entries[i - 1].start_bytes, &mps,
					   &swap, &holder);
		if (r < 0)
			return log_error_errno(r, "Cannot tell how '%s' is used: %m", d->node);
		if (swap || holder)
			return log_error_errno(-EBUSY, "Refusing to capture '%s': %s.", d->node,
					       swap ? "a partition is active swap"
						    : "a partition is held by another device");
		r = freeze_mountpoints(mps, f);
		if (r < 0)
			return r;
	}
	return 0;
}

static void summary(const struct capture_request *req, const struct manifest *m,
		    const struct capture_stats *st)
{
	char used[FORMAT_BYTES_MAX], stored[FORMAT_BYTES_MAX], news[FORMAT_BYTES_MAX],
		rate[FORMAT_BYTES_MAX];
	double r = st->seconds > 0 ? (double) st->used_bytes / st->seconds : 0;

	if (req->progress == PROGRESS_JSON) {
		char digest[65];
		hex_encode(m->content_digest, sizeof(m->content_digest), digest);
		printf("{\"phase\":\"done\",\"kind\":\"%s\",\"image\":\"%s\",\"disks\":%zu,\"used_bytes\":%llu,"
		       "\"stored_bytes\":%llu,\"new_stored_bytes\":%llu,\"chunks\":%llu,"
		       "\"new_chunks\":%llu,\"seconds\":%.3f,\"digest\":\"%s\"}\n",
		       manifest_kind_to_string(m->kind), m->name, m->n_disks, (unsigned long long) st->used_bytes,
		       (unsigned long long) st->stored_bytes,
		       (unsigned long long) st->new_stored_bytes, (unsigned long long) st->chunks,
		       (unsigned long long) st->new_chunks, st->seconds, digest);
		return;
	}
	if (arg_quiet)
		return;
	if (m->kind == MANIFEST_KIND_SNAPSHOT) {
		/* what a snapshot costs: the bytes the store did not hold yet */
		printf("Captured snapshot '%s' of %s: stored %s new of %s used (%llu of %llu chunks "
		       "new), %.1f s\n",
		       m->name, m->source.nodes && m->source.nodes[0] ? m->source.nodes[0] : "?",
		       format_bytes(news, sizeof(news), st->new_stored_bytes),
		       format_bytes(used, sizeof(used), st->used_bytes),
		       (unsigned long long) st->new_chunks, (unsigned long long) st->chunks,
		       st->seconds);
		return;
	}
	printf("Captured %s '%s': %zu disk%s, %s used, %s stored (%s new in %llu of %llu "
	       "chunks), %.1f s, %s/s\n",
	       req->kind_word ? req->kind_word : "image",
	       m->name, m->n_disks, m->n_disks == 1 ? "" : "s",
	       format_bytes(used, sizeof(used), st->used_bytes),
	       format_bytes(stored, sizeof(stored), st->stored_bytes),
	       format_bytes(news, sizeof(news), st->new_stored_bytes),
	       (unsigned long long) st->new_chunks, (unsigned long long) st->chunks, st->seconds,
	       format_bytes(rate, sizeof(rate), (uint64_t) r));
}

static int capture(const struct capture_request *req, struct report *rep)
{
	_cleanup_(store_freep) struct store *store = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	struct frozen frozen = {};
	struct capture_stats stats = {};
	struct host_identity host = {};
	size_t n_disks = req->n_disks;
	const char *store_path = req->store_path;
	const char *what = req->kind == MANIFEST_KIND_SNAPSHOT ? "Snapshot" : "Image";
	_cleanup_close_ int lock_fd = -EBADF;
	int64_t now;
	int r;

	r = cli_now(&now);
	if (r < 0)
		return r;
	r = cli_store_open(store_path, true, &store);
	if (r < 0)
		return r;
	/* from before the first chunk until the manifest is out: gc waits for us */
	r = cli_store_lock(store, STORE_LOCK_SHARED, true, &lock_fd);
	if (r < 0)
		return r;
	{
		_cleanup_(manifest_freep) struct manifest *old = NULL;
		r = store_get_manifest_of_kind(store, req->kind, req->name, &old);
		if (r >= 0 || r == -EBADMSG)
			return log_error_errno(-EEXIST, "%s '%s' already exists in store '%s'.", what,
					       req->name, store_path);
	}

	m = calloc(1, sizeof(*m));
	if (!m)
		return log_oom();
	m->disks = calloc(n_disks, sizeof(*m->disks));
	if (!m->disks)
		return log_oom();
	m->version_major = MANIFEST_VERSION_MAJOR;
	m->version_minor = MANIFEST_VERSION_MINOR;
	m->kind = req->kind;
	m->name = strdup(req->name);
	m->description = req->description ? strdup(req->description) : NULL;
	m->created_unix = now;
	m->source.type = MANIFEST_SOURCE_DISK;
	m->source.nodes = calloc(n_disks + 1, sizeof(char *));
	if (!m->source.nodes)
		return log_oom();
	m->tool_version = strdup(IMAGER_VERSION);
	if (req->n_labels > 0) {
		m->labels = calloc(req->n_labels + 1, sizeof(char *));
		if (!m->labels)
			return log_oom();
		for (size_t i = 0; i < req->n_labels; i++)
			if (!(m->labels[i] = strdup(req->labels[i])))
				return log_oom();
	}
	host_identity_read(&host);
	m->host_vendor = host.vendor, m->host_product = host.product, m->host_serial = host.serial;
	host = (struct host_identity){};
	if (!m->name || !m->tool_version)
		return log_oom();

	for (size_t i = 0; i < n_disks; i++) {
		const char *path = req->disks[i];
		_cleanup_(blkdev_freep) struct blkdev *d = NULL;
		_cleanup_free_ char *reason = NULL;
		_cleanup_close_ int fd = -EBADF;
		struct manifest_disk *md = &m->disks[m->n_disks++];
		struct report_disk *rd;
		uint64_t stored_before = stats.new_stored_bytes;

		r = blkdev_new_from_path(path, &d);
		if (r == -ENOENT)
			return log_error_errno(r, "Disk '%s' does not exist.", path);
		if (r == -EMEDIUMTYPE || r == -ENOTBLK)
			return log_error_errno(r, "'%s' is neither a block device nor a disk image.", path);
		if (r < 0)
			return log_error_errno(r, "Cannot open disk '%s': %m", path);
		rd = report_add_disk(rep, d->node, d->model, d->serial, d->wwn, d->size_bytes);
		m->source.nodes[i] = strdup(d->node);
		if (!m->source.nodes[i])
			return log_oom();

		if (!d->is_file) {
			r = blkdev_in_use(d, &reason);
			if (r < 0)
				return log_error_errno(r, "Cannot tell whether '%s' is in use: %m", path);
			if (r > 0 && !req->freeze)
				return log_error_errno(-EBUSY,
						       "Refusing to capture '%s': %s; unmount it first "
						       "(or pass --freeze for a live ext4).",
						       path, reason);
			if (r > 0) {
				r = freeze_disk(d, &frozen);
				if (r < 0)
					goto out;
			}
		}
		/* read-only, and exclusive unless we froze a live file system on it */
		r = blkdev_open(d, O_RDONLY | (frozen.n > 0 || d->is_file ? 0 : O_EXCL), &fd);
		if (r == -EBUSY) {
			r = log_error_errno(r, "Refusing to capture '%s': it is in use.", path);
			goto out;
		}
		if (r < 0) {
			r = log_error_errno(r, "Cannot open disk '%s': %m", path);
			goto out;
		}
		r = capture_analyse_disk(fd, d->size_bytes, d->logical_sector_bytes,
					 d->physical_sector_bytes, req->allow_dirty, md, &reason);
		if (r == -EUCLEAN) {
			r = log_error_errno(r, "Refusing to capture '%s': %s.", path, reason);
			goto out;
		}
		if (r < 0) {
			r = log_error_errno(r, "Cannot capture '%s': %s", path,
					    reason ? reason : strerror(-r));
			goto out;
		}
		md->model = d->model ? strdup(d->model) : NULL;
		md->serial = d->serial ? strdup(d->serial) : NULL;

		r = capture_store_disk(fd, md, store, (unsigned) i, cli_progress, (void *) &req->progress,
				       &stats);
		cli_progress_end(req->progress);
		thaw_all(&frozen);
		if (r < 0) {
			r = log_error_errno(r, "Failed to capture '%s': %m", path);
			goto out;
		}
		if (rd) {
			rd->data_bytes = md->used_bytes;
			rd->stored_bytes = stats.new_stored_bytes - stored_before;
		}
	}

	if (req->decorate) {
		r = req->decorate(m, req->userdata);
		if (r < 0)
			goto out;
	}
	manifest_compute_digest(m, m->content_digest);
	report_set_digest(rep, m->content_digest);
	/* the signature first, so that a listed image is already signed */
	r = cli_sign_before_publish(store, m, req->sign_key);
	if (r < 0)
		return r;
	/* last: the manifest names only chunks that are already durable in the store */
	r = store_put_manifest(store, m);
	if (r == -EEXIST)
		return log_error_errno(r, "%s '%s' already exists in store '%s'.", what, req->name,
				       store_path);
	if (r < 0)
		return log_error_errno(r, "Failed to publish %s '%s': %m",
				       manifest_kind_to_string(req->kind), req->name);
	summary(req, m, &stats);
	return 0;
out:
	thaw_all(&frozen);
	return r;
}

int capture_run(const struct capture_request *req)
{
	struct report rep;
	int r;

	report_init(&rep, req->action ? req->action : "capture", req->store_path, req->name);
	r = capture(req, &rep);
	(void) report_write(&rep, req->report_path, r);
	report_done(&rep);
	return r;
}
