/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "imager/host.h"
#include "report.h"
#include "util/io.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strutil.h"

static double mono_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

void report_init(struct report *rep, const char *action, const char *store, const char *image)
{
	*rep = (struct report){
		.action = action, .store = store, .started_unix = (int64_t) time(NULL),
		.started_mono = mono_s(), .image = image ? strdup(image) : NULL,
	};
}

static char *dup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct report_disk *report_add_disk(struct report *rep, const char *node, const char *model,
				    const char *serial, const char *wwn, uint64_t size_bytes)
{
	struct report_disk *d;

	if (rep->n_disks >= REPORT_DISKS_MAX)
		return NULL;
	d = &rep->disks[rep->n_disks++];
	*d = (struct report_disk){ .node = dup0(node), .model = dup0(model), .serial = dup0(serial),
				   .wwn = dup0(wwn), .size_bytes = size_bytes };
	return d;
}

void report_set_digest(struct report *rep, const uint8_t digest[32])
{
	memcpy(rep->digest, digest, 32);
	rep->has_digest = true;
}

int report_write(struct report *rep, const char *path, int r)
{
	struct host_identity host = {};
	char ts[32], hex[65];
	char *buf = NULL;
	size_t size = 0;
	FILE *f;
	struct json j;
	int status = exit_status_from_errno(r);

	if (!path)
		return 0;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	host_identity_read(&host);
	json_init(&j, f, true);
	json_object_begin(&j, NULL);
	json_string(&j, "action", rep->action);
	json_string(&j, "result", status == 0 ? "ok" : "error");
	json_u64(&j, "exit_code", (uint64_t) status);
	json_string(&j, "error", status == 0 ? NULL : log_last_error());
	json_string(&j, "started", format_timestamp(ts, sizeof(ts), rep->started_unix));
	json_double(&j, "seconds", mono_s() - rep->started_mono);
	json_string(&j, "tool_version", IMAGER_VERSION);
	json_object_begin(&j, "machine");
	json_string(&j, "vendor", host.vendor);
	json_string(&j, "product", host.product);
	json_string(&j, "serial", host.serial);
	json_object_end(&j);
	json_string(&j, "store", rep->store);
	json_object_begin(&j, "image");
	json_string(&j, "name", rep->image);
	if (rep->has_digest)
		hex_encode(rep->digest, sizeof(rep->digest), hex);
	json_string(&j, "digest", rep->has_digest ? hex : NULL);
	json_object_end(&j);
	json_array_begin(&j, "disks");
	for (size_t i = 0; i < rep->n_disks; i++) {
		const struct report_disk *d = &rep->disks[i];
		json_object_begin(&j, NULL);
		json_string(&j, "node", d->node);
		json_string(&j, "model", d->model);
		json_string(&j, "serial", d->serial);
		json_string(&j, "wwn", d->wwn);
		json_u64(&j, "size", d->size_bytes);
		json_u64(&j, "data_bytes", d->data_bytes);
		json_u64(&j, "stored_bytes", d->stored_bytes);
		json_u64(&j, "verified_bytes", d->verified_bytes);
		json_double(&j, "write_seconds", d->write_seconds);
		json_double(&j, "verify_seconds", d->verify_seconds);
		json_string(&j, "verify", d->verify);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
	fclose(f);
	host_identity_done(&host);
	r = write_file_atomic_replace(AT_FDCWD, path, buf, size);
	free(buf);
	if (r < 0)
		log_warning_errno(r, "Failed to write report '%s': %m", path);
	return r;
}

void report_done(struct report *rep)
{
	for (size_t i = 0; i < rep->n_disks; i++) {
		free(rep->disks[i].node), free(rep->disks[i].model);
		free(rep->disks[i].serial), free(rep->disks[i].wwn);
	}
	free(rep->image);
	*rep = (struct report){};
}
