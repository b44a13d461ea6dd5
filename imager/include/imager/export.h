/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Export: one disk of an image as a file other tools read (raw, Compute
 * Engine's tar.gz, qcow2, fixed VHD, streamOptimized VMDK).
 *
 * Every format is written from one "disk reader" (export_disk_walk()): the
 * bytes a flash onto a fresh, all-zero file of the export's size would leave,
 * produced in increasing order as pieces that are either data or a run of
 * zeros. Nothing ever holds the whole disk: memory is a few chunks, one
 * cluster or grain, and the format's own tables.
 *
 * The disk the reader produces:
 *   - the partition table rendered (libfdisk) for the export's size, so a GPT
 *     gets its backup header at the export's end when the format rounds the
 *     size up (gce-tar: whole GiB; vhd: whole MiB), as flash does on a larger
 *     target; exactly the table's sectors (ptable_regions());
 *   - sector 0 = the rendered sector 0 with the image's boot code in bytes
 *     0-439;
 *   - every data extent from its stored chunk, verified (store_get_chunk()
 *     re-hashes it), or zeros where the chunk position is not listed;
 *   - zeros everywhere else.
 * Where a table sector and a data extent overlap (no capture makes such an
 * image), the table wins, as flash's final writes do outside the boot gap.
 */

#include <stdbool.h>
#include <stdint.h>

#include "imager/manifest.h"
#include "imager/progress.h"
#include "imager/store.h"

enum export_format {
	EXPORT_RAW,     /* sparse file of the image disk's size */
	EXPORT_GCE_TAR, /* tar.gz: one old-GNU sparse member "disk.raw", size rounded up to GiB */
	EXPORT_QCOW2,   /* qcow2 v3, 64 KiB clusters, only non-zero clusters allocated */
	EXPORT_VHD,     /* fixed VHD, size rounded up to MiB (Azure), sparse data part */
	EXPORT_VMDK,    /* streamOptimized VMDK: deflated grains with markers */
	_EXPORT_FORMAT_MAX,
	_EXPORT_FORMAT_INVALID = -22,
};
const char *export_format_to_string(enum export_format f);
enum export_format export_format_from_string(const char *s);
/* Writers that seek (raw, qcow2, vhd) need a regular file; the others only append. */
bool export_format_needs_seek(enum export_format f);

/* 1 GiB: Compute Engine images are whole GiB (its importer rejects other sizes) */
#define EXPORT_GCE_ALIGN_BYTES (UINT64_C(1) << 30)
/* 1 MiB: Azure requires a fixed VHD's virtual size to be a whole number of MiB */
#define EXPORT_VHD_ALIGN_BYTES (UINT64_C(1) << 20)
#define EXPORT_QCOW2_CLUSTER_BYTES (UINT32_C(64) << 10)
/* VMDK grains of 128 sectors of 512 bytes, the size VMware's own tools use */
#define EXPORT_VMDK_GRAIN_BYTES (UINT32_C(64) << 10)
/* The largest disk exported: qcow2 L1 and VMDK GD fit in memory, VHD's 64-bit fields */
#define EXPORT_DISK_BYTES_MAX (UINT64_C(1) << 50)

/*
 * The size of the virtual disk @f holds for @md (rounded up as the format
 * requires). -EXDEV with *ret_reason if the format cannot carry the disk
 * (VHD, VMDK and Compute Engine disks have 512-byte sectors), -EFBIG if it
 * is too large.
 */
int export_disk_size(const struct manifest_disk *md, enum export_format f, uint64_t *ret,
		     char **ret_reason);

/* --- the disk reader --------------------------------------------------------------------- */

struct export_piece {
	uint64_t offset_bytes, size_bytes;
	bool is_data;        /* false: a run of zeros */
	const uint8_t *data; /* is_data: the bytes (valid until the callback returns); NULL
			      * when the walk runs without loading data */
};
typedef int (*export_piece_fn)(const struct export_piece *p, void *userdata);

/*
 * Calls @cb with pieces that cover [0, @disk_size_bytes) exactly once, in
 * increasing order, contiguous; data pieces never exceed CHUNK_SIZE_BYTES
 * and lie inside one chunk position or one table region. @disk_size_bytes
 * must be at least md->size_bytes. Without @load_data nothing is read from
 * the store (data pieces have data == NULL): the same pieces, for writers that
 * need the map first. With it every chunk is read and verified ahead of the
 * callback on worker threads. A callback returning < 0 stops the walk with
 * that error. -EBADMSG (a chunk does not verify), -ENOENT (missing chunk).
 * *ret_data_bytes (may be NULL): bytes of data pieces.
 */
int export_disk_walk(const struct manifest_disk *md, struct store *s, uint64_t disk_size_bytes,
		     bool load_data, export_piece_fn cb, void *userdata, uint64_t *ret_data_bytes);

/* --- the writers ------------------------------------------------------------------------- */

struct export_options {
	enum export_format format;
	/* VMDK: the extent file name written into the embedded descriptor */
	const char *file_name;
	unsigned disk_index;
	progress_fn progress; /* phase "export", done/total in data bytes */
	void *userdata;
};

struct export_stats {
	uint64_t disk_bytes;     /* virtual size of the exported disk */
	uint64_t data_bytes;     /* bytes of data pieces (read from the store and the table) */
	uint64_t chunks_read;    /* chunks read and verified */
	uint64_t file_bytes;     /* size of the file written */
	double seconds;
};

/*
 * Writes disk @disk_index of @m in @o->format to @fd, a new empty file open
 * O_RDWR (raw, qcow2 and vhd seek and leave holes; gce-tar and vmdk only
 * append, so @fd may also be a pipe for them). Does not fsync. On failure the
 * file holds garbage: the caller removes it. -EINVAL (unsupported option),
 * -EXDEV (sector size the format cannot carry), -EBADMSG, -ENOENT, -errno.
 */
int export_disk(int fd, const struct manifest *m, unsigned disk_index, struct store *s,
		const struct export_options *o, struct export_stats *stats, char **ret_reason);

/*
 * The VHD footer's checksum: one's complement of the byte sum of the 512-byte
 * footer with its checksum field (bytes 64-67) counted as zero. Exposed for
 * tests and for readers.
 */
uint32_t export_vhd_checksum(const uint8_t footer[512]);

/* The tar header checksum: byte sum of the 512-byte header, bytes 148-155 counted as spaces. */
uint32_t export_tar_checksum(const uint8_t header[512]);
