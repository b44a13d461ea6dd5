/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * An ordered parallel map with bounded memory, the engine of capture, flash
 * and verify: a producer thread fills numbered items (disk reads, or chunk
 * numbers), worker threads transform them out of order (hash, compress,
 * decompress, verify), and the calling thread consumes them strictly in
 * sequence (record results, write to the target). At most @n_slots items
 * exist at once, so memory is n_slots * item size whatever the disk size.
 *
 * Any callback returning < 0 stops the whole map; pmap_run() returns the
 * first error after every thread has stopped. A producer returning 0 ends the
 * stream.
 */

#include <stddef.h>
#include <stdint.h>

struct pmap_ops {
	/* Fill @item for sequence number @seq. 1 = produced, 0 = end of stream, <0 error. */
	int (*produce)(void *userdata, uint64_t seq, void *item);
	/* Transform @item; runs on @n_workers threads concurrently. 0 or <0. */
	int (*work)(void *userdata, void *item);
	/* Consume @item in order of @seq on the calling thread. 0 or <0. */
	int (*consume)(void *userdata, uint64_t seq, void *item);
};

/*
 * @items is an array of @n_slots items of @item_size bytes each, allocated
 * and initialised by the caller (buffers inside them are reused slot by slot).
 */
int pmap_run(const struct pmap_ops *ops, void *userdata, void *items, size_t item_size,
	     unsigned n_slots, unsigned n_workers);

/* Number of CPUs available to this process (at least 1). */
unsigned cpus_online(void);
/*
 * Workers for a map whose work blocks on I/O as well as computing (capture
 * reads the disk, flash writes it): two more than the CPUs, so that while
 * two wait for the device the CPUs still have work.
 */
unsigned io_workers(void);
