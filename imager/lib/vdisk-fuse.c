/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Exposing a virtual disk as a file. libfdisk, libblkid and libext2fs want
 * a file descriptor with random access, so an imported disk is served by a
 * private, read-only FUSE file system (libfuse3, low-level API) inside this
 * process: one directory holding one file, "disk.raw", whose reads are
 * vdisk_pread() calls made by a small thread pool. The capture then reads
 * that file exactly as it reads a disk-image file.
 *
 * When root and still single-threaded, the process first moves into a
 * mount namespace of its own, so the mount is invisible to others and dies
 * with the process. Otherwise a process killed with SIGKILL cannot unmount:
 * its mount point stays, answering ENOTCONN. Mount points are named
 * "import-<pid>-XXXXXX", so the next run finds the leftovers of processes
 * that no longer exist and lazily unmounts and removes them (docs/IMPORT.md).
 */
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imager/vdisk.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

#define FUSE_FILE_NAME "disk.raw"
#define FUSE_DIR_PREFIX "import-"
#define FUSE_ROOT_PARENT "/run/imager"
#define FUSE_INO_FILE 2
#define FUSE_THREADS_MAX 8
/* the data never changes while mounted: let the kernel cache it all */
#define FUSE_TIMEOUT_S 86400.0

struct vdisk_fuse {
	struct vdisk *v;
	char *dir, *path;
	struct fuse_session *se;
	struct fuse_loop_config *cfg;
	pthread_t thread;
	bool mounted, thread_started;
};

static void file_stat(const struct vdisk_fuse *f, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0500;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0400;
		st->st_nlink = 1;
		st->st_size = (off_t) f->v->size_bytes;
		st->st_blksize = 1 << 20;
		st->st_blocks = (blkcnt_t) DIV_ROUND_UP(f->v->size_bytes, 512);
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vdisk_fuse *f = fuse_req_userdata(req);
	struct fuse_entry_param e = {};

	if (parent != FUSE_ROOT_ID || strcmp(name, FUSE_FILE_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = FUSE_INO_FILE;
	e.attr_timeout = e.entry_timeout = FUSE_TIMEOUT_S;
	file_stat(f, e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vdisk_fuse *f = fuse_req_userdata(req);
	struct stat st;

	if (ino != FUSE_ROOT_ID && ino != FUSE_INO_FILE) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	file_stat(f, ino, &st);
	fuse_reply_attr(req, &st, FUSE_TIMEOUT_S);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FUSE_INO_FILE) {
		fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vdisk_fuse *f = fuse_req_userdata(req);
	_cleanup_free_ void *buf = NULL;
	uint64_t offset = (uint64_t) off;
	int r;

	if (ino != FUSE_INO_FILE || off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (offset >= f->v->size_bytes) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size = (size_t) MIN((uint64_t) size, f->v->size_bytes - offset);
	buf = malloc(MAX(size, (size_t) 1));
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = vdisk_pread(f->v, buf, size, offset);
	if (r < 0) {
		/* the reason stays in the vdisk for the caller's message */
		fuse_reply_err(req, r == -ENOMEM ? ENOMEM : EIO);
		return;
	}
	fuse_reply_buf(req, buf, size);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct vdisk_fuse *f = fuse_req_userdata(req);
	static const char *const names[] = { ".", "..", FUSE_FILE_NAME };
	char buf[512];
	size_t used = 0, cap = MIN(size, sizeof(buf));

	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	for (off_t i = MAX(off, (off_t) 0); i < (off_t) ELEMENTSOF(names); i++) {
		struct stat st;
		size_t k;

		file_stat(f, i == 2 ? FUSE_INO_FILE : FUSE_ROOT_ID, &st);
		k = fuse_add_direntry(req, buf + used, cap - used, names[i], &st, i + 1);
		if (k > cap - used)
			break; /* did not fit: the kernel asks again from here */
		used += k;
	}
	fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = op_lookup,
	.getattr = op_getattr,
	.open = op_open,
	.read = op_read,
	.readdir = op_readdir,
};

static char *strstrip_newline(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '\n')
		s[--n] = 0;
	return s;
}

/* --- mount points -------------------------------------------------------------- */

static int parent_dir(const char *given, char **ret)
{
	const char *p = given;
	char *s;
	int r;

	if (!p) {
		if (geteuid() == 0)
			p = FUSE_ROOT_PARENT;
		else {
			p = getenv("TMPDIR");
			if (!p || p[0] != '/')
				p = "/tmp";
		}
	}
	r = mkdir_p_at(AT_FDCWD, p, 0700);
	if (r < 0)
		return r;
	s = realpath(p, NULL);
	if (!s)
		return -errno;
	*ret = s;
	return 0;
}

/* The pid in ".../import-<pid>-XXXXXX", or 0. */
static pid_t dir_pid(const char *name)
{
	uint64_t pid;
	char buf[32];
	const char *dash;

	if (!startswith(name, FUSE_DIR_PREFIX))
		return 0;
	name += strlen(FUSE_DIR_PREFIX);
	dash = strchr(name, '-');
	if (!dash || dash == name || (size_t) (dash - name) >= sizeof(buf))
		return 0;
	memcpy(buf, name, (size_t) (dash - name));
	buf[dash - name] = 0;
	if (safe_atou64(buf, &pid) < 0 || pid == 0 || pid > INT_MAX)
		return 0;
	return (pid_t) pid;
}

static bool pid_gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

/* Decodes the octal escapes (\040) of a /proc/self/mountinfo field in place. */
static void unescape(char *s)
{
	char *w = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char) ((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else
			*w++ = *p;
	}
	*w = 0;
}

/* Unmounts and removes what killed runs left in @parent. Best effort. */
static void cleanup_stale(const char *parent)
{
	_cleanup_fclose_ FILE *mi = NULL;
	_cleanup_free_ char *line = NULL;
	size_t parent_len = strlen(parent), cap = 0;
	DIR *d;
	struct dirent *de;

	mi = fopen("/proc/self/mountinfo", "re");
	while (mi && getline(&line, &cap, mi) > 0) {
		/* "36 35 98:0 /root /mount/point options ... - fstype source ..." */
		char *save = NULL, *mp = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		mp = tok;
		if (!mp)
			continue;
		unescape(mp);
		if (strncmp(mp, parent, parent_len) != 0 || mp[parent_len] != '/' ||
		    strchr(mp + parent_len + 1, '/'))
			continue;
		pid_t pid = dir_pid(mp + parent_len + 1);
		if (pid > 0 && pid_gone(pid)) {
			log_debug("Unmounting '%s', left by process %d that is gone.", mp, (int) pid);
			if (umount2(mp, MNT_DETACH) < 0)
				log_debug_errno(-errno, "Cannot unmount stale '%s', ignoring: %m", mp);
		}
	}
	d = opendir(parent);
	if (!d)
		return;
	while ((de = readdir(d))) {
		pid_t pid = dir_pid(de->d_name);
		if (pid > 0 && pid_gone(pid))
			(void) unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR); /* only if empty */
	}
	closedir(d);
}

/* libfuse reports to stderr by default; library code logs at debug only */
static void fuse_log_debug(enum fuse_log_level level, const char *fmt, va_list ap)
{
	_cleanup_free_ char *s = NULL;

	if (vasprintf(&s, fmt, ap) >= 0)
		log_debug("libfuse: %s", strstrip_newline(s));
}

static bool single_threaded(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;

	while (f && getline(&line, &cap, f) > 0)
		if (startswith(line, "Threads:"))
			return strtoul(line + strlen("Threads:"), NULL, 10) == 1;
	return false;
}

/*
 * Moves this process into a mount namespace of its own (when root and still
 * single-threaded, as unshare(CLONE_NEWNS) requires), with propagation to the
 * host turned off: the FUSE mount is then invisible to other processes and
 * vanishes with this process even on SIGKILL. Best effort: without it the
 * mount lives in the shared namespace and cleanup_stale() handles leftovers.
 */
static void private_mount_namespace(void)
{
	if (geteuid() != 0 || !single_threaded())
		return;
	if (unshare(CLONE_NEWNS) < 0) {
		log_debug_errno(-errno, "Cannot unshare the mount namespace, ignoring: %m");
		return;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		log_debug_errno(-errno, "Cannot make mounts private, ignoring: %m");
}

static void *loop_thread(void *userdata)
{
	struct vdisk_fuse *f = userdata;
	int r = fuse_session_loop_mt(f->se, f->cfg);

	if (r != 0)
		log_debug("FUSE session loop ended with %d.", r);
	return NULL;
}

const char *vdisk_fuse_path(const struct vdisk_fuse *f)
{
	return f ? f->path : NULL;
}

struct vdisk_fuse *vdisk_fuse_unmount(struct vdisk_fuse *f)
{
	if (!f)
		return NULL;
	if (f->se) {
		fuse_session_exit(f->se);
		if (f->mounted)
			/* umount: the kernel ends the connection and the pool's reads return ENODEV */
			fuse_session_unmount(f->se);
		if (f->thread_started)
			pthread_join(f->thread, NULL);
		fuse_session_destroy(f->se);
	}
	if (f->cfg)
		fuse_loop_cfg_destroy(f->cfg);
	if (f->dir && rmdir(f->dir) < 0)
		log_debug_errno(-errno, "Cannot remove '%s', ignoring: %m", f->dir);
	free(f->dir);
	free(f->path);
	free(f);
	return NULL;
}
DEFINE_CLEANUP(struct vdisk_fuse *, vdisk_fuse_unmount)

int vdisk_fuse_mount(struct vdisk *v, const char *parent, struct vdisk_fuse **ret)
{
	_cleanup_(vdisk_fuse_unmountp) struct vdisk_fuse *f = NULL;
	_cleanup_free_ char *base = NULL, *tmpl = NULL;
	char *argv[] = { (char *) "imager", (char *) "-o",
			 (char *) "ro,fsname=imager-vdisk,subtype=imager,default_permissions", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	sigset_t all, saved;
	int r;

	if (!v || !ret)
		return -EINVAL;
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return errno == ENOENT ? -ENODEV : -errno;
	fuse_set_log_func(fuse_log_debug);
	r = parent_dir(parent, &base);
	if (r < 0)
		return r;
	cleanup_stale(base); /* in the host's namespace, before leaving it */
	private_mount_namespace();

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->v = v;
	if (asprintf(&tmpl, "%s/" FUSE_DIR_PREFIX "%d-XXXXXX", base, (int) getpid()) < 0)
		return -ENOMEM;
	if (!mkdtemp(tmpl))
		return -errno;
	f->dir = TAKE_PTR(tmpl);
	if (asprintf(&f->path, "%s/" FUSE_FILE_NAME, f->dir) < 0)
		return -ENOMEM;

	f->se = fuse_session_new(&args, &ops, sizeof(ops), f);
	fuse_opt_free_args(&args);
	if (!f->se)
		return -EIO;
	if (fuse_session_mount(f->se, f->dir) != 0)
		return -EIO; /* libfuse logged why to stderr */
	f->mounted = true;

	f->cfg = fuse_loop_cfg_create();
	if (!f->cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(f->cfg, 0);
	fuse_loop_cfg_set_max_threads(f->cfg, FUSE_THREADS_MAX);
	fuse_loop_cfg_set_idle_threads(f->cfg, FUSE_THREADS_MAX);

	/* the pool never takes signals: they belong to the threads that do the work */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	r = -pthread_create(&f->thread, NULL, loop_thread, f);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (r < 0)
		return r;
	f->thread_started = true;
	log_debug("Serving a %llu-byte %s disk at '%s'.", (unsigned long long) v->size_bytes,
		  vdisk_format_to_string(v->format), f->path);
	*ret = TAKE_PTR(f);
	return 0;
}
