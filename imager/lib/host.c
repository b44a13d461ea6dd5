/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdio.h>
#include <stdlib.h>

#include "imager/host.h"
#include "util/io.h"

static char *dmi(const char *name)
{
	char path[128], *s = NULL;

	snprintf(path, sizeof(path), "/sys/class/dmi/id/%s", name);
	if (read_one_line(path, &s) < 0)
		return NULL;
	if (!*s) {
		free(s);
		return NULL;
	}
	return s;
}

void host_identity_read(struct host_identity *ret)
{
	ret->vendor = dmi("sys_vendor");
	ret->product = dmi("product_name");
	ret->serial = dmi("product_serial");
}

void host_identity_done(struct host_identity *h)
{
	free(h->vendor), free(h->product), free(h->serial);
	*h = (struct host_identity){};
}
