/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Fixture images for the unit tests, built by the real tools (sfdisk,
 * mkfs.*, mtools) in a private temporary directory that is removed at exit.
 * Only files under that directory are ever written.
 *
 *	ASSERT_OK(fixture_sh("truncate -s 64M d.img && sfdisk -q d.img <%s", script));
 *	int fd = fixture_open("d.img", O_RDONLY);
 */

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char fixture_dir_path[1024];

static __attribute__((unused)) void fixture_cleanup(void)
{
	char cmd[1200];

	if (!fixture_dir_path[0] || getenv("UNIT_KEEP_FIXTURES"))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fixture_dir_path);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", fixture_dir_path);
}

static __attribute__((unused)) const char *fixture_dir(void)
{
	if (!fixture_dir_path[0]) {
		const char *t = getenv("TMPDIR");

		snprintf(fixture_dir_path, sizeof(fixture_dir_path), "%s/imager-unit-XXXXXX",
			 t && *t ? t : "/tmp");
		if (!mkdtemp(fixture_dir_path)) {
			perror("mkdtemp");
			exit(2);
		}
		atexit(fixture_cleanup);
	}
	return fixture_dir_path;
}

/* Runs a shell command inside the fixture directory with `set -e`; its
 * output goes to cmd.log there and is echoed as TAP comments on failure.
 * Returns 0 or -1. */
__attribute__((format(printf, 1, 2), unused)) static int fixture_sh(const char *fmt, ...)
{
	char body[16384], *cmd = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t) r >= sizeof(body))
		return -1;
	if (asprintf(&cmd, "cd '%s' && { set -e\n%s\n} >cmd.log 2>&1", fixture_dir(), body) < 0)
		return -1;
	r = system(cmd);
	free(cmd);
	if (r != 0) {
		char path[1100], line[512];
		FILE *f;

		printf("# command failed (%d): %s\n", r, body);
		snprintf(path, sizeof(path), "%s/cmd.log", fixture_dir());
		f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f))
			printf("#   %s", line);
		if (f)
			fclose(f);
		return -1;
	}
	return 0;
}

/* Captures the first line of a command's stdout (run in the fixture dir). */
__attribute__((format(printf, 3, 4), unused)) static int
fixture_sh_out(char *out, size_t out_size, const char *fmt, ...)
{
	char body[8192], *cmd = NULL;
	va_list ap;
	FILE *p;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t) r >= sizeof(body))
		return -1;
	if (asprintf(&cmd, "cd '%s' && { %s ; } 2>/dev/null", fixture_dir(), body) < 0)
		return -1;
	p = popen(cmd, "re");
	free(cmd);
	if (!p)
		return -1;
	out[0] = 0;
	if (!fgets(out, (int) out_size, p))
		out[0] = 0;
	out[strcspn(out, "\n")] = 0;
	while (fgetc(p) != EOF)
		;
	r = pclose(p);
	return r == 0 && out[0] ? 0 : -1;
}

static __attribute__((unused)) char *fixture_path(const char *name)
{
	static char path[2048];

	snprintf(path, sizeof(path), "%s/%s", fixture_dir(), name);
	return path;
}

static __attribute__((unused)) int fixture_open(const char *name, int flags)
{
	return open(fixture_path(name), flags | O_CLOEXEC, 0644);
}

static __attribute__((unused)) uint64_t fixture_u64(const char *fmt_cmd)
{
	char out[256];

	if (fixture_sh_out(out, sizeof(out), "%s", fmt_cmd) < 0)
		return UINT64_MAX;
	return strtoull(out, NULL, 0);
}

/*
 * Scratch directories of their own, for tests that make and remove several
 * (a store per test): "$TMPDIR/<test program>.XXXXXX", removed by the test
 * with rm_rf() (nftw() below that directory, symlinks not followed).
 */
#include <errno.h>
#include <ftw.h>

static __attribute__((unused)) char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/%s.XXXXXX", base && *base ? base : "/tmp",
		     program_invocation_short_name) < 0 ||
	    !mkdtemp(p))
		abort();
	return p;
}

static __attribute__((unused)) int fixture_rm_one(const char *path, const struct stat *st,
						  int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Removes @path and everything below it. */
static __attribute__((unused)) void rm_tree(const char *path)
{
	nftw(path, fixture_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* rm_tree(), then free(@path). */
static __attribute__((unused)) void rm_rf(char *path)
{
	rm_tree(path);
	free(path);
}

static __attribute__((unused)) char *join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		abort();
	return p;
}
