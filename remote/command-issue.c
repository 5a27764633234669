/* SPDX-License-Identifier: Apache-2.0 */
/* Issuing commands (command-issue.h): arguments, the unlock's disk policy, sign + enqueue. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "command-issue.h"
#include "proto/proto.h"
#include "tpm2/tpm2-policy-file.h"
#include "tpm2/tpm2.h"

#define CLASS_MAX 64

typedef struct IssueSign {
	const CommandIssueKeys *keys;
	Command cmd; /* everything but seq, iat, exp */
} IssueSign;

static int issue_sign(void *userdata, uint64_t seq, time_t now, uint8_t **ret, size_t *ret_size)
{
	IssueSign *is = userdata;

	is->cmd.seq = seq;
	is->cmd.iat = (uint64_t)now;
	is->cmd.exp = (uint64_t)now + is->keys->ttl;
	return command_sign(is->keys->command_key, &is->cmd, ret, ret_size);
}

/* The same alphabet the device's command decoder accepts (lib/proto/command.c): refused here
 * with a clear 400 instead of a signed command the device would reject. */
static bool class_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > CLASS_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

static bool text_valid(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return false; /* no control characters in the helpdesk's and the log's view */
	return true;
}

static bool utf8_valid(const char *s)
{
	json_t *j = json_string(s); /* jansson refuses invalid UTF-8 */
	bool ok = j != NULL;
	json_decref(j);
	return ok;
}

int command_unlock_epoch(Store *s, const DeviceRecord *d, uint64_t *ret)
{
	json_t *posture, *e;
	uint64_t lock_epoch = 0, epoch = 0;
	bool have = false;
	int r;

	r = store_command_last_lock_epoch(s, d->device_id, &lock_epoch);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r >= 0) {
		epoch = lock_epoch;
		have = true;
	}
	posture = d->posture_json ? json_loads(d->posture_json, 0, NULL) : NULL;
	e = json_object_get(posture, "epoch");
	if (json_is_integer(e) && json_integer_value(e) >= 0) {
		uint64_t pe = (uint64_t)json_integer_value(e);
		if (!have || pe > epoch)
			epoch = pe;
		have = true;
	}
	json_decref(posture);
	if (!have)
		return -ENODATA;
	*ret = epoch;
	return 0;
}

static bool lock_pending(Store *s, const char *device_id, int *ret_error)
{
	CommandRecord *list = NULL;
	size_t n = 0;
	bool found = false;
	int r;

	r = store_command_pending(s, device_id, &list, &n);
	if (r < 0) {
		*ret_error = r;
		return false;
	}
	for (size_t i = 0; i < n; i++)
		found = found || streq(list[i].type, "lock");
	command_records_free(list, n);
	*ret_error = 0;
	return found;
}

/* The unlock's disk policy: the image's expected values of policy_pcrs, PCR 15 = 0, at the
 * device's current epoch (command_unlock_epoch) — what trustpc-disk needs to open the volume
 * again after the lock counter moved on. */
static int unlock_policy(Store *s, const CommandIssueKeys *k, const DeviceRecord *d, char **ret,
			 uint64_t *ret_epoch, const char **ret_why)
{
	_cleanup_(image_record_done) ImageRecord img = {};
	SignedPolicy p = {};
	uint64_t epoch;
	int r;

	if (!d->image) {
		*ret_why = "the device has no image: its PCR values for the disk policy are not known";
		return -ENODATA;
	}
	r = store_image_get(s, d->image, &img);
	if (r == -ENOENT) {
		*ret_why = "the device's image has no expected PCR values registered";
		return -ENODATA;
	}
	if (r < 0)
		return r;
	if ((img.pcr_mask & k->policy_pcrs) != k->policy_pcrs) {
		*ret_why = "the device's image has no expected value for every PCR in policy_pcrs";
		return -ENODATA;
	}
	r = command_unlock_epoch(s, d, &epoch);
	if (r == -ENODATA) {
		*ret_why = "the device has not reported its lock counter (epoch) yet";
		return r;
	}
	if (r < 0)
		return r;

	memcpy(p.device_id, d->device_id, sizeof(p.device_id));
	p.params.pcr_mask = k->policy_pcrs | (UINT32_C(1) << TPM2_PCR_ONE_BOOT);
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
		if (k->policy_pcrs & (UINT32_C(1) << i))
			memcpy(p.params.pcr_values[i], img.pcr_values[i], TPM2_SHA256_SIZE);
	memset(p.params.pcr_values[TPM2_PCR_ONE_BOOT], 0, TPM2_SHA256_SIZE);
	p.params.nv_index = TPM2_LOCK_COUNTER_NV_INDEX;
	p.params.epoch = epoch;
	r = signed_policy_sign(&p, k->policy_key);
	if (r < 0)
		return r;
	r = signed_policy_format(&p, ret);
	if (r < 0)
		return r;
	*ret_epoch = epoch;
	return 0;
}

int command_spec_check(const CommandSpec *spec, const char **ret_why)
{
	switch (spec->type) {
	case COMMAND_LOCK:
		if (spec->reason &&
		    (!text_valid(spec->reason, PROTO_TEXT_MAX) || !utf8_valid(spec->reason))) {
			*ret_why =
			    "reason must be UTF-8 text of at most 1024 bytes without control characters";
			return -EINVAL;
		}
		return 0;
	case COMMAND_UNLOCK:
		return 0;
	case COMMAND_WIPE:
		if (!class_name_valid(spec->class_name)) {
			*ret_why =
			    "class must be 1-64 characters of [A-Za-z0-9_.-] (not starting with '.'), "
			    "or \"all\"";
			return -EINVAL;
		}
		return 0;
	case COMMAND_POLICY:
		if (spec->policy.version == 0 || spec->policy.version > INT64_MAX ||
		    spec->policy.heartbeat == 0 || spec->policy.offline_lease > INT64_MAX) {
			*ret_why = "policy needs version >= 1 and heartbeat >= 1";
			return -EINVAL;
		}
		return 0;
	}
	*ret_why = "type must be lock, unlock, wipe or policy";
	return -EINVAL;
}

int command_issue(Store *s, const CommandIssueKeys *k, const char *issuer, const char *device_id,
		  const CommandSpec *spec, CommandRecord *ret, const char **ret_why)
{
	_cleanup_(device_record_done) DeviceRecord d = {};
	_cleanup_(command_record_done) CommandRecord rec = {};
	_cleanup_free_ char *policy = NULL;
	uint8_t raw_id[COMMAND_ID_SIZE];
	_cleanup_free_ char *hex = NULL;
	IssueSign is = {.keys = k};
	json_t *args = NULL;
	uint64_t epoch = 0;
	const char *why = NULL;
	int r;

	r = command_spec_check(spec, &why);
	if (r < 0) {
		*ret_why = why;
		return r;
	}
	r = store_device_get(s, device_id, &d);
	if (r < 0)
		return r;

	switch (spec->type) {
	case COMMAND_LOCK:
		is.cmd.args.lock.reason = (char *)(spec->reason ?: "");
		is.cmd.args.lock.poweroff = spec->poweroff;
		args = json_pack("{s:s,s:b}", "reason", spec->reason ?: "", "poweroff", spec->poweroff);
		break;
	case COMMAND_UNLOCK:
		if (lock_pending(s, device_id, &r)) {
			*ret_why =
			    "a lock of this device is still pending: its epoch is not known until the "
			    "device reports the lock's result";
			return -EBUSY;
		}
		if (r < 0)
			return r;
		r = unlock_policy(s, k, &d, &policy, &epoch, ret_why);
		if (r < 0)
			return r;
		is.cmd.args.unlock.policy = policy;
		args = json_pack("{s:I,s:s}", "epoch", (json_int_t)epoch, "image", d.image);
		break;
	case COMMAND_WIPE:
		is.cmd.args.wipe.class_name = (char *)spec->class_name;
		args = json_pack("{s:s}", "class", spec->class_name);
		break;
	case COMMAND_POLICY:
		is.cmd.args.policy = spec->policy;
		args =
		    json_pack("{s:I,s:I,s:I,s:b,s:I}", "version", (json_int_t)spec->policy.version,
			      "heartbeat", (json_int_t)spec->policy.heartbeat, "offline_lease",
			      (json_int_t)spec->policy.offline_lease, "usb_storage",
			      spec->policy.usb_storage, "screen_lock", (json_int_t)spec->policy.screen_lock);
		break;
	}
	if (!args)
		return -ENOMEM;
	rec.args_json = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(args);
	rec.type = strdup(command_type_name(spec->type));
	rec.issuer = strdup(issuer);
	if (!rec.args_json || !rec.type || !rec.issuer)
		return -ENOMEM;

	r = crypto_random_bytes(raw_id, sizeof(raw_id));
	if (r < 0)
		return r;
	hex = hex_encode(raw_id, sizeof(raw_id));
	if (!hex)
		return -ENOMEM;
	memcpy(rec.id, hex, sizeof(rec.id));
	memcpy(rec.device_id, d.device_id, sizeof(rec.device_id));

	memcpy(is.cmd.id, rec.id, sizeof(is.cmd.id));
	memcpy(is.cmd.device_id, d.device_id, sizeof(is.cmd.device_id));
	is.cmd.type = spec->type;
	is.cmd.issuer = rec.issuer;
	r = store_command_enqueue(s, &rec, issue_sign, &is);
	if (r == -EINVAL && !why)
		*ret_why = "the command could not be encoded (a field out of range)";
	if (r < 0)
		return r;
	*ret = rec;
	rec = (CommandRecord){};
	return 0;
}
