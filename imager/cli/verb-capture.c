/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager capture DISK... --image NAME [--store DIR] [--description TEXT]
 *                [--label K=V]... [--allow-dirty] [--freeze] [--progress=MODE]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "imager/blkdev.h"
#include "imager/capture.h"
#include "imager/host.h"
#include "imager/manifest.h"
#include "imager/ptable.h"
#include "imager/store.h"
#include "output.h"
#include "report.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct blkdev *, blkdev_free)
DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)
DEFINE_CLEANUP(struct ptable *, ptable_free)

#define DISKS_MAX 16

static const char *arg_store, *arg_image, *arg_description, *arg_report;
static char *arg_labels[MANIFEST_LABELS_MAX + 1];
static size_t arg_n_labels;
static bool arg_allow_dirty, arg_freeze;
static enum progress_mode arg_progress = PROGRESS_AUTO;

static void help(void)
{
	printf("Usage: imager capture DISK... --image NAME [OPTIONS]\n\n"
	       "Capture disks (block devices or disk-image files) into an image in a store.\n\n"
	       "  -s --store DIR        store directory (default $IMAGER_STORE, then %s)\n"
	       "  -i --image NAME       image name: lowercase letters, digits, hyphens\n"
	       "     --description TEXT\n"
	       "     --label KEY=VALUE  may be repeated\n"
	       "     --allow-dirty      capture ext file systems that were not cleanly unmounted\n"
	       "     --freeze           freeze mounted ext4 file systems (FIFREEZE) while reading\n"
	       "     --progress=MODE    auto, tty, json or none\n"
	       "     --report FILE      write a JSON report of the run (also on failure)\n",
	       IMAGER_STORE_DEFAULT);
}

static int parse_argv(int argc, char *argv[])
{
	enum { ARG_DESCRIPTION = 0x100, ARG_LABEL, ARG_ALLOW_DIRTY, ARG_FREEZE, ARG_PROGRESS, ARG_REPORT };
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "image", required_argument, NULL, 'i' },
		{ "description", required_argument, NULL, ARG_DESCRIPTION },
		{ "label", required_argument, NULL, ARG_LABEL },
		{ "allow-dirty", no_argument, NULL, ARG_ALLOW_DIRTY },
		{ "freeze", no_argument, NULL, ARG_FREEZE },
		{ "progress", required_argument, NULL, ARG_PROGRESS },
		{ "report", required_argument, NULL, ARG_REPORT },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "hs:i:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'i':
			arg_image = optarg;
			break;
		case ARG_DESCRIPTION:
			arg_description = optarg;
			break;
		case ARG_LABEL:
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return usage_error("capture", "--label wants KEY=VALUE, got '%s'", optarg);
			if (arg_n_labels >= MANIFEST_LABELS_MAX)
				return usage_error("capture", "too many --label options");
			arg_labels[arg_n_labels++] = optarg;
			break;
		case ARG_ALLOW_DIRTY:
			arg_allow_dirty = true;
			break;
		case ARG_FREEZE:
			arg_freeze = true;
			break;
		case ARG_PROGRESS:
			arg_progress = progress_mode_from_string(optarg);
			if ((int) arg_progress < 0)
				return usage_error("capture", "unknown --progress mode '%s'", optarg);
			break;
		case ARG_REPORT:
			arg_report = optarg;
			break;
		default:
			return usage_error("capture", "bad option");
		}
	if (!arg_image)
		return usage_error("capture", "--image NAME is required");
	if (!manifest_name_is_valid(arg_image))
		return usage_error("capture",
				   "invalid image name '%s': use lowercase letters, digits and "
				   "hyphens, start with a letter, at most 63 characters",
				   arg_image);
	if (optind >= argc)
		return usage_error("capture", "no DISK given");
	if (argc - optind > DISKS_MAX)
		return usage_error("capture", "at most %d disks", DISKS_MAX);
	return 1;
}

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

static void summary(const struct manifest *m, const struct capture_stats *st)
{
	char used[FORMAT_BYTES_MAX], stored[FORMAT_BYTES_MAX], news[FORMAT_BYTES_MAX],
		rate[FORMAT_BYTES_MAX];
	double r = st->seconds > 0 ? (double) st->used_bytes / st->seconds : 0;

	if (arg_progress == PROGRESS_JSON) {
		char digest[65];
		hex_encode(m->content_digest, sizeof(m->content_digest), digest);
		printf("{\"phase\":\"done\",\"image\":\"%s\",\"disks\":%zu,\"used_bytes\":%llu,"
		       "\"stored_bytes\":%llu,\"new_stored_bytes\":%llu,\"chunks\":%llu,"
		       "\"new_chunks\":%llu,\"seconds\":%.3f,\"digest\":\"%s\"}\n",
		       m->name, m->n_disks, (unsigned long long) st->used_bytes,
		       (unsigned long long) st->stored_bytes,
		       (unsigned long long) st->new_stored_bytes, (unsigned long long) st->chunks,
		       (unsigned long long) st->new_chunks, st->seconds, digest);
		return;
	}
	if (arg_quiet)
		return;
	printf("Captured image '%s': %zu disk%s, %s used, %s stored (%s new in %llu of %llu "
	       "chunks), %.1f s, %s/s\n",
	       m->name, m->n_disks, m->n_disks == 1 ? "" : "s",
	       format_bytes(used, sizeof(used), st->used_bytes),
	       format_bytes(stored, sizeof(stored), st->stored_bytes),
	       format_bytes(news, sizeof(news), st->new_stored_bytes),
	       (unsigned long long) st->new_chunks, (unsigned long long) st->chunks, st->seconds,
	       format_bytes(rate, sizeof(rate), (uint64_t) r));
}

static int capture(int argc, char *argv[], const char *store_path, struct report *rep)
{
	_cleanup_(store_freep) struct store *store = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	struct frozen frozen = {};
	struct capture_stats stats = {};
	struct host_identity host = {};
	size_t n_disks = (size_t) (argc - optind);
	int r;

	r = store_open(store_path, true, &store);
	if (r < 0)
		return log_error_errno(r, "Failed to open store '%s': %m", store_path);
	{
		_cleanup_(manifest_freep) struct manifest *old = NULL;
		r = store_get_manifest(store, arg_image, &old);
		if (r >= 0 || r == -EBADMSG)
			return log_error_errno(-EEXIST, "Image '%s' already exists in store '%s'.",
					       arg_image, store_path);
	}

	m = calloc(1, sizeof(*m));
	if (!m)
		return log_oom();
	m->disks = calloc(n_disks, sizeof(*m->disks));
	if (!m->disks)
		return log_oom();
	m->version_major = MANIFEST_VERSION_MAJOR;
	m->version_minor = MANIFEST_VERSION_MINOR;
	m->name = strdup(arg_image);
	m->description = arg_description ? strdup(arg_description) : NULL;
	m->created_unix = (int64_t) time(NULL);
	m->tool_version = strdup(IMAGER_VERSION);
	if (arg_n_labels > 0) {
		m->labels = calloc(arg_n_labels + 1, sizeof(char *));
		if (!m->labels)
			return log_oom();
		for (size_t i = 0; i < arg_n_labels; i++)
			if (!(m->labels[i] = strdup(arg_labels[i])))
				return log_oom();
	}
	host_identity_read(&host);
	m->host_vendor = host.vendor, m->host_product = host.product, m->host_serial = host.serial;
	host = (struct host_identity){};
	if (!m->name || !m->tool_version)
		return log_oom();

	for (size_t i = 0; i < n_disks; i++) {
		const char *path = argv[optind + i];
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

		if (!d->is_file) {
			r = blkdev_in_use(d, &reason);
			if (r < 0)
				return log_error_errno(r, "Cannot tell whether '%s' is in use: %m", path);
			if (r > 0 && !arg_freeze)
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
					 d->physical_sector_bytes, arg_allow_dirty, md, &reason);
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

		r = capture_store_disk(fd, md, store, (unsigned) i, cli_progress, &arg_progress,
				       &stats);
		cli_progress_end(arg_progress);
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

	manifest_compute_digest(m, m->content_digest);
	report_set_digest(rep, m->content_digest);
	/* last: the manifest names only chunks that are already durable in the store */
	r = store_put_manifest(store, m);
	if (r == -EEXIST)
		return log_error_errno(r, "Image '%s' already exists in store '%s'.", arg_image,
				       store_path);
	if (r < 0)
		return log_error_errno(r, "Failed to publish image '%s': %m", arg_image);
	summary(m, &stats);
	return 0;
out:
	thaw_all(&frozen);
	return r;
}

int verb_capture(int argc, char *argv[])
{
	struct report rep;
	const char *store_path;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	store_path = cli_store_path(arg_store);
	report_init(&rep, "capture", store_path, arg_image);
	r = capture(argc, argv, store_path, &rep);
	(void) report_write(&rep, arg_report, r);
	report_done(&rep);
	return r;
}
