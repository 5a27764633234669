/* SPDX-License-Identifier: Apache-2.0 */
/* The store on SQLite: connection settings, schema migrations, the statement cache, enrollment
 * tokens and operators. Devices and images: store-device.c; the audit log: store-audit.c. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "store-sqlite.h"

#define BUSY_TIMEOUT_MS 5000
#define TOKEN_RANDOM_BYTES 32
#define TOKEN_TTL_MAX (30U * 24U * 3600U)
#define ENROLL_TOKEN_PREFIX "tpe_"
#define OPERATOR_TOKEN_PREFIX "tpo_"

/* Schema versions, applied in order, each in its own transaction together with its row in
 * schema_migrations. Never edit a released entry: append a new one. */
static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE images ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE image_pcrs ("
    "  image TEXT NOT NULL REFERENCES images(name) ON DELETE CASCADE,"
    "  pcr INTEGER NOT NULL CHECK (pcr BETWEEN 0 AND 23),"
    "  value BLOB NOT NULL CHECK (length(value) = 32),"
    "  PRIMARY KEY (image, pcr)"
    ") STRICT;"
    "CREATE TABLE enroll_tokens ("
    "  hash TEXT PRIMARY KEY NOT NULL CHECK (length(hash) = 64),"
    "  image TEXT REFERENCES images(name),"
    "  created_at INTEGER NOT NULL,"
    "  created_by TEXT NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  used_at INTEGER"
    ") STRICT;"
    "CREATE TABLE devices ("
    "  device_id TEXT PRIMARY KEY NOT NULL CHECK (length(device_id) = 32),"
    "  hostname TEXT NOT NULL,"
    "  image TEXT REFERENCES images(name),"
    "  ek_cert BLOB,"
    "  ak_public BLOB,"
    "  tls_public BLOB,"
    "  state TEXT NOT NULL CHECK (state IN ('enrolled', 'trusted', 'quarantined')),"
    "  reason TEXT,"
    "  enrolled_at INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  attested_at INTEGER NOT NULL,"
    "  posture TEXT,"
    "  escrow TEXT"
    ") STRICT;"
    "CREATE TABLE operators ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  role TEXT NOT NULL CHECK (role IN ('viewer', 'helpdesk', 'admin')),"
    "  token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    /* AUTOINCREMENT: seq is never reused, so a deleted row leaves a visible gap. */
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  subject TEXT,"
    "  details TEXT,"
    "  hash BLOB NOT NULL CHECK (length(hash) = 32)"
    ");"
    "CREATE INDEX audit_subject ON audit(subject, seq);",
    /* 2: signed commands (issue 4). next_seq lives on the device row so that allocating a seq
     * is one UPDATE … RETURNING under the write lock. */
    "ALTER TABLE devices ADD COLUMN next_seq INTEGER NOT NULL DEFAULT 1 CHECK (next_seq >= 1);"
    "CREATE TABLE commands ("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),"
    "  device_id TEXT NOT NULL REFERENCES devices(device_id),"
    "  seq INTEGER NOT NULL CHECK (seq >= 1),"
    "  type TEXT NOT NULL,"
    "  args TEXT NOT NULL,"
    "  issuer TEXT NOT NULL,"
    "  cose BLOB NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'done', 'rejected', 'failed')),"
    "  reason TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  delivered_at INTEGER,"
    "  finished_at INTEGER,"
    "  result_cose BLOB,"
    "  epoch INTEGER,"
    "  UNIQUE (device_id, seq)"
    ") STRICT;"
    "CREATE INDEX commands_created ON commands(created_at, device_id, seq);",
};

time_t store_now(const Store *s)
{
	return s->now_override ?: time(NULL);
}

void store_set_now(Store *s, time_t now)
{
	s->now_override = now;
}

int store_error(Store *s, int rc, const char *what)
{
	int r;

	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		r = -EEXIST;
		break;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		r = -ENOENT;
		break;
	case SQLITE_NOMEM:
		r = -ENOMEM;
		break;
	case SQLITE_FULL:
		r = -ENOSPC;
		break;
	default:
		switch (rc & 0xff) {
		case SQLITE_CONSTRAINT:
			r = -EINVAL;
			break;
		case SQLITE_BUSY:
		case SQLITE_LOCKED:
			r = -EBUSY;
			break;
		default:
			r = -EIO;
		}
	}
	return log_debug_errno(r, "SQLite: %s failed: %s (%d)", what,
			       s && s->db ? sqlite3_errmsg(s->db) : "?", rc);
}

int store_prepare(Store *s, const char *sql, sqlite3_stmt **ret)
{
	sqlite3_stmt *st;
	int rc;

	for (size_t i = 0; i < s->n_stmts; i++)
		if (s->stmts[i].sql == sql) {
			sqlite3_reset(s->stmts[i].stmt);
			sqlite3_clear_bindings(s->stmts[i].stmt);
			*ret = s->stmts[i].stmt;
			return 0;
		}

	rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK)
		return store_error(s, rc, "prepare");
	if (s->n_stmts < STORE_STMT_CACHE_MAX)
		s->stmts[s->n_stmts++] = (StoreStmt){.sql = sql, .stmt = st};
	else {
		/* Cannot happen with the fixed set of statements in these files; refuse rather than leak. */
		sqlite3_finalize(st);
		return log_debug_errno(-ENOBUFS, "Statement cache full");
	}
	*ret = st;
	return 0;
}

int store_step_done(Store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_error(s, rc, what);
	return 0;
}

static int store_exec(Store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_error(s, rc, what);
	return 0;
}

int store_txn_begin(Store *s, StoreTxn *ret)
{
	char sql[48];
	int r;

	if (s->batch_broken)
		return -EIO; /* the batch's transaction is gone: nothing may be written into it */
	if (s->txn_depth == 0)
		r = store_exec(s, "BEGIN IMMEDIATE", "begin");
	else {
		/* Inside a batch: a savepoint, so that this step alone can be rolled back. */
		snprintf(sql, sizeof(sql), "SAVEPOINT s%u", s->txn_depth);
		r = store_exec(s, sql, "savepoint");
	}
	if (r < 0)
		return r;
	*ret = (StoreTxn){.store = s, .active = true, .depth = ++s->txn_depth};
	return 0;
}

int store_txn_commit(StoreTxn *t)
{
	Store *s = t->store;
	char sql[48];
	int r;

	assert(t->depth == s->txn_depth);
	if (s->batch_broken)
		return -EIO;
	if (t->depth == 1)
		r = store_exec(s, "COMMIT", "commit");
	else {
		snprintf(sql, sizeof(sql), "RELEASE s%u", t->depth - 1);
		r = store_exec(s, sql, "release savepoint");
	}
	if (r < 0)
		return r; /* still active: the cleanup rolls back */
	t->active = false;
	s->txn_depth--;
	return 0;
}

void store_txn_rollback(StoreTxn *t)
{
	Store *s = t->store;
	char sql[80];

	if (!t->active)
		return;
	assert(t->depth == s->txn_depth);
	t->active = false;
	s->txn_depth--;
	if (t->depth == 1) {
		if (!sqlite3_get_autocommit(s->db))
			(void)store_exec(s, "ROLLBACK", "rollback");
		s->batch_broken = false;
		return;
	}
	/* SQLite ends the whole transaction by itself after some errors (full disk, I/O): then
	 * there is no savepoint to go back to, and the batch around this step is lost too. */
	if (sqlite3_get_autocommit(s->db)) {
		s->batch_broken = true;
		return;
	}
	snprintf(sql, sizeof(sql), "ROLLBACK TO s%u; RELEASE s%u", t->depth - 1, t->depth - 1);
	if (store_exec(s, sql, "rollback to savepoint") < 0)
		s->batch_broken = true;
}

int store_batch_begin(Store *s)
{
	if (s->txn_depth != 0)
		return -EBUSY; /* batches do not nest */
	return store_txn_begin(s, &s->batch);
}

int store_batch_commit(Store *s)
{
	if (!s->batch.active)
		return -EINVAL;
	return store_txn_commit(&s->batch);
}

void store_batch_abort(Store *s)
{
	store_txn_rollback(&s->batch);
}

int store_column_strdup(sqlite3_stmt *st, int col, char **ret)
{
	const unsigned char *t;

	if (sqlite3_column_type(st, col) == SQLITE_NULL) {
		*ret = NULL;
		return 0;
	}
	t = sqlite3_column_text(st, col);
	if (!t)
		return -ENOMEM;
	*ret = strdup((const char *)t);
	return *ret ? 0 : -ENOMEM;
}

int store_column_blobdup(sqlite3_stmt *st, int col, uint8_t **ret, size_t *ret_size)
{
	const void *b;
	int n;

	if (sqlite3_column_type(st, col) == SQLITE_NULL) {
		*ret = NULL;
		*ret_size = 0;
		return 0;
	}
	b = sqlite3_column_blob(st, col);
	n = sqlite3_column_bytes(st, col);
	if (n == 0) {
		*ret = NULL;
		*ret_size = 0;
		return 0;
	}
	if (!b)
		return -ENOMEM;
	*ret = malloc((size_t)n);
	if (!*ret)
		return -ENOMEM;
	memcpy(*ret, b, (size_t)n);
	*ret_size = (size_t)n;
	return 0;
}

int store_query_one(Store *s, const char *sql, const char *key, const char *what, sqlite3_stmt **st)
{
	int r, rc;

	r = store_prepare(s, sql, st);
	if (r < 0)
		return r;
	r = store_bind_text(*st, 1, key);
	if (r < 0)
		return r;
	rc = sqlite3_step(*st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_error(s, rc, what);
	return 0;
}

int store_bind_text(sqlite3_stmt *st, int col, const char *s)
{
	int rc = s ? sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, col);
	return rc == SQLITE_OK ? 0 : (rc == SQLITE_NOMEM ? -ENOMEM : -EIO);
}

bool store_device_id_valid(const char *id)
{
	if (!id || strlen(id) != 32)
		return false;
	for (size_t i = 0; i < 32; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

bool store_name_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strlen(name);
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c && strchr("._@-", c))))
			return false;
	}
	return true;
}

/* ---- open and migrate ---- */

static int store_schema_version(Store *s, int64_t *ret)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1, &st,
				NULL);
	if (rc != SQLITE_OK)
		return store_error(s, rc, "reading the schema version");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return store_error(s, rc, "reading the schema version");
	}
	*ret = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

static int store_migrate(Store *s)
{
	int64_t version = 0;
	int r;

	r = store_exec(s,
		       "CREATE TABLE IF NOT EXISTS schema_migrations ("
		       "  version INTEGER PRIMARY KEY NOT NULL,"
		       "  applied_at INTEGER NOT NULL)",
		       "creating schema_migrations");
	if (r < 0)
		return r;

	for (size_t v = 1; v <= ELEMENTSOF(migrations); v++) {
		_cleanup_txn_ StoreTxn txn = {};
		sqlite3_stmt *st;
		int rc;

		/* Checked again inside the write lock: another process (`trustpc-server operator add`
		 * next to the running server) may have migrated meanwhile. */
		r = store_txn_begin(s, &txn);
		if (r < 0)
			return r;
		r = store_schema_version(s, &version);
		if (r < 0)
			return r;
		if (version > (int64_t)ELEMENTSOF(migrations))
			return log_debug_errno(-EPROTONOSUPPORT,
					       "Database schema version %" PRIi64
					       " is newer than this program (%zu)",
					       version, ELEMENTSOF(migrations));
		if (version >= (int64_t)v)
			continue;

		r = store_exec(s, migrations[v - 1], "schema migration");
		if (r < 0)
			return r;
		rc = sqlite3_prepare_v2(s->db,
					"INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)",
					-1, &st, NULL);
		if (rc != SQLITE_OK)
			return store_error(s, rc, "recording a migration");
		sqlite3_bind_int64(st, 1, (int64_t)v);
		sqlite3_bind_int64(st, 2, (int64_t)store_now(s));
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return store_error(s, rc, "recording a migration");
		r = store_txn_commit(&txn);
		if (r < 0)
			return r;
		log_debug("Applied schema migration %zu", v);
	}
	return 0;
}

static int store_pragma_text(Store *s, const char *sql, const char *expect)
{
	sqlite3_stmt *st;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_error(s, rc, sql);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		r = store_error(s, rc, sql);
	else if (expect && strcasecmp((const char *)sqlite3_column_text(st, 0) ?: "", expect) != 0)
		r = log_debug_errno(-EIO, "%s answered %s, not %s", sql, sqlite3_column_text(st, 0), expect);
	sqlite3_finalize(st);
	return r;
}

int store_open(const char *path, Store **ret)
{
	_cleanup_(store_closep) Store *s = NULL;
	int fd, rc, r;

	assert(path);
	assert(ret);

	/* Create the file ourselves so that it is 0600 from the start: it holds token hashes and
	 * escrow blobs. SQLite gives -wal and -shm the main file's mode. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return log_debug_errno(-errno, "Failed to open %s: %m", path);
	/* Closed before SQLite opens the file, never after: POSIX record locks belong to the process,
	 * and closing any descriptor of the file drops all of them, SQLite's included. Another process
	 * (sqlite3, `trustpc-server operator add`) would then think it is the last user, checkpoint and
	 * delete the WAL under us, and our later commits would go to an unlinked file. */
	(void)close(fd);

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;

	rc = sqlite3_open_v2(path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK)
		return store_error(s, rc, "open");

	rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	if (rc != SQLITE_OK)
		return store_error(s, rc, "busy_timeout");

	/* The database file is data, not code: no functions or virtual tables from the schema. */
	r = store_exec(s, "PRAGMA trusted_schema = OFF", "PRAGMA trusted_schema");
	if (r < 0)
		return r;
	r = store_pragma_text(s, "PRAGMA journal_mode = WAL", "wal");
	if (r < 0)
		return r;
	/* FULL: in WAL mode, NORMAL may lose the last commits on power loss. Every write we report
	 * (a lock command, an operator token) must survive it (brief, "Nothing lost"). */
	r = store_exec(s, "PRAGMA synchronous = FULL", "PRAGMA synchronous");
	if (r < 0)
		return r;
	r = store_exec(s, "PRAGMA foreign_keys = ON", "PRAGMA foreign_keys");
	if (r < 0)
		return r;
	r = store_pragma_text(s, "PRAGMA foreign_keys", "1");
	if (r < 0)
		return r;

	r = store_migrate(s);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(s);
	return 0;
}

Store *store_close(Store *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n_stmts; i++)
		sqlite3_finalize(s->stmts[i].stmt);
	sqlite3_close(s->db);
	free(s);
	return NULL;
}

/* ---- tokens ---- */

/* "PREFIX" + base64url(32 random bytes) and the hex SHA-256 of that text. */
static int token_generate(const char *prefix, char **ret_token, char **ret_hash)
{
	uint8_t raw[TOKEN_RANDOM_BYTES], digest[SHA256_SIZE];
	_cleanup_erase_ char *b64 = NULL, *token = NULL;
	char *hash;
	size_t n;
	int r;

	ERASE_ON_EXIT(raw);

	r = crypto_random_bytes(raw, sizeof(raw));
	if (r < 0)
		return r;
	b64 = base64_encode(raw, sizeof(raw));
	if (!b64)
		return -ENOMEM;
	for (char *p = b64; *p; p++)
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	n = strcspn(b64, "=");
	b64[n] = 0;

	if (asprintf(&token, "%s%s", prefix, b64) < 0) {
		token = NULL;
		return -ENOMEM;
	}
	r = sha256(token, strlen(token), digest);
	if (r < 0)
		return r;
	hash = hex_encode(digest, sizeof(digest));
	if (!hash)
		return -ENOMEM;

	*ret_token = TAKE_PTR(token);
	*ret_hash = hash;
	return 0;
}

static int token_hash(const char *token, char **ret)
{
	uint8_t digest[SHA256_SIZE];
	int r;

	r = sha256(token, strlen(token), digest);
	if (r < 0)
		return r;
	*ret = hex_encode(digest, sizeof(digest));
	return *ret ? 0 : -ENOMEM;
}

int store_token_create(Store *s, const char *image, uint64_t ttl, const char *actor, char **ret_token,
		       time_t *ret_expires)
{
	static const char sql_insert[] =
	    "INSERT INTO enroll_tokens(hash, image, created_at, created_by, expires_at) "
	    "VALUES (?, ?, ?, ?, ?)";
	static const char sql_image[] = "SELECT 1 FROM images WHERE name = ?";
	_cleanup_erase_ char *token = NULL;
	_cleanup_free_ char *hash = NULL, *details = NULL, *subject = NULL;
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_stmt_ sqlite3_stmt *st = NULL, *sti = NULL;
	time_t now = store_now(s), expires;
	int r;

	if (ttl < 1 || ttl > TOKEN_TTL_MAX || !actor || !*actor)
		return -EINVAL;
	if (image && !store_name_valid(image))
		return -EINVAL;
	expires = now + (time_t)ttl;

	r = token_generate(ENROLL_TOKEN_PREFIX, &token, &hash);
	if (r < 0)
		return r;

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;

	if (image) {
		/* Checked here for a clear -ENOENT; the foreign key would refuse it too. */
		r = store_query_one(s, sql_image, image, "looking up the image", &sti);
		if (r < 0)
			return r;
	}

	r = store_prepare(s, sql_insert, &st);
	if (r < 0)
		return r;
	if (store_bind_text(st, 1, hash) < 0 || store_bind_text(st, 2, image) < 0 ||
	    sqlite3_bind_int64(st, 3, (int64_t)now) != SQLITE_OK || store_bind_text(st, 4, actor) < 0 ||
	    sqlite3_bind_int64(st, 5, (int64_t)expires) != SQLITE_OK)
		return -ENOMEM;
	r = store_step_done(s, st, "storing the token");
	if (r < 0)
		return r;

	/* A prefix of the hash names the token in the log without making it usable. */
	if (asprintf(&subject, "token:%.16s", hash) < 0) {
		subject = NULL;
		return -ENOMEM;
	}
	if (asprintf(&details, "{\"image\":%s%s%s,\"expires_at\":%lld}", image ? "\"" : "", image ?: "null",
		     image ? "\"" : "", (long long)expires) < 0) {
		details = NULL;
		return -ENOMEM;
	}
	r = store_audit_append_locked(s, actor, "token.create", subject, details);
	if (r < 0)
		return r;
	r = store_txn_commit(&txn);
	if (r < 0)
		return r;

	*ret_token = TAKE_PTR(token);
	if (ret_expires)
		*ret_expires = expires;
	return 0;
}

int store_token_check_locked(Store *s, const char *token, char **ret_image, char **ret_hash)
{
	static const char sql[] = "SELECT image, expires_at, used_at FROM enroll_tokens WHERE hash = ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *hash = NULL, *image = NULL;
	int r;

	if (!token || !startswith(token, ENROLL_TOKEN_PREFIX))
		return -ENOENT;
	r = token_hash(token, &hash);
	if (r < 0)
		return r;

	r = store_query_one(s, sql, hash, "looking up the token", &st);
	if (r < 0)
		return r;
	if (sqlite3_column_type(st, 2) != SQLITE_NULL)
		return log_debug_errno(-ESTALE, "Enrollment token already used");
	if (store_now(s) >= (time_t)sqlite3_column_int64(st, 1))
		return log_debug_errno(-ESTALE, "Enrollment token expired");
	r = store_column_strdup(st, 0, &image);
	if (r < 0)
		return r;

	if (ret_image)
		*ret_image = TAKE_PTR(image);
	if (ret_hash)
		*ret_hash = TAKE_PTR(hash);
	return 0;
}

int store_token_check(Store *s, const char *token, char **ret_image)
{
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_free_ char *image = NULL;
	int r;

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_token_check_locked(s, token, &image, NULL);
	if (r < 0)
		return r;
	r = store_txn_commit(&txn);
	if (r < 0)
		return r;
	if (ret_image)
		*ret_image = TAKE_PTR(image);
	return 0;
}

/* Marks the token used inside the caller's transaction. */
static int store_token_consume_locked(Store *s, const char *token, char **ret_image)
{
	static const char sql[] = "UPDATE enroll_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *hash = NULL, *image = NULL;
	int r;

	r = store_token_check_locked(s, token, &image, &hash);
	if (r < 0)
		return r;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (sqlite3_bind_int64(st, 1, (int64_t)store_now(s)) != SQLITE_OK ||
	    store_bind_text(st, 2, hash) < 0)
		return -ENOMEM;
	r = store_step_done(s, st, "consuming the token");
	if (r < 0)
		return r;
	/* We hold the write lock since the check, so nobody can have used it in between; this
	 * is the belt to those braces. */
	if (sqlite3_changes(s->db) != 1)
		return -ESTALE;
	if (ret_image)
		*ret_image = TAKE_PTR(image);
	return 0;
}

int store_token_consume(Store *s, const char *token, char **ret_image)
{
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_free_ char *image = NULL;
	int r;

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_token_consume_locked(s, token, &image);
	if (r < 0)
		return r;
	r = store_txn_commit(&txn);
	if (r < 0)
		return r;
	if (ret_image)
		*ret_image = TAKE_PTR(image);
	return 0;
}

int store_device_enroll(Store *s, const char *token, const DeviceRecord *d, const char *details)
{
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_free_ char *actor = NULL;
	bool existed;
	int r;

	if (!d || !store_device_id_valid(d->device_id))
		return -EINVAL;
	if (asprintf(&actor, "device:%s", d->device_id) < 0) {
		actor = NULL;
		return -ENOMEM;
	}

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_token_consume_locked(s, token, NULL);
	if (r < 0)
		return r;
	r = store_device_put_locked(s, d, &existed);
	if (r < 0)
		return r;
	r = store_audit_append_locked(s, actor, existed ? "device.re-enroll" : "device.enroll", d->device_id,
				      details);
	if (r < 0)
		return r;
	return store_txn_commit(&txn);
}

/* ---- operators ---- */

const char *operator_role_name(OperatorRole r)
{
	switch (r) {
	case ROLE_VIEWER:
		return "viewer";
	case ROLE_HELPDESK:
		return "helpdesk";
	case ROLE_ADMIN:
		return "admin";
	}
	return NULL;
}

int operator_role_from_name(const char *s, OperatorRole *ret)
{
	for (OperatorRole r = ROLE_VIEWER; r <= ROLE_ADMIN; r++)
		if (s && streq(s, operator_role_name(r))) {
			*ret = r;
			return 0;
		}
	return -EINVAL;
}

int store_operator_add(Store *s, const char *name, OperatorRole role, char **ret_token)
{
	static const char sql[] =
	    "INSERT INTO operators(name, role, token_hash, created_at) VALUES (?, ?, ?, ?)";
	_cleanup_erase_ char *token = NULL;
	_cleanup_free_ char *hash = NULL;
	_cleanup_txn_ StoreTxn txn = {};
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!store_name_valid(name) || !operator_role_name(role))
		return -EINVAL;

	r = token_generate(OPERATOR_TOKEN_PREFIX, &token, &hash);
	if (r < 0)
		return r;

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (store_bind_text(st, 1, name) < 0 || store_bind_text(st, 2, operator_role_name(role)) < 0 ||
	    store_bind_text(st, 3, hash) < 0 ||
	    sqlite3_bind_int64(st, 4, (int64_t)store_now(s)) != SQLITE_OK)
		return -ENOMEM;
	r = store_step_done(s, st, "adding the operator");
	if (r < 0)
		return r;

	r = store_txn_commit(&txn);
	if (r < 0)
		return r;

	*ret_token = TAKE_PTR(token);
	return 0;
}

int store_operator_auth(Store *s, const char *token, char **ret_name, OperatorRole *ret_role)
{
	static const char sql[] = "SELECT name, role FROM operators WHERE token_hash = ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *hash = NULL, *name = NULL;
	OperatorRole role;
	int r;

	if (!token || !startswith(token, OPERATOR_TOKEN_PREFIX))
		return -ENOENT;
	r = token_hash(token, &hash);
	if (r < 0)
		return r;
	r = store_query_one(s, sql, hash, "looking up the operator", &st);
	if (r < 0)
		return r;
	r = operator_role_from_name((const char *)sqlite3_column_text(st, 1), &role);
	if (r < 0)
		return -EIO; /* the CHECK constraint makes this a damaged database */
	r = store_column_strdup(st, 0, &name);
	if (r < 0)
		return r;

	if (ret_name)
		*ret_name = TAKE_PTR(name);
	if (ret_role)
		*ret_role = role;
	return 0;
}
