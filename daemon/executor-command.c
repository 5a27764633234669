/* SPDX-License-Identifier: Apache-2.0 */
/* EXECUTE: the executor verifies a signed command on its own and carries it out crash-safely
 * (executor-command.h). Nothing here trusts the network process: the command key, the device id,
 * last_seq and the lock counter all come from the executor's own state dir and TPM. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "agent-state.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "disk-unseal.h"
#include "executor-command.h"
#include "executor-enforce.h"
#include "luks/luks.h"
#include "proto/command.h"
#include "proto/cose.h"
#include "tpm2/tpm2-policy-file.h"

_Static_assert(PRIVSEP_COSE_MAX == COSE_MAX_SIZE, "EXECUTE must carry any COSE the verifier accepts");
_Static_assert(sizeof(((PrivsepExecuteReply *)0)->id) == COMMAND_ID_SIZE * 2 + 1, "command id size");

void (*executor_crash_hook)(const char *point) = NULL;

static void crash_point(const char *point)
{
	if (executor_crash_hook)
		executor_crash_hook(point);
}

static void json_unref(json_t **j)
{
	if (*j)
		json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_unref)

static int copy_text(char *dst, size_t size, const char *src)
{
	if (!src || strlen(src) >= size)
		return -EBADMSG;
	strcpy(dst, src);
	return 0;
}

/* Copies a (valid UTF-8) reason, cut at a character boundary when it does not fit: the state file
 * must stay valid JSON text for pam_trustpc, which refuses anything else. */
static void copy_reason_utf8(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = 0;
}

static bool command_id_valid(const char *s)
{
	if (strlen(s) != COMMAND_ID_SIZE * 2)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

static int load_json(const char *dir, const char *name, json_t **ret)
{
	_cleanup_free_ char *text = NULL;
	size_t n;
	json_t *o;
	int r;

	r = state_read(dir, name, false, &text, &n);
	if (r < 0)
		return r;
	o = json_loadb(text, n, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return log_warning_errno(EBADMSG, "%s/%s is not a JSON object.", dir, name);
	}
	*ret = o;
	return 0;
}

static int save_json(const char *dir, const char *name, json_t *o)
{
	_cleanup_free_ char *text = NULL;

	if (!o)
		return -ENOMEM;
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return -ENOMEM;
	return state_write(dir, name, text, strlen(text));
}

static int get_u64(json_t *o, const char *key, uint64_t *ret)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EBADMSG;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

int exec_state_load(const char *dir, ExecState *ret)
{
	_cleanup_json_ json_t *o = NULL;
	ExecState s = {0};
	uint64_t t = 0, st = 0;
	int r;

	r = load_json(dir, STATE_COMMANDS, &o);
	if (r == -ENOENT) {
		*ret = s;
		return 0;
	}
	if (r < 0)
		return r;
	if (get_u64(o, "last_seq", &s.last_seq) < 0 || get_u64(o, "last_type", &t) < 0 ||
	    get_u64(o, "last_status", &st) < 0 || t > COMMAND_POLICY || st > RESULT_FAILED ||
	    copy_text(s.last_id, sizeof(s.last_id), json_string_value(json_object_get(o, "last_id"))) < 0 ||
	    copy_text(s.last_reason, sizeof(s.last_reason),
		      json_string_value(json_object_get(o, "last_reason"))) < 0 ||
	    !json_is_boolean(json_object_get(o, "locked")) || (s.last_id[0] && !command_id_valid(s.last_id)))
		return log_warning_errno(EBADMSG, "%s/%s is not a command state file.", dir, STATE_COMMANDS);
	s.last_type = (uint32_t)t;
	s.last_status = (uint32_t)st;
	s.locked = json_is_true(json_object_get(o, "locked"));
	s.has_epoch = get_u64(o, "epoch", &s.epoch) >= 0;
	/* optional (older state files have none); a bad one is dropped, not fatal */
	if (copy_text(s.lock_reason, sizeof(s.lock_reason), json_string_value(json_object_get(o, "lock_reason"))) < 0)
		s.lock_reason[0] = 0;
	*ret = s;
	return 0;
}

int exec_state_save(const char *dir, const ExecState *s)
{
	_cleanup_json_ json_t *o =
	    json_pack("{s:I, s:s, s:I, s:I, s:s, s:b}", "last_seq", (json_int_t)s->last_seq, "last_id",
		      s->last_id, "last_type", (json_int_t)s->last_type, "last_status",
		      (json_int_t)s->last_status, "last_reason", s->last_reason, "locked", s->locked);

	if (o && s->has_epoch && json_object_set_new(o, "epoch", json_integer((json_int_t)s->epoch)) < 0)
		return -ENOMEM;
	if (o && s->locked && s->lock_reason[0] &&
	    json_object_set_new(o, "lock_reason", json_string(s->lock_reason)) < 0)
		return -ENOMEM;
	return save_json(dir, STATE_COMMANDS, o);
}

int exec_intent_load(const char *dir, ExecIntent *ret)
{
	_cleanup_json_ json_t *o = NULL;
	ExecIntent i = {0};
	uint64_t t = 0;
	int r;

	r = load_json(dir, STATE_INTENT, &o);
	if (r < 0)
		return r;
	if (get_u64(o, "seq", &i.seq) < 0 || get_u64(o, "type", &t) < 0 || t == 0 || t > COMMAND_POLICY ||
	    copy_text(i.id, sizeof(i.id), json_string_value(json_object_get(o, "id"))) < 0 ||
	    !command_id_valid(i.id))
		return log_warning_errno(EBADMSG, "%s/%s is not a command intent record.", dir,
					 STATE_INTENT);
	i.type = (uint32_t)t;
	i.has_epoch_before = get_u64(o, "epoch_before", &i.epoch_before) >= 0;
	*ret = i;
	return 0;
}

int exec_intent_save(const char *dir, const ExecIntent *i)
{
	_cleanup_json_ json_t *o = json_pack("{s:s, s:I, s:I}", "id", i->id, "seq", (json_int_t)i->seq,
					     "type", (json_int_t)i->type);

	if (o && i->has_epoch_before &&
	    json_object_set_new(o, "epoch_before", json_integer((json_int_t)i->epoch_before)) < 0)
		return -ENOMEM;
	return save_json(dir, STATE_INTENT, o);
}

int exec_intent_remove(const char *dir)
{
	_cleanup_free_ char *p = NULL;
	int r;

	r = state_path(dir, STATE_INTENT, &p);
	if (r < 0)
		return r;
	if (unlink(p) < 0)
		return errno == ENOENT ? 0 : -errno;
	return fsync_parent_dir(p);
}

bool exec_lock_needs_increment(const ExecIntent *intent, uint64_t counter_now)
{
	/* No record of the counter before this command: it cannot have been incremented by it (the
	 * record is written before the increment). */
	if (!intent || !intent->has_epoch_before)
		return true;
	return counter_now == intent->epoch_before;
}

/* ---- the actions ---- */

typedef struct Outcome {
	ResultStatus status;
	char reason[PRIVSEP_REASON_MAX];
	bool has_epoch;
	uint64_t epoch;
} Outcome;

static void outcome_set(Outcome *o, ResultStatus status, const char *fmt, ...) _printf_(3, 4);
static void outcome_set(Outcome *o, ResultStatus status, const char *fmt, ...)
{
	va_list ap;

	o->status = status;
	va_start(ap, fmt);
	(void)vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
	va_end(ap);
}

/* Best effort: the disk lock is the counter; locking the screens only makes it visible now. */
static void lock_sessions(const Executor *e)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	sd_bus_error err = SD_BUS_ERROR_NULL;
	int r;

	if (!e->lock_sessions)
		return;
	r = sd_bus_open_system(&bus);
	if (r < 0) {
		log_info("No system bus (%s): screens not locked, the disk lock stands.", strerror(-r));
		return;
	}
	r = sd_bus_call_method(bus, "org.freedesktop.login1", "/org/freedesktop/login1",
			       "org.freedesktop.login1.Manager", "LockSessions", &err, NULL, "");
	if (r < 0)
		log_info("logind LockSessions failed (%s): screens not locked, the disk lock stands.",
			 err.message ?: strerror(-r));
	else
		log_info("Asked logind to lock all sessions.");
	sd_bus_error_free(&err);
}

static int do_lock(Executor *e, const Command *c, const ExecIntent *intent, Outcome *o)
{
	uint64_t counter;
	int r;

	if (!e->tpm) {
		outcome_set(o, RESULT_FAILED, "no TPM reachable");
		return 0;
	}
	r = tpm2_counter_read(e->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &counter);
	if (r < 0) {
		outcome_set(o, RESULT_FAILED, "cannot read the lock counter: %s", strerror(-r));
		return 0;
	}
	if (exec_lock_needs_increment(intent, counter)) {
		r = tpm2_counter_increment(e->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &counter);
		if (r < 0) {
			outcome_set(o, RESULT_FAILED, "TPM2_NV_Increment failed: %s", strerror(-r));
			return 0;
		}
		crash_point("counter-incremented");
		log_notice("Remote lock %s by %s (%s): the lock counter is now at epoch %llu.", c->id,
			   strna(c->issuer), strna(c->args.lock.reason), (unsigned long long)counter);
	} else
		log_notice("Remote lock %s: the counter already moved to %llu before a restart; not "
			   "incrementing again.",
			   c->id, (unsigned long long)counter);
	o->has_epoch = true;
	o->epoch = counter;
	outcome_set(o, RESULT_DONE, "locked at epoch %llu", (unsigned long long)counter);
	lock_sessions(e);
	return 0;
}

static int store_policy_in_volume(const char *path, const SignedPolicy *p)
{
	_cleanup_(disk_volume_closep) LuksVolume *v = NULL;
	_cleanup_(disk_token_done) DiskToken t = {};
	char reason[REASON_MAX];
	int r, id;

	r = luks_open(path, &v);
	if (r < 0)
		return r;
	r = disk_token_load(v, &id, &t, reason, sizeof(reason));
	if (r == -ENOENT)
		return 0; /* not a trustpc-tpm2 volume (a passphrase-only class volume) */
	if (r < 0) {
		log_warning("%s: %s.", path, reason);
		return r;
	}
	if (!streq(t.device_id, p->device_id))
		return -EXDEV;
	t.policy = *p;
	t.has_policy = true;
	r = disk_token_store(v, id, &t);
	return r < 0 ? r : 1;
}

static int do_unlock(Executor *e, const Command *c, Outcome *o)
{
	_cleanup_free_ char *key_pem = NULL, *text = NULL;
	_cleanup_ec_key_ EcKey *key = NULL;
	const char *why = NULL, *policy = c->args.unlock.policy;
	SignedPolicy p;
	uint64_t counter;
	unsigned stored = 0, failed = 0;
	size_t kn;
	int r;

	r = signed_policy_parse(policy, strlen(policy), &p, &why);
	if (r < 0) {
		outcome_set(o, RESULT_FAILED, "the carried policy is malformed: %s", strna(why));
		return 0;
	}
	r = state_read(e->state_dir, STATE_POLICY_KEY, false, &key_pem, &kn);
	if (r >= 0)
		r = ec_key_from_pem_or_der(key_pem, kn, &key);
	if (r < 0) {
		outcome_set(o, RESULT_FAILED, "no usable fleet policy key in the state dir: %s",
			    strerror(-r));
		return 0;
	}
	r = signed_policy_verify(&p, key, &why);
	if (r < 0) {
		outcome_set(o, RESULT_FAILED,
			    "the carried policy does not verify with the fleet policy key: %s", strna(why));
		return 0;
	}
	if (!streq(p.device_id, e->device_id)) {
		outcome_set(o, RESULT_FAILED, "the carried policy is for device %s", p.device_id);
		return 0;
	}
	r = e->tpm ? tpm2_counter_read(e->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &counter) : -ENODEV;
	if (r < 0) {
		outcome_set(o, RESULT_FAILED, "cannot read the lock counter: %s", strerror(-r));
		return 0;
	}
	/* A policy for an older epoch would not open the disk; one for a future epoch would open it
	 * after the next lock: only the current epoch is an unlock. */
	if (p.params.epoch != counter) {
		outcome_set(o, RESULT_FAILED,
			    "the carried policy is for epoch %llu, the lock counter is at %llu",
			    (unsigned long long)p.params.epoch, (unsigned long long)counter);
		return 0;
	}
	r = signed_policy_format(&p, &text);
	if (r >= 0)
		r = state_write(e->state_dir, STATE_POLICY, text, strlen(text));
	if (r < 0) {
		outcome_set(o, RESULT_FAILED, "cannot store policy.json: %s", strerror(-r));
		return 0;
	}
	e->has_policy = true;
	e->policy_epoch = p.params.epoch;
	for (size_t i = 0; i < e->n_volumes; i++) {
		r = store_policy_in_volume(e->volumes[i].path, &p);
		if (r < 0) {
			log_warning_errno(r, "Cannot store the new policy in the token of %s: %m",
					  e->volumes[i].path);
			failed++;
		} else
			stored += r;
	}
	o->has_epoch = true;
	o->epoch = counter;
	if (failed > 0)
		outcome_set(o, RESULT_FAILED,
			    "policy for epoch %llu stored, but %u volume token(s) could not be updated",
			    (unsigned long long)counter, failed);
	else
		outcome_set(o, RESULT_DONE, "unlocked at epoch %llu (%u volume token(s) updated)",
			    (unsigned long long)counter, stored);
	log_notice("Remote unlock %s: %s.", c->id, o->reason);
	return 0;
}

static int do_wipe(Executor *e, const Command *c, Outcome *o)
{
	const char *cls = c->args.wipe.class_name;
	bool all = streq(cls, "all");
	char list[PRIVSEP_REASON_MAX] = "";
	unsigned erased = 0, failed = 0, matched = 0;
	size_t used = 0;
	int r;

	for (size_t i = 0; i < e->n_volumes; i++) {
		const AgentVolume *v = &e->volumes[i];
		_cleanup_(disk_volume_closep) LuksVolume *lv = NULL;

		if (!v->class_name || (!all && !streq(v->class_name, cls)))
			continue;
		matched++;
		r = luks_open(v->path, &lv);
		if (r >= 0)
			r = luks_erase(lv);
		if (r < 0) {
			log_error_errno(r, "Wiping %s (class %s) failed: %m", v->path, v->class_name);
			failed++;
			continue;
		}
		erased++;
		log_notice("Remote wipe %s: crypto-erased %s (class %s).", c->id, v->path, v->class_name);
		if (used < sizeof(list) - 1) {
			int k = snprintf(list + used, sizeof(list) - used, "%s%s", used ? " " : "", v->path);
			used = k < 0 ? used : MIN(sizeof(list) - 1, used + (size_t)k);
		}
	}
	if (matched == 0)
		outcome_set(o, RESULT_FAILED, "no volume of class '%s' is configured", cls);
	else if (failed > 0)
		outcome_set(o, RESULT_FAILED, "erased %u of %u volume(s) of class '%s': %s", erased, matched,
			    cls, list);
	else
		outcome_set(o, RESULT_DONE, "erased %u volume(s) of class '%s': %s", erased, cls, list);
	return 0;
}

int exec_device_policy_load(const char *dir, DevicePolicy *ret)
{
	_cleanup_free_ char *text = NULL;
	const char *why = NULL;
	size_t n;
	int r;

	r = state_read(dir, STATE_DEVICE_POLICY, false, &text, &n);
	if (r < 0)
		return r;
	r = device_policy_parse_json(text, n, ret, &why);
	if (r < 0)
		return log_warning_errno(r, "%s/%s is not a device policy (%s).", dir, STATE_DEVICE_POLICY,
					 strna(why));
	return 0;
}

bool exec_policy_version_newer(uint64_t applied, uint64_t offered)
{
	return offered > applied;
}

static int do_policy(Executor *e, const Command *c, Outcome *o)
{
	_cleanup_free_ char *json = NULL;
	const DevicePolicy *p = &c->args.policy;
	DevicePolicy cur = {0};
	int r;

	r = exec_device_policy_load(e->state_dir, &cur);
	if (r == -ENOENT)
		cur = (DevicePolicy){0};
	else if (r < 0) {
		/* Without the applied version the rollback rule cannot be checked: refuse rather than
		 * overwrite blindly. */
		outcome_set(o, RESULT_FAILED, "the applied device policy is unreadable: %s", strerror(-r));
		return 0;
	}
	if (!exec_policy_version_newer(cur.version, p->version)) {
		outcome_set(o, RESULT_REJECTED,
			    "policy version %llu is not newer than the applied version %llu",
			    (unsigned long long)p->version, (unsigned long long)cur.version);
		log_warning("Refused device policy %s: %s. Nothing was changed.", c->id, o->reason);
		return 0;
	}
	r = device_policy_format_json(p, &json);
	if (r >= 0)
		r = state_write(e->state_dir, STATE_DEVICE_POLICY, json, strlen(json));
	if (r < 0) {
		outcome_set(o, RESULT_FAILED, "cannot store the device policy: %s", strerror(-r));
		return 0;
	}
	/* The policy came from the server over an attested connection: a check-in, from which a new
	 * lease runs (an older record must not count against it). */
	if (p->offline_lease > 0) {
		_cleanup_json_ json_t *ck = json_pack("{s:I}", "last_checkin", (json_int_t)time(NULL));
		if (save_json(e->state_dir, STATE_CHECKIN, ck) < 0)
			log_warning("Cannot record the check-in in %s.", STATE_CHECKIN);
	}
	if (e->enforce) {
		char summary[160];

		r = exec_enforce_policy(p, summary, sizeof(summary));
		if (r < 0) {
			outcome_set(o, RESULT_FAILED,
				    "device policy version %llu stored, but not enforced in full (%s): %s",
				    (unsigned long long)p->version, summary, strerror(-r));
			return 0;
		}
		outcome_set(o, RESULT_DONE, "device policy version %llu applied: %s",
			    (unsigned long long)p->version, summary);
	} else
		outcome_set(o, RESULT_DONE, "device policy version %llu applied", (unsigned long long)p->version);
	log_notice("Device policy %s by %s: version %llu applied (heartbeat %u s, offline lease %llu s, "
		   "USB storage %s, screen lock %u s).",
		   c->id, strna(c->issuer), (unsigned long long)p->version, p->heartbeat,
		   (unsigned long long)p->offline_lease, p->usb_storage ? "allowed" : "blocked",
		   p->screen_lock);
	return 0;
}

/* ---- the request ---- */

static int reply(Executor *e, const PrivsepExecuteReply *rep)
{
	return privsep_send_reply(e->fd, PRIVSEP_EXECUTE, 0, rep, sizeof(*rep));
}

static void reply_fill(PrivsepExecuteReply *rep, const char *id, uint64_t seq, uint32_t type,
		       ResultStatus status, const char *reason)
{
	*rep = (PrivsepExecuteReply){.seq = seq, .type = type, .status = status};
	if (id && command_id_valid(id))
		strcpy(rep->id, id);
	snprintf(rep->reason, sizeof(rep->reason), "%s", reason ?: "");
}

static int reject(Executor *e, const Command *c, bool parsed, const char *reason, const ExecState *s)
{
	PrivsepExecuteReply rep;

	reply_fill(&rep, parsed ? c->id : NULL, parsed ? c->seq : 0, parsed ? c->type : 0, RESULT_REJECTED,
		   reason);
	rep.locked = s->locked;
	rep.has_epoch = s->has_epoch;
	rep.epoch = s->epoch;
	log_warning("Rejected a remote command%s%s: %s. Nothing was done.", parsed ? " " : "",
		    parsed ? c->id : "", reason);
	return reply(e, &rep);
}

int executor_execute(Executor *e, const uint8_t *cose, size_t n)
{
	_cleanup_free_ char *key_pem = NULL;
	_cleanup_ec_key_ EcKey *key = NULL;
	_cleanup_(command_done) Command c = {0};
	ExecState s;
	ExecIntent intent, *have_intent = NULL;
	PrivsepExecuteReply rep;
	const char *why = NULL;
	Outcome o = {0};
	size_t kn;
	int r;

	r = exec_state_load(e->state_dir, &s);
	if (r < 0) {
		/* Without last_seq any old command could be replayed: refuse everything. */
		s = (ExecState){0};
		return reject(e, &c, false, "the device's command state is unreadable", &s);
	}
	if (!e->enrolled)
		return reject(e, &c, false, "the device is not enrolled", &s);
	r = state_read(e->state_dir, STATE_COMMAND_KEY, false, &key_pem, &kn);
	if (r >= 0)
		r = ec_key_from_pem_or_der(key_pem, kn, &key);
	if (r < 0)
		return reject(e, &c, false, "no fleet command key on the device", &s);

	r = command_verify(key, e->device_id, s.last_seq, (uint64_t)time(NULL), cose, n, &c, &why);
	if (r == -ESTALE && c.seq == s.last_seq && s.last_id[0] && streq(c.id, s.last_id)) {
		/* A redelivery of the command we executed last (the result was lost on the way): the
		 * stored result, nothing done again. */
		reply_fill(&rep, s.last_id, s.last_seq, s.last_type, s.last_status, s.last_reason);
		rep.has_epoch = s.has_epoch;
		rep.epoch = s.epoch;
		rep.locked = s.locked;
		rep.redelivered = 1;
		if (s.last_type == COMMAND_LOCK && s.last_status == RESULT_DONE && s.locked &&
		    c.args.lock.poweroff)
			rep.poweroff = e->poweroff_armed = true;
		/* A crash between the state write and the intent's removal left the intent behind. */
		if (exec_intent_load(e->state_dir, &intent) >= 0 && streq(intent.id, c.id))
			(void)exec_intent_remove(e->state_dir);
		log_info("Command %s (seq %llu) was executed already; answering with its stored result.",
			 c.id, (unsigned long long)c.seq);
		return reply(e, &rep);
	}
	if (r < 0)
		return reject(e, &c, r == -ESTALE, why ?: "invalid command", &s);

	/* An intent for this very command survived a crash: finish it, keeping the counter value it
	 * recorded before acting (the lock's idempotency depends on it). Any other intent is of a
	 * command that will never be completed (the server moved on): superseded. */
	r = exec_intent_load(e->state_dir, &intent);
	if (r >= 0 && streq(intent.id, c.id) && intent.seq == c.seq && intent.type == c.type) {
		have_intent = &intent;
		log_notice("Resuming command %s (seq %llu) interrupted before it was recorded.", c.id,
			   (unsigned long long)c.seq);
	} else {
		intent = (ExecIntent){.seq = c.seq, .type = c.type};
		strcpy(intent.id, c.id);
		if (e->tpm &&
		    tpm2_counter_read(e->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &intent.epoch_before) >= 0)
			intent.has_epoch_before = true;
		r = exec_intent_save(e->state_dir, &intent);
		if (r < 0) {
			log_error_errno(r, "Cannot write the intent record of command %s: %m", c.id);
			reply_fill(&rep, c.id, c.seq, c.type, RESULT_FAILED,
				   "cannot record the command before acting");
			return reply(e, &rep);
		}
		have_intent = &intent;
	}
	crash_point("intent-written");

	switch (c.type) {
	case COMMAND_LOCK:
		r = do_lock(e, &c, have_intent, &o);
		break;
	case COMMAND_UNLOCK:
		r = do_unlock(e, &c, &o);
		break;
	case COMMAND_WIPE:
		r = do_wipe(e, &c, &o);
		break;
	case COMMAND_POLICY:
		r = do_policy(e, &c, &o);
		break;
	default:
		outcome_set(&o, RESULT_FAILED, "unsupported command type");
		r = 0;
	}
	if (r < 0)
		return r;

	s.last_seq = c.seq;
	strcpy(s.last_id, c.id);
	s.last_type = c.type;
	s.last_status = o.status;
	memcpy(s.last_reason, o.reason, sizeof(s.last_reason));
	if (o.status == RESULT_DONE && c.type == COMMAND_LOCK) {
		s.locked = true;
		copy_reason_utf8(s.lock_reason, sizeof(s.lock_reason), c.args.lock.reason ?: "");
	} else if (o.status == RESULT_DONE && c.type == COMMAND_UNLOCK) {
		s.locked = false;
		s.lock_reason[0] = 0;
	}
	if (o.has_epoch) {
		s.has_epoch = true;
		s.epoch = o.epoch;
	}
	r = exec_state_save(e->state_dir, &s);
	if (r < 0) {
		/* The intent stays: the redelivery completes the record without acting twice. */
		log_error_errno(r, "Cannot record the result of command %s: %m", c.id);
		reply_fill(&rep, c.id, c.seq, c.type, RESULT_FAILED,
			   "executed, but the result could not be recorded");
		return reply(e, &rep);
	}
	r = exec_intent_remove(e->state_dir);
	if (r < 0)
		log_warning_errno(r, "Cannot remove the intent record: %m");

	reply_fill(&rep, c.id, c.seq, c.type, o.status, o.reason);
	rep.has_epoch = s.has_epoch;
	rep.epoch = s.epoch;
	rep.locked = s.locked;
	if (c.type == COMMAND_LOCK && o.status == RESULT_DONE && c.args.lock.poweroff)
		rep.poweroff = e->poweroff_armed = true;
	return reply(e, &rep);
}

int executor_lease_lock(Executor *e)
{
	PrivsepExecuteReply rep;
	DevicePolicy p = {0};
	ExecState s;
	uint64_t counter;
	int r;

	r = exec_device_policy_load(e->state_dir, &p);
	if (r < 0 || p.offline_lease == 0) {
		log_warning("Refused a lease lock: no device policy with an offline lease is applied.");
		return privsep_send_reply(e->fd, PRIVSEP_LEASE_LOCK, -EPERM, NULL, 0);
	}
	r = exec_state_load(e->state_dir, &s);
	if (r < 0)
		return privsep_send_reply(e->fd, PRIVSEP_LEASE_LOCK, r, NULL, 0);
	if (s.locked) {
		/* Locked already (a remote lock, an earlier lease): one epoch per lock, not per timer. */
		reply_fill(&rep, NULL, 0, COMMAND_LOCK, RESULT_DONE, "already locked");
		rep.has_epoch = s.has_epoch;
		rep.epoch = s.epoch;
		rep.locked = true;
		return privsep_send_reply(e->fd, PRIVSEP_LEASE_LOCK, 0, &rep, sizeof(rep));
	}
	if (!e->tpm) {
		log_error("Offline lease expired, but no TPM is reachable: the device cannot lock itself.");
		return privsep_send_reply(e->fd, PRIVSEP_LEASE_LOCK, -ENODEV, NULL, 0);
	}
	/* Increment first, record second: a crash in between leaves the counter past the disk
	 * policy's epoch, which is locked all the same (STATUS, the next boot). */
	r = tpm2_counter_increment(e->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &counter);
	if (r < 0) {
		log_error_errno(r, "Offline lease expired, but TPM2_NV_Increment failed: %m");
		return privsep_send_reply(e->fd, PRIVSEP_LEASE_LOCK, r, NULL, 0);
	}
	s.locked = true;
	snprintf(s.lock_reason, sizeof(s.lock_reason), "offline lease expired");
	s.has_epoch = true;
	s.epoch = counter;
	r = exec_state_save(e->state_dir, &s);
	if (r < 0)
		log_error_errno(r,
				"Cannot record the lease lock in %s: %m (the counter moved: the disk stays "
				"locked).",
				STATE_COMMANDS);
	log_notice("Offline lease of %llu s expired without a successful check-in: locked at epoch %llu.",
		   (unsigned long long)p.offline_lease, (unsigned long long)counter);
	lock_sessions(e);
	reply_fill(&rep, NULL, 0, COMMAND_LOCK, RESULT_DONE, "offline lease expired");
	rep.has_epoch = true;
	rep.epoch = counter;
	rep.locked = true;
	return privsep_send_reply(e->fd, PRIVSEP_LEASE_LOCK, 0, &rep, sizeof(rep));
}

int exec_checkin_load(const char *dir, uint64_t *ret)
{
	_cleanup_json_ json_t *o = NULL;
	uint64_t t;
	int r;

	r = load_json(dir, STATE_CHECKIN, &o);
	if (r < 0)
		return r;
	if (get_u64(o, "last_checkin", &t) < 0)
		return log_warning_errno(EBADMSG, "%s/%s is not a check-in record.", dir, STATE_CHECKIN);
	*ret = t;
	return 0;
}

int executor_poweroff(Executor *e)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	sd_bus_error err = SD_BUS_ERROR_NULL;
	int r;

	if (!e->poweroff_armed) {
		log_warning("The network process asked for a power-off without a lock --poweroff: refused.");
		return privsep_send_reply(e->fd, PRIVSEP_POWEROFF, -EPERM, NULL, 0);
	}
	r = sd_bus_open_system(&bus);
	if (r >= 0)
		r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
				       "org.freedesktop.systemd1.Manager", "StartUnit", &err, NULL, "ss",
				       "poweroff.target", "replace-irreversibly");
	if (r < 0)
		log_error("Cannot power off after the lock (%s): the lock stands, but the disk key stays in "
			  "memory until the machine is shut down.",
			  err.message ?: strerror(-r));
	else
		log_notice("Powering off after the remote lock: the disk keys leave memory at shutdown.");
	sd_bus_error_free(&err);
	return privsep_send_reply(e->fd, PRIVSEP_POWEROFF, r < 0 ? r : 0, NULL, 0);
}

int executor_checkin(Executor *e)
{
	DevicePolicy p = {0};
	int r = 0;

	if (exec_device_policy_load(e->state_dir, &p) >= 0 && p.offline_lease > 0) {
		_cleanup_json_ json_t *o = json_pack("{s:I}", "last_checkin", (json_int_t)time(NULL));
		r = save_json(e->state_dir, STATE_CHECKIN, o);
		if (r < 0)
			log_warning_errno(r, "Cannot record the check-in in %s: %m", STATE_CHECKIN);
	}
	return privsep_send_reply(e->fd, PRIVSEP_CHECKIN, r < 0 ? r : 0, NULL, 0);
}
