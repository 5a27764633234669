/* SPDX-License-Identifier: Apache-2.0 */
/* remote/server-work.c with real threads and a real sd-event loop: every job runs exactly once,
 * off the loop's thread, and comes back to done() on the loop's thread; several jobs can run at
 * once; freeing the pool hands the jobs it still holds to drop(), none is lost or freed twice. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "basic/macro.h"
#include "server.h"

#define N_JOBS 200

typedef struct Job {
	unsigned index;
	pthread_t ran_on;
	unsigned runs;
	unsigned done;
	unsigned dropped;
	unsigned sleep_us;
} Job;

static pthread_t loop_thread;
static unsigned n_done, n_calls, max_running, running;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static sd_event *loop;

static void work(void *p)
{
	Job *j = p;

	pthread_mutex_lock(&count_lock);
	if (++running > max_running)
		max_running = running;
	pthread_mutex_unlock(&count_lock);
	j->ran_on = pthread_self();
	j->runs++;
	usleep(j->sleep_us);
	pthread_mutex_lock(&count_lock);
	running--;
	pthread_mutex_unlock(&count_lock);
}

static void done(void *userdata, void **jobs, size_t n)
{
	assert_ptr_equal(userdata, &n_done);
	assert_true(pthread_equal(pthread_self(), loop_thread));
	assert_true(n >= 1);
	n_calls++;
	for (size_t i = 0; i < n; i++) {
		Job *j = jobs[i];
		assert_int_equal(j->runs, 1);
		assert_false(pthread_equal(j->ran_on, loop_thread));
		j->done++;
		n_done++;
	}
	if (n_done == N_JOBS)
		sd_event_exit(loop, 0);
}

static void drop(void *p)
{
	((Job *)p)->dropped++;
}

static void test_all_jobs_come_back(void **state)
{
	static Job jobs[N_JOBS];
	WorkPool *p = NULL;

	loop_thread = pthread_self();
	n_done = n_calls = max_running = 0;
	assert_int_equal(sd_event_new(&loop), 0);
	assert_int_equal(work_pool_new(loop, 4, work, done, &n_done, &p), 0);
	assert_int_equal(work_pool_threads(p), 4);
	for (unsigned i = 0; i < N_JOBS; i++) {
		jobs[i] = (Job){.index = i, .sleep_us = 500};
		assert_int_equal(work_pool_submit(p, &jobs[i]), 0);
	}
	assert_int_equal(sd_event_loop(loop), 0);
	assert_int_equal(n_done, N_JOBS);
	for (unsigned i = 0; i < N_JOBS; i++) {
		assert_int_equal(jobs[i].runs, 1);
		assert_int_equal(jobs[i].done, 1);
	}
	/* Four threads sleeping 0.5 ms each: more than one job was running at a time, and done()
	 * got them in bursts, not one loop iteration each. */
	assert_true(max_running > 1);
	assert_true(n_calls < N_JOBS);
	p = work_pool_free(p, drop);
	for (unsigned i = 0; i < N_JOBS; i++)
		assert_int_equal(jobs[i].dropped, 0);
	loop = sd_event_unref(loop);
}

/* Freed while jobs wait (one thread, slow jobs, the loop never run): each job is either run and
 * dropped, or dropped unrun — exactly once, never handed to done(). */
static void test_free_drops_pending(void **state)
{
	static Job jobs[20];
	WorkPool *p = NULL;

	loop_thread = pthread_self();
	n_done = 0;
	assert_int_equal(sd_event_new(&loop), 0);
	assert_int_equal(work_pool_new(loop, 1, work, done, &n_done, &p), 0);
	for (unsigned i = 0; i < ELEMENTSOF(jobs); i++) {
		jobs[i] = (Job){.index = i, .sleep_us = 20000};
		assert_int_equal(work_pool_submit(p, &jobs[i]), 0);
	}
	/* Until the first job has started (bounded: 10 s), then free at once. */
	for (unsigned t = 0; t < 10000 && __atomic_load_n(&jobs[0].runs, __ATOMIC_SEQ_CST) == 0; t++)
		usleep(1000);
	p = work_pool_free(p, drop);
	assert_null(p);
	for (unsigned i = 0; i < ELEMENTSOF(jobs); i++) {
		assert_int_equal(jobs[i].dropped, 1);
		assert_int_equal(jobs[i].done, 0);
		assert_true(jobs[i].runs <= 1);
	}
	assert_int_equal(n_done, 0);
	/* Some ran before the free, not all (each takes 20 ms, one thread). */
	assert_int_equal(jobs[0].runs, 1);
	assert_int_equal(jobs[ELEMENTSOF(jobs) - 1].runs, 0);
	loop = sd_event_unref(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_all_jobs_come_back),
	    cmocka_unit_test(test_free_drops_pending),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
