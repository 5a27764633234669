/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API behind the HTTP parser, on a real SQLite store created once in a temp directory
 * (on /dev/shm when there is one: every write is fsync'ed). The placeholders @VIEWER@,
 * @HELPDESK@ and @ADMIN@ in the input are replaced by real operator tokens, so that the fuzzer
 * gets past authentication into the routes. Checks: every answer is a status 200-599 with a JSON
 * body, errors are {"error","message"}, and a viewer never changes anything. */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "admin-api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Store *store;
static char dir[256];
static char *tokens[3]; /* viewer, helpdesk, admin */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void cleanup(void)
{
	store = store_close(store);
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	static const char *const names[] = {"vera", "hugo", "ada"};
	char path[300];
	ImageRecord img = {.name = (char *)"img", .pcr_mask = 1U << 7};
	DeviceRecord d = {.hostname = (char *)"laptop", .state = DEVICE_TRUSTED, .posture_json = (char *)"{\"epoch\":1}"};

	snprintf(dir, sizeof(dir), "%s/trustpc-fuzz-admin.XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/server.db", dir);
	if (store_open(path, &store) < 0)
		abort();
	atexit(cleanup);
	for (int i = 0; i < 3; i++)
		if (store_operator_add(store, names[i], (OperatorRole)(i + 1), &tokens[i]) < 0)
			abort();
	if (store_image_put(store, &img) < 0)
		abort();
	memcpy(d.device_id, "0123456789abcdef0123456789abcdef", 33);
	if (store_device_put(store, &d) < 0 || store_audit_append(store, "t", "attest", d.device_id, "{}") < 0)
		abort();
}

/* data with the placeholders replaced; malloc'ed. */
static char *substitute(const uint8_t *data, size_t size, size_t *ret_size)
{
	static const char *const marks[] = {"@VIEWER@", "@HELPDESK@", "@ADMIN@"};
	char *out = malloc(size * 8 + 1);
	size_t n = 0;

	if (!out)
		abort();
	for (size_t i = 0; i < size;) {
		bool replaced = false;
		for (int m = 0; m < 3 && !replaced; m++) {
			size_t l = strlen(marks[m]);
			if (size - i >= l && memcmp(data + i, marks[m], l) == 0) {
				memcpy(out + n, tokens[m], strlen(tokens[m]));
				n += strlen(tokens[m]);
				i += l;
				replaced = true;
			}
		}
		if (!replaced)
			out[n++] = (char)data[i++];
	}
	*ret_size = n;
	return out;
}

static uint64_t audit_rows(void)
{
	uint64_t seq = 0;
	(void)store_audit_head(store, &seq, NULL);
	return seq;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	HttpRequest req = {};
	HttpResponse resp = {};
	HttpParseError err = {};
	AdminContext ctx;
	uint64_t before;
	size_t n;
	char *text;
	json_t *j;
	int r;

	if (!store)
		setup();
	if (size > HTTP_HEAD_MAX + HTTP_BODY_MAX)
		return 0;
	text = substitute(data, size, &n);
	r = http_request_parse(text, n, &req, &err);
	free(text);
	if (r == -EBADMSG || r == -EMSGSIZE) {
		if (admin_api_parse_error(&err, &resp) < 0 || resp.status < 400)
			abort();
		http_response_done(&resp);
		return 0;
	}
	if (r < 0)
		return 0;

	ctx = (AdminContext){.store = store, .now = 1700000000};
	before = audit_rows();
	if (admin_api_handle(&ctx, &req, &resp) < 0)
		abort();
	if (resp.status < 200 || resp.status > 599 || !resp.body)
		abort();
	j = json_loads(resp.body, JSON_DECODE_ANY, NULL);
	if (!j)
		abort();
	if (resp.status >= 400 && (!json_is_string(json_object_get(j, "error")) ||
				   !json_is_string(json_object_get(j, "message"))))
		abort();
	/* Only an admin's successful request writes; nothing else leaves an audit row. */
	if (audit_rows() != before &&
	    !(resp.status == 201 && req.authorization && strstr(req.authorization, tokens[2])))
		abort();
	json_decref(j);
	http_response_done(&resp);
	http_request_done(&req);
	return 0;
}
