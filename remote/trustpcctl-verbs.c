/* SPDX-License-Identifier: Apache-2.0 */
/* trustpcctl verbs: each builds one or a few admin API requests and prints the answer as a table
 * or, with --json, as the API's JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "trustpcctl.h"

#define AUDIT_PAGE 1000
#define TTL_MAX (30ULL * 24 * 3600)

#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))
#define _cleanup_table_ __attribute__((cleanup(ctl_table_freep)))

enum {
	OPT_IMAGE = 1 << 0,
	OPT_TTL = 1 << 1,
	OPT_PCR = 1 << 2,
	OPT_AFTER = 1 << 3,
};

/* Verb options given to a verb that does not take them are a usage error, not ignored. */
static int check_options(const CtlOptions *o, unsigned allowed, const char *verb)
{
	const char *bad = NULL;

	if (o->image && !(allowed & OPT_IMAGE))
		bad = "--image";
	else if (o->ttl && !(allowed & OPT_TTL))
		bad = "--ttl";
	else if (o->n_pcrs > 0 && !(allowed & OPT_PCR))
		bad = "--pcr";
	else if (o->after && !(allowed & OPT_AFTER))
		bad = "--after";
	else if (o->reason || o->poweroff || o->class_name || o->all)
		bad = o->reason	      ? "--reason"
		      : o->poweroff   ? "--poweroff"
		      : o->class_name ? "--class"
				      : "--all";
	if (bad) {
		log_error("'%s' does not take %s. See 'trustpcctl --help'.", verb, bad);
		return CTL_EXIT_USAGE;
	}
	return 0;
}

static int usage(const char *text)
{
	log_error("Usage: trustpcctl %s", text);
	return CTL_EXIT_USAGE;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static char *compact(const json_t *j)
{
	if (!j || json_is_null(j))
		return strdup("-");
	if (json_is_string(j))
		return strdup(json_string_value(j));
	return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* ---- devices ---- */

int verb_devices(const CtlOptions *o, int argc, char **argv)
{
	static const char *const headers[] = {"DEVICE",	   "HOSTNAME", "STATE", "CONNECTED",
					      "LAST SEEN", "ATTESTED", "IMAGE", "REASON"};
	_cleanup_json_ json_t *list = NULL;
	_cleanup_table_ CtlTable *t = NULL;
	size_t i;
	json_t *d;
	int r;

	r = check_options(o, 0, "devices");
	if (r != 0)
		return r;
	if (argc != 1)
		return usage("devices");
	r = ctl_call(o, "GET", "/api/v1/devices", NULL, &list);
	if (r != 0)
		return r;
	if (o->json) {
		ctl_print_json(list);
		return CTL_EXIT_OK;
	}
	if (json_array_size(list) == 0) {
		printf("No devices enrolled.\n");
		return CTL_EXIT_OK;
	}
	t = ctl_table_new(ELEMENTSOF(headers), headers);
	if (!t)
		return log_oom(), CTL_EXIT_ERROR;
	json_array_foreach (list, i, d) {
		_cleanup_free_ char *seen = ctl_format_time(json_object_get(d, "last_seen"));
		_cleanup_free_ char *att = ctl_format_time(json_object_get(d, "attested_at"));
		char id[13] = "";

		/* 12 hex digits identify a device in any realistic fleet; show accepts the prefix. */
		snprintf(id, sizeof(id), "%s", str(d, "device_id") ?: "?");
		const char *cells[] = {id,
				       str(d, "hostname"),
				       str(d, "state"),
				       json_is_true(json_object_get(d, "connected")) ? "yes" : "no",
				       seen,
				       att,
				       str(d, "image"),
				       str(d, "reason")};
		if (ctl_table_add(t, cells) < 0)
			return log_oom(), CTL_EXIT_ERROR;
	}
	ctl_table_print(t);
	return CTL_EXIT_OK;
}

static bool is_device_id(const char *s)
{
	if (strlen(s) != 32)
		return false;
	return strspn(s, "0123456789abcdef") == 32;
}

/* A full id, a unique prefix of one, or an exact hostname → the device id. */
int ctl_resolve_device(const CtlOptions *o, const char *arg, char **ret)
{
	_cleanup_json_ json_t *list = NULL;
	json_t *d, *match = NULL;
	size_t i, n = 0;
	int r;

	if (is_device_id(arg)) {
		*ret = strdup(arg);
		return *ret ? 0 : (log_oom(), CTL_EXIT_ERROR);
	}
	r = ctl_call(o, "GET", "/api/v1/devices", NULL, &list);
	if (r != 0)
		return r;
	json_array_foreach (list, i, d) {
		const char *id = str(d, "device_id"), *host = str(d, "hostname");
		if ((id && startswith(id, arg) && *arg) || (host && streq(host, arg))) {
			match = d;
			n++;
		}
	}
	if (n == 0) {
		log_error("No device matches '%s' (a device id, a unique prefix of one, or a hostname; see "
			  "'trustpcctl devices').",
			  arg);
		return CTL_EXIT_NOT_FOUND;
	}
	if (n > 1) {
		log_error("'%s' matches %zu devices; give more of the id:", arg, n);
		json_array_foreach (list, i, d) {
			const char *id = str(d, "device_id"), *host = str(d, "hostname");
			if ((id && startswith(id, arg)) || (host && streq(host, arg)))
				log_error("  %s  %s", strna(id), strna(host));
		}
		return CTL_EXIT_ERROR;
	}
	*ret = strdup(str(match, "device_id"));
	return *ret ? 0 : (log_oom(), CTL_EXIT_ERROR);
}

static void print_field(const char *name, const char *value)
{
	printf("%-14s%s\n", name, value ?: "-");
}

/* The device's recent commands with the time of each step (the helpdesk's "did it lock?"). */
static int print_device_commands(const json_t *cmds)
{
	static const char *const headers[] = {"SEQ",	   "TYPE",     "STATE", "QUEUED",
					      "DELIVERED", "FINISHED", "REASON"};
	_cleanup_table_ CtlTable *t = NULL;
	json_t *e;
	size_t i;

	if (json_array_size(cmds) == 0)
		return 0;
	printf("Commands (newest first):\n");
	t = ctl_table_new(ELEMENTSOF(headers), headers);
	if (!t)
		return log_oom(), CTL_EXIT_ERROR;
	json_array_foreach (cmds, i, e) {
		_cleanup_free_ char *q = ctl_format_time(json_object_get(e, "created_at"));
		_cleanup_free_ char *dl = ctl_format_time(json_object_get(e, "delivered_at"));
		_cleanup_free_ char *f = ctl_format_time(json_object_get(e, "finished_at"));
		char seq[24];

		snprintf(seq, sizeof(seq), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(e, "seq")));
		const char *cells[] = {seq, str(e, "type"), str(e, "state"), q, dl, f, str(e, "reason")};
		if (ctl_table_add(t, cells) < 0)
			return log_oom(), CTL_EXIT_ERROR;
	}
	ctl_table_print(t);
	return 0;
}

int verb_show(const CtlOptions *o, int argc, char **argv)
{
	static const char *const headers[] = {"SEQ", "TIME", "ACTOR", "ACTION", "DETAILS"};
	_cleanup_free_ char *id = NULL, *target = NULL, *enrolled = NULL, *seen = NULL, *att = NULL,
			    *state = NULL;
	_cleanup_json_ json_t *d = NULL;
	_cleanup_table_ CtlTable *t = NULL;
	json_t *h, *e, *posture;
	const char *key;
	size_t i;
	int r;

	r = check_options(o, 0, "show");
	if (r != 0)
		return r;
	if (argc != 2)
		return usage("show DEVICE");
	r = ctl_resolve_device(o, argv[1], &id);
	if (r != 0)
		return r;
	if (asprintf(&target, "/api/v1/devices/%s", id) < 0)
		return log_oom(), CTL_EXIT_ERROR;
	r = ctl_call(o, "GET", target, NULL, &d);
	if (r != 0)
		return r;
	if (o->json) {
		ctl_print_json(d);
		return CTL_EXIT_OK;
	}

	enrolled = ctl_format_time(json_object_get(d, "enrolled_at"));
	seen = ctl_format_time(json_object_get(d, "last_seen"));
	att = ctl_format_time(json_object_get(d, "attested_at"));
	if (str(d, "reason") && asprintf(&state, "%s (%s)", strna(str(d, "state")), str(d, "reason")) < 0)
		return log_oom(), CTL_EXIT_ERROR;
	print_field("Device:", str(d, "device_id"));
	print_field("Hostname:", str(d, "hostname"));
	print_field("Image:", str(d, "image"));
	print_field("State:", state ?: str(d, "state"));
	print_field("Connected:", json_is_true(json_object_get(d, "connected")) ? "yes" : "no");
	print_field("Enrolled:", enrolled);
	print_field("Last seen:", seen);
	print_field("Attested:", att);
	print_field("TLS key:", str(d, "tls_key_sha256"));
	print_field("EK cert:", str(d, "ek_cert_sha256"));
	print_field("Recovery key:",
		    json_is_true(json_object_get(d, "escrowed")) ? "escrowed" : "not escrowed");
	posture = json_object_get(d, "posture");
	if (json_is_object(posture) && json_object_size(posture) > 0) {
		printf("Posture:\n");
		json_object_foreach (posture, key, e) {
			_cleanup_free_ char *v = compact(e);
			printf("  %-20s%s\n", key, strna(v));
		}
	}

	r = print_device_commands(json_object_get(d, "commands"));
	if (r != 0)
		return r;

	h = json_object_get(d, "history");
	if (json_array_size(h) == 0)
		return CTL_EXIT_OK;
	printf("History (newest first):\n");
	t = ctl_table_new(ELEMENTSOF(headers), headers);
	if (!t)
		return log_oom(), CTL_EXIT_ERROR;
	json_array_foreach (h, i, e) {
		_cleanup_free_ char *when = ctl_format_time(json_object_get(e, "time"));
		_cleanup_free_ char *details = compact(json_object_get(e, "details"));
		char seq[24];

		snprintf(seq, sizeof(seq), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(e, "seq")));
		const char *cells[] = {seq, when, str(e, "actor"), str(e, "action"), details};
		if (ctl_table_add(t, cells) < 0)
			return log_oom(), CTL_EXIT_ERROR;
	}
	ctl_table_print(t);
	return CTL_EXIT_OK;
}

/* ---- tokens ---- */

/* "90", "90s", "30m", "24h", "7d" → seconds. */
static int parse_ttl(const char *s, uint64_t *ret)
{
	size_t n = strlen(s);
	uint64_t v, mult = 1;
	char num[24];

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		if (num[n - 1] < '0' || num[n - 1] > '9')
			return -EINVAL;
		n++;
	}
	num[n - 1] = 0;
	if (!num[0] || parse_uint64(num, TTL_MAX, &v) < 0 || startswith(num, "0x") || v == 0 ||
	    v * mult > TTL_MAX)
		return -EINVAL;
	*ret = v * mult;
	return 0;
}

int verb_token(const CtlOptions *o, int argc, char **argv)
{
	_cleanup_json_ json_t *body = NULL, *answer = NULL;
	_cleanup_free_ char *until = NULL;
	uint64_t ttl = 0;
	int r;

	r = check_options(o, OPT_IMAGE | OPT_TTL, "token create");
	if (r != 0)
		return r;
	if (argc != 2 || !streq(argv[1], "create"))
		return usage("token create [--image NAME] [--ttl 24h]");
	if (o->ttl && parse_ttl(o->ttl, &ttl) < 0) {
		log_error("--ttl '%s' must be a duration like 3600, 90s, 30m, 24h or 7d, at most 30d.",
			  o->ttl);
		return CTL_EXIT_USAGE;
	}
	body = json_object();
	if (!body || (o->image && json_object_set_new(body, "image", json_string(o->image)) < 0) ||
	    (ttl > 0 && json_object_set_new(body, "ttl_seconds", json_integer((json_int_t)ttl)) < 0))
		return log_oom(), CTL_EXIT_ERROR;

	r = ctl_call(o, "POST", "/api/v1/tokens", body, &answer);
	if (r != 0)
		return r;
	if (o->json) {
		ctl_print_json(answer);
		return CTL_EXIT_OK;
	}
	until = ctl_format_time(json_object_get(answer, "expires_at"));
	/* The token alone on stdout, so that T=$(trustpcctl token create) works; the rest on stderr. */
	printf("%s\n", strna(str(answer, "token")));
	fflush(stdout);
	fprintf(
	    stderr,
	    "One-time enrollment token%s%s, valid until %s. Shown once: the server keeps only its hash.\n",
	    str(answer, "image") ? " for image " : "", str(answer, "image") ?: "", strna(until));
	return CTL_EXIT_OK;
}

/* ---- images ---- */

static int images_add(const CtlOptions *o, const char *name)
{
	_cleanup_json_ json_t *body = NULL, *answer = NULL;
	json_t *pcrs;

	if (o->n_pcrs == 0)
		return usage("images add NAME --pcr N=HEX [--pcr N=HEX ...]");
	pcrs = json_object();
	body = json_pack("{s:s, s:o}", "name", name, "pcrs", pcrs);
	if (!body)
		return log_oom(), CTL_EXIT_ERROR;
	for (size_t i = 0; i < o->n_pcrs; i++) {
		const char *eq = strchr(o->pcrs[i], '=');
		_cleanup_free_ char *idx = NULL;
		uint64_t n;

		idx = eq ? strndup(o->pcrs[i], (size_t)(eq - o->pcrs[i])) : NULL;
		if (!eq || !idx || parse_uint64(idx, 23, &n) < 0 || strlen(eq + 1) != 64 ||
		    strspn(eq + 1, "0123456789abcdefABCDEF") != 64) {
			log_error(
			    "--pcr '%s' must be N=HEX with N from 0 to 23 and 64 hex digits (SHA-256 bank).",
			    o->pcrs[i]);
			return CTL_EXIT_USAGE;
		}
		if (json_object_get(pcrs, idx)) {
			log_error("--pcr %s given twice.", idx);
			return CTL_EXIT_USAGE;
		}
		if (json_object_set_new(pcrs, idx, json_string(eq + 1)) < 0)
			return log_oom(), CTL_EXIT_ERROR;
	}

	int r = ctl_call(o, "POST", "/api/v1/images", body, &answer);
	if (r != 0)
		return r;
	if (o->json)
		ctl_print_json(answer);
	else
		printf("Image '%s' registered with %zu expected PCR value%s.\n", name, o->n_pcrs,
		       o->n_pcrs == 1 ? "" : "s");
	return CTL_EXIT_OK;
}

int verb_images(const CtlOptions *o, int argc, char **argv)
{
	static const char *const headers[] = {"IMAGE", "PCR", "SHA-256"};
	_cleanup_json_ json_t *list = NULL;
	_cleanup_table_ CtlTable *t = NULL;
	json_t *img, *v;
	size_t i;
	int r;

	if (argc >= 2 && streq(argv[1], "add")) {
		r = check_options(o, OPT_PCR, "images add");
		if (r != 0)
			return r;
		if (argc != 3)
			return usage("images add NAME --pcr N=HEX [--pcr N=HEX ...]");
		return images_add(o, argv[2]);
	}
	r = check_options(o, 0, "images");
	if (r != 0)
		return r;
	if (argc != 1)
		return usage("images [add NAME --pcr N=HEX ...]");
	r = ctl_call(o, "GET", "/api/v1/images", NULL, &list);
	if (r != 0)
		return r;
	if (o->json) {
		ctl_print_json(list);
		return CTL_EXIT_OK;
	}
	if (json_array_size(list) == 0) {
		printf("No images registered.\n");
		return CTL_EXIT_OK;
	}
	t = ctl_table_new(ELEMENTSOF(headers), headers);
	if (!t)
		return log_oom(), CTL_EXIT_ERROR;
	json_array_foreach (list, i, img) {
		bool first = true;
		/* PCRs in numeric order, not the object's key order. */
		for (unsigned p = 0; p < 24; p++) {
			char k[4];
			snprintf(k, sizeof(k), "%u", p);
			v = json_object_get(json_object_get(img, "pcrs"), k);
			if (!v)
				continue;
			const char *cells[] = {first ? str(img, "name") : "", k, json_string_value(v)};
			if (ctl_table_add(t, cells) < 0)
				return log_oom(), CTL_EXIT_ERROR;
			first = false;
		}
	}
	ctl_table_print(t);
	return CTL_EXIT_OK;
}

/* ---- audit ---- */

static int audit_verify(const CtlOptions *o)
{
	_cleanup_json_ json_t *v = NULL;
	bool ok;
	int r;

	r = ctl_call(o, "GET", "/api/v1/audit/verify", NULL, &v);
	if (r != 0)
		return r;
	ok = json_is_true(json_object_get(v, "ok"));
	if (o->json)
		ctl_print_json(v);
	else if (ok)
		printf("Audit chain intact: %" JSON_INTEGER_FORMAT
		       " entries. Head: seq %" JSON_INTEGER_FORMAT
		       ", hash %s\n(keep the head: a later rewrite of the whole chain shows only against "
		       "it).\n",
		       json_integer_value(json_object_get(v, "entries")),
		       json_integer_value(json_object_get(v, "last_seq")), strna(str(v, "last_hash")));
	if (!ok)
		log_error("Audit chain BROKEN at seq %" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT
			  " entries): a row was edited or deleted there.",
			  json_integer_value(json_object_get(v, "first_bad_seq")),
			  json_integer_value(json_object_get(v, "entries")));
	return ok ? CTL_EXIT_OK : CTL_EXIT_AUDIT_BROKEN;
}

int verb_audit(const CtlOptions *o, int argc, char **argv)
{
	static const char *const headers[] = {"SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "DETAILS"};
	_cleanup_json_ json_t *all = NULL;
	_cleanup_table_ CtlTable *t = NULL;
	uint64_t after = 0;
	json_t *e;
	size_t i;
	int r;

	if (argc == 2 && streq(argv[1], "verify")) {
		r = check_options(o, 0, "audit verify");
		return r != 0 ? r : audit_verify(o);
	}
	r = check_options(o, OPT_AFTER, "audit");
	if (r != 0)
		return r;
	if (argc != 1)
		return usage("audit [--after N] | audit verify");
	if (o->after && parse_uint64(o->after, INT64_MAX, &after) < 0) {
		log_error("--after '%s' must be a sequence number.", o->after);
		return CTL_EXIT_USAGE;
	}

	/* Page through the log; the JSON printed is the concatenation, in the API's format. */
	all = json_array();
	if (!all)
		return log_oom(), CTL_EXIT_ERROR;
	for (;;) {
		_cleanup_json_ json_t *page = NULL;
		char target[96];
		size_t n;

		snprintf(target, sizeof(target), "/api/v1/audit?after=%llu&limit=%d",
			 (unsigned long long)after, AUDIT_PAGE);
		r = ctl_call(o, "GET", target, NULL, &page);
		if (r != 0)
			return r;
		n = json_array_size(page);
		if (n > 0)
			after = (uint64_t)json_integer_value(
			    json_object_get(json_array_get(page, n - 1), "seq"));
		if (json_array_extend(all, page) < 0)
			return log_oom(), CTL_EXIT_ERROR;
		if (n < AUDIT_PAGE)
			break;
	}
	if (o->json) {
		ctl_print_json(all);
		return CTL_EXIT_OK;
	}
	t = ctl_table_new(ELEMENTSOF(headers), headers);
	if (!t)
		return log_oom(), CTL_EXIT_ERROR;
	json_array_foreach (all, i, e) {
		_cleanup_free_ char *when = ctl_format_time(json_object_get(e, "time"));
		_cleanup_free_ char *details = compact(json_object_get(e, "details"));
		char seq[24];

		snprintf(seq, sizeof(seq), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(e, "seq")));
		const char *cells[] = {seq,    when, str(e, "actor"), str(e, "action"), str(e, "subject"),
				       details};
		if (ctl_table_add(t, cells) < 0)
			return log_oom(), CTL_EXIT_ERROR;
	}
	ctl_table_print(t);
	return CTL_EXIT_OK;
}
