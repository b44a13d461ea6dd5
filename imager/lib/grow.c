/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imager/grow.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"

extern char **environ;

/* Runs argv with stdout+stderr captured; returns the exit status (>= 0) or -errno. */
static int run_capture(char *const argv[], char **ret_output)
{
	_cleanup_free_ char *out = NULL;
	size_t n = 0, allocated = 0;
	posix_spawn_file_actions_t fa;
	int pipefd[2], status, r;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r != 0) {
		close(pipefd[0]);
		return -r;
	}
	for (;;) {
		ssize_t k;
		if (allocated - n < 4096) {
			char *p = realloc(out, allocated + 65536);
			if (!p)
				break;
			out = p, allocated += 65536;
		}
		k = read(pipefd[0], out + n, allocated - n - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t) k;
	}
	close(pipefd[0]);
	if (out)
		out[n] = 0;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (ret_output)
		*ret_output = TAKE_PTR(out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int loop_attach_region(int fd, uint64_t offset_bytes, uint64_t size_bytes, int *ret_loop_fd,
			      char ret_node[static 32])
{
	_cleanup_close_ int ctl = -EBADF, loop = -EBADF;
	struct loop_config cfg = {
		.fd = (uint32_t) fd,
		.info = { .lo_offset = offset_bytes, .lo_sizelimit = size_bytes },
	};
	int nr;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	for (int attempt = 0; attempt < 16; attempt++) {
		nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0)
			return -errno;
		snprintf(ret_node, 32, "/dev/loop%d", nr);
		loop = open(ret_node, O_RDWR | O_CLOEXEC);
		if (loop < 0)
			return -errno;
		if (ioctl(loop, LOOP_CONFIGURE, &cfg) == 0) {
			*ret_loop_fd = TAKE_FD(loop);
			return 0;
		}
		if (errno != EBUSY)
			return -errno;
		loop = safe_close(loop); /* raced with another user: try the next free one */
	}
	return -EBUSY;
}

int grow_ext_region(int fd, uint64_t offset_bytes, uint64_t size_bytes, char **ret_output)
{
	_cleanup_free_ char *out1 = NULL, *out2 = NULL;
	char node[32];
	int loop_fd = -EBADF, r;

	r = loop_attach_region(fd, offset_bytes, size_bytes, &loop_fd, node);
	if (r < 0)
		return r;
	{
		char *fsck[] = { "/sbin/e2fsck", "-f", "-p", node, NULL };
		char *resize[] = { "/sbin/resize2fs", node, NULL };

		r = run_capture(fsck, &out1);
		log_debug("e2fsck -f -p %s: exit %d\n%s", node, r, out1 ? out1 : "");
		/* 0: clean, 1: errors corrected; anything else is a failure */
		if (r >= 0 && r <= 1) {
			r = run_capture(resize, &out2);
			log_debug("resize2fs %s: exit %d\n%s", node, r, out2 ? out2 : "");
			if (r > 0) {
				if (ret_output)
					*ret_output = TAKE_PTR(out2);
				r = -EIO;
			}
		} else if (r > 1) {
			if (ret_output)
				*ret_output = TAKE_PTR(out1);
			r = -EUCLEAN;
		}
	}
	(void) fsync(loop_fd);
	(void) ioctl(loop_fd, LOOP_CLR_FD, 0);
	close(loop_fd);
	return r < 0 ? r : 0;
}
