/* SPDX-License-Identifier: Apache-2.0 */
/* The privsep message set: the executor's gate (privsep_request_check) on every malformed shape,
 * and the real executor loop on a socketpair (in a thread): the answers it gives without a TPM,
 * and that each protocol violation ends it with -EPROTO and closes the socket. The TPM side (QUOTE,
 * ACTIVATE, STATUS epoch) is tested against a real swtpm by test-privsep-swtpm.c. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent-state.h"
#include "basic/fileio.h"
#include "basic/macro.h"
#include "privsep-executor.h"
#include "privsep-proto.h"

#define ID "0123456789abcdef0123456789abcdef"

typedef struct Harness {
	int fd;             /* the network side */
	pthread_t thread;
	Executor e;
	int result;
	char dir[64];
} Harness;

static void *executor_thread(void *p)
{
	Harness *h = p;
	h->result = executor_run(&h->e);
	close(h->e.fd);
	return NULL;
}

static void harness_start(Harness *h, bool enroll)
{
	int sv[2];

	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/test-privsep.XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	h->fd = sv[1];
	h->e.fd = sv[0];
	h->e.enroll = enroll;
	h->e.state_dir = h->dir;
	h->result = 1;
	assert_int_equal(pthread_create(&h->thread, NULL, executor_thread, h), 0);
}

/* Closes the network side (unless the executor already ended) and returns the loop's result. */
static int harness_stop(Harness *h)
{
	char cmd[128];

	close(h->fd);
	assert_int_equal(pthread_join(h->thread, NULL), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", h->dir);
	assert_int_equal(system(cmd), 0);
	return h->result;
}

/* Sends raw bytes; the executor must end the loop with -EPROTO and close its end. */
static void expect_violation(bool enroll, const void *buf, size_t n)
{
	Harness h;
	uint8_t reply[64];

	harness_start(&h, enroll);
	assert_int_equal(send(h.fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
	/* No answer, only the end of the connection. */
	assert_int_equal(privsep_recv(h.fd, reply, sizeof(reply)), 0);
	assert_int_equal(harness_stop(&h), -EPROTO);
}

static size_t msg(void *buf, uint32_t type, uint32_t size_field, const void *payload, size_t n)
{
	PrivsepHeader hd = {.type = type, .size = size_field};
	memcpy(buf, &hd, sizeof(hd));
	if (n > 0)
		memcpy((uint8_t *)buf + sizeof(hd), payload, n);
	return sizeof(hd) + n;
}

static void check_refused(bool enroll, const void *buf, size_t n)
{
	PrivsepType t;
	const char *why = NULL;
	assert_int_equal(privsep_request_check(buf, n, enroll, &t, &why), -EPROTO);
	assert_non_null(why);
}

static void check_accepted(bool enroll, const void *buf, size_t n, PrivsepType want)
{
	PrivsepType t = 0;
	const char *why = NULL;
	assert_int_equal(privsep_request_check(buf, n, enroll, &t, &why), 0);
	assert_int_equal(t, want);
}

static void test_check_sizes(void **state)
{
	static uint8_t buf[PRIVSEP_MSG_MAX];
	PrivsepQuoteRequest q = {.pcr_mask = 0x880};
	PrivsepActivateRequest a = {.id_object_size = 70, .encrypted_secret_size = 70};
	size_t n;

	/* Accepted: exactly the shapes of the message set. */
	for (uint32_t t = PRIVSEP_READY; t <= PRIVSEP_ESCROW_DONE; t++)
		if (t != PRIVSEP_QUOTE) {
			n = msg(buf, t, 0, NULL, 0);
			check_accepted(false, buf, n, t);
		}
	n = msg(buf, PRIVSEP_QUOTE, sizeof(q), &q, sizeof(q));
	check_accepted(false, buf, n, PRIVSEP_QUOTE);
	n = msg(buf, PRIVSEP_ACTIVATE, sizeof(a), &a, sizeof(a));
	check_accepted(true, buf, n, PRIVSEP_ACTIVATE);
	n = msg(buf, PRIVSEP_STATUS, 0, NULL, 0);
	check_accepted(true, buf, n, PRIVSEP_STATUS);

	/* Short, unknown, inconsistent. */
	check_refused(false, buf, 0);
	check_refused(false, buf, 7);
	n = msg(buf, 0, 0, NULL, 0);
	check_refused(false, buf, n);
	n = msg(buf, _PRIVSEP_TYPE_MAX, 0, NULL, 0);
	check_refused(false, buf, n);
	n = msg(buf, 0xffffffff, 0, NULL, 0);
	check_refused(false, buf, n);
	n = msg(buf, PRIVSEP_STATUS, 4, NULL, 0); /* header claims more than was sent */
	check_refused(false, buf, n);
	n = msg(buf, PRIVSEP_STATUS, 1, "x", 1); /* payload where none belongs */
	check_refused(false, buf, n);

	/* QUOTE: one byte short, one byte long, empty mask, PCR 24. */
	n = msg(buf, PRIVSEP_QUOTE, sizeof(q) - 1, &q, sizeof(q) - 1);
	check_refused(false, buf, n);
	uint8_t longer[sizeof(q) + 1] = {0};
	memcpy(longer, &q, sizeof(q));
	n = msg(buf, PRIVSEP_QUOTE, sizeof(longer), longer, sizeof(longer));
	check_refused(false, buf, n);
	q.pcr_mask = 0;
	n = msg(buf, PRIVSEP_QUOTE, sizeof(q), &q, sizeof(q));
	check_refused(false, buf, n);
	q.pcr_mask = UINT32_C(1) << 24;
	n = msg(buf, PRIVSEP_QUOTE, sizeof(q), &q, sizeof(q));
	check_refused(false, buf, n);

	/* ACTIVATE: sizes out of range; wrong struct size. */
	a.id_object_size = 0;
	n = msg(buf, PRIVSEP_ACTIVATE, sizeof(a), &a, sizeof(a));
	check_refused(true, buf, n);
	a.id_object_size = PRIVSEP_CRED_MAX + 1;
	n = msg(buf, PRIVSEP_ACTIVATE, sizeof(a), &a, sizeof(a));
	check_refused(true, buf, n);
	a.id_object_size = 70;
	a.encrypted_secret_size = UINT32_MAX;
	n = msg(buf, PRIVSEP_ACTIVATE, sizeof(a), &a, sizeof(a));
	check_refused(true, buf, n);
	a.encrypted_secret_size = 70;
	n = msg(buf, PRIVSEP_ACTIVATE, sizeof(a) - 4, &a, sizeof(a) - 4);
	check_refused(true, buf, n);
}

static void test_check_modes(void **state)
{
	uint8_t buf[2048];
	PrivsepQuoteRequest q = {.pcr_mask = 0x880};
	PrivsepActivateRequest a = {.id_object_size = 70, .encrypted_secret_size = 70};
	PrivsepStoreRequest s = {.device_id = ID, .sizes = {1, 1, 1, 1, 0}};
	size_t n;

	/* The running agent never activates credentials or rewrites its enrollment … */
	n = msg(buf, PRIVSEP_ACTIVATE, sizeof(a), &a, sizeof(a));
	check_refused(false, buf, n);
	n = msg(buf, PRIVSEP_STORE, sizeof(s), &s, sizeof(s)); /* (sizes do not add up either) */
	check_refused(false, buf, n);
	/* … and the enrolling one does not quote, escrow or report readiness. */
	n = msg(buf, PRIVSEP_QUOTE, sizeof(q), &q, sizeof(q));
	check_refused(true, buf, n);
	for (uint32_t t = PRIVSEP_ESCROW_GET; t <= PRIVSEP_ESCROW_DONE; t++) {
		n = msg(buf, t, 0, NULL, 0);
		check_refused(true, buf, n);
	}
	n = msg(buf, PRIVSEP_READY, 0, NULL, 0);
	check_refused(true, buf, n);
}

static void test_check_store(void **state)
{
	static uint8_t buf[PRIVSEP_MSG_MAX + 4096], payload[PRIVSEP_MSG_MAX];
	PrivsepStoreRequest s = {.device_id = ID, .sizes = {3, 3, 3, 3, 2}};
	size_t n;

	memcpy(payload, &s, sizeof(s));
	memset(payload + sizeof(s), 'x', 14);
	n = msg(buf, PRIVSEP_STORE, sizeof(s) + 14, payload, sizeof(s) + 14);
	check_accepted(true, buf, n, PRIVSEP_STORE);
	/* one byte more or less than the sizes say */
	n = msg(buf, PRIVSEP_STORE, sizeof(s) + 13, payload, sizeof(s) + 13);
	check_refused(true, buf, n);
	n = msg(buf, PRIVSEP_STORE, sizeof(s) + 15, payload, sizeof(s) + 15);
	check_refused(true, buf, n);
	/* sizes chosen to wrap a 32-bit sum to the real length */
	PrivsepStoreRequest w = s;
	w.sizes[0] = UINT32_MAX;
	memcpy(payload, &w, sizeof(w));
	n = msg(buf, PRIVSEP_STORE, sizeof(w) + 14, payload, sizeof(w) + 14);
	check_refused(true, buf, n);
	/* a blob over its maximum, even when the sum matches */
	w = s;
	w.sizes[0] = PRIVSEP_STORE_BLOB_MAX + 1;
	w.sizes[1] = w.sizes[2] = w.sizes[3] = 1;
	w.sizes[4] = 0;
	memcpy(payload, &w, sizeof(w));
	n = msg(buf, PRIVSEP_STORE, sizeof(w) + PRIVSEP_STORE_BLOB_MAX + 4, payload,
		sizeof(w) + PRIVSEP_STORE_BLOB_MAX + 4);
	check_refused(true, buf, n);
	/* an empty certificate */
	w = s;
	w.sizes[STORE_DEVICE_CERT] = 0;
	w.sizes[STORE_POLICY] = 5;
	memcpy(payload, &w, sizeof(w));
	n = msg(buf, PRIVSEP_STORE, sizeof(w) + 14, payload, sizeof(w) + 14);
	check_refused(true, buf, n);
	/* device ids: upper case, short, not terminated, path characters */
	static const char *const bad_ids[] = {"0123456789ABCDEF0123456789abcdef", "0123456789abcdef",
					      "../../../../etc/passwd-xxxxxxxxx"};
	for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
		w = s;
		memset(w.device_id, 0, sizeof(w.device_id));
		memcpy(w.device_id, bad_ids[i], strlen(bad_ids[i]));
		memcpy(payload, &w, sizeof(w));
		n = msg(buf, PRIVSEP_STORE, sizeof(w) + 14, payload, sizeof(w) + 14);
		check_refused(true, buf, n);
	}
	w = s;
	memset(w.device_id, 'a', sizeof(w.device_id)); /* no terminating NUL */
	memcpy(payload, &w, sizeof(w));
	n = msg(buf, PRIVSEP_STORE, sizeof(w) + 14, payload, sizeof(w) + 14);
	check_refused(true, buf, n);
}

static void test_loop_answers(void **state)
{
	_cleanup_free_ uint8_t *log = NULL;
	_cleanup_free_ char *escrow = NULL, *p = NULL;
	PrivsepStatusReply st;
	PrivsepQuoteReply *q = malloc(sizeof(*q));
	uint8_t qual[32] = {1};
	size_t n;
	Harness h;
	struct stat sb;

	harness_start(&h, false);
	/* Without a TPM: STATUS answers from the state, QUOTE is refused as an error (not fatal). */
	assert_int_equal(privsep_status(h.fd, &st), 0);
	assert_int_equal(st.enrolled, 0);
	assert_int_equal(st.have_epoch, 0);
	assert_int_equal(st.locked, 1); /* no valid policy: the disk would not unlock */
	assert_string_equal(st.device_id, "");
	assert_int_equal(privsep_quote(h.fd, qual, 0x880, q), -ENODEV);
	assert_int_equal(privsep_ready(h.fd), 0);

	/* EVENT_LOG: the configured file, byte for byte; a missing one is empty. */
	assert_int_equal(state_path(h.dir, "log.bin", &p), 0);
	assert_int_equal(write_file_atomic(p, "\x00\x01\x02log", 6, 0600), 0);
	h.e.event_log_path = p;
	assert_int_equal(privsep_event_log(h.fd, &log, &n), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(log, "\x00\x01\x02log", 6);
	free(log);
	log = NULL;
	h.e.event_log_path = "/nonexistent/event-log";
	assert_int_equal(privsep_event_log(h.fd, &log, &n), 0);
	assert_int_equal(n, 0);

	/* ESCROW_GET: none, then the file; ESCROW_DONE moves it aside. */
	assert_int_equal(privsep_escrow_get(h.fd, &escrow, &n), 0);
	assert_int_equal(n, 0);
	free(escrow);
	escrow = NULL;
	assert_int_equal(state_write(h.dir, STATE_ESCROW, "{\"v\":1}", 7), 0);
	assert_int_equal(privsep_escrow_get(h.fd, &escrow, &n), 0);
	assert_int_equal(n, 7);
	assert_string_equal(escrow, "{\"v\":1}");
	assert_int_equal(privsep_escrow_done(h.fd), 0);
	free(p);
	assert_int_equal(state_path(h.dir, STATE_ESCROW, &p), 0);
	assert_int_equal(stat(p, &sb), -1);
	free(p);
	assert_int_equal(state_path(h.dir, STATE_ESCROW_DONE, &p), 0);
	assert_int_equal(stat(p, &sb), 0);
	/* Again: nothing left to move; an error answer, the loop goes on. */
	assert_int_equal(privsep_escrow_done(h.fd), -ENOENT);
	assert_int_equal(privsep_status(h.fd, &st), 0);

	/* The network side closes: a clean end. */
	assert_int_equal(harness_stop(&h), 0);
	free(q);
}

static void test_loop_enroll_store_needs_tpm(void **state)
{
	static uint8_t buf[4096];
	PrivsepStoreBlobs b = {.device_id = ID};
	Harness h;

	for (int i = 0; i < _STORE_BLOB_MAX - 1; i++) {
		b.data[i] = "pem";
		b.size[i] = 3;
	}
	harness_start(&h, true);
	/* Without a TPM the executor cannot check the device id: nothing is stored. */
	assert_int_equal(privsep_store(h.fd, &b), -ENODEV);
	assert_int_equal(privsep_activate(h.fd, buf, 70, buf, 70, &(uint8_t *){NULL}, &(size_t){0}), -ENODEV);
	assert_int_equal(harness_stop(&h), 0);
	assert_false(h.e.stored);
}

static void test_loop_violations(void **state)
{
	static uint8_t buf[PRIVSEP_MSG_MAX + 16];
	PrivsepQuoteRequest q = {.pcr_mask = 0x880};
	PrivsepActivateRequest a = {.id_object_size = 70, .encrypted_secret_size = 70};
	size_t n;

	expect_violation(false, buf, 0);                      /* empty datagram */
	expect_violation(false, "abc", 3);                    /* shorter than a header */
	n = msg(buf, 99, 0, NULL, 0);
	expect_violation(false, buf, n);                      /* unknown type */
	n = msg(buf, PRIVSEP_QUOTE, 8, &q, 8);
	expect_violation(false, buf, n);                      /* QUOTE of the wrong size */
	n = msg(buf, PRIVSEP_QUOTE, sizeof(q) + 4, &q, sizeof(q));
	expect_violation(false, buf, n);                      /* header size lies */
	n = msg(buf, PRIVSEP_ACTIVATE, sizeof(a), &a, sizeof(a));
	expect_violation(false, buf, n);                      /* enrollment message while running */
	n = msg(buf, PRIVSEP_QUOTE, sizeof(q), &q, sizeof(q));
	expect_violation(true, buf, n);                       /* quote while enrolling */
	memset(buf, 0, sizeof(buf));
	expect_violation(false, buf, PRIVSEP_MSG_MAX + 1);    /* larger than any message */

	/* A violation after good requests still ends the loop. */
	Harness h;
	PrivsepStatusReply st;
	uint8_t reply[16];
	harness_start(&h, false);
	assert_int_equal(privsep_status(h.fd, &st), 0);
	n = msg(buf, PRIVSEP_STATUS, 1, "x", 1);
	assert_int_equal(send(h.fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
	assert_int_equal(privsep_recv(h.fd, reply, sizeof(reply)), 0);
	assert_int_equal(privsep_status(h.fd, &st), -ECONNRESET);
	assert_int_equal(harness_stop(&h), -EPROTO);
}

static void test_client_rejects_bad_replies(void **state)
{
	/* A reply of the wrong type or size is refused by the network side too. */
	int sv[2];
	PrivsepStatusReply st;
	PrivsepReplyHeader h = {.type = PRIVSEP_QUOTE, .error = 0, .size = 0};

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(send(sv[0], &h, sizeof(h), 0), (ssize_t)sizeof(h));
	assert_int_equal(privsep_status(sv[1], &st), -EPROTO);
	h.type = PRIVSEP_STATUS;
	h.size = 4;
	uint8_t buf[sizeof(h) + 4] = {0};
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(send(sv[0], buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_int_equal(privsep_status(sv[1], &st), -EPROTO);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_sizes),
		cmocka_unit_test(test_check_modes),
		cmocka_unit_test(test_check_store),
		cmocka_unit_test(test_loop_answers),
		cmocka_unit_test(test_loop_enroll_store_needs_tpm),
		cmocka_unit_test(test_loop_violations),
		cmocka_unit_test(test_client_rejects_bad_replies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
