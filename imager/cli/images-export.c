/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager images export NAME --format raw|gce-tar|qcow2|vhd|vmdk -o FILE
 *                      [--disk N] [--store DIR] [--force] [--progress=MODE]
 *
 * The export is written to "FILE.tmp.XXXXXX" beside FILE and renamed to FILE
 * only once it is complete and fsync'ed: FILE never names a half-written
 * export. An existing FILE is refused unless --force (and never replaced if
 * it is not a regular file).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "imager/export.h"
#include "imager/flash.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "output.h"
#include "target.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)

static const char *arg_store, *arg_output;
static enum export_format arg_format = _EXPORT_FORMAT_INVALID;
static bool arg_force;
static unsigned arg_disk;
static enum progress_mode arg_progress = PROGRESS_AUTO;

/* the temporary file, removed by the signal handler if the export is interrupted */
static char tmp_path[4096];
static volatile sig_atomic_t tmp_exists;

static void help(void)
{
	printf("Usage: imager images export NAME --format FORMAT -o FILE [OPTIONS]\n\n"
	       "Write one disk of an image as a file other tools use.\n\n"
	       "  -f --format FORMAT  raw      sparse raw disk\n"
	       "                      gce-tar  Compute Engine import: FILE.tar.gz with disk.raw\n"
	       "                               (old-GNU sparse tar, gzip, size rounded up to GiB)\n"
	       "                      qcow2    qcow2 v3 for KVM/OpenStack, only used clusters\n"
	       "                      vhd      fixed VHD for Azure, size rounded up to MiB\n"
	       "                      vmdk     streamOptimized VMDK for VMware and AWS\n"
	       "  -o --output FILE    the file to write (replaced only with --force)\n"
	       "     --disk N         which disk of a multi-disk image (default 0)\n"
	       "  -s --store DIR      store directory (default $IMAGER_STORE, then %s)\n"
	       "     --force          replace an existing FILE\n"
	       "     --progress=MODE  auto, tty, json or none\n",
	       IMAGER_STORE_DEFAULT);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int parse_argv(int argc, char *argv[])
{
	enum { ARG_FORCE = 0x100, ARG_DISK, ARG_PROGRESS };
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "store", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, ARG_FORCE },
		{ "disk", required_argument, NULL, ARG_DISK },
		{ "progress", required_argument, NULL, ARG_PROGRESS },
		{}
	};
	uint64_t u;
	int c;

	while ((c = getopt_long(argc, argv, "hf:o:s:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return 0;
		case 'f':
			arg_format = export_format_from_string(optarg);
			if ((int) arg_format < 0)
				return usage_error("images export", "unknown format '%s' (raw, "
						   "gce-tar, qcow2, vhd, vmdk)", optarg);
			break;
		case 'o':
			arg_output = optarg;
			break;
		case 's':
			arg_store = optarg;
			break;
		case ARG_FORCE:
			arg_force = true;
			break;
		case ARG_DISK:
			if (safe_atou64(optarg, &u) < 0 || u >= MANIFEST_DISKS_MAX)
				return usage_error("images export", "invalid --disk '%s'", optarg);
			arg_disk = (unsigned) u;
			break;
		case ARG_PROGRESS:
			arg_progress = progress_mode_from_string(optarg);
			if ((int) arg_progress < 0)
				return usage_error("images export", "unknown --progress mode '%s'",
						   optarg);
			break;
		default:
			return usage_error("images export", "bad option");
		}
	if (argc - optind != 1)
		return usage_error("images export", "exactly one image NAME is required");
	if ((int) arg_format < 0)
		return usage_error("images export", "--format is required");
	if (!arg_output || !*arg_output)
		return usage_error("images export", "-o FILE is required");
	if (arg_format == EXPORT_GCE_TAR && !has_suffix(arg_output, ".tar.gz"))
		return usage_error("images export",
				   "a gce-tar export must be named *.tar.gz (Compute Engine "
				   "imports only those), not '%s'",
				   arg_output);
	if (strlen(arg_output) + sizeof(".tmp.XXXXXX") > sizeof(tmp_path))
		return usage_error("images export", "output path too long");
	return 1;
}

static void on_signal(int sig)
{
	if (tmp_exists)
		(void) unlink(tmp_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Checks FILE before any work: -EEXIST unless --force, never a non-regular file. */
static int check_output(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return log_error_errno(-errno, "Cannot use output '%s': %m", path);
	}
	if (!S_ISREG(st.st_mode))
		return log_error_errno(-EEXIST, "Output '%s' exists and is not a regular file; "
					       "refusing to replace it.", path);
	if (!arg_force)
		return log_error_errno(-EEXIST, "Output '%s' already exists; use --force to "
					       "replace it.", path);
	return 0;
}

static int fsync_dir_of(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_close_ int fd = -EBADF;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

static void print_done(const struct manifest *m, const struct export_stats *st,
		       uint64_t allocated_bytes)
{
	char disk[FORMAT_BYTES_MAX], data[FORMAT_BYTES_MAX], file[FORMAT_BYTES_MAX],
		alloc[FORMAT_BYTES_MAX];

	if (arg_progress == PROGRESS_JSON) {
		printf("{\"phase\":\"done\",\"image\":\"%s\",\"disk\":%u,\"format\":\"%s\","
		       "\"disk_bytes\":%llu,\"data_bytes\":%llu,\"chunks\":%llu,"
		       "\"file_bytes\":%llu,\"allocated_bytes\":%llu,\"seconds\":%.3f}\n",
		       m->name, arg_disk, export_format_to_string(arg_format),
		       (unsigned long long) st->disk_bytes, (unsigned long long) st->data_bytes,
		       (unsigned long long) st->chunks_read, (unsigned long long) st->file_bytes,
		       (unsigned long long) allocated_bytes, st->seconds);
		return;
	}
	if (arg_quiet)
		return;
	printf("Exported '%s' disk %u as %s to '%s': %s disk, %s of data (%llu chunks "
	       "verified), file %s (%s allocated) in %.1f s\n",
	       m->name, arg_disk, export_format_to_string(arg_format), arg_output,
	       format_bytes(disk, sizeof(disk), st->disk_bytes),
	       format_bytes(data, sizeof(data), st->data_bytes),
	       (unsigned long long) st->chunks_read,
	       format_bytes(file, sizeof(file), st->file_bytes),
	       format_bytes(alloc, sizeof(alloc), allocated_bytes), st->seconds);
}

static int export(const char *name)
{
	_cleanup_(store_freep) struct store *store = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_free_ char *reason = NULL, *base_copy = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct export_stats st = {};
	struct export_options o = {
		.format = arg_format, .disk_index = arg_disk, .progress = cli_progress,
		.userdata = &arg_progress,
	};
	const struct manifest_disk *md;
	uint64_t disk_bytes;
	struct stat sb;
	mode_t mask;
	int r;

	r = cli_load_image(arg_store, name, &store, &m);
	if (r < 0)
		return r;
	if (arg_disk >= m->n_disks)
		return log_error_errno(-EINVAL, "Image '%s' has %zu disk%s; there is no disk %u.",
				       name, m->n_disks, m->n_disks == 1 ? "" : "s", arg_disk);
	md = &m->disks[arg_disk];
	r = export_disk_size(md, arg_format, &disk_bytes, &reason);
	if (r < 0)
		return log_error_errno(r, "Cannot export '%s' as %s: %s.", name,
				       export_format_to_string(arg_format),
				       reason ? reason : strerror(-r));
	/* every chunk present before the first byte is written (the same check as flash) */
	r = flash_check(md, store, disk_bytes, md->logical_sector_bytes, false, &reason);
	if (r == -ENODATA)
		return log_error_errno(r, "Image '%s' is incomplete: %s.", name, reason);
	if (r < 0)
		return log_error_errno(r, "Cannot export '%s': %s.", name,
				       reason ? reason : strerror(-r));
	r = check_output(arg_output);
	if (r < 0)
		return r;

	/* the temporary beside FILE, so that the final rename stays in one file system */
	snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.XXXXXX", arg_output);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	fd = mkostemp(tmp_path, O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, "Cannot create '%s': %m", tmp_path);
	tmp_exists = 1;
	mask = umask(0);
	umask(mask);
	(void) fchmod(fd, 0666 & ~mask);

	base_copy = strdup(arg_output);
	if (!base_copy) {
		r = log_oom();
		goto fail;
	}
	o.file_name = basename(base_copy);
	r = export_disk(fd, m, arg_disk, store, &o, &st, &reason);
	cli_progress_end(arg_progress);
	if (r == -EBADMSG) {
		r = log_error_errno(r, "Image '%s' is damaged: a chunk does not verify; nothing "
				       "was exported.", name);
		goto fail;
	}
	if (r == -ENOENT) {
		r = log_error_errno(r, "Image '%s' is incomplete: a chunk is missing from the "
				       "store; nothing was exported.", name);
		goto fail;
	}
	if (r < 0) {
		r = log_error_errno(r, "Failed to export '%s' as %s: %s", name,
				    export_format_to_string(arg_format),
				    reason ? reason : strerror(-r));
		goto fail;
	}
	if (fsync(fd) < 0) {
		r = log_error_errno(-errno, "Failed to write '%s': %m", tmp_path);
		goto fail;
	}
	if (arg_force)
		r = rename(tmp_path, arg_output) < 0 ? -errno : 0;
	else
		r = renameat2(AT_FDCWD, tmp_path, AT_FDCWD, arg_output, RENAME_NOREPLACE) < 0
			    ? -errno
			    : 0;
	if (r == -EEXIST) {
		r = log_error_errno(r, "Output '%s' appeared while exporting; use --force to "
				       "replace it.", arg_output);
		goto fail;
	}
	if (r < 0) {
		r = log_error_errno(r, "Failed to rename '%s' to '%s': %m", tmp_path, arg_output);
		goto fail;
	}
	tmp_exists = 0;
	r = fsync_dir_of(arg_output);
	if (r < 0)
		log_warning_errno(r, "Failed to sync the directory of '%s', ignoring: %m",
				  arg_output);
	/* st_blocks counts 512-byte units (POSIX), whatever the disk's sector size */
	print_done(m, &st, fstat(fd, &sb) == 0 ? (uint64_t) sb.st_blocks * 512 : 0);
	return 0;
fail:
	tmp_exists = 0;
	(void) unlink(tmp_path);
	return r;
}

int images_export(int argc, char *argv[])
{
	int r = parse_argv(argc, argv);

	if (r <= 0)
		return r;
	return export(argv[optind]);
}
