/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API (admin-api.h, docs/PROTOCOL.md "Admin API"): authentication, routing, roles,
 * and the JSON of each route. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "admin-api-internal.h"
#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"

#define TOKEN_TTL_DEFAULT (24U * 3600U)
#define TOKEN_TTL_MAX (30U * 24U * 3600U)
#define AUDIT_LIMIT_DEFAULT 100U
#define AUDIT_LIMIT_MAX 1000U
#define DEVICE_HISTORY 20U
#define PREFIX "/api/v1/"

/* ---- answers ---- */

int answer_error(ApiCall *c, int status, const char *code, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	return http_response_set_error(c->resp, status, code, msg);
}

/* A store failure: logged once here, the caller learns only that it failed. */
int answer_internal(ApiCall *c, int r, const char *what)
{
	log_error_errno(r, "Admin API: %s for %s %s failed: %m", what, c->req->method, c->req->path);
	if (r == -ENOMEM)
		return r;
	return http_response_set_error(c->resp, 500, "internal",
				       "The server could not complete the request; see its log.");
}

/* Takes ownership of j. */
int answer_json(ApiCall *c, int status, json_t *j)
{
	char *body;

	if (!j)
		return -ENOMEM;
	body = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	if (!body)
		return -ENOMEM;
	http_response_done(c->resp);
	c->resp->status = status;
	c->resp->body = body;
	return 0;
}

json_t *json_time(time_t t)
{
	return t > 0 ? json_integer((json_int_t)t) : json_null();
}

json_t *json_string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Stored JSON text (posture, audit details) shown as JSON; text that does not parse is shown as a
 * string rather than dropped. */
json_t *json_embedded(const char *text)
{
	json_t *j;

	if (!text)
		return json_null();
	j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	return j ?: json_string(text);
}

static json_t *json_sha256_hex(const void *p, size_t n)
{
	uint8_t d[SHA256_SIZE];
	_cleanup_free_ char *hex = NULL;

	if (!p || n == 0)
		return json_null();
	if (sha256(p, n, d) < 0)
		return NULL;
	hex = hex_encode(d, sizeof(d));
	return hex ? json_string(hex) : NULL;
}

static json_t *json_hex(const void *p, size_t n)
{
	_cleanup_free_ char *hex = hex_encode(p, n);
	return hex ? json_string(hex) : NULL;
}

/* ---- query strings ---- */

typedef struct QueryParam {
	const char *name;
	uint64_t max;
	uint64_t *value;
	bool seen;
} QueryParam;

/* name=value pairs separated by '&', values decimal; unknown or repeated names are refused, so
 * a typo ("afer=5") is an error and not silently the default. */
static int parse_query(ApiCall *c, QueryParam *params, size_t n_params)
{
	_cleanup_free_ char *copy = NULL;
	char *save = NULL;

	if (!c->req->query || !*c->req->query)
		return 0;
	copy = strdup(c->req->query);
	if (!copy)
		return -ENOMEM;
	for (char *kv = strtok_r(copy, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		QueryParam *p = NULL;

		if (!eq)
			return answer_error(c, 400, "bad-query", "Query parameter '%s' has no value.", kv);
		*eq = 0;
		for (size_t i = 0; i < n_params; i++)
			if (streq(kv, params[i].name))
				p = &params[i];
		if (!p)
			return answer_error(c, 400, "bad-query", "Unknown query parameter '%s'.", kv);
		if (p->seen)
			return answer_error(c, 400, "bad-query", "Query parameter '%s' given twice.", kv);
		p->seen = true;
		if (parse_uint64(eq + 1, p->max, p->value) < 0)
			return answer_error(c, 400, "bad-query",
					    "'%s' must be a decimal number up to %" PRIu64 ".", kv, p->max);
	}
	return 1; /* parsed, and there was a query */
}

int refuse_query(ApiCall *c)
{
	if (c->req->query && *c->req->query)
		return answer_error(c, 400, "bad-query", "%s takes no query parameters.", c->req->path);
	return 0;
}

/* ---- JSON bodies ---- */

/* The body as a JSON object with only the allowed members; else a 400 answer and 1. */
int parse_body(ApiCall *c, const char *const *allowed, json_t **ret)
{
	_cleanup_json_ json_t *j = NULL;
	json_error_t e;
	const char *key;
	json_t *v;

	if (c->req->body_len == 0)
		return answer_error(c, 400, "bad-request", "A JSON object body is required.") ?: 1;
	j = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &e);
	if (!j)
		return answer_error(c, 400, "bad-json",
				    "The body is not valid JSON: %s (line %d, column %d).", e.text, e.line,
				    e.column)
			   ?: 1;
	if (!json_is_object(j))
		return answer_error(c, 400, "bad-request", "The body must be a JSON object.") ?: 1;
	json_object_foreach (j, key, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok = ok || streq(key, allowed[i]);
		if (!ok)
			return answer_error(c, 400, "bad-request", "Unknown member '%s' in the body.", key)
				   ?: 1;
	}
	*ret = TAKE_PTR(j);
	return 0;
}

/* ---- devices ---- */

json_t *device_json(ApiCall *c, const DeviceRecord *d)
{
	bool connected = c->ctx->is_connected && c->ctx->is_connected(c->ctx->userdata, d->device_id);

	return json_pack("{s:s, s:s, s:o, s:s, s:b, s:o, s:o, s:o, s:o, s:o}", "device_id", d->device_id,
			 "hostname", d->hostname ?: "", "image", json_string_or_null(d->image), "state",
			 device_state_name(d->state) ?: "unknown", "connected", connected, "enrolled_at",
			 json_time(d->enrolled_at), "last_seen", json_time(d->last_seen), "attested_at",
			 json_time(d->attested_at), "reason", json_string_or_null(d->reason), "posture",
			 json_embedded(d->posture_json));
}

static json_t *audit_entry_json(const AuditEntry *e)
{
	return json_pack("{s:I, s:I, s:s, s:s, s:o, s:o, s:o}", "seq", (json_int_t)e->seq, "time",
			 (json_int_t)e->time, "actor", e->actor ?: "", "action", e->action ?: "", "subject",
			 json_string_or_null(e->subject), "details", json_embedded(e->details), "hash",
			 json_hex(e->hash, sizeof(e->hash)));
}

static int api_devices_list(ApiCall *c)
{
	DeviceRecord *list = NULL;
	size_t n = 0;
	json_t *a;
	int r;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	r = store_device_list(c->ctx->store, &list, &n);
	if (r < 0)
		return answer_internal(c, r, "listing devices");
	a = json_array();
	for (size_t i = 0; i < n; i++) {
		if (a && json_array_append_new(a, device_json(c, &list[i])) < 0) {
			json_decref(a);
			a = NULL;
		}
		device_record_done(&list[i]);
	}
	free(list);
	return answer_json(c, 200, a);
}

static int api_device_show(ApiCall *c)
{
	_cleanup_(device_record_done) DeviceRecord d = {};
	AuditEntry *hist = NULL;
	size_t n = 0;
	json_t *j, *h, *cmds;
	int r;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	if (!store_device_id_valid(c->arg))
		return answer_error(
		    c, 400, "bad-device-id",
		    "'%s' is not a device id (32 lower-case hex digits; trustpcctl resolves prefixes).",
		    c->arg);
	r = store_device_get(c->ctx->store, c->arg, &d);
	if (r == -ENOENT)
		return answer_error(c, 404, "unknown-device", "No device %s is enrolled.", c->arg);
	if (r < 0)
		return answer_internal(c, r, "reading the device");
	r = store_audit_list_subject(c->ctx->store, c->arg, DEVICE_HISTORY, &hist, &n);
	if (r < 0)
		return answer_internal(c, r, "reading the device's history");

	j = device_json(c, &d);
	h = json_array();
	for (size_t i = 0; i < n; i++) {
		if (h && json_array_append_new(h, audit_entry_json(&hist[i])) < 0) {
			json_decref(h);
			h = NULL;
		}
		audit_entry_done(&hist[i]);
	}
	free(hist);
	if (!j || !h || json_object_set_new(j, "history", h) < 0 ||
	    json_object_set_new(j, "tls_key_sha256", json_sha256_hex(d.tls_public, d.tls_public_size)) < 0 ||
	    json_object_set_new(j, "ek_cert_sha256", json_sha256_hex(d.ek_cert, d.ek_cert_size)) < 0 ||
	    json_object_set_new(j, "escrowed", json_boolean(d.escrow_json != NULL)) < 0) {
		json_decref(j);
		return -ENOMEM;
	}
	cmds = device_commands_json(c, d.device_id, &r);
	if (!cmds) {
		json_decref(j);
		return r;
	}
	if (json_object_set_new(j, "commands", cmds) < 0) {
		json_decref(j);
		return -ENOMEM;
	}
	return answer_json(c, 200, j);
}

/* ---- tokens ---- */

static int api_token_create(ApiCall *c)
{
	static const char *const allowed[] = {"image", "ttl_seconds", NULL};
	_cleanup_json_ json_t *body = NULL;
	_cleanup_erase_ char *token = NULL, *out = NULL;
	const char *image = NULL;
	json_t *v;
	uint64_t ttl = TOKEN_TTL_DEFAULT;
	time_t expires;
	int r;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	r = parse_body(c, allowed, &body);
	if (r != 0)
		return r < 0 ? r : 0;

	v = json_object_get(body, "image");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return answer_error(c, 400, "bad-request", "'image' must be a string or null.");
		image = json_string_value(v);
	}
	v = json_object_get(body, "ttl_seconds");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > TOKEN_TTL_MAX)
			return answer_error(c, 400, "bad-request",
					    "'ttl_seconds' must be an integer from 1 to %u.", TOKEN_TTL_MAX);
		ttl = (uint64_t)json_integer_value(v);
	}

	r = store_token_create(c->ctx->store, image, ttl, c->operator, & token, &expires);
	if (r == -ENOENT)
		return answer_error(c, 404, "unknown-image",
				    "No image '%s' is registered; add it first (trustpcctl images add).",
				    image);
	if (r == -EINVAL)
		return answer_error(c, 400, "bad-request", "'%s' is not a valid image name.", image);
	if (r < 0)
		return answer_internal(c, r, "creating a token");

	/* Built by hand so that the secret exists in one buffer we wipe, not in jansson's heap. The
	 * token is base64url and image names are [A-Za-z0-9._@-]: nothing to escape. */
	if (asprintf(&out, "{\"token\":\"%s\",\"expires_at\":%lld,\"image\":%s%s%s}", token,
		     (long long)expires, image ? "\"" : "", image ?: "null", image ? "\"" : "") < 0) {
		out = NULL;
		return -ENOMEM;
	}
	http_response_done(c->resp);
	c->resp->status = 201;
	c->resp->body = TAKE_PTR(out);
	return 0;
}

/* ---- images ---- */

static json_t *image_json(const ImageRecord *i)
{
	json_t *pcrs = json_object();

	for (unsigned p = 0; pcrs && p < 24; p++) {
		char key[4];
		if (!(i->pcr_mask & (1U << p)))
			continue;
		snprintf(key, sizeof(key), "%u", p);
		if (json_object_set_new(pcrs, key, json_hex(i->pcr_values[p], 32)) < 0) {
			json_decref(pcrs);
			pcrs = NULL;
		}
	}
	if (!pcrs)
		return NULL;
	return json_pack("{s:s, s:o}", "name", i->name, "pcrs", pcrs);
}

static int api_images_list(ApiCall *c)
{
	ImageRecord *list = NULL;
	size_t n = 0;
	json_t *a;
	int r;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	r = store_image_list(c->ctx->store, &list, &n);
	if (r < 0)
		return answer_internal(c, r, "listing images");
	a = json_array();
	for (size_t i = 0; i < n; i++) {
		if (a && json_array_append_new(a, image_json(&list[i])) < 0) {
			json_decref(a);
			a = NULL;
		}
		image_record_done(&list[i]);
	}
	free(list);
	return answer_json(c, 200, a);
}

static int api_image_add(ApiCall *c)
{
	static const char *const allowed[] = {"name", "pcrs", NULL};
	_cleanup_json_ json_t *body = NULL;
	ImageRecord img = {};
	const char *key;
	json_t *name, *pcrs, *v;
	int r;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	r = parse_body(c, allowed, &body);
	if (r != 0)
		return r < 0 ? r : 0;

	name = json_object_get(body, "name");
	pcrs = json_object_get(body, "pcrs");
	if (!json_is_string(name) || !store_name_valid(json_string_value(name)))
		return answer_error(c, 400, "bad-request",
				    "'name' must be 1-64 characters of [A-Za-z0-9._@-].");
	if (!json_is_object(pcrs) || json_object_size(pcrs) == 0)
		return answer_error(
		    c, 400, "bad-request",
		    "'pcrs' must be an object of PCR index to SHA-256 value, e.g. {\"7\": \"<64 hex>\"}.");
	json_object_foreach (pcrs, key, v) {
		uint64_t idx;

		/* Decimal without leading zeros, so "7" and "07" cannot both appear. */
		if (parse_uint64(key, 23, &idx) < 0 || startswith(key, "0x") || (key[0] == '0' && key[1]))
			return answer_error(c, 400, "bad-request",
					    "PCR index '%s' must be a number from 0 to 23.", key);
		if (!json_is_string(v) ||
		    hex_decode_exact(json_string_value(v), img.pcr_values[idx], 32) < 0)
			return answer_error(c, 400, "bad-request",
					    "The value of PCR %s must be 64 hex digits (SHA-256 bank).",
					    key);
		img.pcr_mask |= 1U << idx;
	}
	img.name = (char *)json_string_value(name);

	r = store_image_add(c->ctx->store, &img, c->operator);
	if (r == -EINVAL)
		return answer_error(c, 400, "bad-request", "The image was refused by the store.");
	if (r < 0)
		return answer_internal(c, r, "storing the image");
	return answer_json(c, 201, image_json(&img));
}

/* ---- audit ---- */

static int api_audit_list(ApiCall *c)
{
	uint64_t after = 0, limit = AUDIT_LIMIT_DEFAULT;
	QueryParam params[] = {
	    {.name = "after", .max = INT64_MAX, .value = &after},
	    {.name = "limit", .max = AUDIT_LIMIT_MAX, .value = &limit},
	};
	AuditEntry *list = NULL;
	size_t n = 0;
	json_t *a;
	int r;

	r = parse_query(c, params, ELEMENTSOF(params));
	if (r < 0 || c->resp->body)
		return r < 0 ? r : 0;
	if (limit == 0)
		return answer_error(c, 400, "bad-query", "'limit' must be from 1 to %u.", AUDIT_LIMIT_MAX);
	r = store_audit_list(c->ctx->store, after, (size_t)limit, &list, &n);
	if (r < 0)
		return answer_internal(c, r, "reading the audit log");
	a = json_array();
	for (size_t i = 0; i < n; i++) {
		if (a && json_array_append_new(a, audit_entry_json(&list[i])) < 0) {
			json_decref(a);
			a = NULL;
		}
		audit_entry_done(&list[i]);
	}
	free(list);
	return answer_json(c, 200, a);
}

static int api_audit_verify(ApiCall *c)
{
	uint64_t entries = 0, first_bad = 0, head_seq = 0;
	uint8_t head[32];
	bool have_head;
	int r, v;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	v = store_audit_verify(c->ctx->store, &entries, &first_bad);
	if (v < 0 && v != -EBADMSG)
		return answer_internal(c, v, "verifying the audit log");
	r = store_audit_head(c->ctx->store, &head_seq, head);
	if (r < 0 && r != -ENOENT && r != -EBADMSG)
		return answer_internal(c, r, "reading the audit head");
	have_head = r == 0;

	/* 200 either way: the request worked, the answer is that the chain is broken. */
	return answer_json(c, 200,
			   json_pack("{s:b, s:I, s:o, s:o, s:o}", "ok", v == 0, "entries",
				     (json_int_t)entries, "first_bad_seq",
				     v == 0 ? json_null() : json_integer((json_int_t)first_bad), "last_seq",
				     have_head ? json_integer((json_int_t)head_seq) : json_null(),
				     "last_hash", have_head ? json_hex(head, 32) : json_null()));
}

/* ---- routing ---- */

typedef struct Route {
	const char *method;
	const char *path;  /* after PREFIX; a trailing '/' means "followed by one {id} segment" */
	OperatorRole role; /* the least role allowed */
	int (*handler)(ApiCall *c);
} Route;

static const Route routes[] = {
    {"GET", "devices", ROLE_VIEWER, api_devices_list},
    {"GET", "devices/{}", ROLE_VIEWER, api_device_show},
    {"POST", "devices/{}/commands", ROLE_HELPDESK, api_device_command},
    {"POST", "devices/{}/recovery-key", ROLE_ADMIN, api_recovery_key},
    {"POST", "commands", ROLE_HELPDESK, api_fleet_command},
    {"GET", "commands", ROLE_VIEWER, api_commands_list},
    {"POST", "tokens", ROLE_ADMIN, api_token_create},
    {"GET", "images", ROLE_VIEWER, api_images_list},
    {"POST", "images", ROLE_ADMIN, api_image_add},
    {"GET", "audit", ROLE_VIEWER, api_audit_list},
    {"GET", "audit/verify", ROLE_VIEWER, api_audit_verify},
};

/* Whether path (after PREFIX) matches; "{}" in a route stands for one non-empty segment, which
 * *ret_arg points to (NUL-terminated only when it is the last segment: handlers that need it
 * elsewhere copy it with its length, see route_arg). */
static bool route_matches(const Route *rt, const char *path, const char **ret_arg)
{
	const char *hole = strstr(rt->path, "{}"), *seg_end;
	size_t pre;

	if (!hole) {
		*ret_arg = NULL;
		return streq(path, rt->path);
	}
	pre = (size_t)(hole - rt->path);
	if (strncmp(path, rt->path, pre) != 0)
		return false;
	seg_end = strchrnul(path + pre, '/');
	if (seg_end == path + pre || !streq(seg_end, hole + 2))
		return false;
	*ret_arg = path + pre;
	return true;
}

/* "Bearer <token>" (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1). */
static const char *bearer_token(const char *authorization)
{
	const char *t;

	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return NULL;
	t = authorization + 7;
	while (*t == ' ')
		t++;
	return *t && !strpbrk(t, " \t") ? t : NULL;
}

int admin_api_handle(const AdminContext *ctx, const HttpRequest *req, HttpResponse *resp)
{
	return admin_api_handle_async(ctx, req, resp, NULL);
}

int admin_api_handle_async(const AdminContext *ctx, const HttpRequest *req, HttpResponse *resp,
			   AdminFleet **ret_fleet)
{
	_cleanup_free_ char *op_name = NULL, *arg_copy = NULL;
	_cleanup_(http_response_done) HttpResponse out = {};
	ApiCall c = {.ctx = ctx, .req = req, .resp = &out, .fleet_out = ret_fleet};
	const Route *found = NULL;
	const char *token, *path, *arg = NULL, *allow = NULL;
	OperatorRole role;
	int r;

	if (ret_fleet)
		*ret_fleet = NULL;

	/* 1. Who is asking: nothing else is revealed to an unauthenticated caller. */
	token = bearer_token(req->authorization);
	if (!token)
		r = answer_error(&c, 401, "unauthenticated",
				 "An operator token is required: 'Authorization: Bearer <token>' "
				 "(trustpc-server operator add NAME --role ROLE makes one).");
	else {
		r = store_operator_auth(ctx->store, token, &op_name, &role);
		if (r == -ENOENT)
			r = answer_error(&c, 401, "unauthenticated",
					 "The operator token is not known to this server.");
		else if (r < 0)
			r = answer_internal(&c, r, "authenticating the operator");
	}
	if (r < 0)
		return r;
	if (out.body)
		goto done;
	c.operator= op_name;
	c.role = role;

	/* 2. Which route. */
	path = startswith(req->path, PREFIX);
	for (size_t i = 0; path && i < ELEMENTSOF(routes); i++) {
		const char *a;
		if (!route_matches(&routes[i], path, &a))
			continue;
		if (streq(req->method, routes[i].method)) {
			found = &routes[i];
			arg = a;
			break;
		}
		allow = routes[i].method;
	}
	if (!found) {
		if (allow)
			r = answer_error(&c, 405, "method-not-allowed", "%s is not allowed on %s; use %s.",
					 req->method, req->path, allow);
		else
			r = answer_error(&c, 404, "not-found", "No API endpoint %s.", req->path);
		if (r < 0)
			return r;
		goto done;
	}

	/* 3. May this operator use it. */
	if (role < found->role) {
		r = answer_error(&c, 403, "forbidden", "%s %s needs the %s role; you (%s) are %s.",
				 req->method, req->path, operator_role_name(found->role), op_name,
				 operator_role_name(role));
		if (r < 0)
			return r;
		goto done;
	}

	/* The {id} segment as its own string. */
	if (arg) {
		arg_copy = strndup(arg, strcspn(arg, "/"));
		if (!arg_copy)
			return -ENOMEM;
	}
	c.arg = arg_copy;
	r = found->handler(&c);
	if (r < 0)
		return r;
	if (!out.body && out.status == 0 && !(ret_fleet && *ret_fleet))
		return -EIO; /* a handler that answered nothing is a bug */

done:
	http_response_done(resp);
	*resp = out;
	out = (HttpResponse){};
	return 0;
}

int admin_api_parse_error(const HttpParseError *err, HttpResponse *resp)
{
	int status = err && err->status >= 400 ? err->status : 400;
	return http_response_set_error(resp, status,
				       status == 413 || status == 431 ? "too-large" : "bad-request",
				       err && err->reason ? err->reason : "malformed request");
}
