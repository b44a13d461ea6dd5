/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Image manifests: what an image is (docs/FORMAT.md, "Manifest"). The
 * in-memory model below is encoded as little-endian, versioned, bounded
 * binary by manifest_encode() and checked field by field by
 * manifest_decode(), which never trusts a size it has not bounded.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imager/chunk.h"

#define MANIFEST_VERSION_MAJOR 1
#define MANIFEST_VERSION_MINOR 1 /* 1.1: image kind, SOURCE and FAMILY sections */
#define MANIFEST_BYTES_MAX (UINT64_C(256) << 20)
#define MANIFEST_DISKS_MAX 64
#define MANIFEST_PARTITIONS_MAX 256
#define MANIFEST_STRING_MAX 4096
#define MANIFEST_LABELS_MAX 64
#define MANIFEST_BOOT_CODE_BYTES 440
/* the post-MBR gap kept before the first partition (docs/FORMAT.md) */
#define MANIFEST_BOOT_GAP_BYTES_MAX (UINT64_C(32) << 20)
/* per disk; 16 Mi extents of >= 2 encoded bytes stay below MANIFEST_BYTES_MAX */
#define MANIFEST_EXTENTS_MAX (UINT64_C(1) << 24)
/* per disk; 8 Mi chunks (32 TiB of data) of >= 33 encoded bytes each */
#define MANIFEST_CHUNKS_MAX (UINT64_C(1) << 23)
#define MANIFEST_SECTIONS_MAX 4096
#define MANIFEST_SECTOR_BYTES_MAX 65536
#define MANIFEST_GPT_ENTRIES_MAX 65536

/*
 * Section types (docs/FORMAT.md, "Sections"). A v1 reader knows IMAGE and
 * DISK; it skips any other section unless the section is flagged REQUIRED,
 * in which case it refuses the manifest with -EPROTONOSUPPORT. The rest are
 * reserved so that later versions add them without breaking v1 readers.
 */
enum manifest_section_type {
	MANIFEST_SECTION_IMAGE = 1,       /* name, times, tool, host; exactly one, first */
	MANIFEST_SECTION_DISK = 2,        /* one per disk, in disk order */
	MANIFEST_SECTION_FAMILY = 16,     /* optional: the image's family, if any */
	MANIFEST_SECTION_DEPRECATION = 17,/* reserved: ACTIVE/DEPRECATED/OBSOLETE/DELETED */
	MANIFEST_SECTION_SOURCE = 18,     /* optional: where the image came from */
	MANIFEST_SECTION_SIGNATURE = 19,  /* reserved: Ed25519 signatures over the digests */
	MANIFEST_SECTION_ENCRYPTION = 20, /* reserved: AEAD and keyed-chunk-ID parameters (REQUIRED) */
	MANIFEST_SECTION_REMOTE = 21,     /* reserved: remote store hints */
};
#define MANIFEST_SECTION_FLAG_REQUIRED UINT32_C(1)

enum capture_method {
	CAPTURE_NONE,         /* nothing stored (partition left empty) */
	CAPTURE_EXT_USED,     /* ext2/3/4: blocks in use per the block bitmaps */
	CAPTURE_FAT_USED,     /* FAT: reserved area, FATs, root dir, allocated clusters */
	CAPTURE_SWAP_HEADER,  /* swap: the first page only (UUID, label) */
	CAPTURE_BIOS_BOOT,    /* BIOS-boot partition: raw */
	CAPTURE_RAW,          /* anything else: raw with all-zero chunks skipped */
	_CAPTURE_METHOD_MAX,
	_CAPTURE_METHOD_INVALID = -22,
};
const char *capture_method_to_string(enum capture_method m);
enum capture_method capture_method_from_string(const char *s);

/*
 * What a manifest is. Images live in images/, snapshots in snapshots/; the
 * kind is also recorded inside the manifest, so a file moved to the other
 * directory is refused.
 */
enum manifest_kind {
	MANIFEST_KIND_IMAGE,
	MANIFEST_KIND_SNAPSHOT,
	_MANIFEST_KIND_MAX,
	_MANIFEST_KIND_INVALID = -22,
};
/* "image", "snapshot" */
const char *manifest_kind_to_string(enum manifest_kind k);
enum manifest_kind manifest_kind_from_string(const char *s);

/* Where an image came from (the SOURCE section; never part of the content digest). */
enum manifest_source_type {
	MANIFEST_SOURCE_NONE,     /* unknown / not recorded: no SOURCE section */
	MANIFEST_SOURCE_DISK,     /* captured from disks: @nodes are their device nodes */
	MANIFEST_SOURCE_IMAGE,    /* derived from the image @name (content digest @digest) */
	MANIFEST_SOURCE_SNAPSHOT, /* derived from the snapshot @name (content digest @digest) */
	MANIFEST_SOURCE_FILE,     /* imported from the file @name (basename) in @format */
	_MANIFEST_SOURCE_TYPE_MAX,
	_MANIFEST_SOURCE_TYPE_INVALID = -22,
};
/* "none", "disk", "image", "snapshot", "file" */
const char *manifest_source_type_to_string(enum manifest_source_type t);

struct manifest_source {
	enum manifest_source_type type;
	char *name;              /* NULL if none */
	char *format;            /* e.g. "tar"; NULL if none */
	bool has_digest;
	uint8_t digest[32];      /* the source's content digest, if has_digest */
	char **nodes;            /* NULL-terminated, may be NULL; at most MANIFEST_DISKS_MAX */
};
/* Frees the contents and resets @s to MANIFEST_SOURCE_NONE. */
void manifest_source_done(struct manifest_source *s);

struct manifest_partition {
	unsigned partno;
	uint64_t start_bytes, size_bytes;
	char *type, *uuid, *name;      /* as struct ptable_entry */
	uint64_t attrs;
	bool bootable;
	enum capture_method method;
	char *fs_type, *fs_uuid, *fs_label; /* NULL if none */
	uint64_t fs_used_bytes;        /* bytes captured for this partition */
	uint64_t fs_min_size_bytes;    /* 0 if unknown */
};

/* A run of bytes that holds data; everything outside all extents is a hole. */
struct manifest_extent {
	uint64_t offset_bytes, size_bytes;
};

/* One stored, aligned chunk of a disk's address space. */
struct manifest_chunk {
	uint64_t offset_bytes;   /* multiple of CHUNK_SIZE_BYTES */
	uint32_t size_bytes;     /* CHUNK_SIZE_BYTES, or less for the disk's last chunk */
	struct chunk_id id;      /* SHA-256 of the chunk's bytes with holes zeroed */
};

struct manifest_disk {
	uint64_t size_bytes;
	uint32_t logical_sector_bytes, physical_sector_bytes;
	char *label;             /* "gpt", "dos" or "none" */
	char *disk_id;
	uint64_t first_usable_bytes, last_usable_bytes; /* GPT; 0 otherwise */
	uint32_t gpt_n_entries_max;
	struct manifest_partition *partitions;
	size_t n_partitions;
	uint8_t boot_code[MANIFEST_BOOT_CODE_BYTES]; /* sector 0 bytes 0-439 */
	uint64_t boot_gap_bytes; /* bytes of the post-MBR gap kept, starting at 512 or after the GPT entries */
	/* data extents: sorted, non-overlapping, merged; flash writes exactly these bytes */
	struct manifest_extent *extents;
	size_t n_extents;
	/*
	 * The non-zero chunks that extents touch, sorted by offset; a chunk holds
	 * the extents inside it, with holes zeroed. A chunk position an extent
	 * touches but that is not listed was all zero: flash writes zeros there.
	 * Every listed chunk holds part of an extent and is not all zero.
	 */
	struct manifest_chunk *chunks;
	size_t n_chunks;
	uint64_t used_bytes;     /* sum of extent sizes */
	char *model, *serial;    /* source identity, NULL if unknown */
};

struct manifest {
	uint32_t version_major, version_minor;
	char *name;
	char *description;       /* NULL if none */
	char **labels;           /* "key=value", NULL-terminated, may be NULL */
	char *family;            /* image family (image name rules), NULL if none */
	enum manifest_kind kind; /* MANIFEST_KIND_IMAGE unless a snapshot */
	struct manifest_source source;
	int64_t created_unix;
	char *tool_version;
	char *host_vendor, *host_product, *host_serial; /* DMI of the capturing host */
	struct manifest_disk *disks;
	size_t n_disks;
	/* SHA-256 over every disk's layout, extents and chunk IDs, in order (docs/FORMAT.md) */
	uint8_t content_digest[32];
};

void manifest_compute_digest(const struct manifest *m, uint8_t ret[32]);

/*
 * Checks an in-memory manifest against every rule manifest_decode() enforces
 * (bounds, sorted/merged extents inside the disk, the chunk list equal to the
 * set of chunks the extents touch, implied chunk sizes, partitions inside the
 * disk, valid name, content digest). Returns 0, or -EBADMSG with a debug
 * log line that names the rule broken.
 */
int manifest_validate(const struct manifest *m);

/*
 * Serialises @m (whose content_digest must be set: manifest_compute_digest()).
 * Refuses (-EINVAL) a manifest that manifest_validate() rejects, so nothing
 * written can fail to read back.
 */
int manifest_encode(const struct manifest *m, void **ret, size_t *ret_size);
/*
 * Parses and validates: magic, version (a larger major is -EPROTONOSUPPORT),
 * self-checksum, every size and count against the bounds above, extents
 * sorted and inside their disk, chunks aligned and inside their disk, every
 * extent inside a listed chunk, content digest. -EBADMSG on any violation.
 */
int manifest_decode(const void *data, size_t size, struct manifest **ret);
struct manifest *manifest_free(struct manifest *m);

/* Image names: lowercase letters, digits and hyphens, a letter first, at most 63. */
bool manifest_name_is_valid(const char *name);
