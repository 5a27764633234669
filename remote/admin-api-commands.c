/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API's command routes and the recovery-key route (admin-api.h; docs/PROTOCOL.md
 * "Commands"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin-api-internal.h"
#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/memory-secure.h"
#include "command-issue.h"
#include "crypto/crypto.h"

#define COMMANDS_LIMIT_DEFAULT 100U
#define COMMANDS_LIMIT_MAX 1000U
#define DEVICE_COMMANDS 10U
#define FLEET_DEVICES_MAX 100000U

json_t *command_json(const CommandRecord *c)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "id", c->id,
			 "device_id", c->device_id, "seq", (json_int_t)c->seq, "type", c->type ?: "", "args",
			 json_embedded(c->args_json), "issuer", c->issuer ?: "", "state",
			 command_state_name(c->state) ?: "unknown", "reason", json_string_or_null(c->reason),
			 "created_at", json_time(c->created_at), "delivered_at", json_time(c->delivered_at),
			 "finished_at", json_time(c->finished_at), "epoch",
			 c->has_epoch ? json_integer((json_int_t)c->epoch) : json_null());
}

static json_t *commands_json(CommandRecord *list, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		if (a && json_array_append_new(a, command_json(&list[i])) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	command_records_free(list, n);
	return a;
}

json_t *device_commands_json(ApiCall *c, const char *device_id, int *ret_error)
{
	CommandRecord *list = NULL;
	size_t n = 0;
	json_t *a;
	int r;

	r = store_command_list(c->ctx->store, device_id, DEVICE_COMMANDS, &list, &n);
	if (r < 0) {
		*ret_error = answer_internal(c, r, "reading the device's commands");
		return NULL;
	}
	a = commands_json(list, n);
	*ret_error = a ? 0 : -ENOMEM;
	return a;
}

/* ---- the command body ---- */

static const char *const command_members[] = {"type",	     "reason",	  "poweroff",	   "class",
					      "version",     "heartbeat", "offline_lease", "usb_storage",
					      "screen_lock", "devices",	  "all",	   NULL};

static int get_uint(ApiCall *c, json_t *body, const char *name, uint64_t max, bool required, uint64_t *ret)
{
	json_t *v = json_object_get(body, name);

	if (!v) {
		if (required)
			return answer_error(c, 400, "bad-request", "'%s' is required for a policy command.",
					    name)
				   ?: 1;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
		return answer_error(c, 400, "bad-request", "'%s' must be an integer from 0 to %" PRIu64 ".",
				    name, max)
			   ?: 1;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

/* The spec from the body: 0, or 1 after a 400/403 answer. Strings point into body. */
static int parse_spec(ApiCall *c, json_t *body, CommandSpec *ret)
{
	CommandSpec spec = {};
	json_t *type = json_object_get(body, "type"), *v;
	const char *type_name = json_string_value(type), *why = NULL;
	uint64_t u = 0;
	int r;

	if (!type_name || command_type_from_name(type_name, &spec.type) < 0)
		return answer_error(c, 400, "bad-type",
				    "'type' must be \"lock\", \"unlock\", \"wipe\" or \"policy\".")
			   ?: 1;
	/* Locking, unlocking and wiping is the helpdesk's job; the device policy is the fleet's. */
	if (spec.type == COMMAND_POLICY && c->role < ROLE_ADMIN)
		return answer_error(c, 403, "forbidden",
				    "A policy command needs the admin role; you (%s) are %s.", c->operator,
				    operator_role_name(c->role))
			   ?: 1;

	/* Members that belong to another type are refused: a "class" on a lock is a mistake. */
	{
		static const struct {
			const char *name;
			CommandType type;
		} owner[] = {
		    {"reason", COMMAND_LOCK},	     {"poweroff", COMMAND_LOCK},
		    {"class", COMMAND_WIPE},	     {"version", COMMAND_POLICY},
		    {"heartbeat", COMMAND_POLICY},   {"offline_lease", COMMAND_POLICY},
		    {"usb_storage", COMMAND_POLICY}, {"screen_lock", COMMAND_POLICY},
		};
		for (size_t i = 0; i < ELEMENTSOF(owner); i++)
			if (json_object_get(body, owner[i].name) && owner[i].type != spec.type)
				return answer_error(c, 400, "bad-request",
						    "'%s' does not apply to a %s command.", owner[i].name,
						    type_name)
					   ?: 1;
	}

	switch (spec.type) {
	case COMMAND_LOCK:
		v = json_object_get(body, "reason");
		if (v && !json_is_string(v))
			return answer_error(c, 400, "bad-request", "'reason' must be a string.") ?: 1;
		spec.reason = json_string_value(v);
		v = json_object_get(body, "poweroff");
		if (v && !json_is_boolean(v))
			return answer_error(c, 400, "bad-request", "'poweroff' must be true or false.") ?: 1;
		spec.poweroff = json_is_true(v);
		break;
	case COMMAND_WIPE:
		v = json_object_get(body, "class");
		if (!json_is_string(v))
			return answer_error(
				   c, 400, "bad-class",
				   "'class' (a data class name, or \"all\") is required for a wipe.")
				   ?: 1;
		spec.class_name = json_string_value(v);
		break;
	case COMMAND_POLICY:
		if ((r = get_uint(c, body, "version", INT64_MAX, true, &spec.policy.version)) != 0 ||
		    (r = get_uint(c, body, "heartbeat", UINT32_MAX, true, &u)) != 0)
			return r;
		spec.policy.heartbeat = (uint32_t)u;
		u = 0;
		if ((r = get_uint(c, body, "offline_lease", INT64_MAX, false, &spec.policy.offline_lease)) !=
			0 ||
		    (r = get_uint(c, body, "screen_lock", UINT32_MAX, false, &u)) != 0)
			return r;
		spec.policy.screen_lock = (uint32_t)u;
		v = json_object_get(body, "usb_storage");
		if (v && !json_is_boolean(v))
			return answer_error(c, 400, "bad-request", "'usb_storage' must be true or false.")
				   ?: 1;
		spec.policy.usb_storage = json_is_true(v);
		break;
	case COMMAND_UNLOCK:
		break;
	}
	if (command_spec_check(&spec, &why) < 0)
		return answer_error(c, 400, spec.type == COMMAND_WIPE ? "bad-class" : "bad-request", "%s",
				    why)
			   ?: 1;
	*ret = spec;
	return 0;
}

/* One device: 0 with *ret, or an error with *ret_status/code/message for the answer. */
typedef struct IssueError {
	int status;
	const char *code;
	const char *message;
} IssueError;

static int issue_one(ApiCall *c, const CommandSpec *spec, const char *device_id, CommandRecord *ret,
		     IssueError *err)
{
	const char *why = NULL;
	int r;

	r = command_issue(c->ctx->store, c->ctx->commands, c->operator, device_id, spec, ret, &why);
	switch (r) {
	case 0:
		log_info("Operator %s queued %s command %s (seq %" PRIu64 ") for device %s.", c->operator,
			 ret->type, ret->id, ret->seq, device_id);
		return 0;
	case -ENOENT:
		*err = (IssueError){404, "unknown-device", "No such device is enrolled."};
		return r;
	case -EINVAL:
		*err = (IssueError){400, spec->type == COMMAND_WIPE ? "bad-class" : "bad-request",
				    why ?: "The command was refused."};
		return r;
	case -EBUSY:
		*err = (IssueError){409, "lock-pending", why};
		return r;
	case -ENODATA:
		*err = (IssueError){409, "no-policy-data", why};
		return r;
	default:
		return r;
	}
}

/* Committed: deliver it now if its device is connected and attested. */
static void command_queued(ApiCall *c, const char *device_id)
{
	if (c->ctx->command_queued)
		c->ctx->command_queued(c->ctx->userdata, device_id);
}

static int commands_available(ApiCall *c)
{
	if (c->ctx->commands && c->ctx->commands->command_key)
		return 0;
	return answer_error(c, 503, "unavailable", "This server has no command key loaded.") ?: 1;
}

int api_device_command(ApiCall *c)
{
	_cleanup_json_ json_t *body = NULL;
	_cleanup_(command_record_done) CommandRecord rec = {};
	IssueError err = {};
	CommandSpec spec;
	json_t *j;
	int r;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	if (!store_device_id_valid(c->arg))
		return answer_error(c, 400, "bad-device-id",
				    "'%s' is not a device id (32 lower-case hex digits).", c->arg);
	r = parse_body(c, command_members, &body);
	if (r != 0)
		return r < 0 ? r : 0;
	if (json_object_get(body, "devices") || json_object_get(body, "all"))
		return answer_error(c, 400, "bad-request",
				    "'devices' and 'all' belong to POST /api/v1/commands (fleet-wide).");
	r = parse_spec(c, body, &spec);
	if (r != 0)
		return r < 0 ? r : 0;
	r = commands_available(c);
	if (r != 0)
		return r < 0 ? r : 0;

	r = issue_one(c, &spec, c->arg, &rec, &err);
	if (r < 0 && err.status)
		return answer_error(c, err.status, err.code, "%s", err.message);
	if (r < 0)
		return answer_internal(c, r, "queueing the command");
	command_queued(c, rec.device_id);
	j = command_json(&rec);
	return answer_json(c, 202, j);
}

/* A fleet command is queued in slices of ADMIN_FLEET_SLICE devices, each slice one store batch:
 * one commit (one fsync) for its commands and audit rows instead of one each, and the commands
 * are delivered only after that commit. The deliveries' "delivered" marks are a second batch. */

struct AdminFleet {
	char *operator;
	OperatorRole role;
	json_t *body; /* the request: spec's strings and list point into it */
	CommandSpec spec;
	json_t *list; /* the devices named, or NULL for all: */
	DeviceRecord *devs;
	size_t n_devs;
	size_t n_ids, next;
	json_t *out; /* the answer so far */
};

AdminFleet *admin_fleet_free(AdminFleet *f)
{
	if (!f)
		return NULL;
	free(f->operator);
	json_decref(f->body);
	for (size_t k = 0; k < f->n_devs; k++)
		device_record_done(&f->devs[k]);
	free(f->devs);
	json_decref(f->out);
	free(f);
	return NULL;
}

void admin_fleet_progress(const AdminFleet *f, size_t *ret_done, size_t *ret_total)
{
	*ret_done = f->next;
	*ret_total = f->n_ids;
}

static int fleet_slice(ApiCall *c, AdminFleet *f, size_t to)
{
	const char *queued[ADMIN_FLEET_SLICE];
	_cleanup_json_ json_t *items = json_array();
	size_t n_queued = 0;
	int r;

	if (!items)
		return -ENOMEM;
	r = store_batch_begin(c->ctx->store);
	if (r < 0)
		return r;
	for (size_t i = f->next; i < to; i++) {
		_cleanup_(command_record_done) CommandRecord rec = {};
		const char *id =
		    f->list ? json_string_value(json_array_get(f->list, i)) : f->devs[i].device_id;
		IssueError err = {};
		json_t *item;

		r = issue_one(c, &f->spec, id, &rec, &err);
		if (r >= 0) {
			item = command_json(&rec);
			queued[n_queued++] = id;
		} else if (err.status) {
			/* Reported per device: the others are queued and stay queued. */
			item = json_pack("{s:s,s:s,s:s}", "device_id", id, "error", err.code, "message",
					 err.message);
			r = 0;
		} else
			break;
		if (!item || json_array_append_new(items, item) < 0) {
			r = -ENOMEM;
			break;
		}
	}
	if (r >= 0)
		r = store_batch_commit(c->ctx->store);
	if (r < 0) {
		store_batch_abort(c->ctx->store); /* none of this slice was queued */
		return r;
	}
	if (n_queued > 0) {
		bool batch = store_batch_begin(c->ctx->store) >= 0;
		for (size_t k = 0; k < n_queued; k++)
			command_queued(c, queued[k]);
		if (batch && store_batch_commit(c->ctx->store) < 0) {
			/* Only the "delivered" marks are lost: the commands stay pending and are sent
			 * again on the next connection. */
			log_warning("Cannot record the fleet command's deliveries; they are sent again "
				    "on the devices' next connections.");
			store_batch_abort(c->ctx->store);
		}
	}
	f->next = to;
	return json_array_extend(f->out, items) < 0 ? -ENOMEM : 0;
}

/* One slice: 0 while more remain, 1 once c->resp holds the answer, -ENOMEM. */
static int fleet_run(ApiCall *c, AdminFleet *f)
{
	int r;

	if (f->next < f->n_ids) {
		r = fleet_slice(c, f, MIN(f->n_ids, f->next + ADMIN_FLEET_SLICE));
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			if (f->next == 0)
				r = answer_internal(c, r, "queueing the commands");
			else {
				log_error_errno(
				    r, "Fleet command: queueing failed after %zu of %zu devices: %m.",
				    f->next, f->n_ids);
				r = answer_error(c, 500, "internal",
						 "The command was queued for %zu of %zu devices, then a "
						 "server error stopped it (the server's log says which); "
						 "'trustpcctl commands' lists what was queued.",
						 f->next, f->n_ids);
			}
			return r < 0 ? r : 1;
		}
		if (f->next < f->n_ids)
			return 0;
	}
	r = answer_json(c, 202, TAKE_PTR(f->out));
	return r < 0 ? r : 1;
}

int admin_fleet_step(AdminFleet *f, const AdminContext *ctx, HttpResponse *resp)
{
	_cleanup_(http_response_done) HttpResponse out = {};
	/* The request itself is gone; what the answers and logs name of it. */
	HttpRequest req = {.method = (char *)"POST", .path = (char *)"/api/v1/commands"};
	ApiCall c = {.ctx = ctx, .req = &req, .operator= f->operator, .role = f->role, .resp = &out};
	int r = fleet_run(&c, f);

	if (r <= 0)
		return r;
	http_response_done(resp);
	*resp = out;
	out = (HttpResponse){};
	return 1;
}

/* The fleet: every listed device must exist before anything is queued (a typo in the list must
 * not leave half the fleet locked and the operator guessing which half). */
int api_fleet_command(ApiCall *c)
{
	_cleanup_json_ json_t *body = NULL;
	AdminFleet *f = NULL;
	DeviceRecord *devs = NULL;
	size_t n_devs = 0;
	json_t *list, *all, *v;
	CommandSpec spec;
	size_t i;
	int r;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	r = parse_body(c, command_members, &body);
	if (r != 0)
		return r < 0 ? r : 0;
	list = json_object_get(body, "devices");
	all = json_object_get(body, "all");
	if ((list && all) || (!list && !json_is_true(all)) || (all && !json_is_boolean(all)))
		return answer_error(c, 400, "bad-request", "Give either 'devices': [id, …] or 'all': true.");
	if (list && (!json_is_array(list) || json_array_size(list) == 0 ||
		     json_array_size(list) > FLEET_DEVICES_MAX))
		return answer_error(c, 400, "bad-request",
				    "'devices' must be a non-empty array of device ids.");
	r = parse_spec(c, body, &spec);
	if (r != 0)
		return r < 0 ? r : 0;
	r = commands_available(c);
	if (r != 0)
		return r < 0 ? r : 0;

	if (list) {
		json_array_foreach (list, i, v) {
			_cleanup_(device_record_done) DeviceRecord d = {};
			const char *id = json_string_value(v);
			if (!store_device_id_valid(id))
				return answer_error(
				    c, 400, "bad-device-id",
				    "devices[%zu] is not a device id (32 lower-case hex digits).", i);
			r = store_device_get(c->ctx->store, id, &d);
			if (r == -ENOENT)
				return answer_error(c, 404, "unknown-device",
						    "No device %s is enrolled; nothing was queued.", id);
			if (r < 0)
				return answer_internal(c, r, "reading a device");
		}
	} else {
		r = store_device_list(c->ctx->store, &devs, &n_devs);
		if (r < 0)
			return answer_internal(c, r, "listing devices");
	}

	f = calloc(1, sizeof(*f));
	if (f) {
		*f = (AdminFleet){.operator= strdup(c->operator),
				  .role = c->role,
				  .body = TAKE_PTR(body),
				  .spec = spec,
				  .list = list,
				  .devs = devs,
				  .n_devs = n_devs,
				  .n_ids = list ? json_array_size(list) : n_devs,
				  .out = json_array()};
		devs = NULL;
		n_devs = 0;
	}
	for (size_t k = 0; k < n_devs; k++)
		device_record_done(&devs[k]);
	free(devs);
	if (!f || !f->operator|| !f->out) {
		admin_fleet_free(f);
		return -ENOMEM;
	}
	if (c->fleet_out) {
		*c->fleet_out = f; /* the caller runs the slices */
		return 0;
	}
	while ((r = fleet_run(c, f)) == 0)
		;
	admin_fleet_free(f);
	return r < 0 ? r : 0;
}

/* ?device=ID&limit=N (both optional). */
int api_commands_list(ApiCall *c)
{
	_cleanup_free_ char *copy = NULL;
	char device[33] = "", *save = NULL;
	uint64_t limit = COMMANDS_LIMIT_DEFAULT;
	bool seen_device = false, seen_limit = false;
	CommandRecord *list = NULL;
	size_t n = 0;
	int r;

	if (c->req->query && *c->req->query) {
		copy = strdup(c->req->query);
		if (!copy)
			return -ENOMEM;
		for (char *kv = strtok_r(copy, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
			char *eq = strchr(kv, '=');
			if (!eq)
				return answer_error(c, 400, "bad-query",
						    "Query parameter '%s' has no value.", kv);
			*eq++ = 0;
			if (streq(kv, "device") && !seen_device) {
				if (!store_device_id_valid(eq))
					return answer_error(
					    c, 400, "bad-query",
					    "'device' must be a device id (32 lower-case hex digits).");
				memcpy(device, eq, sizeof(device));
				seen_device = true;
			} else if (streq(kv, "limit") && !seen_limit) {
				if (parse_uint64(eq, COMMANDS_LIMIT_MAX, &limit) < 0 || limit == 0)
					return answer_error(c, 400, "bad-query",
							    "'limit' must be from 1 to %u.",
							    COMMANDS_LIMIT_MAX);
				seen_limit = true;
			} else
				return answer_error(c, 400, "bad-query",
						    "Unknown or repeated query parameter '%s'.", kv);
		}
	}
	if (seen_device) {
		_cleanup_(device_record_done) DeviceRecord d = {};
		r = store_device_get(c->ctx->store, device, &d);
		if (r == -ENOENT)
			return answer_error(c, 404, "unknown-device", "No device %s is enrolled.", device);
		if (r < 0)
			return answer_internal(c, r, "reading the device");
	}
	r = store_command_list(c->ctx->store, seen_device ? device : NULL, (size_t)limit, &list, &n);
	if (r < 0)
		return answer_internal(c, r, "listing commands");
	return answer_json(c, 200, commands_json(list, n));
}

/* ---- recovery key ---- */

/* Printable ASCII without '"' and '\': safe inside a JSON string as it is. */
static bool recovery_key_printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e || p[i] == '"' || p[i] == '\\')
			return false;
	return n > 0;
}

int api_recovery_key(ApiCall *c)
{
	_cleanup_(device_record_done) DeviceRecord d = {};
	_cleanup_ec_key_ EcKey *key = NULL;
	_cleanup_json_ json_t *blob = NULL, *details = NULL;
	_cleanup_secure_ uint8_t *secret = NULL;
	_cleanup_erase_ char *out = NULL;
	_cleanup_free_ char *details_text = NULL, *prefix = NULL;
	const char *context, *uuid;
	size_t n = 0;
	int r;

	r = refuse_query(c);
	if (r != 0 || c->resp->body)
		return r;
	if (c->req->body_len > 0 && !(c->req->body_len == 2 && memcmp(c->req->body, "{}", 2) == 0))
		return answer_error(c, 400, "bad-request", "The body must be empty or {}.");
	if (!store_device_id_valid(c->arg))
		return answer_error(c, 400, "bad-device-id",
				    "'%s' is not a device id (32 lower-case hex digits).", c->arg);
	r = store_device_get(c->ctx->store, c->arg, &d);
	if (r == -ENOENT)
		return answer_error(c, 404, "unknown-device", "No device %s is enrolled.", c->arg);
	if (r < 0)
		return answer_internal(c, r, "reading the device");
	if (!d.escrow_json)
		return answer_error(c, 404, "not-escrowed", "Device %s has not escrowed a recovery key.",
				    c->arg);
	if (!c->ctx->escrow_key_path)
		return answer_error(c, 503, "unavailable", "This server has no escrow key configured.");

	/* The blob names its volume in its authenticated context; it must name this device, so a
	 * blob copied from another device's row cannot be read out under this device's name. */
	blob = json_loads(d.escrow_json, JSON_REJECT_DUPLICATES, NULL);
	context = json_string_value(json_object_get(blob, "context"));
	if (asprintf(&prefix, "recovery-key:%s:", d.device_id) < 0) {
		prefix = NULL;
		return -ENOMEM;
	}
	uuid = context ? startswith(context, prefix) : NULL;
	if (!uuid || !*uuid)
		return answer_internal(c, -EBADMSG, "checking the escrow blob's context");

	r = ec_key_load_file(c->ctx->escrow_key_path, &key);
	if (r < 0)
		return answer_internal(c, r, "loading the escrow key");
	r = escrow_open(key, context, d.escrow_json, strlen(d.escrow_json), &secret, &n);
	if (r < 0)
		return answer_internal(c, r, "opening the escrow blob");
	if (!recovery_key_printable(secret, n))
		return answer_internal(c, -EBADMSG, "reading the recovery key (not printable text)");

	/* Recorded (committed) before anyone sees the key. */
	details = json_pack("{s:s}", "luks_uuid", uuid);
	details_text = details ? json_dumps(details, JSON_COMPACT) : NULL;
	if (!details_text)
		return -ENOMEM;
	r = store_audit_append(c->ctx->store, c->operator, "recovery-key.read", d.device_id, details_text);
	if (r < 0)
		return answer_internal(c, r, "auditing the recovery key read");
	log_notice("Operator %s read the recovery key of device %s (volume %s).", c->operator, d.device_id,
		   uuid);

	/* Built by hand so that the secret is in one buffer we wipe; uuid is from the authenticated
	 * context, escaped by jansson to be safe. */
	{
		_cleanup_free_ char *uuid_json =
		    json_dumps(json_object_get(details, "luks_uuid"), JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
		if (!uuid_json)
			return -ENOMEM;
		if (asprintf(&out, "{\"device_id\":\"%s\",\"luks_uuid\":%s,\"recovery_key\":\"%.*s\"}",
			     d.device_id, uuid_json, (int)n, (const char *)secret) < 0) {
			out = NULL;
			return -ENOMEM;
		}
	}
	http_response_done(c->resp);
	c->resp->status = 200;
	c->resp->body = TAKE_PTR(out);
	return 0;
}
