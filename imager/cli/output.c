/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"
#include "util/json.h"
#include "util/strutil.h"

enum progress_mode progress_mode_from_string(const char *s)
{
	static const char *const names[_PROGRESS_MODE_MAX] = {
		[PROGRESS_AUTO] = "auto", [PROGRESS_TTY] = "tty",
		[PROGRESS_JSON] = "json", [PROGRESS_NONE] = "none",
	};

	for (int i = 0; i < _PROGRESS_MODE_MAX; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return _PROGRESS_MODE_INVALID;
}

void cli_progress(const struct progress *p, void *userdata)
{
	enum progress_mode mode = *(enum progress_mode *) userdata;
	double rate = p->elapsed_s > 0 ? (double) p->done_bytes / p->elapsed_s : 0;

	if (mode == PROGRESS_AUTO)
		mode = isatty(STDERR_FILENO) ? PROGRESS_TTY : PROGRESS_NONE;
	if (mode == PROGRESS_JSON) {
		struct json j;
		json_init(&j, stdout, false);
		json_object_begin(&j, NULL);
		json_string(&j, "phase", p->phase);
		json_u64(&j, "disk", p->disk_index);
		json_u64(&j, "done_bytes", p->done_bytes);
		json_u64(&j, "total_bytes", p->total_bytes);
		json_u64(&j, "stored_bytes", p->stored_bytes);
		json_double(&j, "elapsed_s", p->elapsed_s);
		json_u64(&j, "rate_bytes_per_s", (uint64_t) rate);
		json_object_end(&j);
		json_finish(&j);
	} else if (mode == PROGRESS_TTY) {
		char done[FORMAT_BYTES_MAX], total[FORMAT_BYTES_MAX], r[FORMAT_BYTES_MAX];
		double pct = p->total_bytes ? 100.0 * (double) p->done_bytes / (double) p->total_bytes : 100;
		double eta = rate > 0 ? (double) (p->total_bytes - p->done_bytes) / rate : 0;

		fprintf(stderr, "\r%-8s disk %u: %s / %s (%5.1f%%) %s/s ETA %.0fs   ", p->phase,
			p->disk_index, format_bytes(done, sizeof(done), p->done_bytes),
			format_bytes(total, sizeof(total), p->total_bytes), pct,
			format_bytes(r, sizeof(r), (uint64_t) rate), eta);
		fflush(stderr);
	}
}

void cli_progress_end(enum progress_mode mode)
{
	if (mode == PROGRESS_TTY || (mode == PROGRESS_AUTO && isatty(STDERR_FILENO)))
		fputc('\n', stderr);
}

int cli_confirm(const char *what)
{
	char line[16];

	if (!isatty(STDIN_FILENO))
		return 0;
	fprintf(stderr, "This erases everything on %s.\nType 'yes' to continue: ", what);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return strcmp(line, "yes\n") == 0;
}

const char *cli_store_path(const char *arg)
{
	const char *e;

	if (arg)
		return arg;
	e = getenv("IMAGER_STORE");
	return e && *e ? e : IMAGER_STORE_DEFAULT;
}
