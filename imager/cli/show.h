/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Listing and describing images and snapshots (images-show.c), shared by `images` and `snapshots`. */

#include <stdbool.h>
#include <stddef.h>

#include "imager/manifest.h"

/*
 * Lists the images (or snapshots) of a store as a table or --json. For
 * images: only those in @family if non-NULL, and only ACTIVE ones unless
 * @show_deprecated (damaged manifests are always listed, as DAMAGED).
 */
int cli_list_manifests(enum manifest_kind kind, const char *store_arg, const char *family,
		       bool show_deprecated, bool json);
/* Family, source, storage accounting, labels, times, deprecation state, disks. */
int cli_describe_manifest(enum manifest_kind kind, const char *store_arg, const char *name,
			  bool json);
/*
 * Deletes images (with their deprecation records) or snapshots, all or
 * none: every name is checked before the first is removed. Chunks stay
 * until `store gc`.
 */
int cli_delete_manifests(enum manifest_kind kind, const char *store_arg, char **names,
			 size_t n_names);
