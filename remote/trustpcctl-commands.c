/* SPDX-License-Identifier: Apache-2.0 */
/* trustpcctl verbs for signed commands (lock, unlock, wipe, commands) and the recovery key. The
 * server signs; trustpcctl only says what to do and shows the life cycle. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
