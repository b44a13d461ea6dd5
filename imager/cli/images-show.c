/* SPDX-License-Identifier: GPL-2.0-or-later */
/* imager images list [--json] and imager images describe NAME [--json]: what a store holds. */
#include <errno.h>
#include <getopt.h>
#include <libsmartcols.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "output.h"
#include "target.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)
DEFINE_CLEANUP(struct libscols_table *, scols_unref_table)

static const char *arg_store;
static bool arg_json;

static uint64_t image_used_bytes(const struct manifest *m)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < m->n_disks; i++)
		sum += m->disks[i].used_bytes;
	return sum;
}

static uint64_t image_size_bytes(const struct manifest *m)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < m->n_disks; i++)
		sum += m->disks[i].size_bytes;
	return sum;
}

static int list(void)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_strv_free_ char **names = NULL;
	_cleanup_(scols_unref_tablep) struct libscols_table *tb = NULL;
	const char *path = cli_store_path(arg_store);
	int r;

	r = store_open(path, false, &s);
	if (r == -ENOENT)
		return log_error_errno(r, "Store '%s' does not exist.", path);
	if (r < 0)
		return log_error_errno(r, "Failed to open store '%s': %m", path);
	r = store_list_manifests(s, &names);
	if (r < 0)
		return log_error_errno(r, "Failed to list images in '%s': %m", path);

	tb = scols_new_table();
	if (!tb)
		return log_oom();
	scols_table_set_name(tb, "images");
	scols_table_enable_json(tb, arg_json);
	if (!scols_table_new_column(tb, "name", 0.3, 0) ||
	    !scols_table_new_column(tb, "created", 0.2, 0) ||
	    !scols_table_new_column(tb, "disks", 0.05, SCOLS_FL_RIGHT) ||
	    !scols_table_new_column(tb, "size", 0.1, SCOLS_FL_RIGHT) ||
	    !scols_table_new_column(tb, "used", 0.1, SCOLS_FL_RIGHT) ||
	    !scols_table_new_column(tb, "status", 0.1, 0) ||
	    !scols_table_new_column(tb, "description", 0.3, SCOLS_FL_TRUNC))
		return log_oom();
	if (arg_json) {
		for (int i = 2; i <= 4; i++)
			scols_column_set_json_type(scols_table_get_column(tb, i), SCOLS_JSON_NUMBER);
	}
	for (char **n = names; n && *n; n++) {
		_cleanup_(manifest_freep) struct manifest *m = NULL;
		struct libscols_line *ln = scols_table_new_line(tb, NULL);
		char buf[64], sz[FORMAT_BYTES_MAX];

		if (!ln)
			return log_oom();
		scols_line_set_data(ln, 0, *n);
		r = store_get_manifest(s, *n, &m);
		if (r < 0) {
			scols_line_set_data(ln, 5, r == -EBADMSG ? "DAMAGED" : "UNREADABLE");
			continue;
		}
		scols_line_set_data(ln, 1, format_timestamp(buf, sizeof(buf), m->created_unix));
		snprintf(buf, sizeof(buf), "%zu", m->n_disks);
		scols_line_set_data(ln, 2, buf);
		if (arg_json)
			snprintf(sz, sizeof(sz), "%llu", (unsigned long long) image_size_bytes(m));
		else
			format_bytes(sz, sizeof(sz), image_size_bytes(m));
		scols_line_set_data(ln, 3, sz);
		if (arg_json)
			snprintf(sz, sizeof(sz), "%llu", (unsigned long long) image_used_bytes(m));
		else
			format_bytes(sz, sizeof(sz), image_used_bytes(m));
		scols_line_set_data(ln, 4, sz);
		scols_line_set_data(ln, 5, "READY");
		scols_line_set_data(ln, 6, m->description ? m->description : "");
	}
	return scols_print_table(tb) < 0 ? -EIO : 0;
}

static void describe_json(const struct manifest *m, struct store *s)
{
	struct json j;
	char buf[CHUNK_ID_STRING_MAX];
	uint64_t stored = 0;

	json_init(&j, stdout, true);
	json_object_begin(&j, NULL);
	json_string(&j, "name", m->name);
	json_string(&j, "description", m->description);
	json_array_begin(&j, "labels");
	for (char **l = m->labels; l && *l; l++)
		json_string(&j, NULL, *l);
	json_array_end(&j);
	json_i64(&j, "created", m->created_unix);
	json_string(&j, "tool_version", m->tool_version);
	json_object_begin(&j, "host");
	json_string(&j, "vendor", m->host_vendor);
	json_string(&j, "product", m->host_product);
	json_string(&j, "serial", m->host_serial);
	json_object_end(&j);
	hex_encode(m->content_digest, sizeof(m->content_digest), buf);
	json_string(&j, "digest", buf);
	json_u64(&j, "format_version", m->version_major);
	json_array_begin(&j, "disks");
	for (size_t i = 0; i < m->n_disks; i++) {
		const struct manifest_disk *d = &m->disks[i];
		json_object_begin(&j, NULL);
		json_u64(&j, "size", d->size_bytes);
		json_u64(&j, "logical_sector_size", d->logical_sector_bytes);
		json_u64(&j, "physical_sector_size", d->physical_sector_bytes);
		json_string(&j, "pttype", d->label);
		json_string(&j, "ptuuid", d->disk_id);
		json_string(&j, "model", d->model);
		json_string(&j, "serial", d->serial);
		json_u64(&j, "used", d->used_bytes);
		json_u64(&j, "boot_gap", d->boot_gap_bytes);
		json_u64(&j, "extents", d->n_extents);
		json_u64(&j, "chunks", d->n_chunks);
		for (size_t k = 0; k < d->n_chunks; k++) {
			uint64_t b = 0;
			if (store_chunk_stored_bytes(s, &d->chunks[k].id, &b) >= 0)
				stored += b;
		}
		json_array_begin(&j, "partitions");
		for (size_t k = 0; k < d->n_partitions; k++) {
			const struct manifest_partition *p = &d->partitions[k];
			json_object_begin(&j, NULL);
			json_u64(&j, "number", p->partno);
			json_u64(&j, "start", p->start_bytes);
			json_u64(&j, "size", p->size_bytes);
			json_string(&j, "type", p->type);
			json_string(&j, "partuuid", p->uuid);
			json_string(&j, "name", p->name);
			json_u64(&j, "attributes", p->attrs);
			json_bool(&j, "bootable", p->bootable);
			json_string(&j, "method", capture_method_to_string(p->method));
			json_string(&j, "fstype", p->fs_type);
			json_string(&j, "uuid", p->fs_uuid);
			json_string(&j, "label", p->fs_label);
			json_u64(&j, "captured", p->fs_used_bytes);
			json_u64(&j, "min_size", p->fs_min_size_bytes);
			json_object_end(&j);
		}
		json_array_end(&j);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_u64(&j, "stored", stored);
	json_object_end(&j);
	json_finish(&j);
}

static void describe_text(const struct manifest *m)
{
	char buf[CHUNK_ID_STRING_MAX], a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];

	printf("Name:        %s\n", m->name);
	if (m->description)
		printf("Description: %s\n", m->description);
	for (char **l = m->labels; l && *l; l++)
		printf("Label:       %s\n", *l);
	printf("Created:     %s\n", format_timestamp(buf, sizeof(buf), m->created_unix));
	printf("Captured by: imager %s on %s %s\n", m->tool_version,
	       m->host_vendor ? m->host_vendor : "unknown", m->host_product ? m->host_product : "");
	hex_encode(m->content_digest, sizeof(m->content_digest), buf);
	printf("Digest:      %s\n", buf);
	for (size_t i = 0; i < m->n_disks; i++) {
		const struct manifest_disk *d = &m->disks[i];
		printf("Disk %zu:      %s, %s sectors %u/%u, %s used, %zu chunks, table %s %s\n", i,
		       format_bytes(a, sizeof(a), d->size_bytes), "logical/physical",
		       d->logical_sector_bytes, d->physical_sector_bytes,
		       format_bytes(b, sizeof(b), d->used_bytes), d->n_chunks, d->label,
		       d->disk_id ? d->disk_id : "");
		for (size_t k = 0; k < d->n_partitions; k++) {
			const struct manifest_partition *p = &d->partitions[k];
			printf("  %2u %10s at %-12llu %-20s %-6s %s\n", p->partno,
			       format_bytes(a, sizeof(a), p->size_bytes),
			       (unsigned long long) p->start_bytes,
			       capture_method_to_string(p->method), p->fs_type ? p->fs_type : "-",
			       p->fs_label ? p->fs_label : "");
		}
	}
}

static int describe(const char *name)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	int r = cli_load_image(arg_store, name, &s, &m);

	if (r < 0)
		return r;
	if (arg_json)
		describe_json(m, s);
	else
		describe_text(m);
	return 0;
}

static int parse_common(int argc, char *argv[], const char *usage)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'J' },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "hs:J", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("%s", usage);
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'J':
			arg_json = true;
			break;
		default:
			return usage_error("images", "bad option");
		}
	return 1;
}

int images_list(int argc, char *argv[])
{
	int r = parse_common(argc, argv, "Usage: imager images list [--json] [--store DIR]\n");

	if (r <= 0)
		return r;
	if (optind != argc)
		return usage_error("images list", "unexpected argument '%s'", argv[optind]);
	return list();
}

int images_describe(int argc, char *argv[])
{
	int r = parse_common(argc, argv,
			     "Usage: imager images describe NAME [--json] [--store DIR]\n");

	if (r <= 0)
		return r;
	if (argc - optind != 1)
		return usage_error("images describe", "exactly one image NAME is required");
	return describe(argv[optind]);
}
