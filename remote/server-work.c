/* SPDX-License-Identifier: Apache-2.0 */
/* The server's worker threads (server.h, "work pool"): CPU-bound checks that need no state of the
 * loop's — today the two ECDSA verifications of a command result — run here, so that the event
 * loop keeps serving connections and the server uses every CPU.
 *
 * Jobs go into a FIFO under one mutex; a worker takes one, runs work(job) and puts it on the done
 * list, then writes the eventfd. The loop's handler for that eventfd takes the whole done list
 * and hands it to done() in one call: a burst of results is recorded under one store batch.
 * Workers never touch the loop, the store or a connection. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "server.h"

#define WORK_THREADS_MAX 16

typedef struct WorkItem {
	struct WorkItem *next;
	void *job;
} WorkItem;

struct WorkPool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	WorkItem *todo, **todo_tail;
	WorkItem *done, **done_tail;
	size_t n_done;
	bool stopping;
	pthread_t threads[WORK_THREADS_MAX];
	unsigned n_threads;
	int efd;
	sd_event_source *io;
	WorkFn work;
	WorkDoneFn done_fn;
	void *userdata;
};

static void *worker_main(void *arg)
{
	WorkPool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		WorkItem *it;

		while (!p->todo && !p->stopping)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stopping)
			break;
		it = p->todo;
		p->todo = it->next;
		if (!p->todo)
			p->todo_tail = &p->todo;
		pthread_mutex_unlock(&p->lock);

		p->work(it->job);

		pthread_mutex_lock(&p->lock);
		it->next = NULL;
		*p->done_tail = it;
		p->done_tail = &it->next;
		if (p->n_done++ == 0)
			(void)eventfd_write(p->efd, 1); /* the loop wakes once per burst */
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static int on_done(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	WorkPool *p = userdata;
	WorkItem *list, *next;
	eventfd_t v;
	void **jobs;
	size_t n, i = 0;

	(void)eventfd_read(fd, &v);
	pthread_mutex_lock(&p->lock);
	list = p->done;
	n = p->n_done;
	p->done = NULL;
	p->done_tail = &p->done;
	p->n_done = 0;
	pthread_mutex_unlock(&p->lock);
	if (n == 0)
		return 0;

	jobs = calloc(n, sizeof(*jobs));
	for (WorkItem *it = list; it; it = next) {
		next = it->next;
		if (jobs)
			jobs[i++] = it->job;
		else
			p->done_fn(p->userdata, &it->job, 1); /* out of memory: one at a time */
		free(it);
	}
	if (jobs)
		p->done_fn(p->userdata, jobs, n);
	free(jobs);
	return 0;
}

static unsigned cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > WORK_THREADS_MAX ? WORK_THREADS_MAX : (unsigned)n;
}

int work_pool_new(sd_event *e, unsigned n_threads, WorkFn work, WorkDoneFn done, void *userdata,
		  WorkPool **ret)
{
	WorkPool *p;
	sigset_t all, old;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->todo_tail = &p->todo;
	p->done_tail = &p->done;
	p->work = work;
	p->done_fn = done;
	p->userdata = userdata;
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0) {
		r = log_error_errno(errno, "Cannot create the worker threads' eventfd: %m.");
		goto fail;
	}
	r = sd_event_add_io(e, &p->io, p->efd, EPOLLIN, on_done, p);
	if (r < 0) {
		log_error_errno(r, "Cannot watch the worker threads' eventfd: %m.");
		goto fail;
	}

	/* Workers take no signals: SIGTERM and SIGINT belong to the loop's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < (n_threads ?: cpus()) && i < WORK_THREADS_MAX; i++) {
		r = -pthread_create(&p->threads[i], NULL, worker_main, p);
		if (r < 0)
			break;
		p->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (p->n_threads == 0) {
		log_error_errno(r, "Cannot start worker threads: %m.");
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	work_pool_free(p, NULL);
	return r;
}

int work_pool_submit(WorkPool *p, void *job)
{
	WorkItem *it = malloc(sizeof(*it));

	if (!it)
		return -ENOMEM;
	*it = (WorkItem){.job = job};
	pthread_mutex_lock(&p->lock);
	*p->todo_tail = it;
	p->todo_tail = &it->next;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

unsigned work_pool_threads(const WorkPool *p)
{
	return p ? p->n_threads : 0;
}

WorkPool *work_pool_free(WorkPool *p, void (*drop)(void *job))
{
	WorkItem *lists[2], *next;

	if (!p)
		return NULL;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);

	/* Jobs not done, or done but not yet handed to the loop: dropped. */
	lists[0] = p->todo;
	lists[1] = p->done;
	for (size_t l = 0; l < ELEMENTSOF(lists); l++)
		for (WorkItem *it = lists[l]; it; it = next) {
			next = it->next;
			if (drop)
				drop(it->job);
			free(it);
		}
	sd_event_source_disable_unref(p->io);
	if (p->efd >= 0)
		close(p->efd);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}
