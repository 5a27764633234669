/* SPDX-License-Identifier: Apache-2.0 */
/* remote/store-*.c on a real SQLite file: migrations, tokens (once only, also across processes),
 * devices, images, operators, and the audit chain against direct edits of the database. */
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
#include "basic/memory-secure.h"
#include "store.h"

static char dir[256], db_path[300];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/trustpc-test-store.XXXXXX", getenv("TMPDIR") ?: "/tmp");
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
	assert_non_null(s);
	return s;
}

/* Direct SQL on the file, as an attacker with write access to it (or a curious admin) would. */
static void sql_exec(const char *sql)
{
	sqlite3 *db;
	char *err = NULL;
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
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

static char *sql_text(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *v;
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Whether text occurs anywhere in the database and WAL files (a secret must never be stored). */
static bool file_contains(const char *path, const char *text)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;
	bool found;

	if (!f)
		return false;
	buf = malloc(64 * 1024 * 1024);
	assert_non_null(buf);
	n = fread(buf, 1, 64 * 1024 * 1024, f);
	fclose(f);
	found = memmem(buf, n, text, strlen(text)) != NULL;
	free(buf);
	return found;
}

static bool db_files_contain(const char *text)
{
	char p[320];
	bool found = file_contains(db_path, text);
	snprintf(p, sizeof(p), "%s-wal", db_path);
	return found || file_contains(p, text);
}

static void add_image(Store *s, const char *name)
{
	ImageRecord img = {.name = (char *)name, .pcr_mask = (1U << 7) | (1U << 11)};
	memset(img.pcr_values[7], 0x77, 32);
	memset(img.pcr_values[11], 0x11, 32);
	assert_int_equal(store_image_put(s, &img), 0);
}

static void test_open_migrate(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_free_ char *mode = NULL;
	struct stat st;

	assert_int_equal(sql_int("SELECT count(*) FROM schema_migrations"), 2);
	assert_int_equal(sql_int("SELECT max(version) FROM schema_migrations"), 2);
	mode = sql_text("PRAGMA journal_mode");
	assert_string_equal(mode, "wal");
	assert_int_equal(stat(db_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	add_image(s, "img1");
	s = store_close(s);

	/* Reopen: nothing applied twice, data kept. */
	s = open_store();
	assert_int_equal(sql_int("SELECT count(*) FROM schema_migrations"), 2);
	assert_int_equal(sql_int("SELECT count(*) FROM images"), 1);
	s = store_close(s);

	/* A database from a newer program is refused, not half-understood. */
	sql_exec("INSERT INTO schema_migrations(version, applied_at) VALUES (99, 0)");
	assert_int_equal(store_open(db_path, &s), -EPROTONOSUPPORT);
	assert_null(s);
}

static void test_open_errors(void **state)
{
	Store *s = NULL;
	char p[320];

	snprintf(p, sizeof(p), "%s/missing-dir/x.db", dir);
	assert_int_equal(store_open(p, &s), -ENOENT);
	assert_null(s);

	/* Not a database. */
	snprintf(p, sizeof(p), "%s/garbage.db", dir);
	FILE *f = fopen(p, "we");
	assert_non_null(f);
	for (int i = 0; i < 512; i++)
		fputs("not an sqlite file ", f);
	fclose(f);
	assert_true(store_open(p, &s) < 0);
	assert_null(s);
}

static void test_token_once(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_erase_ char *token = NULL;
	_cleanup_free_ char *image = NULL, *image2 = NULL;
	time_t expires;

	add_image(s, "thin-client");
	assert_int_equal(store_token_create(s, "thin-client", 3600, "alice", &token, &expires), 0);
	assert_true(startswith(token, "tpe_"));
	assert_int_equal(strlen(token), 47);
	assert_true(expires >= time(NULL) + 3599 && expires <= time(NULL) + 3601);
	assert_int_equal(
	    strspn(token + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);

	/* Only the hash is stored. */
	assert_false(db_files_contain(token));
	assert_false(db_files_contain(token + 4));
	assert_int_equal(sql_int("SELECT count(*) FROM enroll_tokens WHERE length(hash) = 64"), 1);

	/* Checking does not consume. */
	assert_int_equal(store_token_check(s, token, &image), 0);
	assert_string_equal(image, "thin-client");
	assert_int_equal(store_token_consume(s, token, &image2), 0);
	assert_string_equal(image2, "thin-client");
	assert_int_equal(store_token_consume(s, token, NULL), -ESTALE);
	assert_int_equal(store_token_check(s, token, NULL), -ESTALE);

	/* Audited with the operator as actor, without the token. */
	assert_int_equal(
	    sql_int("SELECT count(*) FROM audit WHERE action = 'token.create' AND actor = 'alice' "
		    "AND subject LIKE 'token:%'"),
	    1);
}

static void test_token_errors(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_erase_ char *token = NULL, *t2 = NULL;
	char *image = (char *)0x1;
	char wrong[64];

	assert_int_equal(store_token_create(s, NULL, 60, "alice", &token, NULL), 0);
	assert_int_equal(store_token_consume(s, "tpe_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL),
			 -ENOENT);
	assert_int_equal(store_token_consume(s, "", NULL), -ENOENT);
	assert_int_equal(store_token_consume(s, "garbage", NULL), -ENOENT);
	/* The same secret with the operator prefix is not an enrollment token. */
	snprintf(wrong, sizeof(wrong), "tpo_%s", token + 4);
	assert_int_equal(store_token_consume(s, wrong, NULL), -ENOENT);

	/* Expired: 60 s later it is refused, and stays unused. */
	store_set_now(s, time(NULL) + 61);
	assert_int_equal(store_token_consume(s, token, &image), -ESTALE);
	assert_ptr_equal(image, (char *)0x1); /* untouched on failure */
	assert_int_equal(sql_int("SELECT count(*) FROM enroll_tokens WHERE used_at IS NULL"), 1);
	store_set_now(s, 0);
	assert_int_equal(store_token_consume(s, token, &image), 0);
	assert_null(image); /* no image named */

	assert_int_equal(store_token_create(s, NULL, 0, "alice", &t2, NULL), -EINVAL);
	assert_int_equal(store_token_create(s, NULL, 31 * 24 * 3600, "alice", &t2, NULL), -EINVAL);
	assert_int_equal(store_token_create(s, NULL, 60, "", &t2, NULL), -EINVAL);
	assert_int_equal(store_token_create(s, "no-such-image", 60, "alice", &t2, NULL), -ENOENT);
	assert_int_equal(store_token_create(s, "bad name", 60, "alice", &t2, NULL), -EINVAL);
	assert_null(t2);
	/* Nothing written by the refusals. */
	assert_int_equal(sql_int("SELECT count(*) FROM enroll_tokens"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM audit"), 1);
}

/* Many processes race for one token: exactly one wins (BEGIN IMMEDIATE + busy_timeout). */
static void test_token_race(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_erase_ char *token = NULL;
	int wins = 0, stale = 0;
	pid_t pids[8];

	assert_int_equal(store_token_create(s, NULL, 600, "alice", &token, NULL), 0);
	for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			Store *c = NULL;
			int r = store_open(db_path, &c);
			if (r == 0)
				r = store_token_consume(c, token, NULL);
			store_close(c);
			_exit(r == 0 ? 0 : r == -ESTALE ? 1 : 2);
		}
	}
	for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		wins += WEXITSTATUS(status) == 0;
		stale += WEXITSTATUS(status) == 1;
	}
	assert_int_equal(wins, 1);
	assert_int_equal(stale, (int)ELEMENTSOF(pids) - 1);
}

/* Another process reading the database (sqlite3, an admin's script) while the store is open: it
 * must never conclude it is the last user and checkpoint + delete the WAL under us (that happens
 * when the store drops its own POSIX locks, e.g. by closing a second descriptor of the file);
 * every commit of the store must be visible to it. The reader is the sqlite3 program, exec'ed: a
 * forked child would inherit SQLite's per-process lock bookkeeping and hide the problem. */
static void test_other_process(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	char p[320], cmd[400], out[32];

	if (system("sqlite3 -version >/dev/null 2>&1") != 0)
		skip();
	snprintf(p, sizeof(p), "%s-wal", db_path);
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' 'SELECT count(*) FROM enroll_tokens'", db_path);
	for (int i = 1; i <= 3; i++) {
		_cleanup_erase_ char *token = NULL;
		FILE *f;

		assert_int_equal(store_token_create(s, NULL, 60, "alice", &token, NULL), 0);
		f = popen(cmd, "r");
		assert_non_null(f);
		assert_non_null(fgets(out, sizeof(out), f));
		assert_int_equal(pclose(f), 0);
		assert_int_equal(atoi(out), i);
		/* The WAL is still there: the other process did not think it was alone. */
		assert_int_equal(access(p, F_OK), 0);
	}
}

static void fill_device(DeviceRecord *d, const char *id, const char *hostname)
{
	static uint8_t ek[] = {0x30, 0x82, 1, 2, 3}, ak[] = {0, 4, 9, 9, 9, 9}, tls[] = {0x30, 0x59, 7};
	*d = (DeviceRecord){
	    .hostname = (char *)hostname,
	    .ek_cert = ek,
	    .ek_cert_size = sizeof(ek),
	    .ak_public = ak,
	    .ak_public_size = sizeof(ak),
	    .tls_public = tls,
	    .tls_public_size = sizeof(tls),
	    .state = DEVICE_ENROLLED,
	    .enrolled_at = 1000,
	    .last_seen = 1000,
	};
	snprintf(d->device_id, sizeof(d->device_id), "%s", id);
}

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "1123456789abcdef0123456789abcdef"

static void test_devices(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_(device_record_done) DeviceRecord got = {};
	DeviceRecord d, *list = NULL;
	size_t n = 0;

	add_image(s, "img");
	fill_device(&d, ID_B, "laptop-b");
	assert_int_equal(store_device_put(s, &d), 0);
	fill_device(&d, ID_A, "laptop-a");
	d.image = (char *)"img";
	d.posture_json = (char *)"{\"epoch\":1}";
	assert_int_equal(store_device_put(s, &d), 0);

	assert_int_equal(store_device_get(s, ID_A, &got), 0);
	assert_string_equal(got.device_id, ID_A);
	assert_string_equal(got.hostname, "laptop-a");
	assert_string_equal(got.image, "img");
	assert_int_equal(got.ek_cert_size, 5);
	assert_memory_equal(got.ek_cert, d.ek_cert, 5);
	assert_memory_equal(got.ak_public, d.ak_public, 6);
	assert_memory_equal(got.tls_public, d.tls_public, 3);
	assert_int_equal(got.state, DEVICE_ENROLLED);
	assert_null(got.reason);
	assert_null(got.escrow_json);
	assert_string_equal(got.posture_json, "{\"epoch\":1}");
	assert_int_equal(got.enrolled_at, 1000);
	device_record_done(&got);

	/* Listed in device_id order. */
	assert_int_equal(store_device_list(s, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].device_id, ID_A);
	assert_string_equal(list[1].device_id, ID_B);
	for (size_t i = 0; i < n; i++)
		device_record_done(&list[i]);
	free(list);

	/* Replace (re-enrollment): every column from the new record. */
	fill_device(&d, ID_A, "laptop-a2");
	assert_int_equal(store_device_put(s, &d), 0);
	assert_int_equal(store_device_get(s, ID_A, &got), 0);
	assert_string_equal(got.hostname, "laptop-a2");
	assert_null(got.image);
	assert_null(got.posture_json);
	device_record_done(&got);
	assert_int_equal(sql_int("SELECT count(*) FROM devices"), 2);

	/* State, last seen (a heartbeat without posture keeps the last one), escrow. */
	assert_int_equal(store_device_seen(s, ID_A, 2000, "{\"epoch\":2}"), 0);
	assert_int_equal(store_device_seen(s, ID_A, 2100, NULL), 0);
	assert_int_equal(store_device_set_state(s, ID_A, DEVICE_QUARANTINED, "PCR 7 differs", 2050), 0);
	assert_int_equal(store_device_set_escrow(s, ID_A, "{\"v\":1}"), 0);
	assert_int_equal(store_device_get(s, ID_A, &got), 0);
	assert_int_equal(got.state, DEVICE_QUARANTINED);
	assert_string_equal(got.reason, "PCR 7 differs");
	assert_int_equal(got.attested_at, 2050);
	assert_int_equal(got.last_seen, 2100);
	assert_string_equal(got.posture_json, "{\"epoch\":2}");
	assert_string_equal(got.escrow_json, "{\"v\":1}");
	device_record_done(&got);
	assert_string_equal(device_state_name(DEVICE_TRUSTED), "trusted");

	/* Errors; nothing changed by them. */
	assert_int_equal(store_device_get(s, "fedcba9876543210fedcba9876543210", &got), -ENOENT);
	assert_int_equal(store_device_get(s, "short", &got), -ENOENT);
	assert_int_equal(
	    store_device_set_state(s, "fedcba9876543210fedcba9876543210", DEVICE_TRUSTED, NULL, 1), -ENOENT);
	assert_int_equal(store_device_seen(s, "fedcba9876543210fedcba9876543210", 1, NULL), -ENOENT);
	assert_int_equal(store_device_set_escrow(s, "fedcba9876543210fedcba9876543210", "{}"), -ENOENT);
	fill_device(&d, "0123456789ABCDEF0123456789ABCDEF", "upper"); /* ids are lower-case hex */
	assert_int_equal(store_device_put(s, &d), -EINVAL);
	fill_device(&d, "fedcba9876543210fedcba9876543210", NULL);
	assert_int_equal(store_device_put(s, &d), -EINVAL);
	fill_device(&d, "fedcba9876543210fedcba9876543210", "x");
	d.image = (char *)"unregistered";
	assert_int_equal(store_device_put(s, &d), -ENOENT);
	assert_int_equal(sql_int("SELECT count(*) FROM devices"), 2);
}

static void test_device_enroll(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_erase_ char *t1 = NULL, *t2 = NULL;
	_cleanup_(device_record_done) DeviceRecord got = {};
	DeviceRecord d;

	assert_int_equal(store_token_create(s, NULL, 600, "alice", &t1, NULL), 0);
	assert_int_equal(store_token_create(s, NULL, 600, "alice", &t2, NULL), 0);
	fill_device(&d, ID_A, "first");
	assert_int_equal(store_device_enroll(s, t1, &d, "{\"ek\":\"x\"}"), 0);
	assert_int_equal(
	    sql_int("SELECT count(*) FROM audit WHERE action = 'device.enroll' AND subject = '" ID_A
		    "' AND actor = 'device:" ID_A "'"),
	    1);

	/* A used token: nothing written (device unchanged, no audit row). */
	fill_device(&d, ID_A, "second");
	assert_int_equal(store_device_enroll(s, t1, &d, NULL), -ESTALE);
	assert_int_equal(store_device_get(s, ID_A, &got), 0);
	assert_string_equal(got.hostname, "first");
	device_record_done(&got);
	assert_int_equal(sql_int("SELECT count(*) FROM audit"), 3);

	/* A failing device write leaves the token unused. */
	d.image = (char *)"unregistered";
	assert_int_equal(store_device_enroll(s, t2, &d, NULL), -ENOENT);
	assert_int_equal(store_token_check(s, t2, NULL), 0);

	/* Re-enrollment with a fresh token. */
	d.image = NULL;
	assert_int_equal(store_device_enroll(s, t2, &d, NULL), 0);
	assert_int_equal(store_device_get(s, ID_A, &got), 0);
	assert_string_equal(got.hostname, "second");
	assert_int_equal(sql_int("SELECT count(*) FROM audit WHERE action = 'device.re-enroll'"), 1);
}

static void test_images(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_(image_record_done) ImageRecord got = {};
	ImageRecord img = {.name = (char *)"img-b", .pcr_mask = 1U << 4}, *list = NULL;
	size_t n;

	memset(img.pcr_values[4], 0x44, 32);
	assert_int_equal(store_image_add(s, &img, "root"), 0);
	add_image(s, "img-a");

	assert_int_equal(store_image_get(s, "img-a", &got), 0);
	assert_string_equal(got.name, "img-a");
	assert_int_equal(got.pcr_mask, (1U << 7) | (1U << 11));
	assert_int_equal(got.pcr_values[7][0], 0x77);
	assert_int_equal(got.pcr_values[11][31], 0x11);
	assert_int_equal(got.pcr_values[4][0], 0);
	image_record_done(&got);

	assert_int_equal(store_image_list(s, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "img-a");
	assert_string_equal(list[1].name, "img-b");
	assert_int_equal(list[1].pcr_mask, 1U << 4);
	for (size_t i = 0; i < n; i++)
		image_record_done(&list[i]);
	free(list);

	/* Replace: the old PCR set goes entirely. */
	img.pcr_mask = 1U << 7;
	memset(img.pcr_values[7], 0x99, 32);
	assert_int_equal(store_image_add(s, &img, "root"), 0);
	assert_int_equal(store_image_get(s, "img-b", &got), 0);
	assert_int_equal(got.pcr_mask, 1U << 7);
	assert_int_equal(got.pcr_values[7][5], 0x99);
	assert_int_equal(sql_int("SELECT count(*) FROM audit WHERE action = 'image.set' AND actor = 'root' "
				 "AND details LIKE '%\"replaced\":true%'"),
			 1);

	img.pcr_mask = 0;
	assert_int_equal(store_image_put(s, &img), -EINVAL);
	img.pcr_mask = 1U << 24;
	assert_int_equal(store_image_put(s, &img), -EINVAL);
	img.pcr_mask = 1;
	img.name = (char *)"bad/name";
	assert_int_equal(store_image_put(s, &img), -EINVAL);
	assert_int_equal(store_image_get(s, "nope", &got), -ENOENT);
	assert_int_equal(sql_int("SELECT count(*) FROM images"), 2);
}

static void test_operators(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_erase_ char *t1 = NULL, *t2 = NULL, *t3 = NULL;
	_cleanup_free_ char *name = NULL;
	OperatorRole role = 0;
	char wrong[64];

	assert_int_equal(store_operator_add(s, "alice", ROLE_ADMIN, &t1), 0);
	assert_int_equal(store_operator_add(s, "bob@helpdesk", ROLE_HELPDESK, &t2), 0);
	assert_true(startswith(t1, "tpo_"));
	assert_int_equal(strlen(t1), 47);
	assert_string_not_equal(t1, t2);
	assert_false(db_files_contain(t1 + 4));

	assert_int_equal(store_operator_auth(s, t2, &name, &role), 0);
	assert_string_equal(name, "bob@helpdesk");
	assert_int_equal(role, ROLE_HELPDESK);

	assert_int_equal(store_operator_add(s, "alice", ROLE_VIEWER, &t3), -EEXIST);
	assert_int_equal(store_operator_add(s, "", ROLE_VIEWER, &t3), -EINVAL);
	assert_int_equal(store_operator_add(s, "x y", ROLE_VIEWER, &t3), -EINVAL);
	assert_int_equal(store_operator_add(s, "carol", 7, &t3), -EINVAL);
	assert_null(t3);
	assert_int_equal(sql_int("SELECT count(*) FROM operators"), 2);

	snprintf(wrong, sizeof(wrong), "%s", t1);
	wrong[10] ^= 1;
	assert_int_equal(store_operator_auth(s, wrong, NULL, NULL), -ENOENT);
	snprintf(wrong, sizeof(wrong), "tpe_%s", t1 + 4);
	assert_int_equal(store_operator_auth(s, wrong, NULL, NULL), -ENOENT);
	assert_int_equal(store_operator_auth(s, "", NULL, NULL), -ENOENT);

	assert_string_equal(operator_role_name(ROLE_VIEWER), "viewer");
	assert_int_equal(operator_role_from_name("admin", &role), 0);
	assert_int_equal(role, ROLE_ADMIN);
	assert_int_equal(operator_role_from_name("root", &role), -EINVAL);
	assert_int_equal(operator_role_from_name(NULL, &role), -EINVAL);
}

static void append_n(Store *s, int n)
{
	for (int i = 0; i < n; i++) {
		char details[32];
		snprintf(details, sizeof(details), "{\"i\":%d}", i);
		assert_int_equal(
		    store_audit_append(s, "tester", "test.event", i % 2 ? "dev-odd" : NULL, details), 0);
	}
}

static void expect_verify(Store *s, int r, uint64_t entries, uint64_t first_bad)
{
	uint64_t e = 0, b = 0;
	assert_int_equal(store_audit_verify(s, &e, &b), r);
	assert_int_equal(e, entries);
	assert_int_equal(b, first_bad);
}

static void test_audit_chain(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	AuditEntry *list = NULL;
	uint8_t head[32], zero[32] = {};
	uint64_t head_seq;
	size_t n;

	expect_verify(s, 0, 0, 0);
	assert_int_equal(store_audit_head(s, &head_seq, head), -ENOENT);
	append_n(s, 10);
	expect_verify(s, 0, 10, 0);

	assert_int_equal(store_audit_list(s, 3, 4, &list, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(list[0].seq, 4);
	assert_int_equal(list[3].seq, 7);
	assert_string_equal(list[0].actor, "tester");
	assert_string_equal(list[0].details, "{\"i\":3}");
	assert_string_equal(list[0].subject, "dev-odd");
	assert_null(list[1].subject);
	assert_memory_not_equal(list[0].hash, zero, 32);
	for (size_t i = 0; i < n; i++)
		audit_entry_done(&list[i]);
	free(list);

	assert_int_equal(store_audit_list_subject(s, "dev-odd", 2, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].seq, 10); /* newest first */
	assert_int_equal(list[1].seq, 8);
	for (size_t i = 0; i < n; i++)
		audit_entry_done(&list[i]);
	free(list);

	assert_int_equal(store_audit_head(s, &head_seq, head), 0);
	assert_int_equal(head_seq, 10);
	assert_int_equal(store_audit_list(s, 0, 0, &list, &n), -EINVAL);
	assert_int_equal(store_audit_append(s, "", "x", NULL, NULL), -EINVAL);
	assert_int_equal(store_audit_append(s, "a", NULL, NULL, NULL), -EINVAL);

	/* Edit one field of row 4 behind the store's back: broken at 4. */
	sql_exec("UPDATE audit SET details = '{\"i\":99}' WHERE seq = 4");
	expect_verify(s, -EBADMSG, 10, 4);
	sql_exec("UPDATE audit SET details = '{\"i\":3}' WHERE seq = 4");
	expect_verify(s, 0, 10, 0);

	/* NULL and "" differ. */
	sql_exec("UPDATE audit SET subject = '' WHERE seq = 3");
	expect_verify(s, -EBADMSG, 10, 3);
	sql_exec("UPDATE audit SET subject = NULL WHERE seq = 3");
	expect_verify(s, 0, 10, 0);

	/* Bytes moved between fields. */
	sql_exec("UPDATE audit SET actor = 'teste', action = 'rtest.event' WHERE seq = 6");
	expect_verify(s, -EBADMSG, 10, 6);
	sql_exec("UPDATE audit SET actor = 'tester', action = 'test.event' WHERE seq = 6");

	/* The time and the stored hash. */
	sql_exec("UPDATE audit SET time = time + 1 WHERE seq = 1");
	expect_verify(s, -EBADMSG, 10, 1);
	sql_exec("UPDATE audit SET time = time - 1 WHERE seq = 1");
	sql_exec("UPDATE audit SET hash = zeroblob(32) WHERE seq = 9");
	expect_verify(s, -EBADMSG, 10, 9);
}

static void reset_db(void)
{
	char p[320];

	assert_int_equal(unlink(db_path), 0);
	snprintf(p, sizeof(p), "%s-wal", db_path);
	(void)unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db_path);
	(void)unlink(p);
}

static void test_audit_delete(void **state)
{
	Store *s = open_store();

	append_n(s, 6);
	/* A deleted middle row breaks the chain at the row after it. */
	sql_exec("DELETE FROM audit WHERE seq = 3");
	expect_verify(s, -EBADMSG, 5, 4);
	s = store_close(s);

	/* A deleted last row: the sequence remembers it. */
	reset_db();
	s = open_store();
	append_n(s, 4);
	sql_exec("DELETE FROM audit WHERE seq = 4");
	expect_verify(s, -EBADMSG, 3, 4);
	/* … also after new rows were appended on top of the truncated chain. */
	append_n(s, 2);
	expect_verify(s, -EBADMSG, 5, 5);
	s = store_close(s);

	/* The first row: the chain no longer starts at genesis. */
	reset_db();
	s = open_store();
	append_n(s, 3);
	sql_exec("DELETE FROM audit WHERE seq = 1");
	expect_verify(s, -EBADMSG, 2, 2);
	s = store_close(s);
}

/* The chain hash is exactly the documented layout (store.h): recompute one row independently. */
static void test_audit_layout(void **state)
{
	_cleanup_(store_closep) Store *s = open_store();
	_cleanup_free_ char *hex = NULL;
	FILE *f;
	char cmd[600], out[80] = {};

	assert_int_equal(store_audit_append(s, "op", "act", NULL, "{}"), 0);
	hex = sql_text("SELECT hex(hash) FROM audit WHERE seq = 1");
	int64_t t = sql_int("SELECT time FROM audit WHERE seq = 1");

	/* prev(32 zero) ‖ seq u64 ‖ time i64 ‖ len32 "op" ‖ len32 "act" ‖ ffffffff ‖ len32 "{}" */
	snprintf(
	    cmd, sizeof(cmd),
	    "printf '%%064d%%016x%%016x%%08x%%s%%08x%%s%%s%%08x%%s' 0 1 %lld 2 6f70 3 616374 ffffffff 2 7b7d"
	    " | xxd -r -p | sha256sum | cut -c1-64 | tr a-f A-F",
	    (long long)t);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_non_null(fgets(out, sizeof(out), f));
	pclose(f);
	out[strcspn(out, "\n")] = 0;
	assert_string_equal(out, hex);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_migrate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_race, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_process, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_enroll, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_images, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_operators, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_layout, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
