/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The flash run shared by `flash` and `snapshots restore`. Every check that
 * can refuse runs, for every target, before the first byte is written to
 * any of them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flash-run.h"
#include "imager/flash.h"
#include "imager/ptable.h"
#include "lifecycle.h"
#include "output.h"
#include "report.h"
#include "target.h"
#include "trust.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct manifest *, manifest_free)
DEFINE_CLEANUP(struct ptable *, ptable_free)

static void print_plan(const struct manifest_disk *md, const struct target *t, const char *desc,
		       bool grow)
{
	_cleanup_(ptable_freep) struct ptable *pt = NULL;
	char used[FORMAT_BYTES_MAX], need[FORMAT_BYTES_MAX];

	printf("Would write %s of data (%zu chunks) onto %s; the image needs %s.\n",
	       format_bytes(used, sizeof(used), md->used_bytes), md->n_chunks, desc,
	       format_bytes(need, sizeof(need), flash_required_bytes(md)));
	if (flash_target_ptable(md, t->size_bytes, grow, &pt) < 0)
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

static int flash(const struct flash_request *req, struct report *rep)
{
	_cleanup_(store_freep) struct store *store = NULL;
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	struct target targets[FLASH_TARGETS_MAX] = {};
	size_t n_targets = req->n_targets;
	struct report_disk *rd[FLASH_TARGETS_MAX] = {};
	const char *image = req->name;
	int r;

	for (size_t i = 0; i < FLASH_TARGETS_MAX; i++)
		targets[i].fd = -EBADF;
	if (n_targets == 0 || n_targets > FLASH_TARGETS_MAX)
		return log_error_errno(-EINVAL, "Between 1 and %d targets, please.", FLASH_TARGETS_MAX);

	r = cli_load_manifest(req->store_arg, req->kind, image, IMAGE_USE_NEW, &store, &m);
	if (r < 0)
		return r;
	/* gc must not remove the chunks while we read them; flash_check() below sees them all */
	r = cli_store_lock(store, STORE_LOCK_SHARED, true, &lock_fd);
	if (r < 0)
		return r;
	r = cli_check_trust(store, req->trust, req->action ? req->action : "flash", &m);
	if (r < 0)
		return r;
	report_set_digest(rep, m->content_digest);
	if (n_targets != m->n_disks) {
		r = log_error_errno(-EINVAL, "%s '%s' has %zu disk%s, but %zu target%s given.",
				    req->kind == MANIFEST_KIND_SNAPSHOT ? "Snapshot" : "Image", image, m->n_disks, m->n_disks == 1 ? "" : "s", n_targets,
				    n_targets == 1 ? " was" : "s were");
		return IMAGER_EXIT_USAGE;
	}

	/* every check, for every target, before anything is written */
	for (size_t i = 0; i < n_targets; i++) {
		const char *path = req->targets[i];
		const struct manifest_disk *md = &m->disks[i];
		_cleanup_free_ char *reason = NULL;

		for (size_t k = 0; k < i; k++)
			if (streq_ptr(req->targets[k], path)) {
				r = log_error_errno(-EINVAL, "Target '%s' is given twice.", path);
				goto out;
			}
		r = cli_target_inspect(path, md, req->size_bytes, true, &targets[i]);
		if (targets[i].dev)
			rd[i] = report_add_disk(rep, targets[i].dev->node, targets[i].dev->model,
						targets[i].dev->serial, targets[i].dev->wwn,
						targets[i].size_bytes);
		if (r < 0)
			goto out;
		r = flash_check(md, store, targets[i].size_bytes, targets[i].logical_sector_bytes,
				req->grow, &reason);
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
		if (req->dry_run) {
			print_plan(&m->disks[i], &targets[i], desc, req->grow);
			continue;
		}
		if (req->yes || (targets[i].is_file && targets[i].file_created))
			continue;
		if (!cli_confirm(desc)) {
			r = log_error_errno(-ECANCELED,
					    "Refusing to overwrite %s without --yes.", desc);
			goto out;
		}
	}
	if (req->dry_run) {
		r = 0;
		goto out;
	}
	/* a damaged or altered chunk is refused before the first write to any target */
	for (size_t i = 0; i < n_targets; i++) {
		struct flash_options o = {
			.disk_index = (unsigned) i, .progress = cli_progress,
			.userdata = (void *) &req->progress,
		};
		_cleanup_free_ char *reason = NULL;

		r = flash_authenticate(&m->disks[i], store, &o, &reason);
		cli_progress_end(req->progress);
		if (r < 0) {
			r = log_error_errno(r, "Refusing to flash %s '%s': %s.",
					    req->kind == MANIFEST_KIND_SNAPSHOT ? "snapshot" : "image",
					    image, reason ? reason : strerror(-r));
			goto out;
		}
	}

	for (size_t i = 0; i < n_targets; i++) {
		const struct manifest_disk *md = &m->disks[i];
		struct flash_options o = {
			.grow = req->grow, .verify = req->verify, .discard = req->discard,
			.disk_index = (unsigned) i, .progress = cli_progress,
			.userdata = (void *) &req->progress,
		};
		struct flash_stats st = {};
		_cleanup_free_ char *reason = NULL;
		char w[FORMAT_BYTES_MAX], rate[FORMAT_BYTES_MAX];

		r = cli_target_open_write(&targets[i]);
		if (r < 0)
			goto out;
		o.fresh_file = targets[i].is_file;
		r = flash_disk(targets[i].fd, targets[i].size_bytes, md, store, &o, &st, &reason);
		cli_progress_end(req->progress);
		if (rd[i]) {
			rd[i]->data_bytes = st.written_bytes;
			rd[i]->verified_bytes = st.verified_bytes;
			rd[i]->write_seconds = st.write_seconds;
			rd[i]->verify_seconds = st.verify_seconds;
			rd[i]->verify = !req->verify ? "skipped" : r == -EBADMSG ? "failed"
								     : r >= 0 ? "ok" : NULL;
		}
		if (r == -EBADMSG) {
			r = log_error_errno(r, "Flashing '%s' failed verification: %s.",
					    targets[i].dev->node,
					    reason ? reason : store_is_encrypted(store) ?
					    "a chunk failed authentication (damaged or altered)" :
					    "a chunk does not match its hash");
			goto out;
		}
		if (r < 0) {
			r = log_error_errno(r, "Failed to flash '%s': %s", targets[i].dev->node,
					    reason ? reason : strerror(-r));
			goto out;
		}
		if (req->progress == PROGRESS_JSON) {
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
			printf("%s '%s' onto %s: %s written in %.1f s (%s/s)%s\n",
			       req->kind == MANIFEST_KIND_SNAPSHOT ? "Restored snapshot" : "Flashed",
			       m->name,
			       targets[i].dev->node, format_bytes(w, sizeof(w), st.written_bytes),
			       st.write_seconds,
			       format_bytes(rate, sizeof(rate),
					    st.write_seconds > 0
						    ? (uint64_t) ((double) st.written_bytes /
								  st.write_seconds)
						    : 0),
			       req->verify ? ", verified" : ", not verified");
	}
	r = 0;
out:
	for (size_t i = 0; i < FLASH_TARGETS_MAX; i++)
		cli_target_done(&targets[i]);
	return r;
}

int flash_run(const struct flash_request *req)
{
	struct report rep;
	int r;

	report_init(&rep, req->action ? req->action : "flash", cli_store_path(req->store_arg),
		    req->name);
	r = flash(req, &rep);
	(void) report_write(&rep, req->report_path, r);
	report_done(&rep);
	return r;
}
