/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Internals shared by store-sqlite.c (connection, migrations, tokens, operators), store-device.c
 * (devices, images) and store-audit.c (the hash-chained log). Not for other modules. */

#include <sqlite3.h>
#include <stdbool.h>

#include "store.h"

#define STORE_STMT_CACHE_MAX 64

typedef struct StoreStmt {
	const char *sql; /* identity: the address of a static string at the call site */
	sqlite3_stmt *stmt;
} StoreStmt;

/* Write transactions are BEGIN IMMEDIATE: the write lock is taken up front, so two writers
 * never both read a state and then one fails to upgrade (that failure would bypass
 * busy_timeout). A StoreTxn not committed by scope exit is rolled back. Inside a batch
 * (store_batch_begin, store.h) a StoreTxn is a SAVEPOINT: its commit only releases it (the
 * batch's commit makes it durable), its rollback undoes that step alone. */
typedef struct StoreTxn {
	Store *store;
	bool active;
	unsigned depth;
} StoreTxn;

struct Store {
	sqlite3 *db;
	time_t now_override;
	StoreStmt stmts[STORE_STMT_CACHE_MAX];
	size_t n_stmts;
	unsigned txn_depth; /* open StoreTxn levels: 1 = the transaction, more = savepoints */
	bool batch_broken;  /* SQLite ended the batch's transaction under a savepoint */
	StoreTxn batch;	    /* store_batch_begin's transaction */
};

time_t store_now(const Store *s);

/* Maps an SQLite result code to a negative errno, logging the database's message at debug:
 * constraint UNIQUE/PRIMARYKEY → -EEXIST, FOREIGNKEY → -ENOENT, other CHECK/NOTNULL → -EINVAL,
 * BUSY/LOCKED (after busy_timeout) → -EBUSY, NOMEM → -ENOMEM, FULL → -ENOSPC, else -EIO. */
int store_error(Store *s, int rc, const char *what);

/* A cached prepared statement for sql (a static string: its address is the cache key), reset and
 * with cleared bindings. Use with _cleanup_stmt_ so the statement is reset again after use: a
 * statement left mid-step holds its read transaction open. */
int store_prepare(Store *s, const char *sql, sqlite3_stmt **ret);
static inline void store_stmt_resetp(sqlite3_stmt **st)
{
	if (*st) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	}
}
#define _cleanup_stmt_ __attribute__((cleanup(store_stmt_resetp)))

/* The common lookup: store_prepare(sql), bind key to parameter 1, step to the first row.
 * 0 with *st on that row; -ENOENT when there is none; else store_error(what). *st is set as soon
 * as the statement exists, so the caller's _cleanup_stmt_ resets it on every path. */
int store_query_one(Store *s, const char *sql, const char *key, const char *what, sqlite3_stmt **st);

/* Runs a statement that returns no rows to completion. */
int store_step_done(Store *s, sqlite3_stmt *st, const char *what);

int store_txn_begin(Store *s, StoreTxn *ret);
int store_txn_commit(StoreTxn *t);
void store_txn_rollback(StoreTxn *t);
static inline void store_txn_rollbackp(StoreTxn *t)
{
	store_txn_rollback(t);
}
#define _cleanup_txn_ __attribute__((cleanup(store_txn_rollbackp)))

/* Column helpers: NULL column → *ret = NULL (returns 0); -ENOMEM. */
int store_column_strdup(sqlite3_stmt *st, int col, char **ret);
int store_column_blobdup(sqlite3_stmt *st, int col, uint8_t **ret, size_t *ret_size);
/* Binds text or NULL. */
int store_bind_text(sqlite3_stmt *st, int col, const char *s);

/* The audit append inside a caller's transaction (store-audit.c). */
int store_audit_append_locked(Store *s, const char *actor, const char *action, const char *subject,
			      const char *details);
/* The image upsert inside a caller's transaction; *ret_existed says whether it replaced one. */
int store_image_put_locked(Store *s, const ImageRecord *i, bool *ret_existed);
int store_device_put_locked(Store *s, const DeviceRecord *d, bool *ret_existed);
/* Token checks inside a transaction (store-sqlite.c). */
int store_token_check_locked(Store *s, const char *token, char **ret_image, char **ret_hash);
