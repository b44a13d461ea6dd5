/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vdisk_open() on a hostile file: format detection by magic, then the
 * backend it picks (raw, qcow2, and VMDK, VHD, VHDX through libvmdk and
 * libvhdi), then reads at a spread of offsets.
 */
#include "vdisk-read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *reason = NULL;
	struct vdisk *v = NULL;
	char path[64];

	fd = fuzz_memfd(data, size, NULL, 0, size);
	if (fd < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (vdisk_open(path, NULL, &v, &reason) < 0)
		return 0;
	FUZZ_CHECK(v->size_bytes > 0 && v->size_bytes <= VDISK_SIZE_MAX);
	vdisk_read_spread(v);
	vdisk_free(v);
	return 0;
}
