/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* The running machine's DMI identity (provenance of captures, appliance reports). */
struct host_identity {
	char *vendor;   /* /sys/class/dmi/id/sys_vendor, NULL if unknown */
	char *product;  /* product_name */
	char *serial;   /* product_serial (readable by root only) */
};

void host_identity_read(struct host_identity *ret);
void host_identity_done(struct host_identity *h);
