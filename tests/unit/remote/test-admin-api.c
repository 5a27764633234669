/* SPDX-License-Identifier: Apache-2.0 */
/* remote/admin-api.c on a real SQLite store, requests going through the real HTTP parser:
 * authentication, routing, the role matrix, each route's JSON, validation, and the audit rows
 * of operator actions. */
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

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "1123456789abcdef0123456789abcdef"
#define SPKI_SHA256 "6feecc8c16c5551d9feb3eb5f77e2da773bf68bd9ef9c52927ceb2c86e56892b"
#define HEX64_7 "7777777777777777777777777777777777777777777777777777777777777777"

static char dir[256], db_path[300];
static Store *store;
static char *tok_viewer, *tok_helpdesk, *tok_admin;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static bool connected_cb(void *userdata, const char *device_id)
{
	return streq(device_id, (const char *)userdata);
}

static int setup(void **state)
{
	ImageRecord img = {.name = (char *)"img", .pcr_mask = 1U << 7};
	DeviceRecord d = {
	    .hostname = (char *)"laptop-a",
	    .image = (char *)"img",
	    .tls_public = (uint8_t *)"spki",
	    .tls_public_size = 4,
	    .state = DEVICE_TRUSTED,
	    .enrolled_at = 100,
	    .last_seen = 300,
	    .attested_at = 200,
	    .posture_json = (char *)"{\"epoch\":3,\"locked\":false}",
	    .escrow_json = (char *)"{\"v\":1}",
	};

	snprintf(dir, sizeof(dir), "%s/trustpc-test-admin.XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(db_path, sizeof(db_path), "%s/server.db", dir);
	if (store_open(db_path, &store) < 0)
		return -1;
	if (store_operator_add(store, "vera", ROLE_VIEWER, &tok_viewer) < 0 ||
	    store_operator_add(store, "hugo", ROLE_HELPDESK, &tok_helpdesk) < 0 ||
	    store_operator_add(store, "ada", ROLE_ADMIN, &tok_admin) < 0)
		return -1;
	memset(img.pcr_values[7], 0x77, 32);
	if (store_image_put(store, &img) < 0)
		return -1;
	memcpy(d.device_id, ID_A, 33);
	if (store_device_put(store, &d) < 0)
		return -1;
	d = (DeviceRecord){
	    .hostname = (char *)"thin-b", .state = DEVICE_QUARANTINED, .reason = (char *)"PCR 7"};
	memcpy(d.device_id, ID_B, 33);
	if (store_device_put(store, &d) < 0)
		return -1;
	return store_audit_append(store, "device:" ID_A, "attest", ID_A, "{\"result\":\"trusted\"}") < 0 ? -1
													 : 0;
}

static int teardown(void **state)
{
	store = store_close(store);
	tok_viewer = erase_and_free(tok_viewer);
	tok_helpdesk = erase_and_free(tok_helpdesk);
	tok_admin = erase_and_free(tok_admin);
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

/* Sends raw request text through the parser and the API. */
static Answer call(const char *method, const char *target, const char *token, const char *body)
{
	_cleanup_free_ char *text = NULL, *auth = NULL;
	_cleanup_http_request_ HttpRequest req = {};
	HttpResponse resp = {};
	AdminContext ctx = {
	    .store = store, .is_connected = connected_cb, .userdata = (void *)ID_A, .now = time(NULL)};
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

/* The status, and for errors the code and a message containing want_msg. */
static void expect(const char *method, const char *target, const char *token, const char *body, int status,
		   const char *code, const char *want_msg)
{
	Answer a = call(method, target, token, body);

	if (a.status != status)
		fail_msg("%s %s: status %d, expected %d: %s", method, target, a.status, status, a.body);
	if (code) {
		const char *m = json_string_value(json_object_get(a.json, "message"));
		assert_string_equal(json_string_value(json_object_get(a.json, "error")), code);
		assert_non_null(m);
		if (want_msg && !strstr(m, want_msg))
			fail_msg("%s %s: message '%s' lacks '%s'", method, target, m, want_msg);
	}
	answer_done(&a);
}

static int64_t audit_count(const char *where)
{
	_cleanup_free_ char *sql = NULL;
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v;

	assert_true(asprintf(&sql, "SELECT count(*) FROM audit WHERE %s", where) > 0);
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void test_authentication(void **state)
{
	Answer a;
	char wrong[64];

	expect("GET", "/api/v1/devices", NULL, NULL, 401, "unauthenticated", "Bearer");
	/* Unknown routes look the same without a token: nothing learned about the API. */
	expect("GET", "/nothing-here", NULL, NULL, 401, "unauthenticated", NULL);
	expect("DELETE", "/api/v1/devices", NULL, NULL, 401, "unauthenticated", NULL);
	expect("GET", "/api/v1/devices", "tpo_unknownunknownunknownunknownunknownunknow", NULL, 401,
	       "unauthenticated", "not known");
	snprintf(wrong, sizeof(wrong), "tpe_%s", tok_admin + 4); /* right secret, wrong kind */
	expect("GET", "/api/v1/devices", wrong, NULL, 401, "unauthenticated", NULL);
	snprintf(wrong, sizeof(wrong), "%s", tok_admin);
	wrong[20] ^= 0x01;
	expect("GET", "/api/v1/devices", wrong, NULL, 401, "unauthenticated", NULL);

	/* Other schemes and malformed headers. */
	{
		_cleanup_http_request_ HttpRequest req = {};
		HttpResponse resp = {};
		AdminContext ctx = {.store = store};
		const char *variants[] = {"Basic dmVyYTpwdw==", "Bearer", "Bearer ", "Bearertpo_x", NULL};
		for (size_t i = 0; variants[i]; i++) {
			req = (HttpRequest){.method = strdup("GET"),
					    .path = strdup("/api/v1/devices"),
					    .authorization = strdup(variants[i]),
					    .body = strdup("")};
			assert_int_equal(admin_api_handle(&ctx, &req, &resp), 0);
			assert_int_equal(resp.status, 401);
			http_response_done(&resp);
			http_request_done(&req);
		}
		/* The scheme is case-insensitive; extra spaces before the token are fine. */
		char *h = NULL;
		assert_true(asprintf(&h, "bEaReR   %s", tok_viewer) > 0);
		req = (HttpRequest){.method = strdup("GET"),
				    .path = strdup("/api/v1/images"),
				    .authorization = h,
				    .body = strdup("")};
		assert_int_equal(admin_api_handle(&ctx, &req, &resp), 0);
		assert_int_equal(resp.status, 200);
		http_response_done(&resp);
	}

	/* The 401 answer carries the challenge header. */
	a = call("GET", "/api/v1/devices", NULL, NULL);
	{
		HttpResponse r = {.status = a.status, .body = a.body};
		_cleanup_free_ char *out = NULL;
		size_t n;
		assert_int_equal(http_response_format(&r, &out, &n), 0);
		assert_non_null(strstr(out, "WWW-Authenticate: Bearer"));
	}
	answer_done(&a);
}

static void test_routing(void **state)
{
	expect("GET", "/api/v1/nothing", tok_viewer, NULL, 404, "not-found", "/api/v1/nothing");
	expect("GET", "/api/v2/devices", tok_viewer, NULL, 404, "not-found", NULL);
	expect("GET", "/api/v1/devices/", tok_viewer, NULL, 404, "not-found", NULL);
	expect("GET", "/api/v1/devices/" ID_A "/x", tok_viewer, NULL, 404, "not-found", NULL);
	expect("GET", "/", tok_viewer, NULL, 404, "not-found", NULL);
	expect("DELETE", "/api/v1/devices", tok_admin, NULL, 405, "method-not-allowed", "use GET");
	expect("GET", "/api/v1/tokens", tok_admin, NULL, 405, "method-not-allowed", "use POST");
	expect("PUT", "/api/v1/images", tok_admin, NULL, 405, "method-not-allowed", NULL);
	expect("POST", "/api/v1/audit/verify", tok_admin, "{}", 405, "method-not-allowed", NULL);
	/* Methods are case-sensitive (RFC 9110 §9.1). */
	expect("get", "/api/v1/devices", tok_admin, NULL, 405, "method-not-allowed", NULL);
	/* Query parameters where none are taken. */
	expect("GET", "/api/v1/devices?x=1", tok_viewer, NULL, 400, "bad-query", "no query");
}

static void test_role_matrix(void **state)
{
	static const struct {
		const char *method, *target, *body;
		OperatorRole least;
		int ok_status;
	} routes[] = {
	    {"GET", "/api/v1/devices", NULL, ROLE_VIEWER, 200},
	    {"GET", "/api/v1/devices/" ID_A, NULL, ROLE_VIEWER, 200},
	    {"POST", "/api/v1/tokens", "{}", ROLE_ADMIN, 201},
	    {"GET", "/api/v1/images", NULL, ROLE_VIEWER, 200},
	    {"POST", "/api/v1/images", "{\"name\":\"m\",\"pcrs\":{\"7\":\"" HEX64_7 "\"}}", ROLE_ADMIN, 201},
	    {"GET", "/api/v1/audit", NULL, ROLE_VIEWER, 200},
	    {"GET", "/api/v1/audit/verify", NULL, ROLE_VIEWER, 200},
	};
	const char *tokens[] = {NULL, tok_viewer, tok_helpdesk, tok_admin};
	const char *names[] = {NULL, "viewer", "helpdesk", "admin"};

	for (size_t i = 0; i < ELEMENTSOF(routes); i++)
		for (OperatorRole role = ROLE_VIEWER; role <= ROLE_ADMIN; role++) {
			Answer a = call(routes[i].method, routes[i].target, tokens[role], routes[i].body);
			int want = role >= routes[i].least ? routes[i].ok_status : 403;

			if (a.status != want)
				fail_msg("%s %s as %s: %d, expected %d (%s)", routes[i].method,
					 routes[i].target, names[role], a.status, want, a.body);
			if (want == 403) {
				/* The message names the role needed and the one held. */
				const char *m = json_string_value(json_object_get(a.json, "message"));
				assert_non_null(strstr(m, "needs the admin role"));
				assert_non_null(strstr(m, names[role]));
				assert_string_equal(json_string_value(json_object_get(a.json, "error")),
						    "forbidden");
			}
			answer_done(&a);
		}
	/* Refused actions left no trace; allowed ones one row each, by the admin. */
	assert_int_equal(audit_count("action = 'token.create'"), 1);
	assert_int_equal(audit_count("action = 'token.create' AND actor = 'ada'"), 1);
	assert_int_equal(audit_count("action = 'image.set' AND actor = 'ada' AND subject = 'm'"), 1);
}

static void test_devices(void **state)
{
	Answer a = call("GET", "/api/v1/devices", tok_viewer, NULL);
	json_t *d;

	assert_int_equal(a.status, 200);
	assert_true(json_is_array(a.json));
	assert_int_equal(json_array_size(a.json), 2);
	d = json_array_get(a.json, 0);
	assert_string_equal(json_string_value(json_object_get(d, "device_id")), ID_A);
	assert_string_equal(json_string_value(json_object_get(d, "hostname")), "laptop-a");
	assert_string_equal(json_string_value(json_object_get(d, "image")), "img");
	assert_string_equal(json_string_value(json_object_get(d, "state")), "trusted");
	assert_true(json_is_true(json_object_get(d, "connected")));
	assert_int_equal(json_integer_value(json_object_get(d, "last_seen")), 300);
	assert_int_equal(json_integer_value(json_object_get(d, "attested_at")), 200);
	assert_true(json_is_null(json_object_get(d, "reason")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "posture"), "epoch")), 3);
	d = json_array_get(a.json, 1);
	assert_string_equal(json_string_value(json_object_get(d, "state")), "quarantined");
	assert_string_equal(json_string_value(json_object_get(d, "reason")), "PCR 7");
	assert_true(json_is_false(json_object_get(d, "connected")));
	assert_true(json_is_null(json_object_get(d, "attested_at"))); /* never */
	assert_true(json_is_null(json_object_get(d, "posture")));
	assert_true(json_is_null(json_object_get(d, "image")));
	/* Secrets and blobs are not in the list. */
	assert_null(strstr(a.body, "escrow\":{"));
	answer_done(&a);

	a = call("GET", "/api/v1/devices/" ID_A, tok_viewer, NULL);
	assert_int_equal(a.status, 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "device_id")), ID_A);
	assert_true(json_is_true(json_object_get(a.json, "escrowed")));
	/* SHA-256("spki"), computed with sha256sum */
	assert_string_equal(json_string_value(json_object_get(a.json, "tls_key_sha256")), SPKI_SHA256);
	answer_done(&a);
}

static void test_device_show(void **state)
{
	Answer a = call("GET", "/api/v1/devices/" ID_A, tok_viewer, NULL);
	json_t *h;

	assert_int_equal(a.status, 200);
	assert_true(json_is_true(json_object_get(a.json, "escrowed")));
	assert_int_equal(strlen(json_string_value(json_object_get(a.json, "tls_key_sha256"))), 64);
	assert_true(json_is_null(json_object_get(a.json, "ek_cert_sha256")));
	h = json_object_get(a.json, "history");
	assert_int_equal(json_array_size(h), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "action")), "attest");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(json_array_get(h, 0), "details"), "result")),
	    "trusted");
	answer_done(&a);

	expect("GET", "/api/v1/devices/fedcba9876543210fedcba9876543210", tok_viewer, NULL, 404,
	       "unknown-device", "fedcba9876543210fedcba9876543210");
	expect("GET", "/api/v1/devices/0123", tok_viewer, NULL, 400, "bad-device-id", "32 lower-case hex");
	expect("GET", "/api/v1/devices/0123456789ABCDEF0123456789ABCDEF", tok_viewer, NULL, 400,
	       "bad-device-id", NULL);
}

static void test_tokens(void **state)
{
	Answer a;
	_cleanup_free_ char *image = NULL;
	time_t before = time(NULL);

	a = call("POST", "/api/v1/tokens", tok_admin, "{\"image\":\"img\",\"ttl_seconds\":600}");
	assert_int_equal(a.status, 201);
	assert_string_equal(json_string_value(json_object_get(a.json, "image")), "img");
	assert_true(json_integer_value(json_object_get(a.json, "expires_at")) >= before + 600);
	assert_true(json_integer_value(json_object_get(a.json, "expires_at")) <= time(NULL) + 600);
	/* The answer is a working one-time token. */
	assert_int_equal(
	    store_token_consume(store, json_string_value(json_object_get(a.json, "token")), &image), 0);
	assert_string_equal(image, "img");
	assert_int_equal(
	    store_token_consume(store, json_string_value(json_object_get(a.json, "token")), NULL), -ESTALE);
	answer_done(&a);

	/* Defaults: no image, 24 h. */
	a = call("POST", "/api/v1/tokens", tok_admin, "{}");
	assert_int_equal(a.status, 201);
	assert_true(json_is_null(json_object_get(a.json, "image")));
	assert_true(json_integer_value(json_object_get(a.json, "expires_at")) >= before + 86400);
	answer_done(&a);
	a = call("POST", "/api/v1/tokens", tok_admin, "{\"image\":null}");
	assert_int_equal(a.status, 201);
	answer_done(&a);
	assert_int_equal(audit_count("action = 'token.create' AND actor = 'ada'"), 3);

	/* Refusals: each with its reason, and no token made. */
	expect("POST", "/api/v1/tokens", tok_admin, "{\"image\":\"nope\"}", 404, "unknown-image", "nope");
	expect("POST", "/api/v1/tokens", tok_admin, "{\"image\":\"bad name\"}", 400, "bad-request", NULL);
	expect("POST", "/api/v1/tokens", tok_admin, "{\"image\":7}", 400, "bad-request", "'image'");
	expect("POST", "/api/v1/tokens", tok_admin, "{\"ttl_seconds\":0}", 400, "bad-request",
	       "ttl_seconds");
	expect("POST", "/api/v1/tokens", tok_admin, "{\"ttl_seconds\":2592001}", 400, "bad-request",
	       "ttl_seconds");
	expect("POST", "/api/v1/tokens", tok_admin, "{\"ttl_seconds\":\"60\"}", 400, "bad-request",
	       "ttl_seconds");
	expect("POST", "/api/v1/tokens", tok_admin, "{\"ttl_seconds\":1.5}", 400, "bad-request",
	       "ttl_seconds");
	expect("POST", "/api/v1/tokens", tok_admin, "{\"ttl\":60}", 400, "bad-request",
	       "Unknown member 'ttl'");
	expect("POST", "/api/v1/tokens", tok_admin, "{\"ttl_seconds\":60,\"ttl_seconds\":70}", 400,
	       "bad-json", NULL);
	expect("POST", "/api/v1/tokens", tok_admin, "[]", 400, "bad-request", "JSON object");
	expect("POST", "/api/v1/tokens", tok_admin, "{", 400, "bad-json", "not valid JSON");
	expect("POST", "/api/v1/tokens", tok_admin, "", 400, "bad-request", "body is required");
	expect("POST", "/api/v1/tokens?image=img", tok_admin, "{}", 400, "bad-query", NULL);
	assert_int_equal(audit_count("action = 'token.create'"), 3);
}

static void test_images(void **state)
{
	Answer a;
	json_t *img;

	a = call("POST", "/api/v1/images", tok_admin,
		 "{\"name\":\"v2\",\"pcrs\":{\"11\":\"" HEX64_7 "\",\"7\":\"" HEX64_7 "\"}}");
	assert_int_equal(a.status, 201);
	assert_string_equal(json_string_value(json_object_get(a.json, "name")), "v2");
	assert_string_equal(json_string_value(json_object_get(json_object_get(a.json, "pcrs"), "11")),
			    HEX64_7);
	answer_done(&a);

	a = call("GET", "/api/v1/images", tok_viewer, NULL);
	assert_int_equal(a.status, 200);
	assert_int_equal(json_array_size(a.json), 2);
	img = json_array_get(a.json, 0);
	assert_string_equal(json_string_value(json_object_get(img, "name")), "img");
	assert_string_equal(json_string_value(json_object_get(json_object_get(img, "pcrs"), "7")), HEX64_7);
	img = json_array_get(a.json, 1);
	assert_int_equal(json_object_size(json_object_get(img, "pcrs")), 2);
	answer_done(&a);

	/* Replace, audited as such. */
	a = call("POST", "/api/v1/images", tok_admin, "{\"name\":\"v2\",\"pcrs\":{\"4\":\"" HEX64_7 "\"}}");
	assert_int_equal(a.status, 201);
	answer_done(&a);
	assert_int_equal(audit_count("action = 'image.set' AND subject = 'v2' AND actor = 'ada'"), 2);
	assert_int_equal(audit_count("details LIKE '%\"replaced\":true%'"), 1);

	expect("POST", "/api/v1/images", tok_admin, "{\"name\":\"x\",\"pcrs\":{\"24\":\"" HEX64_7 "\"}}",
	       400, "bad-request", "from 0 to 23");
	expect("POST", "/api/v1/images", tok_admin, "{\"name\":\"x\",\"pcrs\":{\"07\":\"" HEX64_7 "\"}}",
	       400, "bad-request", "from 0 to 23");
	expect("POST", "/api/v1/images", tok_admin, "{\"name\":\"x\",\"pcrs\":{\"-1\":\"" HEX64_7 "\"}}",
	       400, "bad-request", "from 0 to 23");
	expect("POST", "/api/v1/images", tok_admin, "{\"name\":\"x\",\"pcrs\":{\"7\":\"abcd\"}}", 400,
	       "bad-request", "64 hex digits");
	expect("POST", "/api/v1/images", tok_admin, "{\"name\":\"x\",\"pcrs\":{\"7\":7}}", 400,
	       "bad-request", "64 hex digits");
	expect("POST", "/api/v1/images", tok_admin, "{\"name\":\"x\",\"pcrs\":{}}", 400, "bad-request",
	       "'pcrs'");
	expect("POST", "/api/v1/images", tok_admin, "{\"name\":\"x\"}", 400, "bad-request", "'pcrs'");
	expect("POST", "/api/v1/images", tok_admin, "{\"name\":\"a/b\",\"pcrs\":{\"7\":\"" HEX64_7 "\"}}",
	       400, "bad-request", "'name'");
	expect("POST", "/api/v1/images", tok_admin, "{\"pcrs\":{\"7\":\"" HEX64_7 "\"}}", 400, "bad-request",
	       "'name'");
	expect("POST", "/api/v1/images", tok_admin,
	       "{\"name\":\"x\",\"pcrs\":{\"7\":\"" HEX64_7 "\"},\"z\":1}", 400, "bad-request",
	       "Unknown member 'z'");
	assert_int_equal(audit_count("action = 'image.set'"), 2);
}

static void test_audit(void **state)
{
	Answer a;
	int64_t total;

	for (int i = 0; i < 5; i++)
		assert_int_equal(store_audit_append(store, "t", "test.event", NULL, NULL), 0);
	total = audit_count("1");

	a = call("GET", "/api/v1/audit", tok_viewer, NULL);
	assert_int_equal(a.status, 200);
	assert_int_equal((int64_t)json_array_size(a.json), total);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a.json, 0), "seq")), 1);
	assert_int_equal(strlen(json_string_value(json_object_get(json_array_get(a.json, 0), "hash"))), 64);
	answer_done(&a);

	a = call("GET", "/api/v1/audit?after=2&limit=2", tok_viewer, NULL);
	assert_int_equal(a.status, 200);
	assert_int_equal(json_array_size(a.json), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a.json, 0), "seq")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a.json, 1), "seq")), 4);
	answer_done(&a);

	a = call("GET", "/api/v1/audit?after=1000", tok_viewer, NULL);
	assert_int_equal(json_array_size(a.json), 0);
	answer_done(&a);

	expect("GET", "/api/v1/audit?afer=2", tok_viewer, NULL, 400, "bad-query",
	       "Unknown query parameter 'afer'");
	expect("GET", "/api/v1/audit?after=1&after=2", tok_viewer, NULL, 400, "bad-query", "twice");
	expect("GET", "/api/v1/audit?after=-1", tok_viewer, NULL, 400, "bad-query", "decimal");
	expect("GET", "/api/v1/audit?after", tok_viewer, NULL, 400, "bad-query", "no value");
	expect("GET", "/api/v1/audit?limit=0", tok_viewer, NULL, 400, "bad-query", "'limit'");
	expect("GET", "/api/v1/audit?limit=1001", tok_viewer, NULL, 400, "bad-query", "'limit'");

	a = call("GET", "/api/v1/audit/verify", tok_viewer, NULL);
	assert_int_equal(a.status, 200);
	assert_true(json_is_true(json_object_get(a.json, "ok")));
	assert_int_equal(json_integer_value(json_object_get(a.json, "entries")), total);
	assert_true(json_is_null(json_object_get(a.json, "first_bad_seq")));
	assert_int_equal(json_integer_value(json_object_get(a.json, "last_seq")), total);
	assert_int_equal(strlen(json_string_value(json_object_get(a.json, "last_hash"))), 64);
	answer_done(&a);

	/* Tamper behind the server's back. */
	{
		sqlite3 *db;
		assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
		assert_int_equal(
		    sqlite3_exec(db, "UPDATE audit SET actor = 'mallory' WHERE seq = 2", NULL, NULL, NULL),
		    SQLITE_OK);
		sqlite3_close(db);
	}
	a = call("GET", "/api/v1/audit/verify", tok_viewer, NULL);
	assert_int_equal(a.status, 200);
	assert_true(json_is_false(json_object_get(a.json, "ok")));
	assert_int_equal(json_integer_value(json_object_get(a.json, "first_bad_seq")), 2);
	answer_done(&a);
}

static void test_parse_error_answer(void **state)
{
	HttpParseError e = {.status = 431, .reason = "request head too large"};
	HttpResponse r = {};
	json_t *j;

	assert_int_equal(admin_api_parse_error(&e, &r), 0);
	assert_int_equal(r.status, 431);
	j = json_loads(r.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "too-large");
	assert_string_equal(json_string_value(json_object_get(j, "message")), "request head too large");
	json_decref(j);
	http_response_done(&r);
	e = (HttpParseError){.status = 501, .reason = "Transfer-Encoding is not supported"};
	assert_int_equal(admin_api_parse_error(&e, &r), 0);
	assert_int_equal(r.status, 501);
	http_response_done(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_authentication, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_role_matrix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_show, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_images, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
	    cmocka_unit_test(test_parse_error_answer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
