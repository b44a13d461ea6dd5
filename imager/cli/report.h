/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * --report FILE: a JSON record of one capture or flash run, written
 * atomically whether it succeeded or not (the appliance keeps one per run on
 * its data partition). Fields are documented in docs/CLI.md.
 */

#include <stdbool.h>
#include <stdint.h>

#include "imager/manifest.h"

#define REPORT_DISKS_MAX 16

struct report_disk {
	char *node, *model, *serial, *wwn;
	uint64_t size_bytes;
	uint64_t data_bytes;        /* captured used bytes, or written bytes */
	uint64_t stored_bytes;      /* capture: new bytes in the store */
	uint64_t verified_bytes;
	double write_seconds, verify_seconds;
	const char *verify;         /* "ok", "failed", "skipped", or NULL (not reached) */
};

struct report {
	const char *action;         /* "capture" or "flash" */
	const char *store;
	int64_t started_unix;
	double started_mono;
	char *image;
	uint8_t digest[32];
	bool has_digest;
	struct report_disk disks[REPORT_DISKS_MAX];
	size_t n_disks;
};

void report_init(struct report *rep, const char *action, const char *store, const char *image);
/* Records the identity of a disk the run touches; returns its slot or NULL when full. */
struct report_disk *report_add_disk(struct report *rep, const char *node, const char *model,
				    const char *serial, const char *wwn, uint64_t size_bytes);
void report_set_digest(struct report *rep, const uint8_t digest[32]);
/* Writes the report for a run that ended with @r (<0 errno, or an exit status); NULL path: no-op. */
int report_write(struct report *rep, const char *path, int r);
void report_done(struct report *rep);
