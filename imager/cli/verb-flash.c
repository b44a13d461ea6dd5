/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager flash IMAGE DISK... [--store DIR] [--yes] [--grow] [--no-verify]
 *              [--dry-run] [--discard] [--size SIZE] [--progress=MODE]
 *
 * Every check that can refuse runs, for every target, before the first byte
 * is written to any of them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "imager/flash.h"
#include "imager/ptable.h"
#include "output.h"
#include "report.h"
#include "target.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)
DEFINE_CLEANUP(struct ptable *, ptable_free)

#define TARGETS_MAX 16

static const char *arg_store, *arg_report;
static bool arg_yes, arg_grow, arg_verify = true, arg_dry_run, arg_discard;
static uint64_t arg_size_bytes;
static enum progress_mode arg_progress = PROGRESS_AUTO;

static void help(void)
{
	printf("Usage: imager flash IMAGE DISK... [OPTIONS]\n\n"
	       "Write an image onto disks (block devices, or regular files as sparse images);\n"
	       "the image's disks map to the DISKs in order.\n\n"
	       "  -s --store DIR      store directory (default $IMAGER_STORE, then %s)\n"
	       "  -y --yes            do not ask before overwriting\n"
	       "     --grow           extend the last partition and its ext file system to the end\n"
	       "     --no-verify      skip the read-back verification\n"
	       "  -n --dry-run        print what would be written, write nothing\n"
	       "     --discard        TRIM the whole target before writing\n"
	       "     --size SIZE      size of a file target (default: the image disk's size)\n"
	       "     --progress=MODE  auto, tty, json or none\n"
	       "     --report FILE    write a JSON report of the run (also on failure)\n",
	       IMAGER_STORE_DEFAULT);
}

static int parse_argv(int argc, char *argv[])
{
	enum { ARG_GROW = 0x100, ARG_NO_VERIFY, ARG_DISCARD, ARG_SIZE, ARG_PROGRESS, ARG_REPORT };
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' },
		{ "yes", no_argument, NULL, 'y' },
		{ "grow", no_argument, NULL, ARG_GROW },
		{ "no-verify", no_argument, NULL, ARG_NO_VERIFY },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "discard", no_argument, NULL, ARG_DISCARD },
		{ "size", required_argument, NULL, ARG_SIZE },
		{ "progress", required_argument, NULL, ARG_PROGRESS },
		{ "report", required_argument, NULL, ARG_REPORT },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "hs:yn", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case 'y':
			arg_yes = true;
			break;
		case ARG_GROW:
			arg_grow = true;
			break;
		case ARG_NO_VERIFY:
			arg_verify = false;
			break;
		case 'n':
			arg_dry_run = true;
			break;
		case ARG_DISCARD:
			arg_discard = true;
			break;
		case ARG_SIZE:
			if (parse_size(optarg, &arg_size_bytes) < 0 || arg_size_bytes == 0)
				return usage_error("flash", "invalid --size '%s'", optarg);
			break;
		case ARG_PROGRESS:
			arg_progress = progress_mode_from_string(optarg);
			if ((int) arg_progress < 0)
				return usage_error("flash", "unknown --progress mode '%s'", optarg);
			break;
		case ARG_REPORT:
			arg_report = optarg;
			break;
		default:
			return usage_error("flash", "bad option");
		}
	if (argc - optind < 2)
		return usage_error("flash", "IMAGE and DISK are required");
	if (argc - optind - 1 > TARGETS_MAX)
		return usage_error("flash", "at most %d disks", TARGETS_MAX);
	return 1;
}

static void print_plan(const struct manifest_disk *md, const struct target *t, const char *desc)
{
	_cleanup_(ptable_freep) struct ptable *pt = NULL;
	char used[FORMAT_BYTES_MAX], need[FORMAT_BYTES_MAX];

	printf("Would write %s of data (%zu chunks) onto %s; the image needs %s.\n",
	       format_bytes(used, sizeof(used), md->used_bytes), md->n_chunks, desc,
	       format_bytes(need, sizeof(need), flash_required_bytes(md)));
	if (flash_target_ptable(md, t->size_bytes, arg_grow, &pt) < 0)
		return;
	printf("Partition table: %s, disk id %s\n", ptable_label_to_string(pt->label),
	       pt->disk_id ? pt->disk_id : "-");
	for (size_t i = 0; i < pt->n_entries; i++) {
		const struct ptable_entry *e = &pt->entries[i];
		const struct manifest_partition *p = NULL;
		for (size_t k = 0; k < md->n_partitions; k++)
			if (md->partitions[k].partno == e->partno)
				p = &md->partitions[k];
		printf("  %2u start %12llu size %12llu type %s %s%s\n", e->partno,
		       (unsigned long long) e->start_bytes, (unsigned long long) e->size_bytes,
		       e->type ? e->type : "-",
		       p ? capture_method_to_string(p->method) : "",
		       p && p->fs_type ? p->fs_type : "");
	}
}

static int flash(int argc, char *argv[], struct report *rep)
{
	_cleanup_(store_freep) struct store *store = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	struct target targets[TARGETS_MAX] = {};
	size_t n_targets = 0;
	struct report_disk *rd[TARGETS_MAX] = {};
	const char *image;
	int r;

	image = argv[optind];
	n_targets = (size_t) (argc - optind - 1);
	for (size_t i = 0; i < TARGETS_MAX; i++)
		targets[i].fd = -EBADF;

	r = cli_load_image(arg_store, image, &store, &m);
	if (r < 0)
		return r;
	report_set_digest(rep, m->content_digest);
	if (n_targets != m->n_disks) {
		r = log_error_errno(-EINVAL, "Image '%s' has %zu disk%s, but %zu target%s given.",
				    image, m->n_disks, m->n_disks == 1 ? "" : "s", n_targets,
				    n_targets == 1 ? " was" : "s were");
		return IMAGER_EXIT_USAGE;
	}

	/* every check, for every target, before anything is written */
	for (size_t i = 0; i < n_targets; i++) {
		const char *path = argv[optind + 1 + i];
		const struct manifest_disk *md = &m->disks[i];
		_cleanup_free_ char *reason = NULL;

		for (size_t k = 0; k < i; k++)
			if (streq_ptr(argv[optind + 1 + k], path)) {
				r = log_error_errno(-EINVAL, "Target '%s' is given twice.", path);
				goto out;
			}
		r = cli_target_inspect(path, md, arg_size_bytes, true, &targets[i]);
		if (targets[i].dev)
			rd[i] = report_add_disk(rep, targets[i].dev->node, targets[i].dev->model,
						targets[i].dev->serial, targets[i].dev->wwn,
						targets[i].size_bytes);
		if (r < 0)
			goto out;
		r = flash_check(md, store, targets[i].size_bytes, targets[i].logical_sector_bytes,
				arg_grow, &reason);
		if (r == -ENODATA) {
			r = log_error_errno(r, "Image '%s' is incomplete: %s.", image, reason);
			goto out;
		}
		if (r < 0) {
			r = log_error_errno(r, "Refusing to flash '%s': %s.", path,
					    reason ? reason : strerror(-r));
			goto out;
		}
	}
	for (size_t i = 0; i < n_targets; i++) {
		_cleanup_free_ char *desc = cli_target_describe(&targets[i]);
		if (!desc) {
			r = log_oom();
			goto out;
		}
		if (arg_dry_run) {
			print_plan(&m->disks[i], &targets[i], desc);
			continue;
		}
		if (arg_yes || (targets[i].is_file && targets[i].file_created))
			continue;
		if (!cli_confirm(desc)) {
			r = log_error_errno(-ECANCELED,
					    "Refusing to overwrite %s without --yes.", desc);
			goto out;
		}
	}
	if (arg_dry_run) {
		r = 0;
		goto out;
	}

	for (size_t i = 0; i < n_targets; i++) {
		const struct manifest_disk *md = &m->disks[i];
		struct flash_options o = {
			.grow = arg_grow, .verify = arg_verify, .discard = arg_discard,
			.disk_index = (unsigned) i, .progress = cli_progress, .userdata = &arg_progress,
		};
		struct flash_stats st = {};
		_cleanup_free_ char *reason = NULL;
		char w[FORMAT_BYTES_MAX], rate[FORMAT_BYTES_MAX];

		r = cli_target_open_write(&targets[i]);
		if (r < 0)
			goto out;
		o.fresh_file = targets[i].is_file;
		r = flash_disk(targets[i].fd, targets[i].size_bytes, md, store, &o, &st, &reason);
		cli_progress_end(arg_progress);
		if (rd[i]) {
			rd[i]->data_bytes = st.written_bytes;
			rd[i]->verified_bytes = st.verified_bytes;
			rd[i]->write_seconds = st.write_seconds;
			rd[i]->verify_seconds = st.verify_seconds;
			rd[i]->verify = !arg_verify ? "skipped" : r == -EBADMSG ? "failed"
								     : r >= 0 ? "ok" : NULL;
		}
		if (r == -EBADMSG) {
			r = log_error_errno(r, "Flashing '%s' failed verification: %s.",
					    targets[i].dev->node,
					    reason ? reason : "a chunk does not match its hash");
			goto out;
		}
		if (r < 0) {
			r = log_error_errno(r, "Failed to flash '%s': %s", targets[i].dev->node,
					    reason ? reason : strerror(-r));
			goto out;
		}
		if (arg_progress == PROGRESS_JSON) {
			char digest[65];
			hex_encode(m->content_digest, sizeof(m->content_digest), digest);
			printf("{\"phase\":\"done\",\"image\":\"%s\",\"target\":\"%s\",\"disk\":%zu,"
			       "\"written_bytes\":%llu,\"zeroed_bytes\":%llu,\"verified_bytes\":%llu,"
			       "\"write_seconds\":%.3f,\"verify_seconds\":%.3f,\"digest\":\"%s\"}\n",
			       m->name, targets[i].dev->node, i,
			       (unsigned long long) st.written_bytes,
			       (unsigned long long) st.zeroed_bytes,
			       (unsigned long long) st.verified_bytes, st.write_seconds,
			       st.verify_seconds, digest);
		} else if (!arg_quiet)
			printf("Flashed '%s' onto %s: %s written in %.1f s (%s/s)%s\n", m->name,
			       targets[i].dev->node, format_bytes(w, sizeof(w), st.written_bytes),
			       st.write_seconds,
			       format_bytes(rate, sizeof(rate),
					    st.write_seconds > 0
						    ? (uint64_t) ((double) st.written_bytes /
								  st.write_seconds)
						    : 0),
			       arg_verify ? ", verified" : ", not verified");
	}
	r = 0;
out:
	for (size_t i = 0; i < TARGETS_MAX; i++)
		cli_target_done(&targets[i]);
	return r;
}

int verb_flash(int argc, char *argv[])
{
	struct report rep;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	report_init(&rep, "flash", cli_store_path(arg_store), argv[optind]);
	r = flash(argc, argv, &rep);
	(void) report_write(&rep, arg_report, r);
	report_done(&rep);
	return r;
}
