/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API's command and recovery-key routes (remote/admin-api-commands.c) on a real store
 * with real keys: roles, validation (nothing queued on a refusal), the signed envelope as a
 * device would verify it, the unlock's disk policy and its epoch rule, fleet-wide commands,
 * listing, and the escrowed recovery key with its audit row. */
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
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "admin-api.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "proto/command.h"
#include "tpm2/tpm2-policy-file.h"

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "1123456789abcdef0123456789abcdef"
#define ID_NONE "2223456789abcdef0123456789abcdef"
#define UUID "6a1b2c3d-0000-4000-8000-00000000abcd"
#define RECOVERY "qwer-tyui-opas-dfgh-jklz-xcvb-nmqw-erty"

static char dir[256], db_path[300], escrow_path[300];
static Store *store;
static char *tok_viewer, *tok_helpdesk, *tok_admin;
static EcKey *command_key, *policy_key;
static CommandIssueKeys keys;
static char queued_for[33];
static int queued_calls;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int64_t sql_int(const char *sql);
static bool check_committed; /* queued_cb: the command must be visible to another connection */

static void queued_cb(void *userdata, const char *device_id)
{
	char sql[128];

	snprintf(queued_for, sizeof(queued_for), "%s", device_id);
	queued_calls++;
	if (check_committed) {
		/* Delivered only once durable: another connection sees the command already. */
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM commands WHERE device_id = '%s'",
			 device_id);
		assert_int_equal(sql_int(sql), 1);
	}
}

static int setup(void **state)
{
	_cleanup_ec_key_ EcKey *escrow = NULL;
	_cleanup_free_ char *blob = NULL, *context = NULL;
	char *pem = NULL;
	ImageRecord img = {.name = (char *)"img", .pcr_mask = 1U << 7};
	DeviceRecord d = {.hostname = (char *)"laptop-a",
			  .image = (char *)"img",
			  .tls_public = (uint8_t *)"spki",
			  .tls_public_size = 4,
			  .state = DEVICE_TRUSTED,
			  .enrolled_at = 100,
			  .last_seen = 300,
			  .posture_json = (char *)"{\"epoch\":3,\"locked\":false}"};
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/trustpc-test-admincmd.XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(db_path, sizeof(db_path), "%s/server.db", dir);
	snprintf(escrow_path, sizeof(escrow_path), "%s/escrow.key", dir);
	if (store_open(db_path, &store) < 0 ||
	    store_operator_add(store, "vera", ROLE_VIEWER, &tok_viewer) < 0 ||
	    store_operator_add(store, "hugo", ROLE_HELPDESK, &tok_helpdesk) < 0 ||
	    store_operator_add(store, "ada", ROLE_ADMIN, &tok_admin) < 0)
		return -1;
	memset(img.pcr_values[7], 0x77, 32);
	if (store_image_put(store, &img) < 0)
		return -1;

	if (ec_key_generate(&command_key) < 0 || ec_key_generate(&policy_key) < 0 ||
	    ec_key_generate(&escrow) < 0)
		return -1;
	if (ec_key_private_pem(escrow, &pem) < 0 || !(f = fopen(escrow_path, "we")))
		return -1;
	fputs(pem, f);
	fclose(f);
	secure_free(pem);
	if (asprintf(&context, "recovery-key:%s:%s", ID_A, UUID) < 0 ||
	    escrow_seal(escrow, context, RECOVERY, strlen(RECOVERY), &blob) < 0)
		return -1;
	d.escrow_json = blob;
	memcpy(d.device_id, ID_A, 33);
	if (store_device_put(store, &d) < 0)
		return -1;
	d = (DeviceRecord){
	    .hostname = (char *)"thin-b", .state = DEVICE_QUARANTINED, .reason = (char *)"PCR 7"};
	memcpy(d.device_id, ID_B, 33);
	if (store_device_put(store, &d) < 0)
		return -1;
	keys = (CommandIssueKeys){
	    .command_key = command_key, .policy_key = policy_key, .policy_pcrs = 1U << 7, .ttl = 3600};
	queued_calls = 0;
	queued_for[0] = 0;
	return 0;
}

static int teardown(void **state)
{
	store = store_close(store);
	tok_viewer = erase_and_free(tok_viewer);
	tok_helpdesk = erase_and_free(tok_helpdesk);
	tok_admin = erase_and_free(tok_admin);
	command_key = ec_key_free(command_key);
	policy_key = ec_key_free(policy_key);
	return nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct Answer {
	int status;
	json_t *json;
	char *body;
} Answer;

static void answer_done(Answer *a)
{
	json_decref(a->json);
	free(a->body);
	*a = (Answer){};
}

static Answer call(const char *method, const char *target, const char *token, const char *body)
{
	_cleanup_free_ char *text = NULL, *auth = NULL;
	_cleanup_http_request_ HttpRequest req = {};
	HttpResponse resp = {};
	AdminContext ctx = {.store = store,
			    .now = time(NULL),
			    .commands = &keys,
			    .command_queued = queued_cb,
			    .escrow_key_path = escrow_path};
	Answer a = {};

	if (token)
		assert_true(asprintf(&auth, "Authorization: Bearer %s\r\n", token) > 0);
	assert_true(asprintf(&text, "%s %s HTTP/1.1\r\nHost: test\r\n%sContent-Length: %zu\r\n\r\n%s",
			     method, target, auth ?: "", body ? strlen(body) : 0, body ?: "") > 0);
	assert_int_equal(http_request_parse(text, strlen(text), &req, NULL), 0);
	assert_int_equal(admin_api_handle(&ctx, &req, &resp), 0);
	assert_non_null(resp.body);
	a.status = resp.status;
	a.json = json_loads(resp.body, JSON_DECODE_ANY, NULL);
	if (!a.json)
		fail_msg("not JSON: %s", resp.body);
	a.body = resp.body;
	return a;
}

static void expect(const char *method, const char *target, const char *token, const char *body, int status,
		   const char *code, const char *want_msg)
{
	Answer a = call(method, target, token, body);

	if (a.status != status)
		fail_msg("%s %s %s: status %d, expected %d: %s", method, target, strna(body), a.status,
			 status, a.body);
	if (code) {
		const char *m = json_string_value(json_object_get(a.json, "message"));
		assert_string_equal(json_string_value(json_object_get(a.json, "error")), code);
		assert_non_null(m);
		if (want_msg && !strstr(m, want_msg))
			fail_msg("%s %s: message '%s' lacks '%s'", method, target, m, want_msg);
	}
	answer_done(&a);
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

/* The stored envelope, checked the way the device checks it. */
static void verify_stored(const char *id, const char *device, uint64_t last_seq, Command *ret)
{
	_cleanup_(command_record_done) CommandRecord rec = {};
	const char *why = NULL;

	assert_int_equal(store_command_get(store, id, &rec), 0);
	if (command_verify(command_key, device, last_seq, (uint64_t)time(NULL), rec.cose, rec.cose_size, ret,
			   &why) < 0)
		fail_msg("command %s does not verify: %s", id, strna(why));
}

#define LOCK_A "/api/v1/devices/" ID_A "/commands"

static void test_roles(void **state)
{
	const char *lock = "{\"type\":\"lock\",\"reason\":\"stolen\"}";
	const char *policy = "{\"type\":\"policy\",\"version\":2,\"heartbeat\":60}";

	expect("POST", LOCK_A, NULL, lock, 401, "unauthenticated", NULL);
	expect("POST", LOCK_A, tok_viewer, lock, 403, "forbidden", "needs the helpdesk role");
	expect("POST", "/api/v1/commands", tok_viewer, "{\"all\":true,\"type\":\"lock\"}", 403, "forbidden",
	       NULL);
	expect("POST", "/api/v1/devices/" ID_A "/recovery-key", tok_helpdesk, NULL, 403, "forbidden",
	       "needs the admin role");
	/* The device policy is the admin's; the role check comes before anything is queued. */
	expect("POST", LOCK_A, tok_helpdesk, policy, 403, "forbidden",
	       "policy command needs the admin role");
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM audit WHERE action = 'command.queue'"), 0);
	assert_int_equal(queued_calls, 0);

	expect("POST", LOCK_A, tok_helpdesk, lock, 202, NULL, NULL);
	assert_int_equal(queued_calls, 1);
	assert_string_equal(queued_for, ID_A);
	expect("POST", LOCK_A, tok_admin, policy, 202, NULL, NULL);
	expect("GET", "/api/v1/commands", tok_viewer, NULL, 200, NULL, NULL);
	assert_int_equal(
	    sql_int("SELECT count(*) FROM audit WHERE action = 'command.queue' AND actor = 'hugo'"), 1);
	assert_int_equal(
	    sql_int("SELECT count(*) FROM audit WHERE action = 'command.queue' AND actor = 'ada'"), 1);
}

static void test_validation(void **state)
{
	expect("POST", "/api/v1/devices/" ID_NONE "/commands", tok_helpdesk, "{\"type\":\"lock\"}", 404,
	       "unknown-device", NULL);
	expect("POST", "/api/v1/devices/xyz/commands", tok_helpdesk, "{\"type\":\"lock\"}", 400,
	       "bad-device-id", NULL);
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"reboot\"}", 400, "bad-type", NULL);
	expect("POST", LOCK_A, tok_helpdesk, "{}", 400, "bad-type", NULL);
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"wipe\"}", 400, "bad-class", NULL);
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"wipe\",\"class\":\"../etc\"}", 400, "bad-class",
	       NULL);
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"wipe\",\"class\":\".hidden\"}", 400, "bad-class",
	       NULL);
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"wipe\",\"class\":7}", 400, "bad-class", NULL);
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"lock\",\"class\":\"corporate\"}", 400,
	       "bad-request", "does not apply");
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"lock\",\"reason\":\"a\\nb\"}", 400, "bad-request",
	       "control");
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"lock\",\"poweroff\":\"yes\"}", 400, "bad-request",
	       NULL);
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"lock\",\"extra\":1}", 400, "bad-request", "extra");
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"lock\",\"all\":true}", 400, "bad-request", NULL);
	expect("POST", LOCK_A "?x=1", tok_helpdesk, "{\"type\":\"lock\"}", 400, "bad-query", NULL);
	expect("POST", LOCK_A, tok_admin, "{\"type\":\"policy\",\"version\":0,\"heartbeat\":60}", 400,
	       "bad-request", NULL);
	expect("POST", LOCK_A, tok_admin, "{\"type\":\"policy\",\"heartbeat\":60}", 400, "bad-request",
	       "version");
	expect("GET", LOCK_A, tok_helpdesk, NULL, 405, "method-not-allowed", NULL);
	/* An unlock for a device without an image (no PCR values to sign for) is refused. */
	expect("POST", "/api/v1/devices/" ID_B "/commands", tok_helpdesk, "{\"type\":\"unlock\"}", 409,
	       "no-policy-data", "image");
	expect("GET", "/api/v1/commands?device=zz", tok_viewer, NULL, 400, "bad-query", NULL);
	expect("GET", "/api/v1/commands?limit=0", tok_viewer, NULL, 400, "bad-query", NULL);
	expect("GET", "/api/v1/commands?foo=1", tok_viewer, NULL, 400, "bad-query", NULL);
	expect("GET", "/api/v1/commands?device=" ID_NONE, tok_viewer, NULL, 404, "unknown-device", NULL);
	/* Nothing of that was queued or audited. */
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM audit"), 0);
	assert_int_equal(sql_int("SELECT next_seq FROM devices WHERE device_id = '" ID_A "'"), 1);
}

static void test_lock_unlock(void **state)
{
	_cleanup_(command_done) Command lock = {}, unlock = {}, wipe = {};
	_cleanup_free_ char *lock_id = NULL;
	SignedPolicy pol = {};
	const char *why = NULL;
	Answer a;

	a = call("POST", LOCK_A, tok_helpdesk,
		 "{\"type\":\"lock\",\"reason\":\"stolen \\\"bag\\\"\",\"poweroff\":true}");
	assert_int_equal(a.status, 202);
	assert_string_equal(json_string_value(json_object_get(a.json, "state")), "queued");
	assert_int_equal(json_integer_value(json_object_get(a.json, "seq")), 1);
	assert_string_equal(json_string_value(json_object_get(a.json, "device_id")), ID_A);
	lock_id = strdup(json_string_value(json_object_get(a.json, "id")));
	answer_done(&a);
	verify_stored(lock_id, ID_A, 0, &lock);
	assert_int_equal(lock.type, COMMAND_LOCK);
	assert_int_equal(lock.seq, 1);
	assert_string_equal(lock.args.lock.reason, "stolen \"bag\"");
	assert_true(lock.args.lock.poweroff);
	assert_string_equal(lock.issuer, "hugo");
	assert_int_equal(lock.exp - lock.iat, 3600);
	/* Signed for this device only. */
	{
		_cleanup_(command_record_done) CommandRecord rec = {};
		Command other = {};
		assert_int_equal(store_command_get(store, lock_id, &rec), 0);
		assert_int_equal(command_verify(command_key, ID_B, 0, (uint64_t)time(NULL), rec.cose,
						rec.cose_size, &other, &why),
				 -EXDEV);
	}

	/* While the lock is pending its epoch is unknown: no unlock yet. */
	expect("POST", LOCK_A, tok_helpdesk, "{\"type\":\"unlock\"}", 409, "lock-pending", NULL);

	/* The device reports the lock done at epoch 5: the unlock's policy is for epoch 5. */
	assert_int_equal(store_command_mark_delivered(store, lock_id, time(NULL)), 0);
	assert_int_equal(store_command_finish(
			     store, lock_id,
			     &(CommandOutcome){.state = COMMAND_STATE_DONE, .has_epoch = true, .epoch = 5},
			     time(NULL)),
			 0);
	a = call("POST", LOCK_A, tok_helpdesk, "{\"type\":\"unlock\"}");
	assert_int_equal(a.status, 202);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a.json, "args"), "epoch")), 5);
	verify_stored(json_string_value(json_object_get(a.json, "id")), ID_A, 1, &unlock);
	answer_done(&a);
	assert_int_equal(unlock.type, COMMAND_UNLOCK);
	assert_int_equal(unlock.seq, 2);
	assert_int_equal(
	    signed_policy_parse(unlock.args.unlock.policy, strlen(unlock.args.unlock.policy), &pol, &why),
	    0);
	assert_int_equal(signed_policy_verify(&pol, policy_key, &why), 0);
	assert_string_equal(pol.device_id, ID_A);
	assert_int_equal(pol.params.epoch, 5);
	assert_int_equal(pol.params.pcr_mask, (1U << 7) | (1U << 15));
	for (size_t i = 0; i < 32; i++) {
		assert_int_equal(pol.params.pcr_values[7][i], 0x77);
		assert_int_equal(pol.params.pcr_values[15][i], 0);
	}

	/* A later posture with a higher epoch wins (the counter only goes up). */
	assert_int_equal(store_device_seen(store, ID_A, time(NULL), "{\"epoch\":9}"), 0);
	a = call("POST", LOCK_A, tok_helpdesk, "{\"type\":\"unlock\"}");
	assert_int_equal(a.status, 202);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a.json, "args"), "epoch")), 9);
	answer_done(&a);

	a = call("POST", LOCK_A, tok_helpdesk, "{\"type\":\"wipe\",\"class\":\"corporate\"}");
	assert_int_equal(a.status, 202);
	verify_stored(json_string_value(json_object_get(a.json, "id")), ID_A, 3, &wipe);
	assert_string_equal(wipe.args.wipe.class_name, "corporate");
	assert_int_equal(wipe.seq, 4);
	answer_done(&a);

	/* The list and the device view show them, newest first, with states and times. */
	a = call("GET", "/api/v1/commands?device=" ID_A "&limit=2", tok_viewer, NULL);
	assert_int_equal(a.status, 200);
	assert_int_equal(json_array_size(a.json), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a.json, 0), "seq")), 4);
	assert_true(json_is_null(json_object_get(json_array_get(a.json, 0), "delivered_at")));
	answer_done(&a);
	a = call("GET", "/api/v1/devices/" ID_A, tok_viewer, NULL);
	assert_int_equal(a.status, 200);
	{
		json_t *cmds = json_object_get(a.json, "commands"), *last = json_array_get(cmds, 3);
		assert_int_equal(json_array_size(cmds), 4);
		assert_string_equal(json_string_value(json_object_get(last, "state")), "done");
		assert_int_equal(json_integer_value(json_object_get(last, "epoch")), 5);
		assert_true(json_is_integer(json_object_get(last, "delivered_at")));
		assert_true(json_is_integer(json_object_get(last, "finished_at")));
		assert_string_equal(
		    json_string_value(json_object_get(json_object_get(last, "args"), "reason")),
		    "stolen \"bag\"");
	}
	answer_done(&a);
}

static void test_fleet(void **state)
{
	Answer a;

	/* One unknown device in the list: nothing is queued for anyone. */
	expect("POST", "/api/v1/commands", tok_helpdesk,
	       "{\"devices\":[\"" ID_A "\",\"" ID_NONE "\"],\"type\":\"lock\"}", 404, "unknown-device",
	       ID_NONE);
	expect("POST", "/api/v1/commands", tok_helpdesk, "{\"devices\":[],\"type\":\"lock\"}", 400,
	       "bad-request", NULL);
	expect("POST", "/api/v1/commands", tok_helpdesk, "{\"type\":\"lock\"}", 400, "bad-request", NULL);
	expect("POST", "/api/v1/commands", tok_helpdesk,
	       "{\"all\":true,\"devices\":[\"" ID_A "\"],\"type\":\"lock\"}", 400, "bad-request", NULL);
	expect("POST", "/api/v1/commands", tok_helpdesk,
	       "{\"all\":true,\"type\":\"wipe\",\"class\":\"a/b\"}", 400, "bad-class", NULL);
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 0);

	a = call("POST", "/api/v1/commands", tok_helpdesk,
		 "{\"all\":true,\"type\":\"lock\",\"reason\":\"audit\"}");
	assert_int_equal(a.status, 202);
	assert_int_equal(json_array_size(a.json), 2);
	answer_done(&a);
	assert_int_equal(queued_calls, 2);
	/* An unlock to both: the device without an image is reported, the other one queued. */
	a = call("POST", "/api/v1/commands", tok_helpdesk,
		 "{\"devices\":[\"" ID_B "\",\"" ID_A "\"],\"type\":\"wipe\",\"class\":\"all\"}");
	assert_int_equal(a.status, 202);
	assert_int_equal(json_array_size(a.json), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a.json, 0), "seq")), 2);
	answer_done(&a);
	a = call("POST", "/api/v1/commands", tok_helpdesk,
		 "{\"devices\":[\"" ID_B "\"],\"type\":\"unlock\"}");
	assert_int_equal(a.status, 202);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a.json, 0), "error")),
			    "lock-pending");
	answer_done(&a);
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 4);
	a = call("GET", "/api/v1/commands", tok_viewer, NULL);
	assert_int_equal(json_array_size(a.json), 4);
	answer_done(&a);
}

/* n new trusted devices (ids starting with c) and the body of a lock for all of them by list. */
static char *fleet_lock_body(char c, unsigned n, const char *reason)
{
	char *body = malloc(64 + strlen(reason) + n * 36);
	size_t len;

	assert_non_null(body);
	len = (size_t)sprintf(body, "{\"type\":\"lock\",\"reason\":\"%s\",\"devices\":[", reason);
	for (unsigned i = 0; i < n; i++) {
		DeviceRecord d = {.hostname = (char *)"fleet", .state = DEVICE_TRUSTED};
		snprintf(d.device_id, sizeof(d.device_id), "%c%031x", c, i);
		assert_int_equal(store_device_put(store, &d), 0);
		len += (size_t)sprintf(body + len, "%s\"%s\"", i ? "," : "", d.device_id);
	}
	sprintf(body + len, "]}");
	return body;
}

/* More devices than one slice (ADMIN_FLEET_SLICE): every command is committed before its delivery
 * is asked for, every device gets exactly one, seqs and audit rows are all there. */
static void test_fleet_slices(void **state)
{
	enum { N = 600 };
	char *body = fleet_lock_body('f', N, "sync");
	Answer a;

	check_committed = true;
	a = call("POST", "/api/v1/commands", tok_helpdesk, body);
	check_committed = false;
	free(body);
	assert_int_equal(a.status, 202);
	assert_int_equal(json_array_size(a.json), N);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(json_integer_value(json_object_get(json_array_get(a.json, i), "seq")), 1);
	answer_done(&a);
	assert_int_equal(queued_calls, N);
	assert_int_equal(sql_int("SELECT count(DISTINCT device_id) FROM commands WHERE type = 'lock'"), N);
	assert_int_equal(sql_int("SELECT count(*) FROM audit WHERE action = 'command.queue'"), N);
}

/* The server's way (admin_api_handle_async): the checks and nothing queued at first, then one
 * slice of ADMIN_FLEET_SLICE per admin_fleet_step, each committed and delivered before the step
 * returns, the answer with the last one. The request is freed before the first step: the fleet keeps what it
 * needs. */
static void test_fleet_async(void **state)
{
	enum { N = 2 * ADMIN_FLEET_SLICE + ADMIN_FLEET_SLICE / 2 };
	static const size_t after[] = {ADMIN_FLEET_SLICE, 2 * ADMIN_FLEET_SLICE, N};
	_cleanup_free_ char *text = NULL, *auth = NULL;
	_cleanup_http_request_ HttpRequest req = {};
	HttpResponse resp = {};
	AdminContext ctx = {
	    .store = store, .now = time(NULL), .commands = &keys, .command_queued = queued_cb};
	AdminFleet *f = NULL;
	char *body = fleet_lock_body('a', N, "async");
	size_t done, total;
	json_t *j;

	assert_true(asprintf(&auth, "Authorization: Bearer %s\r\n", tok_helpdesk) > 0);
	assert_true(
	    asprintf(&text,
		     "POST /api/v1/commands HTTP/1.1\r\nHost: test\r\n%sContent-Length: %zu\r\n\r\n%s", auth,
		     strlen(body), body) > 0);
	free(body);
	assert_int_equal(http_request_parse(text, strlen(text), &req, NULL), 0);
	assert_int_equal(admin_api_handle_async(&ctx, &req, &resp, &f), 0);
	assert_non_null(f);
	assert_null(resp.body); /* no answer yet, nothing queued */
	assert_int_equal(sql_int("SELECT count(*) FROM commands"), 0);
	http_request_done(&req);
	memset(text, 'x', strlen(text));

	check_committed = true;
	for (size_t k = 0; k < ELEMENTSOF(after); k++) {
		int r = admin_fleet_step(f, &ctx, &resp);
		assert_int_equal(r, k + 1 < ELEMENTSOF(after) ? 0 : 1);
		assert_int_equal(sql_int("SELECT count(*) FROM commands"), after[k]);
		assert_int_equal(queued_calls, after[k]);
		admin_fleet_progress(f, &done, &total);
		assert_int_equal(done, after[k]);
		assert_int_equal(total, N);
	}
	check_committed = false;
	f = admin_fleet_free(f);
	assert_int_equal(resp.status, 202);
	j = json_loads(resp.body, 0, NULL);
	assert_int_equal(json_array_size(j), N);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(json_array_get(j, N - 1), "args"), "reason")),
	    "async");
	json_decref(j);
	http_response_done(&resp);
	assert_int_equal(
	    sql_int("SELECT count(*) FROM audit WHERE action = 'command.queue' AND actor = 'hugo'"), N);

	/* A request refused by the checks is answered at once, no fleet. */
	assert_true(asprintf(&body,
			     "POST /api/v1/commands HTTP/1.1\r\nHost: test\r\n%sContent-Length: 2\r\n\r\n{}",
			     auth) > 0);
	assert_int_equal(http_request_parse(body, strlen(body), &req, NULL), 0);
	free(body);
	assert_int_equal(admin_api_handle_async(&ctx, &req, &resp, &f), 0);
	assert_null(f);
	assert_int_equal(resp.status, 400);
	http_response_done(&resp);
}

static void test_recovery_key(void **state)
{
	Answer a;

	expect("POST", "/api/v1/devices/" ID_NONE "/recovery-key", tok_admin, NULL, 404, "unknown-device",
	       NULL);
	expect("POST", "/api/v1/devices/" ID_B "/recovery-key", tok_admin, NULL, 404, "not-escrowed", NULL);
	expect("POST", "/api/v1/devices/" ID_A "/recovery-key", tok_admin, "{\"x\":1}", 400, "bad-request",
	       NULL);
	assert_int_equal(sql_int("SELECT count(*) FROM audit WHERE action = 'recovery-key.read'"), 0);

	a = call("POST", "/api/v1/devices/" ID_A "/recovery-key", tok_admin, NULL);
	assert_int_equal(a.status, 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "recovery_key")), RECOVERY);
	assert_string_equal(json_string_value(json_object_get(a.json, "luks_uuid")), UUID);
	answer_done(&a);
	assert_int_equal(
	    sql_int("SELECT count(*) FROM audit WHERE action = 'recovery-key.read' AND actor = 'ada' "
		    "AND subject = '" ID_A "'"),
	    1);

	/* A blob copied from device A onto device B is refused: its context names A. */
	{
		_cleanup_(device_record_done) DeviceRecord da = {};
		assert_int_equal(store_device_get(store, ID_A, &da), 0);
		assert_int_equal(store_device_set_escrow(store, ID_B, da.escrow_json), 0);
	}
	expect("POST", "/api/v1/devices/" ID_B "/recovery-key", tok_admin, NULL, 500, "internal", NULL);
	assert_int_equal(sql_int("SELECT count(*) FROM audit WHERE action = 'recovery-key.read'"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_unlock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fleet, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fleet_slices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fleet_async, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recovery_key, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
