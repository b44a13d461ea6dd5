/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cleanup.h"
#include "pmap.h"

enum slot_state { SLOT_EMPTY, SLOT_PRODUCED, SLOT_WORKING, SLOT_DONE };

struct pmap {
	const struct pmap_ops *ops;
	void *userdata;
	uint8_t *items;
	size_t item_size;
	unsigned n_slots;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum slot_state *state;
	uint64_t *seq;
	uint64_t next_produce, next_work, next_consume;
	bool produced_all;
	int error;
};

static void *item_at(struct pmap *p, unsigned slot)
{
	return p->items + (size_t) slot * p->item_size;
}

static void fail_locked(struct pmap *p, int r)
{
	if (p->error == 0)
		p->error = r;
	pthread_cond_broadcast(&p->cond);
}

static void *producer_thread(void *arg)
{
	struct pmap *p = arg;

	for (;;) {
		unsigned slot;
		uint64_t seq;
		int r;

		pthread_mutex_lock(&p->lock);
		seq = p->next_produce;
		slot = (unsigned) (seq % p->n_slots);
		while (!p->error && p->state[slot] != SLOT_EMPTY)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->error) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		pthread_mutex_unlock(&p->lock);

		r = p->ops->produce(p->userdata, seq, item_at(p, slot));

		pthread_mutex_lock(&p->lock);
		if (r < 0)
			fail_locked(p, r);
		else if (r == 0)
			p->produced_all = true;
		else {
			p->seq[slot] = seq;
			p->state[slot] = SLOT_PRODUCED;
			p->next_produce++;
		}
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		if (r <= 0)
			return NULL;
	}
}

static void *worker_thread(void *arg)
{
	struct pmap *p = arg;

	for (;;) {
		unsigned slot;
		int r;

		pthread_mutex_lock(&p->lock);
		for (;;) {
			if (p->error)
				break;
			if (p->next_work < p->next_produce)
				break;
			if (p->produced_all)
				break;
			pthread_cond_wait(&p->cond, &p->lock);
		}
		if (p->error || p->next_work >= p->next_produce) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		slot = (unsigned) (p->next_work % p->n_slots);
		p->next_work++;
		p->state[slot] = SLOT_WORKING;
		pthread_mutex_unlock(&p->lock);

		r = p->ops->work ? p->ops->work(p->userdata, item_at(p, slot)) : 0;

		pthread_mutex_lock(&p->lock);
		if (r < 0)
			fail_locked(p, r);
		p->state[slot] = SLOT_DONE;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
}

unsigned cpus_online(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned) CPU_COUNT(&set);
	return 1;
}

unsigned io_workers(void)
{
	return cpus_online() + 2;
}

int pmap_run(const struct pmap_ops *ops, void *userdata, void *items, size_t item_size,
	     unsigned n_slots, unsigned n_workers)
{
	_cleanup_free_ enum slot_state *state = calloc(n_slots, sizeof(*state));
	_cleanup_free_ uint64_t *seqs = calloc(n_slots, sizeof(*seqs));
	_cleanup_free_ pthread_t *workers = calloc(n_workers, sizeof(*workers));
	struct pmap p = {
		.ops = ops, .userdata = userdata, .items = items, .item_size = item_size,
		.n_slots = n_slots, .state = state, .seq = seqs,
	};
	pthread_t producer;
	unsigned started = 0;
	int r = 0;

	if (n_slots == 0 || n_workers == 0)
		return -EINVAL;
	if (!state || !seqs || !workers)
		return -ENOMEM;
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);

	if (pthread_create(&producer, NULL, producer_thread, &p) != 0) {
		r = -EAGAIN;
		goto out;
	}
	for (; started < n_workers; started++)
		if (pthread_create(&workers[started], NULL, worker_thread, &p) != 0) {
			pthread_mutex_lock(&p.lock);
			fail_locked(&p, -EAGAIN);
			pthread_mutex_unlock(&p.lock);
			break;
		}

	for (;;) {
		unsigned slot;
		uint64_t seq;

		pthread_mutex_lock(&p.lock);
		seq = p.next_consume;
		slot = (unsigned) (seq % n_slots);
		while (!p.error && !(p.state[slot] == SLOT_DONE && p.seq[slot] == seq) &&
		       !(p.produced_all && seq >= p.next_produce))
			pthread_cond_wait(&p.cond, &p.lock);
		if (p.error || (p.produced_all && seq >= p.next_produce)) {
			pthread_mutex_unlock(&p.lock);
			break;
		}
		pthread_mutex_unlock(&p.lock);

		r = ops->consume ? ops->consume(userdata, seq, item_at(&p, slot)) : 0;

		pthread_mutex_lock(&p.lock);
		if (r < 0)
			fail_locked(&p, r);
		p.state[slot] = SLOT_EMPTY;
		p.next_consume++;
		pthread_cond_broadcast(&p.cond);
		pthread_mutex_unlock(&p.lock);
		if (r < 0)
			break;
	}

	pthread_join(producer, NULL);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	r = p.error;
out:
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	return r;
}
