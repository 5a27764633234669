/* SPDX-License-Identifier: Apache-2.0 */
/* The store: the hash-chained audit log (docs/PROTOCOL.md "Audit log"; the byte layout is in
 * store.h above AuditEntry). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "store-sqlite.h"

#define AUDIT_LIST_MAX 10000U
#define AUDIT_NULL_LENGTH 0xffffffffU

void audit_entry_done(AuditEntry *e)
{
	if (!e)
		return;
	free(e->actor);
	free(e->action);
	free(e->subject);
	free(e->details);
	*e = (AuditEntry){};
}

static void put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

static void put_be32(uint8_t out[4], uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

/* Text fields carry their length so that moving bytes between fields ("ab"+"c" vs "a"+"bc")
 * changes the hash. */
static int audit_hash(const uint8_t prev[32], uint64_t seq, int64_t t, const char *const fields[4],
		      uint8_t out[32])
{
	uint8_t seq_be[8], time_be[8], len_be[4][4];
	const char *data[4];
	size_t len[4];

	put_be64(seq_be, seq);
	put_be64(time_be, (uint64_t)t);
	for (size_t i = 0; i < 4; i++) {
		size_t l = fields[i] ? strlen(fields[i]) : 0;
		if (l >= AUDIT_NULL_LENGTH)
			return -EINVAL;
		put_be32(len_be[i], fields[i] ? (uint32_t)l : AUDIT_NULL_LENGTH);
		data[i] = fields[i] ?: "";
		len[i] = l;
	}
	return sha256_many(out, prev, (size_t)32, seq_be, sizeof(seq_be), time_be, sizeof(time_be),
			   len_be[0], (size_t)4, data[0], len[0], len_be[1], (size_t)4, data[1], len[1],
			   len_be[2], (size_t)4, data[2], len[2], len_be[3], (size_t)4, data[3], len[3],
			   NULL);
}

int store_audit_head(Store *s, uint64_t *ret_seq, uint8_t ret_hash[32])
{
	static const char sql[] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_error(s, rc, "reading the audit head");
	if (sqlite3_column_bytes(st, 1) != 32)
		return -EBADMSG;
	if (ret_seq)
		*ret_seq = (uint64_t)sqlite3_column_int64(st, 0);
	if (ret_hash)
		memcpy(ret_hash, sqlite3_column_blob(st, 1), 32);
	return 0;
}

/* The highest seq ever handed out (AUTOINCREMENT keeps it in sqlite_sequence even when the row
 * is gone). */
static int audit_max_seq(Store *s, uint64_t *ret)
{
	static const char sql[] = "SELECT seq FROM sqlite_sequence WHERE name = 'audit'";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*ret = 0;
		return 0;
	}
	if (rc != SQLITE_ROW)
		return store_error(s, rc, "reading the audit sequence");
	*ret = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

int store_audit_append_locked(Store *s, const char *actor, const char *action, const char *subject,
			      const char *details)
{
	static const char sql[] = "INSERT INTO audit(seq, time, actor, action, subject, details, hash) "
				  "VALUES (?, ?, ?, ?, ?, ?, ?)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const char *fields[4] = {actor, action, subject, details};
	uint8_t prev[32] = {}, hash[32];
	uint64_t head_seq = 0, max_seq, seq;
	int64_t now = (int64_t)store_now(s);
	int r;

	if (!actor || !*actor || !action || !*action)
		return -EINVAL;

	/* The new row chains onto the newest row as stored: appending does not vouch for the rows
	 * before it (store_audit_verify does). */
	r = store_audit_head(s, &head_seq, prev);
	if (r < 0 && r != -ENOENT)
		return r;
	r = audit_max_seq(s, &max_seq);
	if (r < 0)
		return r;
	seq = MAX(head_seq, max_seq) + 1;

	r = audit_hash(prev, seq, now, fields, hash);
	if (r < 0)
		return r;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (sqlite3_bind_int64(st, 1, (int64_t)seq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, now) != SQLITE_OK || store_bind_text(st, 3, actor) < 0 ||
	    store_bind_text(st, 4, action) < 0 || store_bind_text(st, 5, subject) < 0 ||
	    store_bind_text(st, 6, details) < 0 ||
	    sqlite3_bind_blob(st, 7, hash, sizeof(hash), SQLITE_TRANSIENT) != SQLITE_OK)
		return -ENOMEM;
	return store_step_done(s, st, "appending to the audit log");
}

int store_audit_append(Store *s, const char *actor, const char *action, const char *subject,
		       const char *details)
{
	_cleanup_txn_ StoreTxn txn = {};
	int r;

	if (!actor || !*actor || !action || !*action)
		return -EINVAL;
	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_audit_append_locked(s, actor, action, subject, details);
	if (r < 0)
		return r;
	return store_txn_commit(&txn);
}

static int audit_from_row(sqlite3_stmt *st, AuditEntry *ret)
{
	_cleanup_(audit_entry_done) AuditEntry e = {};
	int r;

	e.seq = (uint64_t)sqlite3_column_int64(st, 0);
	e.time = (time_t)sqlite3_column_int64(st, 1);
	if ((r = store_column_strdup(st, 2, &e.actor)) < 0 ||
	    (r = store_column_strdup(st, 3, &e.action)) < 0 ||
	    (r = store_column_strdup(st, 4, &e.subject)) < 0 ||
	    (r = store_column_strdup(st, 5, &e.details)) < 0)
		return r;
	if (sqlite3_column_bytes(st, 6) == 32)
		memcpy(e.hash, sqlite3_column_blob(st, 6), 32);
	*ret = e;
	e = (AuditEntry){};
	return 0;
}

static int audit_rows(Store *s, sqlite3_stmt *st, AuditEntry **ret, size_t *ret_n)
{
	AuditEntry *a = NULL;
	size_t n = 0;
	int rc, r = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		AuditEntry *b = reallocarray(a, n + 1, sizeof(*a));
		if (!b) {
			r = -ENOMEM;
			break;
		}
		a = b;
		r = audit_from_row(st, &a[n]);
		if (r < 0)
			break;
		n++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = store_error(s, rc, "reading the audit log");
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			audit_entry_done(&a[i]);
		free(a);
		return r;
	}
	*ret = a;
	*ret_n = n;
	return 0;
}

int store_audit_list(Store *s, uint64_t after_seq, size_t limit, AuditEntry **ret, size_t *ret_n)
{
	static const char sql[] = "SELECT seq, time, actor, action, subject, details, hash FROM audit "
				  "WHERE seq > ? ORDER BY seq LIMIT ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (limit < 1 || limit > AUDIT_LIST_MAX || after_seq > INT64_MAX)
		return -EINVAL;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (sqlite3_bind_int64(st, 1, (int64_t)after_seq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (int64_t)limit) != SQLITE_OK)
		return -ENOMEM;
	return audit_rows(s, st, ret, ret_n);
}

int store_audit_list_subject(Store *s, const char *subject, size_t limit, AuditEntry **ret, size_t *ret_n)
{
	static const char sql[] = "SELECT seq, time, actor, action, subject, details, hash FROM audit "
				  "WHERE subject = ? ORDER BY seq DESC LIMIT ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!subject || limit < 1 || limit > AUDIT_LIST_MAX)
		return -EINVAL;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (store_bind_text(st, 1, subject) < 0 || sqlite3_bind_int64(st, 2, (int64_t)limit) != SQLITE_OK)
		return -ENOMEM;
	return audit_rows(s, st, ret, ret_n);
}

int store_audit_verify(Store *s, uint64_t *ret_entries, uint64_t *ret_first_bad)
{
	static const char sql[] =
	    "SELECT seq, time, actor, action, subject, details, hash FROM audit ORDER BY seq";
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	uint8_t prev[32] = {}; /* genesis */
	uint64_t expect_seq = 1, entries = 0, bad = 0, max_seq;
	int r, rc;

	/* One read snapshot for the rows and the sequence (a concurrent append must not look like
	 * a truncation); BEGIN IMMEDIATE also keeps appends out for the duration. */
	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *fields[4];
		uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
		uint8_t h[32];

		entries++;
		if (bad != 0)
			continue;
		for (int i = 0; i < 4; i++)
			fields[i] = (const char *)sqlite3_column_text(st, 2 + i);
		r = audit_hash(prev, seq, sqlite3_column_int64(st, 1), fields, h);
		if (r < 0)
			return r;
		/* A gap means a deleted row: the chain is broken at the row after it, even if the
		 * deleter also fixed up this row's hash. */
		if (seq != expect_seq || sqlite3_column_bytes(st, 6) != 32 ||
		    memcmp(h, sqlite3_column_blob(st, 6), 32) != 0) {
			bad = seq;
			continue;
		}
		memcpy(prev, h, 32);
		expect_seq = seq + 1;
	}
	if (rc != SQLITE_DONE)
		return store_error(s, rc, "verifying the audit log");

	/* Rows deleted at the end: the sequence remembers they existed. */
	r = audit_max_seq(s, &max_seq);
	if (r < 0)
		return r;
	if (bad == 0 && max_seq >= expect_seq)
		bad = expect_seq;

	store_txn_rollback(&txn);
	if (ret_entries)
		*ret_entries = entries;
	if (bad != 0) {
		if (ret_first_bad)
			*ret_first_bad = bad;
		return log_debug_errno(-EBADMSG, "Audit chain broken at seq %llu", (unsigned long long)bad);
	}
	return 0;
}
