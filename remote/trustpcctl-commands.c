/* SPDX-License-Identifier: Apache-2.0 */
/* trustpcctl verbs for signed commands (lock, unlock, wipe, commands) and the recovery key. The
 * server signs; trustpcctl only says what to do and shows the life cycle. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "trustpcctl.h"

#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))
#define _cleanup_table_ __attribute__((cleanup(ctl_table_freep)))

static int usage(const char *text)
{
	log_error("Usage: trustpcctl %s", text);
	return CTL_EXIT_USAGE;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Options of other verbs given here are a usage error, not ignored. */
static int check_command_options(const CtlOptions *o, const char *verb, bool reason, bool klass, bool all)
{
	const char *bad = o->image    ? "--image"
			  : o->ttl    ? "--ttl"
			  : o->n_pcrs ? "--pcr"
			  : o->after  ? "--after"
				      : NULL;

	if (!bad && !reason && (o->reason || o->poweroff))
		bad = o->reason ? "--reason" : "--poweroff";
	if (!bad && !klass && o->class_name)
		bad = "--class";
	if (!bad && !all && o->all)
		bad = "--all";
	if (bad) {
		log_error("'%s' does not take %s. See 'trustpcctl --help'.", verb, bad);
		return CTL_EXIT_USAGE;
	}
	return 0;
}

static int print_commands(const CtlOptions *o, json_t *list)
{
	static const char *const headers[] = {"COMMAND", "DEVICE",    "SEQ",	  "TYPE",   "STATE",
					      "QUEUED",	 "DELIVERED", "FINISHED", "ISSUER", "REASON"};
	_cleanup_table_ CtlTable *t = NULL;
	json_t *e;
	size_t i;

	if (o->json) {
		ctl_print_json(list);
		return CTL_EXIT_OK;
	}
	t = ctl_table_new(ELEMENTSOF(headers), headers);
	if (!t)
		return log_oom(), CTL_EXIT_ERROR;
	json_array_foreach (list, i, e) {
		_cleanup_free_ char *q = ctl_format_time(json_object_get(e, "created_at"));
		_cleanup_free_ char *d = ctl_format_time(json_object_get(e, "delivered_at"));
		_cleanup_free_ char *f = ctl_format_time(json_object_get(e, "finished_at"));
		char seq[24], id[13] = "", dev[13] = "";

		if (str(e, "error")) {
			/* A fleet command that could not be queued for this device. */
			fprintf(stderr, "%s: not queued: %s\n", strna(str(e, "device_id")),
				strna(str(e, "message")));
			continue;
		}
		snprintf(seq, sizeof(seq), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(e, "seq")));
		snprintf(id, sizeof(id), "%s", strna(str(e, "id")));
		snprintf(dev, sizeof(dev), "%s", strna(str(e, "device_id")));
		const char *row[] = {id, dev, seq, str(e, "type"),   str(e, "state"),
				     q,	 d,   f,   str(e, "issuer"), str(e, "reason")};
		if (ctl_table_add(t, row) < 0)
			return log_oom(), CTL_EXIT_ERROR;
	}
	ctl_table_print(t);
	return CTL_EXIT_OK;
}

/* One device: POST /devices/{id}/commands; several or --all: POST /commands. */
static int send_command(const CtlOptions *o, int argc, char **argv, json_t *body)
{
	_cleanup_json_ json_t *answer = NULL, *list = NULL, *ids = NULL;
	_cleanup_free_ char *target = NULL;
	int r, failed = 0;
	json_t *e;
	size_t i;

	if (!o->all && argc == 2) {
		_cleanup_free_ char *id = NULL;
		r = ctl_resolve_device(o, argv[1], &id);
		if (r != 0)
			return r;
		if (asprintf(&target, "/api/v1/devices/%s/commands", id) < 0)
			return log_oom(), CTL_EXIT_ERROR;
		r = ctl_call(o, "POST", target, body, &answer);
		if (r != 0)
			return r;
		list = json_array();
		if (!list || json_array_append(list, answer) < 0)
			return log_oom(), CTL_EXIT_ERROR;
		return print_commands(o, list);
	}
	if (o->all)
		r = json_object_set_new(body, "all", json_true());
	else {
		ids = json_array();
		if (!ids)
			return log_oom(), CTL_EXIT_ERROR;
		for (int k = 1; k < argc; k++) {
			_cleanup_free_ char *id = NULL;
			r = ctl_resolve_device(o, argv[k], &id);
			if (r != 0)
				return r;
			if (json_array_append_new(ids, json_string(id)) < 0)
				return log_oom(), CTL_EXIT_ERROR;
		}
		r = json_object_set(body, "devices", ids);
	}
	if (r < 0)
		return log_oom(), CTL_EXIT_ERROR;
	r = ctl_call(o, "POST", "/api/v1/commands", body, &list);
	if (r != 0)
		return r;
	json_array_foreach (list, i, e)
		failed += str(e, "error") != NULL;
	r = print_commands(o, list);
	/* Some devices refused (e.g. an unlock while their lock is pending): the others stay queued. */
	return r != 0 ? r : failed ? CTL_EXIT_ERROR : CTL_EXIT_OK;
}

static int device_args_check(const CtlOptions *o, int argc, const char *text)
{
	if (o->all ? argc != 1 : argc < 2)
		return usage(text);
	return 0;
}

int verb_lock(const CtlOptions *o, int argc, char **argv)
{
	static const char text[] = "lock DEV... | --all --reason TEXT [--poweroff]";
	_cleanup_json_ json_t *body = NULL;
	int r;

	r = check_command_options(o, "lock", true, false, true);
	if (r != 0)
		return r;
	r = device_args_check(o, argc, text);
	if (r != 0)
		return r;
	if (!o->reason || !*o->reason) {
		/* The reason is what the user and the audit log will see: never silent. */
		log_error("lock needs --reason TEXT.");
		return usage(text);
	}
	body = json_pack("{s:s,s:s,s:b}", "type", "lock", "reason", o->reason, "poweroff", o->poweroff);
	if (!body)
		return log_error("--reason must be UTF-8 text."), CTL_EXIT_USAGE;
	return send_command(o, argc, argv, body);
}

int verb_unlock(const CtlOptions *o, int argc, char **argv)
{
	_cleanup_json_ json_t *body = NULL;
	int r;

	r = check_command_options(o, "unlock", false, false, true);
	if (r != 0)
		return r;
	r = device_args_check(o, argc, "unlock DEV... | --all");
	if (r != 0)
		return r;
	body = json_pack("{s:s}", "type", "unlock");
	if (!body)
		return log_oom(), CTL_EXIT_ERROR;
	return send_command(o, argc, argv, body);
}

int verb_wipe(const CtlOptions *o, int argc, char **argv)
{
	static const char text[] = "wipe DEV... | --all --class NAME|all";
	_cleanup_json_ json_t *body = NULL;
	int r;

	r = check_command_options(o, "wipe", false, true, true);
	if (r != 0)
		return r;
	r = device_args_check(o, argc, text);
	if (r != 0)
		return r;
	if (!o->class_name) {
		/* No default: "all" must be said, never implied. */
		log_error("wipe needs --class NAME (a data class of the device) or --class all.");
		return usage(text);
	}
	body = json_pack("{s:s,s:s}", "type", "wipe", "class", o->class_name);
	if (!body)
		return log_error("--class must be UTF-8 text."), CTL_EXIT_USAGE;
	return send_command(o, argc, argv, body);
}

int verb_commands(const CtlOptions *o, int argc, char **argv)
{
	_cleanup_json_ json_t *list = NULL;
	_cleanup_free_ char *id = NULL, *target = NULL;
	int r;

	r = check_command_options(o, "commands", false, false, false);
	if (r != 0)
		return r;
	if (argc > 2)
		return usage("commands [DEV]");
	if (argc == 2) {
		r = ctl_resolve_device(o, argv[1], &id);
		if (r != 0)
			return r;
	}
	if (asprintf(&target, "/api/v1/commands%s%s", id ? "?device=" : "", id ?: "") < 0)
		return log_oom(), CTL_EXIT_ERROR;
	r = ctl_call(o, "GET", target, NULL, &list);
	if (r != 0)
		return r;
	return print_commands(o, list);
}

int verb_recovery_key(const CtlOptions *o, int argc, char **argv)
{
	_cleanup_json_ json_t *answer = NULL;
	_cleanup_free_ char *id = NULL, *target = NULL;
	int r;

	r = check_command_options(o, "recovery-key", false, false, false);
	if (r != 0)
		return r;
	if (argc != 2)
		return usage("recovery-key DEV");
	r = ctl_resolve_device(o, argv[1], &id);
	if (r != 0)
		return r;
	if (asprintf(&target, "/api/v1/devices/%s/recovery-key", id) < 0)
		return log_oom(), CTL_EXIT_ERROR;
	r = ctl_call(o, "POST", target, NULL, &answer);
	if (r != 0)
		return r;
	if (o->json)
		ctl_print_json(answer);
	else {
		/* The key alone on stdout (for a pipe into cryptsetup); whose it is on stderr. */
		fprintf(stderr, "Recovery key of device %s, LUKS volume %s (this read is audited):\n",
			strna(str(answer, "device_id")), strna(str(answer, "luks_uuid")));
		printf("%s\n", strna(str(answer, "recovery_key")));
	}
	/* jansson's copy of the key: wipe it before the answer is freed. */
	{
		json_t *k = json_object_get(answer, "recovery_key");
		const char *v = json_string_value(k);
		if (v)
			explicit_bzero((char *)v, strlen(v));
	}
	return CTL_EXIT_OK;
}

/* ---- policy set ---- */

/* "60", "60s", "5m", "72h", "7d": seconds, at most max. */
static int parse_duration(const char *s, uint64_t max, uint64_t *ret)
{
	static const struct {
		char suffix;
		uint64_t mult;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		size_t i;
		for (i = 0; i < ELEMENTSOF(units) && units[i].suffix != *p; i++)
			;
		if (i == ELEMENTSOF(units) || p[1])
			return -EINVAL;
		mult = units[i].mult;
	}
	if (v > max / mult)
		return -ERANGE;
	*ret = v * mult;
	return 0;
}

/* The highest policy version among the last commands of one device (id) or of the fleet (NULL). */
static int last_policy_version(const CtlOptions *o, const char *id, uint64_t *ret)
{
	_cleanup_json_ json_t *list = NULL;
	_cleanup_free_ char *target = NULL;
	uint64_t max = 0;
	json_t *e;
	size_t i;
	int r;

	if (asprintf(&target, "/api/v1/commands?limit=1000%s%s", id ? "&device=" : "", id ?: "") < 0)
		return log_oom(), CTL_EXIT_ERROR;
	r = ctl_call(o, "GET", target, NULL, &list);
	if (r != 0)
		return r;
	json_array_foreach (list, i, e) {
		json_t *v = json_object_get(json_object_get(e, "args"), "version");
		if (streq_ptr(str(e, "type"), "policy") && json_is_integer(v) && json_integer_value(v) > 0)
			max = MAX(max, (uint64_t)json_integer_value(v));
	}
	*ret = max;
	return 0;
}

int verb_policy(const CtlOptions *o, int argc, char **argv)
{
	static const char text[] =
	    "policy set DEV... | --all KEY=VALUE... (heartbeat=60s offline_lease=72h|0 "
	    "usb_storage=yes|no screen_lock=5m version=N)";
	_cleanup_json_ json_t *body = NULL;
	_cleanup_free_ char **devs = NULL;
	uint64_t heartbeat = 300, lease = 0, screen = 0, version = 0, last = 0;
	bool usb = true, have_version = false;
	int r, ndev = 1;

	r = check_command_options(o, "policy", false, false, true);
	if (r != 0)
		return r;
	if (argc < 2 || !streq(argv[1], "set"))
		return usage(text);
	devs = calloc((size_t)argc, sizeof(char *));
	if (!devs)
		return log_oom(), CTL_EXIT_ERROR;
	devs[0] = argv[0];
	for (int k = 2; k < argc; k++) {
		const char *eq = strchr(argv[k], '=');
		const char *v = eq ? eq + 1 : NULL;
		size_t kl = eq ? (size_t)(eq - argv[k]) : 0;

		if (!eq) {
			devs[ndev++] = argv[k];
			continue;
		}
#define KEY_IS(name) (kl == strlen(name) && strncmp(argv[k], name, kl) == 0)
		if (KEY_IS("heartbeat"))
			r = parse_duration(v, UINT32_MAX, &heartbeat) < 0 || heartbeat == 0 ? -EINVAL : 0;
		else if (KEY_IS("offline_lease"))
			r = parse_duration(v, INT64_MAX, &lease);
		else if (KEY_IS("screen_lock"))
			r = parse_duration(v, UINT32_MAX, &screen);
		else if (KEY_IS("usb_storage")) {
			r = streq(v, "yes") || streq(v, "no") ? 0 : -EINVAL;
			usb = streq(v, "yes");
		} else if (KEY_IS("version")) {
			r = parse_duration(v, INT64_MAX, &version) < 0 || version == 0 || strpbrk(v, "smhd")
				? -EINVAL
				: 0;
			have_version = true;
		} else {
			log_error("Unknown policy key '%.*s': heartbeat, offline_lease, usb_storage, "
				  "screen_lock or version.",
				  (int)kl, argv[k]);
			return usage(text);
		}
#undef KEY_IS
		if (r < 0) {
			log_error("Bad value in '%s': durations are N[s|m|h|d] (heartbeat >= 1 s, "
				  "below 2^32 s), usb_storage is yes or no, version an integer >= 1.",
				  argv[k]);
			return usage(text);
		}
	}
	if (o->all ? ndev != 1 : ndev < 2)
		return usage(text);

	/* The version: strictly above every policy version queued so far for these devices (a device
	 * refuses anything not newer than what it applied), and at least the current Unix time so
	 * that versions from different admins and hosts keep one order. */
	if (!have_version) {
		version = (uint64_t)time(NULL);
		for (int k = 1; k < ndev || (o->all && k == 1); k++) {
			_cleanup_free_ char *id = NULL;
			if (!o->all) {
				r = ctl_resolve_device(o, devs[k], &id);
				if (r != 0)
					return r;
			}
			r = last_policy_version(o, id, &last);
			if (r != 0)
				return r;
			version = MAX(version, last + 1);
		}
	}
	body = json_pack("{s:s,s:I,s:I,s:I,s:b,s:I}", "type", "policy", "version", (json_int_t)version,
			 "heartbeat", (json_int_t)heartbeat, "offline_lease", (json_int_t)lease,
			 "usb_storage", usb, "screen_lock", (json_int_t)screen);
	if (!body)
		return log_oom(), CTL_EXIT_ERROR;
	return send_command(o, ndev, devs, body);
}
