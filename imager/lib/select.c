/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imager/select.h"
#include "util/cleanup.h"
#include "util/strutil.h"

void select_hints_done(struct select_hints *h)
{
	if (!h)
		return;
	free(h->serial);
	free(h->wwn);
	free(h->model);
	free(h->transport);
	*h = (struct select_hints){ .size_max_bytes = UINT64_MAX, .rotational = -1 };
}

static int parse_size_range(const char *v, uint64_t *ret_min, uint64_t *ret_max)
{
	_cleanup_free_ char *copy = strdup(v);
	uint64_t min = 0, max = UINT64_MAX;
	char *dash;

	if (!copy)
		return -ENOMEM;
	dash = strchr(copy, '-');
	if (!dash) {
		if (parse_size(copy, &min) < 0)
			return -EINVAL;
		max = min;
	} else {
		*dash = 0;
		if (!copy[0] && !dash[1])
			return -EINVAL; /* "size=-" names no bound */
		if (copy[0] && parse_size(copy, &min) < 0)
			return -EINVAL;
		if (dash[1] && parse_size(dash + 1, &max) < 0)
			return -EINVAL;
		if (min > max)
			return -EINVAL;
	}
	*ret_min = min;
	*ret_max = max;
	return 0;
}

static int set_string(char **field, const char *v)
{
	*field = strdup(v);
	return *field ? 0 : -ENOMEM;
}

int select_hints_parse(const char *s, struct select_hints *ret, const char **ret_error)
{
	_cleanup_(select_hints_done) struct select_hints h = {
		.size_max_bytes = UINT64_MAX, .rotational = -1,
	};
	_cleanup_free_ char *copy = NULL;
	const char *error = NULL;
	char *p, *save = NULL;
	unsigned seen = 0;
	int r = -EINVAL;

	if (!s || !*s) {
		error = "no hints given";
		goto fail;
	}
	if (strlen(s) > SELECT_HINTS_MAX_BYTES) {
		error = "hint string too long";
		r = -E2BIG;
		goto fail;
	}
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;

	for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		static const char *const keys[] = {
			"serial", "wwn", "model", "size", "transport", "rotational",
		};
		char *eq = strchr(p, '=');
		const char *v;
		unsigned k;

		if (!eq) {
			error = "a hint is not KEY=VALUE";
			goto fail;
		}
		*eq = 0;
		v = eq + 1;
		for (k = 0; k < ELEMENTSOF(keys); k++)
			if (strcmp(p, keys[k]) == 0)
				break;
		if (k == ELEMENTSOF(keys)) {
			error = "unknown key (serial, wwn, model, size, transport, rotational)";
			goto fail;
		}
		if (seen & (1u << k)) {
			error = "a key is given twice";
			goto fail;
		}
		seen |= 1u << k;
		if (!*v) {
			error = "empty value";
			goto fail;
		}
		switch (k) {
		case 0:
			r = set_string(&h.serial, v);
			break;
		case 1:
			r = set_string(&h.wwn, v);
			break;
		case 2:
			r = set_string(&h.model, v);
			break;
		case 3:
			r = parse_size_range(v, &h.size_min_bytes, &h.size_max_bytes);
			if (r == -EINVAL)
				error = "bad size: want N, MIN-MAX, MIN- or -MAX (bytes, or K/M/G/T)";
			break;
		case 4:
			r = set_string(&h.transport, v);
			break;
		case 5:
			if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
				h.rotational = v[0] - '0';
				r = 0;
			} else {
				error = "rotational must be 0 or 1";
				r = -EINVAL;
			}
			break;
		}
		if (r < 0)
			goto fail;
		h.n_keys++;
	}
	if (h.n_keys == 0) {
		error = "no hints given";
		r = -EINVAL;
		goto fail;
	}
	*ret = h;
	h = (struct select_hints){}; /* ownership moved to *ret */
	return 0;
fail:
	if (r >= 0)
		r = -EINVAL; /* a syntax error found after an earlier key parsed fine */
	if (ret_error && error)
		*ret_error = error;
	return r;
}

/* the WWN without its type prefix: "naa.5000c5..." and "0x5000c5..." both give "5000c5..." */
static const char *wwn_strip(const char *w)
{
	static const char *const prefixes[] = { "naa.", "eui.", "t10.", "uuid.", "0x" };

	for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
		if (strncasecmp(w, prefixes[i], strlen(prefixes[i])) == 0)
			return w + strlen(prefixes[i]);
	return w;
}

bool select_wwn_equal(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	return strcasecmp(wwn_strip(a), wwn_strip(b)) == 0;
}

static bool model_match(const char *pattern, const char *model)
{
	_cleanup_free_ char *m = NULL;

	if (!model)
		return false;
	m = strdup_strip(model); /* sysfs pads SCSI models with spaces */
	if (!m)
		return false;
	if (strpbrk(pattern, "*?["))
		return fnmatch(pattern, m, FNM_CASEFOLD) == 0;
	return strcasestr(m, pattern) != NULL;
}

bool select_hints_match(const struct select_hints *h, const struct blkdev *d)
{
	if (h->serial && !streq_ptr(h->serial, d->serial))
		return false;
	if (h->wwn && !select_wwn_equal(h->wwn, d->wwn))
		return false;
	if (h->model && !model_match(h->model, d->model))
		return false;
	if (h->transport && !streq_ci(h->transport, d->transport ? d->transport : ""))
		return false;
	if (d->size_bytes < h->size_min_bytes || d->size_bytes > h->size_max_bytes)
		return false;
	if (h->rotational >= 0 && d->rotational != (h->rotational == 1))
		return false;
	return true;
}
