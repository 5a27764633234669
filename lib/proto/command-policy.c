/* SPDX-License-Identifier: Apache-2.0 */
/* The device policy (docs/PROTOCOL.md "Commands", type policy): its value rules and the JSON
 * document trustpcd keeps on disk once a policy command has been applied:
 *
 *   {"version":N,"heartbeat":N,"offline_lease":N,"usb_storage":bool,"screen_lock":N}
 *
 * The parser is as strict as the CBOR decoder: exactly these keys, once each, integers (not
 * reals) within their range, nothing else. The file is written by the executor, but a parser
 * that accepts a looser document than the one it writes is where "lease 0 = none" tricks start. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "proto/command-internal.h"

#define DEVICE_POLICY_JSON_MAX 4096

/* json_decrefp comes with jansson >= 2.9. */
#define _cleanup_json_ _cleanup_(json_decrefp)

int device_policy_check(const DevicePolicy *p, bool json, const char **ret_reason)
{
	const char *reason = NULL;

	assert(p);

	/* version 0 means "no policy applied" in posture.policy_version: a policy must be newer. */
	if (p->version == 0)
		reason = json ? "policy.version: bad value" : "command.args.version: bad value";
	/* a heartbeat of 0 would make the agent spin on the server */
	else if (p->heartbeat == 0)
		reason = json ? "policy.heartbeat: bad value" : "command.args.heartbeat: bad value";
	/* JSON integers are signed 64-bit (jansson json_int_t): keep both encodings round-trippable */
	else if (p->version > INT64_MAX || p->offline_lease > INT64_MAX)
		reason = json ? "policy: value above 2^63-1" : "command.args: value above 2^63-1";
	if (!reason)
		return 0;
	if (ret_reason)
		*ret_reason = reason;
	return -EBADMSG;
}

typedef struct PolicyKey {
	const char *name;
	uint64_t max; /* 0 for the boolean */
	const char *type_reason, *value_reason, *missing_reason;
} PolicyKey;

#define KEY(n, max_)                                                                                        \
	{                                                                                                   \
		.name = n, .max = max_, .type_reason = "policy." n ": wrong type",                          \
		.value_reason = "policy." n ": bad value", .missing_reason = "policy." n ": missing",       \
	}

static const PolicyKey policy_keys[] = {
    KEY("version", INT64_MAX), KEY("heartbeat", UINT32_MAX),   KEY("offline_lease", INT64_MAX),
    KEY("usb_storage", 0),     KEY("screen_lock", UINT32_MAX),
};

int device_policy_parse_json(const char *json, size_t n, DevicePolicy *ret, const char **ret_reason)
{
	_cleanup_json_ json_t *o = NULL;
	const char *reason = NULL, *key;
	DevicePolicy p = {};
	json_error_t err;
	uint64_t v[ELEMENTSOF(policy_keys)] = {};
	json_t *value;
	int r;

	assert(json || n == 0);
	assert(ret);

	if (n > DEVICE_POLICY_JSON_MAX) {
		reason = "policy: larger than 4096 bytes";
		goto fail;
	}
	/* No JSON_DECODE_ANY: the top level must be an object; no JSON_ALLOW_NUL. */
	o = json_loadb(json, n, JSON_REJECT_DUPLICATES, &err);
	if (!o) {
		reason = "policy: not valid JSON (or a duplicate key)";
		goto fail;
	}
	if (!json_is_object(o)) {
		reason = "policy: not a JSON object";
		goto fail;
	}
	json_object_foreach (o, key, value) {
		size_t k;

		for (k = 0; k < ELEMENTSOF(policy_keys); k++)
			if (streq(key, policy_keys[k].name))
				break;
		if (k == ELEMENTSOF(policy_keys)) {
			reason = "policy: unknown key";
			goto fail;
		}
		if (policy_keys[k].max == 0) {
			if (!json_is_boolean(value)) {
				reason = policy_keys[k].type_reason;
				goto fail;
			}
			v[k] = json_is_true(value);
			continue;
		}
		/* json_is_integer is false for 1.0 and 1e3: a real is not a count of seconds */
		if (!json_is_integer(value)) {
			reason = policy_keys[k].type_reason;
			goto fail;
		}
		if (json_integer_value(value) < 0 ||
		    (uint64_t)json_integer_value(value) > policy_keys[k].max) {
			reason = policy_keys[k].value_reason;
			goto fail;
		}
		v[k] = (uint64_t)json_integer_value(value);
	}
	/* duplicates were refused by the parser: every key found once, so count = all present */
	for (size_t k = 0; k < ELEMENTSOF(policy_keys); k++)
		if (!json_object_get(o, policy_keys[k].name)) {
			reason = policy_keys[k].missing_reason;
			goto fail;
		}

	p = (DevicePolicy){
	    .version = v[0],
	    .heartbeat = (uint32_t)v[1],
	    .offline_lease = v[2],
	    .usb_storage = v[3] != 0,
	    .screen_lock = (uint32_t)v[4],
	};
	r = device_policy_check(&p, true, &reason);
	if (r < 0)
		goto fail;
	*ret = p;
	return 0;

fail:
	log_debug("Refusing device policy: %s", reason);
	if (ret_reason)
		*ret_reason = reason;
	return -EBADMSG;
}

int device_policy_format_json(const DevicePolicy *p, char **ret)
{
	_cleanup_json_ json_t *o = NULL;
	char *s;
	int r;

	assert(p);
	assert(ret);

	r = device_policy_check(p, true, NULL);
	if (r < 0)
		return -EINVAL;
	o = json_pack("{s:I, s:I, s:I, s:b, s:I}", "version", (json_int_t)p->version, "heartbeat",
		      (json_int_t)p->heartbeat, "offline_lease", (json_int_t)p->offline_lease, "usb_storage",
		      (int)p->usb_storage, "screen_lock", (json_int_t)p->screen_lock);
	if (!o)
		return -ENOMEM;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}
