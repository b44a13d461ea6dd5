/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Scope-bound ownership (systemd style). Every foreign handle type gets one
 * NULL-safe cleanup helper here or in the module that owns the type.
 */

#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <errno.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define TAKE_PTR(p) ({ typeof(p) _p_ = (p); (p) = NULL; _p_; })
#define TAKE_FD(fd) ({ int _fd_ = (fd); (fd) = -EBADF; _fd_; })

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ({ typeof(a) _min_a = (a); typeof(b) _min_b = (b); _min_a < _min_b ? _min_a : _min_b; })
#define MAX(a, b) ({ typeof(a) _max_a = (a); typeof(b) _max_b = (b); _max_a > _max_b ? _max_a : _max_b; })
#define DIV_ROUND_UP(x, y) (((x) + (y) - 1) / (y))
#define ALIGN_UP(x, a) (DIV_ROUND_UP((x), (a)) * (a))
#define ALIGN_DOWN(x, a) (((x) / (a)) * (a))

/* Defines fnp(type *p) calling fn(*p) when *p is not NULL. */
#define DEFINE_CLEANUP(type, fn)                                                                   \
	static inline void fn##p(type *p)                                                          \
	{                                                                                          \
		if (*p)                                                                            \
			fn(*p);                                                                    \
	}

static inline void freep(void *p)
{
	free(*(void **) p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		(void) close(*fd);
		errno = saved;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f)
		(void) fclose(*f);
}

static inline int safe_close(int fd)
{
	if (fd >= 0)
		(void) close(fd);
	return -EBADF;
}

/* Frees a NULL-terminated array of strings and the array. */
static inline void strv_free(char **l)
{
	if (!l)
		return;
	for (char **s = l; *s; s++)
		free(*s);
	free(l);
}
DEFINE_CLEANUP(char **, strv_free)
#define _cleanup_strv_free_ _cleanup_(strv_freep)
