/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lifecycle.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

int cli_now(int64_t *ret)
{
	const char *e = getenv("IMAGER_NOW");
	int64_t t;

	if (!e || !*e) {
		*ret = (int64_t) time(NULL);
		return 0;
	}
	if (e[strspn(e, "0123456789")] == 0) {
		uint64_t v;
		if (safe_atou64(e, &v) < 0 || v > INT64_MAX)
			return log_error_errno(-EINVAL, "Invalid $IMAGER_NOW '%s'.", e);
		t = (int64_t) v;
	} else if (parse_timestamp(e, &t) < 0)
		return log_error_errno(-EINVAL,
				       "Invalid $IMAGER_NOW '%s': want Unix seconds or a time like "
				       "2026-12-01T00:00:00Z.", e);
	*ret = t;
	return 0;
}

int cli_image_check_use(struct store *s, const char *name, enum image_use use)
{
	struct deprecation d = DEPRECATION_INIT;
	enum deprecation_state state;
	_cleanup_free_ char *instead = NULL;
	int64_t now;
	int r;

	r = cli_now(&now); /* first: a bad $IMAGER_NOW is an error even for an ACTIVE image */
	if (r < 0)
		return r;
	r = store_get_deprecation(s, name, &d);
	if (r == -ENOENT)
		return DEPRECATION_ACTIVE;
	if (r < 0) {
		if (use != IMAGE_USE_NEW) {
			if (use == IMAGE_USE_EXISTING)
				log_warning_errno(r, "deprecation record of image '%s' is unreadable: %m",
						  name);
			return DEPRECATION_ACTIVE;
		}
		return log_error_errno(r == -ENOMEM ? r : -ECANCELED,
				       "Refusing to use image '%s': its deprecation record is "
				       "unreadable (%s); run 'imager images deprecate' to rewrite it.",
				       name, strerror(-r));
	}
	state = deprecation_effective_state(&d, now);
	if (d.replacement && asprintf(&instead, "; use '%s' instead", d.replacement) < 0)
		instead = NULL;
	deprecation_done(&d);
	if (state == DEPRECATION_ACTIVE || use == IMAGE_USE_INSPECT)
		return state;

	if (state == DEPRECATION_DEPRECATED || use == IMAGE_USE_EXISTING) {
		log_warning("image '%s' is %s%s.", name,
			    state == DEPRECATION_DEPRECATED ? "deprecated"
			    : state == DEPRECATION_OBSOLETE ? "obsolete"
							    : "deleted",
			    instead ? instead : "");
		return state;
	}
	return log_error_errno(-ECANCELED, "Image '%s' is %s%s.", name,
			       state == DEPRECATION_OBSOLETE ? "obsolete" : "deleted",
			       instead ? instead : " and has no replacement");
}

int cli_resolve_family(struct store *s, const char *family, char **ret_name)
{
	char *name = NULL;
	size_t n = 0;
	int64_t now;
	int r;

	r = cli_now(&now);
	if (r < 0)
		return r;
	r = store_resolve_family(s, family, now, &name, &n);
	if (r == -ENOENT && n == 0)
		return log_error_errno(r, "No image of family '%s' in store '%s'.", family,
				       store_path(s));
	if (r == -ENOENT)
		return log_error_errno(r, "Family '%s' has no active image (%zu deprecated, obsolete "
				       "or deleted).", family, n);
	if (r < 0)
		return log_error_errno(r, "Failed to resolve family '%s': %m", family);
	if (!arg_quiet)
		fprintf(stderr, "Using image '%s', the newest active image of family '%s'.\n", name,
			family);
	*ret_name = name;
	return 0;
}

int cli_store_lock(struct store *s, enum store_lock_mode mode, bool wait, int *ret_fd)
{
	int r;

	r = store_lock(s, mode, false, ret_fd);
	if (r == -EAGAIN && !wait)
		return log_error_errno(-EBUSY, "Store '%s' is in use by another imager process "
				       "(a capture, import or gc); not waiting.", store_path(s));
	if (r == -EAGAIN) {
		if (!arg_quiet)
			fprintf(stderr, "Store '%s' is %s, waiting...\n", store_path(s),
				mode == STORE_LOCK_EXCLUSIVE
					? "in use by a capture, import or another writer"
					: "being garbage-collected");
		r = store_lock(s, mode, true, ret_fd);
	}
	if ((r == -EROFS || r == -EACCES) && mode == STORE_LOCK_SHARED) {
		log_debug_errno(r, "Store '%s' cannot be locked, going on without: %m", store_path(s));
		*ret_fd = -EBADF;
		return 0;
	}
	if (r < 0)
		return log_error_errno(r, "Failed to lock store '%s': %m", store_path(s));
	return 0;
}
