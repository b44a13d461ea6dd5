/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "imager/manifest.h"
#include "output.h"

struct capture_request {
	const char *store_path;
	const char *name, *description;
	char **labels;                 /* "key=value" */
	size_t n_labels;
	char **disks;                  /* block devices or disk-image files */
	size_t n_disks;
	bool allow_dirty, freeze;
	enum progress_mode progress;
	const char *report_path;       /* NULL: no report */
	const char *action;            /* for the report: "capture", "snapshot", "import" */
	const char *kind_word;         /* for the summary: "image", "snapshot" */
	/* fills extra manifest fields (family, source...) just before publishing */
	int (*decorate)(struct manifest *m, void *userdata);
	void *userdata;
};

/* Captures req->disks into a new image; logs its errors; returns 0 or -errno. */
int capture_run(const struct capture_request *req);
