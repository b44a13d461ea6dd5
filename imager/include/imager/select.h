/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Disk selection hints: how an unattended run names a disk without knowing
 * its node ("/dev/sdb" changes with the order in which drivers probe).
 *
 * A hint string is a comma-separated list of KEY=VALUE, all of which must
 * match (docs/CLI.md, "imager select"):
 *
 *	serial=S          the disk's serial, exactly (case-sensitive)
 *	wwn=W             the WWN, case-insensitive; "naa."/"eui."/"t10."/"0x"
 *	                  prefixes are ignored on both sides
 *	model=M           a glob (fnmatch, with * ? [...]) over the whole model,
 *	                  or, without glob characters, a substring of it;
 *	                  case-insensitive either way. Write '*' for a space
 *	                  on the kernel command line ("model=QEMU*HARDDISK")
 *	size=MIN-MAX      bytes, or K/M/G/T (binary units); either side may be
 *	                  left out ("size=100G-", "size=-2T"); "size=N" is exact
 *	transport=T       sata, sas, nvme, usb, virtio, mmc, scsi, loop (see
 *	                  struct blkdev), case-insensitive
 *	rotational=0|1    the kernel's queue/rotational
 *
 * Each key may appear once. Parsing never looks at disks.
 */

#include <stdbool.h>
#include <stdint.h>

#include "imager/blkdev.h"

#define SELECT_HINTS_MAX_BYTES 4096 /* a kernel command line is at most 2 KiB to 64 KiB; bound it */

struct select_hints {
	char *serial, *wwn, *model, *transport;
	uint64_t size_min_bytes, size_max_bytes; /* 0 and UINT64_MAX when not given */
	int rotational;                          /* -1 when not given, else 0 or 1 */
	unsigned n_keys;                         /* how many keys were given (>= 1 on success) */
};

/*
 * select_hints_parse() - parses a hint string into @ret.
 * Returns 0, or -EINVAL for an empty string, an unknown or repeated key, an
 * empty value, a bad size or range (MIN > MAX) or a rotational that is not
 * 0/1; -E2BIG if @s is longer than SELECT_HINTS_MAX_BYTES; -ENOMEM. When
 * @ret_error is not NULL it receives a static description of what is wrong
 * (on failure only), e.g. "unknown key".
 */
int select_hints_parse(const char *s, struct select_hints *ret, const char **ret_error);
void select_hints_done(struct select_hints *h);

/* select_hints_match() - true if @d satisfies every hint (an unknown field never matches). */
bool select_hints_match(const struct select_hints *h, const struct blkdev *d);

/*
 * select_wwn_equal() - compares two WWNs as select_hints_match() does
 * (case-insensitive, type prefixes ignored). Exposed for tests.
 */
bool select_wwn_equal(const char *a, const char *b);
