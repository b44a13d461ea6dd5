/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The image lifecycle (docs/FORMAT.md, "Families and deprecation"):
 * deprecation records, the state they give at a point in time, and family
 * resolution. Manifests are immutable, so an image's deprecation lives in a
 * small file beside its manifest, images/<name>.deprecation, replaced
 * atomically; no file means ACTIVE.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Compute Engine's deprecation states, in order of severity. */
enum deprecation_state {
	DEPRECATION_ACTIVE,      /* usable */
	DEPRECATION_DEPRECATED,  /* usable, with a warning naming the replacement */
	DEPRECATION_OBSOLETE,    /* new uses refused; existing disks may still be verified */
	DEPRECATION_DELETED,     /* as OBSOLETE; the data stays until `images delete` and gc */
	_DEPRECATION_STATE_MAX,
	_DEPRECATION_STATE_INVALID = -EINVAL,
};
/* "ACTIVE", "DEPRECATED", "OBSOLETE", "DELETED" */
const char *deprecation_state_to_string(enum deprecation_state s);
/* Case-insensitive; _DEPRECATION_STATE_INVALID for anything else. */
enum deprecation_state deprecation_state_from_string(const char *s);

#define DEPRECATION_TIME_UNSET INT64_MIN
/* Times are Unix seconds; schedules beyond +-2^62 s are refused as nonsense. */
#define DEPRECATION_TIME_LIMIT (INT64_C(1) << 62)
/* A deprecation file is tiny; anything larger is damage. */
#define DEPRECATION_FILE_BYTES_MAX 8192

struct deprecation {
	enum deprecation_state state;  /* the state set explicitly */
	char *replacement;             /* an image name, or NULL */
	/* scheduled transitions; DEPRECATION_TIME_UNSET if none */
	int64_t deprecate_on, obsolete_on, delete_on;
	int64_t changed_unix;          /* when the record was written (informational) */
};
#define DEPRECATION_INIT                                                                           \
	((struct deprecation){ .deprecate_on = DEPRECATION_TIME_UNSET,                             \
			       .obsolete_on = DEPRECATION_TIME_UNSET,                              \
			       .delete_on = DEPRECATION_TIME_UNSET })
void deprecation_done(struct deprecation *d);

/*
 * The state in force at @now: the explicit state, raised by every scheduled
 * transition whose time has come (deprecate_on <= now gives at least
 * DEPRECATED, and so on). A pure function: no clock, no I/O. NULL is ACTIVE.
 * Unlike Compute Engine, where the dates are informational, schedules here
 * take effect by themselves, evaluated whenever the image is used.
 */
enum deprecation_state deprecation_effective_state(const struct deprecation *d, int64_t now);

/* Rules: a known state; replacement NULL or a valid image name; every set time within
 * +-DEPRECATION_TIME_LIMIT and deprecate_on <= obsolete_on <= delete_on where set. -EINVAL. */
int deprecation_validate(const struct deprecation *d);

/* The file: docs/FORMAT.md, "Deprecation files". */
int deprecation_encode(const struct deprecation *d, void **ret, size_t *ret_size);
/* -EBADMSG for damage, -EPROTONOSUPPORT for a newer major version or unknown required bits. */
int deprecation_decode(const void *data, size_t size, struct deprecation *ret);

/* images/<name>.deprecation: -ENOENT if there is none (the image is ACTIVE). */
int store_get_deprecation(struct store *s, const char *name, struct deprecation *ret);
/* Replaces it atomically (temp file, fsync, rename, fsync the directory); @d NULL removes it. */
int store_put_deprecation(struct store *s, const char *name, const struct deprecation *d);

/* One image of a family, as family_pick() sees it. */
struct family_candidate {
	const char *name;
	int64_t created_unix;
	enum deprecation_state state;  /* effective state at the time of resolution */
};

/*
 * The index of the image a family resolves to: the newest (created_unix,
 * then the greater name) whose state is ACTIVE. -ENOENT if none is. Pure.
 */
int family_pick(const struct family_candidate *c, size_t n);

/*
 * Resolves @family in @s at @now: reads every image manifest and its
 * deprecation, then family_pick(). Returns the image name, -ENOENT if the
 * family has no ACTIVE image (*ret_n_members, if non-NULL, says how many
 * images it has at all), or -errno. Damaged manifests are skipped (they
 * cannot be flashed anyway); so are damaged deprecation files, whose
 * image might be obsolete.
 */
int store_resolve_family(struct store *s, const char *family, int64_t now, char **ret_name,
			 size_t *ret_n_members);
