/* SPDX-License-Identifier: GPL-2.0-or-later */
/* imager images SUBCOMMAND: one file per subcommand (images-*.c). */
#include <stdio.h>
#include <errno.h>
#include <string.h>

#include "cli.h"

static const struct verb images_verbs[] = {
	{ "list", "List the images of a store", images_list },
	{ "describe", "Show an image: disks, partitions, provenance", images_describe },
	{ "create", "Create an image from disks, an image, a family, a snapshot, a tar or a vdisk",
	  images_create },
	{ "delete", "Delete images (their chunks go with 'store gc')", images_delete },
	{ "deprecate", "Set an image's state: ACTIVE, DEPRECATED, OBSOLETE, DELETED", images_deprecate },
	{ "export", "Write a disk as raw, gce-tar, qcow2, vhd or vmdk", images_export },
	{ "sign", "Sign an image with a private key", images_sign },
	{}
};

int verb_images(int argc, char *argv[])
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("Usage: imager images SUBCOMMAND [ARGS]\n\n");
		for (const struct verb *v = images_verbs; v->name; v++)
			printf("  %-12s %s\n", v->name, v->summary);
		return argc < 2 ? -EINVAL : 0;
	}
	for (const struct verb *v = images_verbs; v->name; v++)
		if (strcmp(v->name, argv[1]) == 0)
			return v->run(argc - 1, argv + 1);
	return usage_error("images", "unknown subcommand '%s'", argv[1]);
}
