/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vdisk_chunks_stream_tar() on a hostile archive (gzip or not; ustar, pax,
 * GNU, sparse members). It streams disk.raw's chunks into a scratch store
 * under $TMPDIR, made once per process; after each input the chunks it
 * added are dropped again (vdisk_chunks_drop_new()), so the store stays
 * small and a failed stream is seen to leave nothing behind.
 */
#include <ftw.h>

#include "vdisk-read.h"
#include "imager/store.h"

/*
 * The store fsync()s every chunk and directory; a scratch store needs no
 * durability and the fuzzer wants thousands of inputs a second. These
 * definitions in the executable take precedence over libc's.
 */
int fsync(int fd)
{
	return 0;
}

int fdatasync(int fd)
{
	return 0;
}

static struct store *store;
static char store_dir[4096];

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static void remove_store(void)
{
	store = store_free(store);
	if (store_dir[0])
		(void) nftw(store_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR") ?: "/tmp";

	snprintf(store_dir, sizeof(store_dir), "%s/fuzz-tar-XXXXXX", tmp);
	if (!mkdtemp(store_dir) || store_open(store_dir, true, &store) < 0) {
		fprintf(stderr, "fuzz-tar: cannot make a scratch store under %s\n", tmp);
		exit(1);
	}
	atexit(remove_store);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *reason = NULL;
	struct vdisk *v = NULL;
	char path[64];
	int r;

	fd = fuzz_memfd(data, size, NULL, 0, size);
	if (fd < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (vdisk_chunks_new(store, &v) < 0)
		return 0;
	r = vdisk_chunks_stream_tar(v, path, NULL, NULL, &reason);
	if (r == 0) {
		FUZZ_CHECK(v->size_bytes > 0 && v->size_bytes <= VDISK_SIZE_MAX);
		vdisk_read_spread(v);
	}
	/* also after a failed stream: what it stored must go again (no lock:
	 * nothing else uses this store) */
	FUZZ_CHECK(vdisk_chunks_drop_new(v) >= 0);
	vdisk_free(v);
	return 0;
}
