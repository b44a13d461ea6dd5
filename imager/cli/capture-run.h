/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "imager/manifest.h"
#include "output.h"

struct sign_key;

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
	enum manifest_kind kind;       /* image (images/) or snapshot (snapshots/) */
	/* fills extra manifest fields (family, source...) just before publishing */
	int (*decorate)(struct manifest *m, void *userdata);
	void *userdata;
	/* signs the manifest, published before it (trust.h); NULL: unsigned */
	const struct sign_key *sign_key;
};

/*
 * Captures req->disks into a new image or snapshot; logs its errors;
 * returns 0 or -errno. Holds the store's SHARED lock from before the first
 * chunk until the manifest is published, so that gc never removes a chunk
 * this capture stored or found present (docs/FORMAT.md, "Locking").
 * Records the disks' nodes as the manifest's source (decorate may replace
 * it) and the creation time from cli_now().
 */
int capture_run(const struct capture_request *req);
