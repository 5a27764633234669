/* SPDX-License-Identifier: Apache-2.0 */
/* remote/store-command.c on a real SQLite file: seq allocation (strictly increasing per device,
 * unique across processes), the life cycle and its audit rows, refusals that change nothing,
 * listing, the last lock epoch. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "basic/macro.h"
#include "store.h"

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "1123456789abcdef0123456789abcdef"
#define ID_UNKNOWN "2223456789abcdef0123456789abcdef"

static char dir[256], db_path[300];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/trustpc-test-cmd.XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(db_path, sizeof(db_path), "%s/server.db", dir);
	return 0;
}

static int teardown(void **state)
{
	return nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static Store *open_store(void)
{
	Store *s = NULL;
	assert_int_equal(store_open(db_path, &s), 0);
	return s;
}

static int64_t sql_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v;
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void add_device(Store *s, const char *id)
{
	static uint8_t tls[] = {0x30, 0x59, 7};
	DeviceRecord d = {.hostname = (char *)"host",
			  .tls_public = tls,
			  .tls_public_size = sizeof(tls),
			  .state = DEVICE_TRUSTED,
			  .enrolled_at = 1000,
			  .last_seen = 1000};
	snprintf(d.device_id, sizeof(d.device_id), "%s", id);
	assert_int_equal(store_device_put(s, &d), 0);
}

/* A stand-in signature: the seq and time it was called with, so the test sees that the stored
 * bytes were made for the allocated seq. */
static int fake_sign(void *userdata, uint64_t seq, time_t now, uint8_t **ret, size_t *ret_size)
{
	int *calls = userdata;
	char *b;

	if (calls)
		(*calls)++;
	if (asprintf(&b, "cose:%llu:%lld", (unsigned long long)seq, (long long)now) < 0)
		return -ENOMEM;
	*ret = (uint8_t *)b;
	*ret_size = strlen(b);
	return 0;
}

static int failing_sign(void *userdata, uint64_t seq, time_t now, uint8_t **ret, size_t *ret_size)
{
	return -EIO;
}

static void make_id(char id[COMMAND_ID_HEX_SIZE], unsigned n)
{
	snprintf(id, COMMAND_ID_HEX_SIZE, "%032x", n);
}

static int enqueue(Store *s, const char *device, unsigned n, const char *type, CommandRecord *ret)
{
	CommandRecord c = {.type = strdup(type),
			   .args_json = strdup("{\"reason\":\"stolen \\\"x\\\"\"}"),
			   .issuer = strdup("helen")};
	int r;

	make_id(c.id, n);
	snprintf(c.device_id, sizeof(c.device_id), "%s", device);
	r = store_command_enqueue(s, &c, fake_sign, NULL);
	if (r >= 0 && ret)
		*ret = c;
	else
		command_record_done(&c);
	return r;
}

static void test_enqueue_seq(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	CommandRecord c = {};
	int64_t audits;

	add_device(s, ID_A);
	add_device(s, ID_B);
	store_set_now(s, 5000);
	for (unsigned i = 1; i <= 5; i++) {
		char want[64];
		assert_int_equal(enqueue(s, i % 2 ? ID_A : ID_B, i, "lock", &c), 0);
		/* Per device: A gets 1, 2, 3; B gets 1, 2. */
		assert_int_equal(c.seq, (i + 1) / 2);
		snprintf(want, sizeof(want), "cose:%llu:5000", (unsigned long long)c.seq);
		assert_int_equal(c.cose_size, strlen(want));
		assert_memory_equal(c.cose, want, c.cose_size);
		assert_int_equal(c.state, COMMAND_STATE_QUEUED);
		assert_int_equal(c.created_at, 5000);
		command_record_done(&c);
	}
	assert_int_equal(sql_int("SELECT max(seq) FROM commands WHERE device_id = '" ID_A "'"), 3);
	assert_int_equal(sql_int("SELECT max(seq) FROM commands WHERE device_id = '" ID_B "'"), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM audit WHERE action = 'command.queue'"), 5);
	audits = sql_int("SELECT count(*) FROM audit");

	/* Refusals: nothing stored, no seq used, no audit row. */
	assert_int_equal(enqueue(s, ID_UNKNOWN, 10, "lock", NULL), -ENOENT);
	assert_int_equal(enqueue(s, "nope", 11, "lock", NULL), -ENOENT);
	assert_int_equal(enqueue(s, ID_A, 1, "lock", NULL), -EEXIST); /* id taken */
	{
		CommandRecord bad = {
		    .type = (char *)"lock", .args_json = (char *)"{}", .issuer = (char *)"helen"};
		snprintf(bad.device_id, sizeof(bad.device_id), ID_A);
		snprintf(bad.id, sizeof(bad.id), "XYZ");
		assert_int_equal(store_command_enqueue(s, &bad, fake_sign, NULL), -EINVAL);
		make_id(bad.id, 12);
		assert_int_equal(store_command_enqueue(s, &bad, failing_sign, NULL), -EIO);
		bad.issuer = (char *)"";
		assert_int_equal(store_command_enqueue(s, &bad, fake_sign, NULL), -EINVAL);
	}
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 5);
	assert_int_equal(sql_int("SELECT count(*) FROM audit"), audits);
	/* The failed signature did not use up seq 4. */
	assert_int_equal(enqueue(s, ID_A, 13, "unlock", &c), 0);
	assert_int_equal(c.seq, 4);
	command_record_done(&c);
	/* Re-enrollment (store_device_put on the same id) keeps the counter: a seq is never reused. */
	add_device(s, ID_A);
	assert_int_equal(enqueue(s, ID_A, 14, "lock", &c), 0);
	assert_int_equal(c.seq, 5);
	command_record_done(&c);
	/* The operator's text reached the audit row escaped, as JSON. */
	assert_int_equal(sql_int("SELECT json_valid(details) FROM audit WHERE action = 'command.queue' "
				 "ORDER BY seq DESC LIMIT 1"),
			 1);
}

/* A batch (a fleet command): the refused steps inside it are undone alone, nothing is visible to
 * another connection before the commit, one commit makes it all durable; an aborted batch leaves
 * nothing, not even a used seq. */
static void test_batch(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	CommandRecord c = {};
	int64_t audits;

	add_device(s, ID_A);
	add_device(s, ID_B);
	audits = sql_int("SELECT count(*) FROM audit");

	assert_int_equal(store_batch_begin(s), 0);
	assert_int_equal(store_batch_begin(s), -EBUSY); /* no nesting */
	assert_int_equal(enqueue(s, ID_A, 1, "lock", &c), 0);
	assert_int_equal(c.seq, 1);
	command_record_done(&c);
	assert_int_equal(enqueue(s, ID_UNKNOWN, 2, "lock", NULL), -ENOENT); /* refused inside */
	assert_int_equal(enqueue(s, ID_A, 1, "lock", NULL), -EEXIST);	     /* id taken inside */
	assert_int_equal(enqueue(s, ID_B, 3, "lock", &c), 0);
	assert_int_equal(c.seq, 1);
	command_record_done(&c);
	assert_int_equal(enqueue(s, ID_A, 4, "lock", &c), 0);
	assert_int_equal(c.seq, 2); /* the refused step used no seq */
	command_record_done(&c);
	/* Another connection sees nothing yet. */
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 0);
	assert_int_equal(store_batch_commit(s), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 3);
	assert_int_equal(sql_int("SELECT count(*) FROM audit"), audits + 3);
	assert_int_equal(store_batch_commit(s), -EINVAL); /* none open */

	/* Aborted: nothing stays, the seqs are free again. */
	assert_int_equal(store_batch_begin(s), 0);
	assert_int_equal(enqueue(s, ID_A, 5, "unlock", &c), 0);
	assert_int_equal(c.seq, 3);
	command_record_done(&c);
	store_batch_abort(s);
	store_batch_abort(s); /* a no-op now */
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 3);
	assert_int_equal(sql_int("SELECT count(*) FROM audit"), audits + 3);
	assert_int_equal(enqueue(s, ID_A, 6, "unlock", &c), 0); /* outside a batch: committed at once */
	assert_int_equal(c.seq, 3);
	command_record_done(&c);
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 4);
}

/* 4 processes × 25 commands for one device: 100 distinct seqs 1..100 (BEGIN IMMEDIATE). */
static void test_enqueue_race(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	pid_t pids[4];

	add_device(s, ID_A);
	for (size_t p = 0; p < ELEMENTSOF(pids); p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			Store *c = NULL;
			int r = store_open(db_path, &c);
			for (unsigned i = 0; r >= 0 && i < 25; i++)
				r = enqueue(c, ID_A, 1000 * (unsigned)(p + 1) + i, "lock", NULL);
			store_close(c);
			_exit(r < 0 ? 1 : 0);
		}
	}
	for (size_t p = 0; p < ELEMENTSOF(pids); p++) {
		int status;
		assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 100);
	assert_int_equal(sql_int("SELECT count(DISTINCT seq) FROM commands"), 100);
	assert_int_equal(sql_int("SELECT min(seq) FROM commands"), 1);
	assert_int_equal(sql_int("SELECT max(seq) FROM commands"), 100);
}

static void test_life_cycle(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_(command_record_done) CommandRecord got = {};
	CommandRecord *list = NULL;
	CommandOutcome done = {.state = COMMAND_STATE_DONE,
			       .reason = "locked",
			       .result_cose = (const uint8_t *)"result",
			       .result_cose_size = 6,
			       .has_epoch = true,
			       .epoch = 7};
	char id1[COMMAND_ID_HEX_SIZE], id2[COMMAND_ID_HEX_SIZE], id3[COMMAND_ID_HEX_SIZE];
	uint64_t epoch;
	size_t n = 0;
	int64_t audits;

	add_device(s, ID_A);
	add_device(s, ID_B);
	make_id(id1, 1);
	make_id(id2, 2);
	make_id(id3, 3);
	store_set_now(s, 100);
	assert_int_equal(enqueue(s, ID_A, 1, "lock", NULL), 0);
	store_set_now(s, 101);
	assert_int_equal(enqueue(s, ID_A, 2, "unlock", NULL), 0);
	store_set_now(s, 102);
	assert_int_equal(enqueue(s, ID_B, 3, "wipe", NULL), 0);
	assert_int_equal(store_command_last_lock_epoch(s, ID_A, &epoch), -ENOENT);

	assert_int_equal(store_command_pending(s, ID_A, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].id, id1);
	assert_int_equal(list[0].seq, 1);
	assert_string_equal(list[0].type, "lock");
	assert_string_equal(list[0].issuer, "helen");
	assert_int_equal(list[1].seq, 2);
	command_records_free(list, n);

	/* Delivered: the first time counts, a redelivery keeps it. */
	assert_int_equal(store_command_mark_delivered(s, id1, 200), 0);
	assert_int_equal(store_command_mark_delivered(s, id1, 250), 0);
	assert_int_equal(store_command_get(s, id1, &got), 0);
	assert_int_equal(got.state, COMMAND_STATE_DELIVERED);
	assert_int_equal(got.delivered_at, 200);
	assert_int_equal(got.finished_at, 0);
	command_record_done(&got);
	/* Still pending until a result arrives: a reconnecting device gets it again. */
	assert_int_equal(store_command_pending(s, ID_A, &list, &n), 0);
	assert_int_equal(n, 2);
	command_records_free(list, n);

	audits = sql_int("SELECT count(*) FROM audit");
	assert_int_equal(store_command_finish(s, id1, &done, 300), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM audit"), audits + 1);
	assert_int_equal(sql_int("SELECT count(*) FROM audit WHERE action = 'command.done' AND actor = "
				 "'device:" ID_A "' AND subject = '" ID_A "'"),
			 1);
	assert_int_equal(store_command_get(s, id1, &got), 0);
	assert_int_equal(got.state, COMMAND_STATE_DONE);
	assert_string_equal(got.reason, "locked");
	assert_int_equal(got.finished_at, 300);
	assert_true(got.has_epoch);
	assert_int_equal(got.epoch, 7);
	assert_int_equal(got.result_cose_size, 6);
	assert_memory_equal(got.result_cose, "result", 6);
	command_record_done(&got);
	assert_int_equal(store_command_last_lock_epoch(s, ID_A, &epoch), 0);
	assert_int_equal(epoch, 7);

	/* A second result for a finished command changes nothing and says so. */
	done.state = COMMAND_STATE_FAILED;
	assert_int_equal(store_command_finish(s, id1, &done, 400), -ESTALE);
	assert_int_equal(store_command_mark_delivered(s, id1, 400), -ESTALE);
	assert_int_equal(sql_int("SELECT count(*) FROM audit"), audits + 1);
	assert_int_equal(store_command_get(s, id1, &got), 0);
	assert_int_equal(got.state, COMMAND_STATE_DONE);
	assert_int_equal(got.finished_at, 300);
	command_record_done(&got);
	/* Unknown ids and states. */
	assert_int_equal(store_command_finish(s, "ffffffffffffffffffffffffffffffff", &done, 1), -ENOENT);
	assert_int_equal(store_command_mark_delivered(s, "ffffffffffffffffffffffffffffffff", 1), -ENOENT);
	done.state = COMMAND_STATE_DELIVERED;
	assert_int_equal(store_command_finish(s, id2, &done, 1), -EINVAL);
	assert_int_equal(store_command_get(s, "zz", &got), -ENOENT);

	/* Rejected without epoch. */
	done = (CommandOutcome){.state = COMMAND_STATE_REJECTED, .reason = "seq too old"};
	assert_int_equal(store_command_finish(s, id2, &done, 310), 0);
	assert_int_equal(store_command_pending(s, ID_A, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);

	/* Listing: newest first; per device; limit; bad arguments. */
	assert_int_equal(store_command_list(s, NULL, 10, &list, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].id, id3);
	assert_string_equal(list[2].id, id1);
	assert_int_equal(list[1].state, COMMAND_STATE_REJECTED);
	assert_false(list[1].has_epoch);
	command_records_free(list, n);
	assert_int_equal(store_command_list(s, ID_A, 1, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].id, id2);
	command_records_free(list, n);
	assert_int_equal(store_command_list(s, ID_A, 0, &list, &n), -EINVAL);
	assert_int_equal(store_command_list(s, "x", 5, &list, &n), -ENOENT);
	assert_int_equal(store_command_list(s, ID_UNKNOWN, 5, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);

	assert_string_equal(command_state_name(COMMAND_STATE_FAILED), "failed");
	assert_null(command_state_name(0));
	/* The audit chain still verifies after all of it. */
	uint64_t entries = 0, bad = 0;
	assert_int_equal(store_audit_verify(s, &entries, &bad), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_enqueue_seq, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enqueue_race, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_life_cycle, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
