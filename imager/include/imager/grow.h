/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdint.h>

/*
 * Grows the ext2/3/4 file system at [offset, offset + size) of the target
 * open on @fd to fill that region: a loop device is bound to the region
 * (LOOP_CONFIGURE on our own fd, so no partition node is needed and the
 * exclusive hold stays ours), then e2fsck -f -p and resize2fs run on it.
 * Their output is collected and, on failure, returned in *ret_output.
 */
int grow_ext_region(int fd, uint64_t offset_bytes, uint64_t size_bytes, char **ret_output);
