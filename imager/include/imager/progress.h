/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdint.h>

/* A progress report from a long operation; the CLI renders it (TTY or JSON lines). */
struct progress {
	const char *phase;      /* "capture", "write", "verify" */
	unsigned disk_index;
	uint64_t done_bytes;    /* of total_bytes, the data bytes of this phase */
	uint64_t total_bytes;
	uint64_t stored_bytes;  /* capture: bytes newly written into the store */
	double elapsed_s;
};

typedef void (*progress_fn)(const struct progress *p, void *userdata);
