/* SPDX-License-Identifier: Apache-2.0 */
/* The store: signed commands and their life cycle (store.h "commands", docs/PROTOCOL.md
 * "Commands"). Every transition is one transaction with its audit row, committed before the
 * caller tells anyone (the operator's 202, the device's ack). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "store-sqlite.h"

#define COMMAND_COLUMNS                                                                                     \
	"id, device_id, seq, type, args, issuer, cose, state, reason, created_at, delivered_at, "           \
	"finished_at, result_cose, epoch"
#define COMMAND_LIST_MAX 10000

static const char *const state_names[] = {
    [COMMAND_STATE_QUEUED] = "queued", [COMMAND_STATE_DELIVERED] = "delivered",
    [COMMAND_STATE_DONE] = "done",     [COMMAND_STATE_REJECTED] = "rejected",
    [COMMAND_STATE_FAILED] = "failed",
};

const char *command_state_name(CommandState s)
{
	return s >= COMMAND_STATE_QUEUED && s <= COMMAND_STATE_FAILED ? state_names[s] : NULL;
}

int command_state_from_name(const char *s, CommandState *ret)
{
	for (CommandState c = COMMAND_STATE_QUEUED; c <= COMMAND_STATE_FAILED; c++)
		if (s && streq(s, state_names[c])) {
			*ret = c;
			return 0;
		}
	return -EINVAL;
}

void command_record_done(CommandRecord *c)
{
	if (!c)
		return;
	free(c->type);
	free(c->args_json);
	free(c->issuer);
	free(c->cose);
	free(c->reason);
	free(c->result_cose);
	*c = (CommandRecord){};
}

void command_records_free(CommandRecord *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		command_record_done(&a[i]);
	free(a);
}

static bool command_id_valid(const char *id)
{
	/* Same alphabet and length as a device id. */
	return store_device_id_valid(id);
}

static int command_from_row(sqlite3_stmt *st, CommandRecord *ret)
{
	_cleanup_(command_record_done) CommandRecord c = {};
	const unsigned char *id = sqlite3_column_text(st, 0), *dev = sqlite3_column_text(st, 1);
	int r;

	if (!id || !dev || strlen((const char *)id) != 32 || strlen((const char *)dev) != 32)
		return -EIO;
	memcpy(c.id, id, 33);
	memcpy(c.device_id, dev, 33);
	c.seq = (uint64_t)sqlite3_column_int64(st, 2);
	if ((r = store_column_strdup(st, 3, &c.type)) < 0 ||
	    (r = store_column_strdup(st, 4, &c.args_json)) < 0 ||
	    (r = store_column_strdup(st, 5, &c.issuer)) < 0 ||
	    (r = store_column_blobdup(st, 6, &c.cose, &c.cose_size)) < 0 ||
	    (r = store_column_strdup(st, 8, &c.reason)) < 0 ||
	    (r = store_column_blobdup(st, 12, &c.result_cose, &c.result_cose_size)) < 0)
		return r;
	if (command_state_from_name((const char *)sqlite3_column_text(st, 7), &c.state) < 0)
		return -EIO; /* the CHECK constraint makes this a damaged database */
	c.created_at = (time_t)sqlite3_column_int64(st, 9);
	c.delivered_at = (time_t)sqlite3_column_int64(st, 10); /* NULL reads as 0 */
	c.finished_at = (time_t)sqlite3_column_int64(st, 11);
	c.has_epoch = sqlite3_column_type(st, 13) != SQLITE_NULL;
	c.epoch = (uint64_t)sqlite3_column_int64(st, 13);

	*ret = c;
	c = (CommandRecord){};
	return 0;
}

/* Steps st to the end, collecting rows. */
static int commands_from_rows(Store *s, sqlite3_stmt *st, CommandRecord **ret, size_t *ret_n)
{
	CommandRecord *a = NULL;
	size_t n = 0;
	int r, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		CommandRecord *b = reallocarray(a, n + 1, sizeof(*a));
		if (!b) {
			command_records_free(a, n);
			return -ENOMEM;
		}
		a = b;
		r = command_from_row(st, &a[n]);
		if (r < 0) {
			command_records_free(a, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		command_records_free(a, n);
		return store_error(s, rc, "reading commands");
	}
	*ret = a;
	*ret_n = n;
	return 0;
}

/* The audit details: built with jansson so operator text (a lock reason) is escaped. */
static char *command_audit_details(const CommandRecord *c, const char *reason, bool has_epoch,
				   uint64_t epoch, bool quoted)
{
	json_t *o = json_pack("{s:s,s:I,s:s}", "id", c->id, "seq", (json_int_t)c->seq, "type", c->type);
	char *text;

	if (!o)
		return NULL;
	if (c->args_json) {
		json_t *args = json_loads(c->args_json, JSON_DECODE_ANY, NULL);
		json_object_set_new(o, "args", args ?: json_string(c->args_json));
	}
	if (reason)
		json_object_set_new(o, "reason", json_string(reason));
	if (has_epoch)
		json_object_set_new(o, "epoch", json_integer((json_int_t)epoch));
	if (quoted)
		json_object_set_new(o, "quote", json_true());
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return text;
}

int store_command_enqueue(Store *s, CommandRecord *c, StoreCommandSignFn sign_fn, void *userdata)
{
	static const char sql_seq[] = "UPDATE devices SET next_seq = next_seq + 1 WHERE device_id = ? "
				      "RETURNING next_seq - 1";
	static const char sql_insert[] =
	    "INSERT INTO commands(id, device_id, seq, type, args, issuer, "
	    "cose, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)";
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_stmt_ sqlite3_stmt *sts = NULL, *sti = NULL;
	_cleanup_free_ uint8_t *cose = NULL;
	_cleanup_free_ char *details = NULL;
	time_t now = store_now(s);
	size_t cose_size = 0;
	uint64_t seq;
	int r, rc;

	if (!c || !sign_fn || !command_id_valid(c->id) || !c->type || !*c->type || !c->issuer ||
	    !*c->issuer || !c->args_json)
		return -EINVAL;
	if (!store_device_id_valid(c->device_id))
		return -ENOENT;

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_query_one(s, sql_seq, c->device_id, "allocating a command sequence number", &sts);
	if (r < 0)
		return r;
	seq = (uint64_t)sqlite3_column_int64(sts, 0);
	/* RETURNING: the UPDATE is only complete once stepped to the end. */
	rc = sqlite3_step(sts);
	if (rc != SQLITE_DONE)
		return store_error(s, rc, "allocating a command sequence number");

	/* Signed under the write lock: no other command of this device can take this seq. */
	r = sign_fn(userdata, seq, now, &cose, &cose_size);
	if (r < 0)
		return r;
	if (!cose || cose_size == 0)
		return -EINVAL;

	r = store_prepare(s, sql_insert, &sti);
	if (r < 0)
		return r;
	if (store_bind_text(sti, 1, c->id) < 0 || store_bind_text(sti, 2, c->device_id) < 0 ||
	    sqlite3_bind_int64(sti, 3, (int64_t)seq) != SQLITE_OK || store_bind_text(sti, 4, c->type) < 0 ||
	    store_bind_text(sti, 5, c->args_json) < 0 || store_bind_text(sti, 6, c->issuer) < 0 ||
	    sqlite3_bind_blob64(sti, 7, cose, cose_size, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(sti, 8, (int64_t)now) != SQLITE_OK)
		return -ENOMEM;
	r = store_step_done(s, sti, "storing the command");
	if (r < 0)
		return r;

	c->seq = seq;
	details = command_audit_details(c, NULL, false, 0, false);
	if (!details)
		return -ENOMEM;
	r = store_audit_append_locked(s, c->issuer, "command.queue", c->device_id, details);
	if (r < 0)
		return r;
	r = store_txn_commit(&txn);
	if (r < 0)
		return r;

	free(c->cose);
	c->cose = TAKE_PTR(cose);
	c->cose_size = cose_size;
	c->state = COMMAND_STATE_QUEUED;
	c->created_at = now;
	return 0;
}

int store_command_get(Store *s, const char *id, CommandRecord *ret)
{
	static const char sql[] = "SELECT " COMMAND_COLUMNS " FROM commands WHERE id = ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!command_id_valid(id))
		return -ENOENT;
	r = store_query_one(s, sql, id, "reading the command", &st);
	if (r < 0)
		return r;
	return command_from_row(st, ret);
}

int store_command_pending(Store *s, const char *device_id, CommandRecord **ret, size_t *ret_n)
{
	static const char sql[] = "SELECT " COMMAND_COLUMNS " FROM commands WHERE device_id = ? AND "
				  "state IN ('queued', 'delivered') ORDER BY seq";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!store_device_id_valid(device_id))
		return -ENOENT;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	r = store_bind_text(st, 1, device_id);
	if (r < 0)
		return r;
	return commands_from_rows(s, st, ret, ret_n);
}

/* Whether the command exists (-ENOENT) after an UPDATE that changed nothing: then it is finished. */
static int command_exists_or_stale(Store *s, const char *id)
{
	static const char sql[] = "SELECT 1 FROM commands WHERE id = ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	r = store_bind_text(st, 1, id);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return -ESTALE;
	if (rc == SQLITE_DONE)
		return -ENOENT;
	return store_error(s, rc, "looking up the command");
}

int store_command_mark_delivered(Store *s, const char *id, time_t when)
{
	static const char sql[] = "UPDATE commands SET state = 'delivered', "
				  "delivered_at = coalesce(delivered_at, ?) "
				  "WHERE id = ? AND state IN ('queued', 'delivered')";
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!command_id_valid(id))
		return -ENOENT;
	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (sqlite3_bind_int64(st, 1, (int64_t)when) != SQLITE_OK || store_bind_text(st, 2, id) < 0)
		return -ENOMEM;
	r = store_step_done(s, st, "marking the command delivered");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) != 1)
		return command_exists_or_stale(s, id);
	return store_txn_commit(&txn);
}

int store_command_finish(Store *s, const char *id, const CommandOutcome *o, time_t when)
{
	static const char sql[] =
	    "UPDATE commands SET state = ?, reason = ?, finished_at = ?, result_cose = ?, epoch = ? "
	    "WHERE id = ? AND state IN ('queued', 'delivered')";
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_(command_record_done) CommandRecord c = {};
	_cleanup_free_ char *details = NULL, *actor = NULL, *action = NULL;
	int r, rc;

	if (!o || (o->state != COMMAND_STATE_DONE && o->state != COMMAND_STATE_REJECTED &&
		   o->state != COMMAND_STATE_FAILED))
		return -EINVAL;
	if (!command_id_valid(id))
		return -ENOENT;
	if (o->has_epoch && o->epoch > INT64_MAX)
		return -EINVAL;

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_command_get(s, id, &c);
	if (r < 0)
		return r;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	rc = o->has_epoch ? sqlite3_bind_int64(st, 5, (int64_t)o->epoch) : sqlite3_bind_null(st, 5);
	if (store_bind_text(st, 1, command_state_name(o->state)) < 0 ||
	    store_bind_text(st, 2, o->reason) < 0 || sqlite3_bind_int64(st, 3, (int64_t)when) != SQLITE_OK ||
	    (o->result_cose && o->result_cose_size > 0
		 ? sqlite3_bind_blob64(st, 4, o->result_cose, o->result_cose_size, SQLITE_TRANSIENT)
		 : sqlite3_bind_null(st, 4)) != SQLITE_OK ||
	    rc != SQLITE_OK || store_bind_text(st, 6, id) < 0)
		return -ENOMEM;
	r = store_step_done(s, st, "finishing the command");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) != 1)
		return -ESTALE; /* it exists (read above): finished before */

	details = command_audit_details(&c, o->reason, o->has_epoch, o->epoch, o->quoted);
	if (!details ||
	    (o->actor ? !(actor = strdup(o->actor)) : asprintf(&actor, "device:%s", c.device_id) < 0) ||
	    asprintf(&action, "command.%s", command_state_name(o->state)) < 0)
		return -ENOMEM;
	r = store_audit_append_locked(s, actor, action, c.device_id, details);
	if (r < 0)
		return r;
	return store_txn_commit(&txn);
}

int store_command_list(Store *s, const char *device_id, size_t limit, CommandRecord **ret, size_t *ret_n)
{
	static const char sql_all[] =
	    "SELECT " COMMAND_COLUMNS " FROM commands ORDER BY created_at DESC, rowid DESC LIMIT ?";
	static const char sql_dev[] =
	    "SELECT " COMMAND_COLUMNS " FROM commands WHERE device_id = ? ORDER BY seq DESC LIMIT ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (limit < 1 || limit > COMMAND_LIST_MAX)
		return -EINVAL;
	if (device_id && !store_device_id_valid(device_id))
		return -ENOENT;
	r = store_prepare(s, device_id ? sql_dev : sql_all, &st);
	if (r < 0)
		return r;
	if (device_id) {
		if (store_bind_text(st, 1, device_id) < 0 ||
		    sqlite3_bind_int64(st, 2, (int64_t)limit) != SQLITE_OK)
			return -ENOMEM;
	} else if (sqlite3_bind_int64(st, 1, (int64_t)limit) != SQLITE_OK)
		return -ENOMEM;
	return commands_from_rows(s, st, ret, ret_n);
}

int store_command_last_lock_epoch(Store *s, const char *device_id, uint64_t *ret)
{
	static const char sql[] = "SELECT epoch FROM commands WHERE device_id = ? AND type = 'lock' "
				  "AND epoch IS NOT NULL ORDER BY seq DESC LIMIT 1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!store_device_id_valid(device_id))
		return -ENOENT;
	r = store_query_one(s, sql, device_id, "reading the last lock epoch", &st);
	if (r < 0)
		return r;
	*ret = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}
