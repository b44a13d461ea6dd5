/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager store gc [--store DIR] [--dry-run] [--no-wait] [--json]
 * imager store verify [--store DIR] [--json]
 *
 * gc removes the chunks no image or snapshot names, under the store's
 * exclusive lock (docs/FORMAT.md, "Locking and garbage collection"), so a
 * capture running at the same time loses nothing: gc waits for it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "imager/gc.h"
#include "imager/store.h"
#include "lifecycle.h"
#include "output.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)

static const char *arg_store;
static bool arg_dry_run, arg_no_wait, arg_json;

static int parse_argv(int argc, char *argv[], const char *sub)
{
	enum { ARG_NO_WAIT = 0x100 };
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "no-wait", no_argument, NULL, ARG_NO_WAIT },
		{ "json", no_argument, NULL, 'J' },
		{}
	};
	bool gc = strcmp(sub, "gc") == 0;
	int c;

	while ((c = getopt_long(argc, argv, "hs:nJ", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			if (gc)
				printf("Usage: imager store gc [--store DIR] [--dry-run] [--no-wait] "
				       "[--json]\n\n"
				       "Remove the chunks no image or snapshot references, leftover\n"
				       "temporary files older than an hour, and deprecation and signature\n"
				       "files of deleted images. Waits for running captures and other writers\n"
				       "(--no-wait: fail instead). Refuses if a manifest is damaged.\n");
			else
				printf("Usage: imager store verify [--store DIR] [--json]\n\n"
				       "Re-hash every chunk, decode every manifest and deprecation record,\n"
				       "and check that every chunk a manifest names is present. One line\n"
				       "per problem; exit 3 if there is any.\n");
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'n':
			if (!gc)
				return usage_error("store verify", "--dry-run applies to gc");
			arg_dry_run = true;
			break;
		case ARG_NO_WAIT:
			if (!gc)
				return usage_error("store verify", "--no-wait applies to gc");
			arg_no_wait = true;
			break;
		case 'J':
			arg_json = true;
			break;
		default:
			return usage_error(gc ? "store gc" : "store verify", "bad option");
		}
	if (optind != argc)
		return usage_error(gc ? "store gc" : "store verify", "unexpected argument '%s'",
				   argv[optind]);
	return 1;
}

static int open_store(struct store **ret)
{
	return cli_store_open(cli_store_path(arg_store), false, ret);
}

static int store_gc_verb(int argc, char *argv[])
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_free_ char *bad = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	struct gc_options o = { .dry_run = false, .tmp_age_seconds = GC_TMP_AGE_SECONDS_DEFAULT };
	struct gc_stats st = {};
	char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];
	int r;

	r = parse_argv(argc, argv, "gc");
	if (r <= 0)
		return r;
	o.dry_run = arg_dry_run;
	r = cli_now(&o.now);
	if (r < 0)
		return r;
	r = open_store(&s);
	if (r < 0)
		return r;
	r = cli_store_lock(s, STORE_LOCK_EXCLUSIVE, !arg_no_wait, &lock_fd);
	if (r < 0)
		return r;
	r = store_gc(s, &o, &st, &bad);
	if (r == -EBADMSG || r == -EPROTONOSUPPORT)
		return log_error_errno(r, "Refusing to collect garbage: %s cannot be read (%s), so "
				       "the chunks it needs are unknown; repair or delete it first.",
				       bad ? bad : "a manifest",
				       r == -EBADMSG ? "damaged" : "needs a newer imager");
	if (r < 0)
		return log_error_errno(r, "Garbage collection of '%s' failed: %m", store_path(s));

	if (arg_json) {
		struct json j;
		json_init(&j, stdout, true);
		json_object_begin(&j, NULL);
		json_bool(&j, "dry_run", arg_dry_run);
		json_u64(&j, "images", st.images);
		json_u64(&j, "snapshots", st.snapshots);
		json_u64(&j, "removed_chunks", st.removed_chunks);
		json_u64(&j, "removed_bytes", st.removed_bytes);
		json_u64(&j, "kept_chunks", st.kept_chunks);
		json_u64(&j, "kept_bytes", st.kept_bytes);
		json_u64(&j, "removed_temporaries", st.removed_tmp);
		json_u64(&j, "removed_temporary_bytes", st.removed_tmp_bytes);
		json_u64(&j, "removed_orphan_files", st.removed_orphans);
		json_object_end(&j);
		json_finish(&j);
		return 0;
	}
	if (arg_quiet)
		return 0;
	printf("%s %llu unreferenced chunk%s (%s); kept %llu chunk%s (%s) referenced by %zu "
	       "image%s and %zu snapshot%s.\n",
	       arg_dry_run ? "Would remove" : "Removed", (unsigned long long) st.removed_chunks,
	       st.removed_chunks == 1 ? "" : "s", format_bytes(a, sizeof(a), st.removed_bytes),
	       (unsigned long long) st.kept_chunks, st.kept_chunks == 1 ? "" : "s",
	       format_bytes(b, sizeof(b), st.kept_bytes), st.images, st.images == 1 ? "" : "s",
	       st.snapshots, st.snapshots == 1 ? "" : "s");
	if (st.removed_tmp)
		printf("%s %llu stale temporary file%s (%s).\n",
		       arg_dry_run ? "Would remove" : "Removed", (unsigned long long) st.removed_tmp,
		       st.removed_tmp == 1 ? "" : "s", format_bytes(a, sizeof(a), st.removed_tmp_bytes));
	if (st.removed_orphans)
		printf("%s %llu deprecation or signature file%s of deleted manifests.\n",
		       arg_dry_run ? "Would remove" : "Removed",
		       (unsigned long long) st.removed_orphans, st.removed_orphans == 1 ? "" : "s");
	return 0;
}

struct problems {
	struct json *j; /* NULL: text */
};

static void on_problem(const char *line, void *userdata)
{
	struct problems *p = userdata;

	if (p->j)
		json_string(p->j, NULL, line);
	else
		printf("%s\n", line);
}

static int store_verify_verb(int argc, char *argv[])
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	struct verify_stats st = {};
	struct problems p = {};
	struct json j;
	char a[FORMAT_BYTES_MAX];
	int r;

	r = parse_argv(argc, argv, "verify");
	if (r <= 0)
		return r;
	r = open_store(&s);
	if (r < 0)
		return r;
	/* a shared lock: gc must not remove chunks between our walk and the manifests */
	r = cli_store_lock(s, STORE_LOCK_SHARED, true, &lock_fd);
	if (r < 0)
		return r;
	if (arg_json) {
		json_init(&j, stdout, true);
		json_object_begin(&j, NULL);
		json_array_begin(&j, "problems");
		p.j = &j;
	}
	r = store_verify(s, on_problem, &p, &st);
	if (arg_json) {
		json_array_end(&j);
		json_u64(&j, "chunks", st.chunks);
		json_u64(&j, "chunk_bytes", st.chunk_bytes);
		json_u64(&j, "images", st.images);
		json_u64(&j, "snapshots", st.snapshots);
		json_bool(&j, "complete", r >= 0);
		json_object_end(&j);
		json_finish(&j);
	}
	if (r < 0)
		return log_error_errno(r, "Verification of '%s' failed: %m", store_path(s));
	if (st.problems > 0) {
		log_error("Store '%s' has %llu problem%s.", store_path(s),
			  (unsigned long long) st.problems, st.problems == 1 ? "" : "s");
		return IMAGER_EXIT_DATA;
	}
	if (!arg_json && !arg_quiet)
		printf("Store '%s' verified: %llu chunks (%s), %zu image%s, %zu snapshot%s, "
		       "no problems.\n",
		       store_path(s), (unsigned long long) st.chunks,
		       format_bytes(a, sizeof(a), st.chunk_bytes), st.images,
		       st.images == 1 ? "" : "s", st.snapshots, st.snapshots == 1 ? "" : "s");
	return 0;
}

static const struct verb store_verbs[] = {
	{ "gc", "Remove chunks no image or snapshot references", store_gc_verb },
	{ "verify", "Check every chunk and manifest of a store", store_verify_verb },
	/* encryption keys (verb-store-key.c) */
	{ "init", "Make a new store (encrypted unless --no-encryption)", store_init_verb },
	{ "info", "Show a store's encryption and key slots", store_info_verb },
	{ "passwd", "Replace the key that unlocks a store", store_passwd_verb },
	{ "add-key", "Add a passphrase or key file to a store", store_add_key_verb },
	{ "remove-key", "Remove a key slot from a store", store_remove_key_verb },
	{ "make-key-file", "Write a new random key file", store_make_key_file_verb },
	{}
};

int verb_store(int argc, char *argv[])
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("Usage: imager store SUBCOMMAND [ARGS]\n\n");
		for (const struct verb *v = store_verbs; v->name; v++)
			printf("  %-12s %s\n", v->name, v->summary);
		return argc < 2 ? -EINVAL : 0;
	}
	for (const struct verb *v = store_verbs; v->name; v++)
		if (strcmp(v->name, argv[1]) == 0)
			return v->run(argc - 1, argv + 1);
	return usage_error("store", "unknown subcommand '%s'", argv[1]);
}
