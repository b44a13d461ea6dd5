/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager images list [--family F] [--show-deprecated] [--json] and
 * imager images describe NAME [--json]: what a store holds. The same code
 * lists and describes snapshots (verb-snapshots.c).
 */
#include <errno.h>
#include <getopt.h>
#include <libsmartcols.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "imager/gc.h"
#include "imager/lifecycle.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "lifecycle.h"
#include "output.h"
#include "show.h"
#include "target.h"
#include "trust.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)
DEFINE_CLEANUP(struct store_refs *, store_refs_free)
DEFINE_CLEANUP(struct libscols_table *, scols_unref_table)

static const char *arg_store, *arg_family;
static bool arg_json, arg_show_deprecated;

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

static int open_store(const char *store_arg, struct store **ret)
{
	return cli_store_open(cli_store_path(store_arg), false, ret);
}

/* The effective deprecation state of image @name now; DELETED-like "UNKNOWN" if unreadable. */
static const char *state_of(struct store *s, const char *name, int64_t now,
			    enum deprecation_state *ret)
{
	struct deprecation d = DEPRECATION_INIT;
	int r = store_get_deprecation(s, name, &d);

	if (r == -ENOENT) {
		*ret = DEPRECATION_ACTIVE;
		return "ACTIVE";
	}
	if (r < 0) {
		*ret = DEPRECATION_DELETED; /* hidden by default: it may be obsolete */
		return "UNKNOWN";
	}
	*ret = deprecation_effective_state(&d, now);
	deprecation_done(&d);
	return deprecation_state_to_string(*ret);
}

static void set_bytes(struct libscols_line *ln, size_t col, uint64_t v, bool json)
{
	char sz[FORMAT_BYTES_MAX + 8];

	if (json)
		snprintf(sz, sizeof(sz), "%llu", (unsigned long long) v);
	else
		format_bytes(sz, sizeof(sz), v);
	scols_line_set_data(ln, col, sz);
}

int cli_list_manifests(enum manifest_kind kind, const char *store_arg, const char *family,
		       bool show_deprecated, bool json)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_strv_free_ char **names = NULL;
	_cleanup_(scols_unref_tablep) struct libscols_table *tb = NULL;
	_cleanup_(store_refs_freep) struct store_refs *refs = NULL;
	bool snapshots = kind == MANIFEST_KIND_SNAPSHOT;
	/* columns: images and snapshots differ in the 2nd and 7th */
	enum { C_NAME, C_FAMILY, C_CREATED, C_DISKS, C_SIZE, C_USED, C_STATE, C_STATUS, C_DESC };
	int64_t now;
	int r;

	r = cli_now(&now);
	if (r < 0)
		return r;
	r = open_store(store_arg, &s);
	if (r < 0)
		return r;
	r = store_list_manifests_of_kind(s, kind, &names);
	if (r < 0)
		return log_error_errno(r, "Failed to list %ss in '%s': %m",
				       manifest_kind_to_string(kind), store_path(s));
	if (snapshots && store_refs_load(s, &refs, NULL) < 0)
		refs = NULL; /* a damaged manifest: no unique bytes column values */

	tb = scols_new_table();
	if (!tb)
		return log_oom();
	scols_table_set_name(tb, snapshots ? "snapshots" : "images");
	scols_table_enable_json(tb, json);
	if (!scols_table_new_column(tb, "name", 0.25, 0) ||
	    !scols_table_new_column(tb, snapshots ? "source" : "family", 0.15, 0) ||
	    !scols_table_new_column(tb, "created", 0.2, 0) ||
	    !scols_table_new_column(tb, "disks", 0.05, SCOLS_FL_RIGHT) ||
	    !scols_table_new_column(tb, "size", 0.1, SCOLS_FL_RIGHT) ||
	    !scols_table_new_column(tb, "used", 0.1, SCOLS_FL_RIGHT) ||
	    !scols_table_new_column(tb, snapshots ? "unique" : "state", 0.1,
				    snapshots ? SCOLS_FL_RIGHT : 0) ||
	    !scols_table_new_column(tb, "status", 0.1, 0) ||
	    !scols_table_new_column(tb, "description", 0.3, SCOLS_FL_TRUNC))
		return log_oom();
	if (json) {
		for (int i = C_DISKS; i <= C_USED; i++)
			scols_column_set_json_type(scols_table_get_column(tb, i), SCOLS_JSON_NUMBER);
		if (snapshots)
			scols_column_set_json_type(scols_table_get_column(tb, C_STATE),
						   SCOLS_JSON_NUMBER);
	}
	for (char **n = names; n && *n; n++) {
		_cleanup_(manifest_freep) struct manifest *m = NULL;
		struct libscols_line *ln;
		enum deprecation_state state = DEPRECATION_ACTIVE;
		const char *state_str = NULL;
		char buf[64];

		r = store_get_manifest_of_kind(s, kind, *n, &m);
		if (r < 0 && family)
			continue; /* its family is unknown */
		if (!snapshots && r >= 0) {
			if (family && !streq_ptr(m->family, family))
				continue;
			state_str = state_of(s, *n, now, &state);
			if (state != DEPRECATION_ACTIVE && !show_deprecated)
				continue;
		}
		ln = scols_table_new_line(tb, NULL);
		if (!ln)
			return log_oom();
		scols_line_set_data(ln, C_NAME, *n);
		if (r < 0) {
			scols_line_set_data(ln, C_STATUS, r == -EBADMSG ? "DAMAGED" : "UNREADABLE");
			continue;
		}
		if (snapshots) {
			if (m->source.type == MANIFEST_SOURCE_DISK && m->source.nodes)
				scols_line_set_data(ln, C_FAMILY, m->source.nodes[0]);
		} else if (m->family)
			scols_line_set_data(ln, C_FAMILY, m->family);
		scols_line_set_data(ln, C_CREATED, format_timestamp(buf, sizeof(buf), m->created_unix));
		snprintf(buf, sizeof(buf), "%zu", m->n_disks);
		scols_line_set_data(ln, C_DISKS, buf);
		set_bytes(ln, C_SIZE, image_size_bytes(m), json);
		set_bytes(ln, C_USED, image_used_bytes(m), json);
		if (snapshots) {
			struct image_storage st;
			if (refs && store_image_storage(s, m, refs, &st) >= 0)
				set_bytes(ln, C_STATE, st.unique_bytes, json);
		} else
			scols_line_set_data(ln, C_STATE, state_str);
		scols_line_set_data(ln, C_STATUS, "READY");
		if (m->description)
			scols_line_set_data(ln, C_DESC, m->description);
	}
	return scols_print_table(tb) < 0 ? -EIO : 0;
}

/* ---- describe ---- */

struct describe_info {
	bool have_storage;
	struct image_storage storage;
	bool have_deprecation, deprecation_damaged;
	struct deprecation deprecation;
	enum deprecation_state state;
	struct cli_signatures signatures;
	bool encrypted;                        /* the store's, shown as "encryption" */
	char key_id[CRYPT_KEY_ID_STRING_MAX];
};

static const char *source_type_word(enum manifest_source_type t)
{
	switch (t) {
	case MANIFEST_SOURCE_DISK:
		return "disk";
	case MANIFEST_SOURCE_IMAGE:
		return "image";
	case MANIFEST_SOURCE_SNAPSHOT:
		return "snapshot";
	case MANIFEST_SOURCE_FILE:
		return "file";
	default:
		return NULL;
	}
}

static void json_time_or_null(struct json *j, const char *key, int64_t t)
{
	if (t == DEPRECATION_TIME_UNSET)
		json_null(j, key);
	else
		json_i64(j, key, t);
}

static void describe_json(const struct manifest *m, struct store *s, const struct describe_info *di)
{
	struct json j;
	char buf[CHUNK_ID_STRING_MAX];
	uint64_t stored = 0;

	json_init(&j, stdout, true);
	json_object_begin(&j, NULL);
	json_string(&j, "name", m->name);
	json_string(&j, "kind", manifest_kind_to_string(m->kind));
	json_string(&j, "family", m->family);
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
	json_object_begin(&j, "encryption");
	json_string(&j, "cipher", di->encrypted ? CRYPT_CIPHER_NAME : "none");
	json_string(&j, "key_id", di->encrypted ? di->key_id : NULL);
	json_object_end(&j);
	json_u64(&j, "format_version", m->version_major);
	cli_signatures_print_json(&j, &di->signatures);

	if (m->source.type == MANIFEST_SOURCE_NONE)
		json_null(&j, "source");
	else {
		json_object_begin(&j, "source");
		json_string(&j, "type", source_type_word(m->source.type));
		json_string(&j, "name", m->source.name);
		json_string(&j, "format", m->source.format);
		if (m->source.has_digest) {
			hex_encode(m->source.digest, sizeof(m->source.digest), buf);
			json_string(&j, "digest", buf);
		} else
			json_null(&j, "digest");
		json_array_begin(&j, "nodes");
		for (char **n = m->source.nodes; n && *n; n++)
			json_string(&j, NULL, *n);
		json_array_end(&j);
		json_object_end(&j);
	}

	if (m->kind == MANIFEST_KIND_IMAGE) {
		const struct deprecation *d = &di->deprecation;
		json_object_begin(&j, "deprecation");
		json_string(&j, "state", di->deprecation_damaged
						 ? "UNKNOWN"
						 : deprecation_state_to_string(di->state));
		json_string(&j, "set_state", di->have_deprecation
						     ? deprecation_state_to_string(d->state)
						     : "ACTIVE");
		json_string(&j, "replacement", di->have_deprecation ? d->replacement : NULL);
		json_time_or_null(&j, "deprecate_on",
				  di->have_deprecation ? d->deprecate_on : DEPRECATION_TIME_UNSET);
		json_time_or_null(&j, "obsolete_on",
				  di->have_deprecation ? d->obsolete_on : DEPRECATION_TIME_UNSET);
		json_time_or_null(&j, "delete_on",
				  di->have_deprecation ? d->delete_on : DEPRECATION_TIME_UNSET);
		json_object_end(&j);
	}
	if (di->have_storage) {
		json_object_begin(&j, "storage");
		json_u64(&j, "logical", di->storage.logical_bytes);
		json_u64(&j, "stored", di->storage.stored_bytes);
		json_u64(&j, "unique", di->storage.unique_bytes);
		json_u64(&j, "chunks", di->storage.chunks);
		json_u64(&j, "unique_chunks", di->storage.unique_chunks);
		json_u64(&j, "missing_chunks", di->storage.missing_chunks);
		json_object_end(&j);
	} else
		json_null(&j, "storage");

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
	/* every chunk reference counted (as before "storage"): kept for scripts */
	json_u64(&j, "stored", stored);
	json_object_end(&j);
	json_finish(&j);
}

static void describe_source_text(const struct manifest *m)
{
	char hex[CHUNK_ID_STRING_MAX];

	switch (m->source.type) {
	case MANIFEST_SOURCE_DISK:
		for (size_t i = 0; m->source.nodes && m->source.nodes[i]; i++) {
			const struct manifest_disk *d = i < m->n_disks ? &m->disks[i] : NULL;
			printf("Source:      disk %s (%s, serial %s)\n", m->source.nodes[i],
			       d && d->model ? d->model : "unknown model",
			       d && d->serial ? d->serial : "unknown");
		}
		break;
	case MANIFEST_SOURCE_IMAGE:
	case MANIFEST_SOURCE_SNAPSHOT:
		if (m->source.has_digest)
			hex_encode(m->source.digest, sizeof(m->source.digest), hex);
		printf("Source:      %s '%s'%s%.16s%s\n", source_type_word(m->source.type),
		       m->source.name ? m->source.name : "?",
		       m->source.has_digest ? " (digest " : "",
		       m->source.has_digest ? hex : "", m->source.has_digest ? "...)" : "");
		break;
	case MANIFEST_SOURCE_FILE:
		printf("Source:      file '%s'%s%s%s\n", m->source.name ? m->source.name : "?",
		       m->source.format ? " (" : "", m->source.format ? m->source.format : "",
		       m->source.format ? ")" : "");
		break;
	default:
		break;
	}
}

static void describe_text(const struct manifest *m, const struct describe_info *di)
{
	char buf[CHUNK_ID_STRING_MAX], a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX],
		c[FORMAT_BYTES_MAX];

	printf("Name:        %s\n", m->name);
	if (m->kind != MANIFEST_KIND_IMAGE)
		printf("Kind:        %s\n", manifest_kind_to_string(m->kind));
	if (m->family)
		printf("Family:      %s\n", m->family);
	if (m->description)
		printf("Description: %s\n", m->description);
	for (char **l = m->labels; l && *l; l++)
		printf("Label:       %s\n", *l);
	printf("Created:     %s\n", format_timestamp(buf, sizeof(buf), m->created_unix));
	describe_source_text(m);
	if (m->kind == MANIFEST_KIND_IMAGE) {
		const struct deprecation *d = &di->deprecation;

		if (di->deprecation_damaged)
			printf("State:       UNKNOWN (the deprecation record is damaged)\n");
		else
			printf("State:       %s%s%s%s\n", deprecation_state_to_string(di->state),
			       di->have_deprecation && d->replacement ? ", replacement '" : "",
			       di->have_deprecation && d->replacement ? d->replacement : "",
			       di->have_deprecation && d->replacement ? "'" : "");
		if (di->have_deprecation) {
			const int64_t t[] = { d->deprecate_on, d->obsolete_on, d->delete_on };
			static const char *const w[] = { "deprecated", "obsolete", "deleted" };
			for (size_t i = 0; i < ELEMENTSOF(t); i++)
				if (t[i] != DEPRECATION_TIME_UNSET)
					printf("Schedule:    %s on %s\n", w[i],
					       format_timestamp(buf, sizeof(buf), t[i]));
		}
	}
	if (di->have_storage)
		printf("Storage:     %s logical, %s stored, %s unique to this %s\n",
		       format_bytes(a, sizeof(a), di->storage.logical_bytes),
		       format_bytes(b, sizeof(b), di->storage.stored_bytes),
		       format_bytes(c, sizeof(c), di->storage.unique_bytes),
		       manifest_kind_to_string(m->kind));
	if (di->have_storage && di->storage.missing_chunks)
		printf("Missing:     %llu chunks are not in the store\n",
		       (unsigned long long) di->storage.missing_chunks);
	printf("Captured by: imager %s on %s %s\n", m->tool_version,
	       m->host_vendor ? m->host_vendor : "unknown", m->host_product ? m->host_product : "");
	hex_encode(m->content_digest, sizeof(m->content_digest), buf);
	printf("Digest:      %s\n", buf);
	if (di->encrypted)
		printf("Encryption:  %s (store key %s)\n", CRYPT_CIPHER_NAME, di->key_id);
	else
		printf("Encryption:  none\n");
	cli_signatures_print_text(&di->signatures);
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

int cli_describe_manifest(enum manifest_kind kind, const char *store_arg, const char *name,
			  bool json)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_(store_refs_freep) struct store_refs *refs = NULL;
	struct describe_info di = { .deprecation = DEPRECATION_INIT };
	int64_t now;
	int r;

	r = cli_now(&now);
	if (r < 0)
		return r;
	r = cli_load_manifest(store_arg, kind, name, IMAGE_USE_INSPECT, &s, &m);
	if (r < 0)
		return r;
	if (kind == MANIFEST_KIND_IMAGE) {
		r = store_get_deprecation(s, name, &di.deprecation);
		if (r >= 0) {
			di.have_deprecation = true;
			di.state = deprecation_effective_state(&di.deprecation, now);
		} else if (r != -ENOENT)
			di.deprecation_damaged = true;
	}
	/* unique bytes need every manifest; a damaged one elsewhere leaves them unknown */
	r = store_refs_load(s, &refs, NULL);
	if (r >= 0 && store_image_storage(s, m, refs, &di.storage) >= 0)
		di.have_storage = true;
	else
		log_debug_errno(r, "No storage accounting for '%s': %m", name);
	cli_signatures_load(s, m, &di.signatures);
	di.encrypted = store_key_id(s, di.key_id) >= 0;
	if (json)
		describe_json(m, s, &di);
	else
		describe_text(m, &di);
	deprecation_done(&di.deprecation);
	cli_signatures_done(&di.signatures);
	return 0;
}

/* ---- the images subcommands ---- */

static int parse_common(int argc, char *argv[], const char *usage, bool list)
{
	enum { ARG_FAMILY = 0x100, ARG_SHOW_DEPRECATED };
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'J' },
		{ "family", required_argument, NULL, ARG_FAMILY },
		{ "show-deprecated", no_argument, NULL, ARG_SHOW_DEPRECATED },
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
		case ARG_FAMILY:
			if (!list)
				return usage_error("images describe", "--family applies to list");
			if (!manifest_name_is_valid(optarg))
				return usage_error("images list", "invalid family name '%s'", optarg);
			arg_family = optarg;
			break;
		case ARG_SHOW_DEPRECATED:
			if (!list)
				return usage_error("images describe",
						   "--show-deprecated applies to list");
			arg_show_deprecated = true;
			break;
		default:
			return usage_error("images", "bad option");
		}
	return 1;
}

int images_list(int argc, char *argv[])
{
	int r = parse_common(argc, argv,
			     "Usage: imager images list [--family F] [--show-deprecated] [--json] "
			     "[--store DIR]\n\n"
			     "Lists the images of a store. Images that are DEPRECATED, OBSOLETE or\n"
			     "DELETED (now, schedules included) are hidden unless --show-deprecated.\n",
			     true);

	if (r <= 0)
		return r;
	if (optind != argc)
		return usage_error("images list", "unexpected argument '%s'", argv[optind]);
	return cli_list_manifests(MANIFEST_KIND_IMAGE, arg_store, arg_family, arg_show_deprecated,
				  arg_json);
}

int images_describe(int argc, char *argv[])
{
	int r = parse_common(argc, argv,
			     "Usage: imager images describe NAME [--json] [--store DIR]\n", false);

	if (r <= 0)
		return r;
	if (argc - optind != 1)
		return usage_error("images describe", "exactly one image NAME is required");
	return cli_describe_manifest(MANIFEST_KIND_IMAGE, arg_store, argv[optind], arg_json);
}
