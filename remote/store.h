/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The server's storage: SQLite in WAL mode by default (store-sqlite.c). Every write that the
 * server reports (to a device or an operator) is committed first. Schema versions are applied
 * in order by store_open (table schema_migrations). PostgreSQL comes later behind the same API.
 * Errors: negative errno; -ENOENT not found, -EEXIST conflict, -ESTALE token used/expired,
 * -EIO database failure (the SQLite message is logged at debug). Strings returned are malloc'ed. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct Store Store;

int store_open(const char *path, Store **ret); /* creates and migrates */
Store *store_close(Store *s);
static inline void store_closep(Store **s)
{
	store_close(*s);
}
/* 32 lower-case hex digits (docs/PROTOCOL.md: hex(SHA-256(EK SPKI DER)[0:16])). */
bool store_device_id_valid(const char *id);
/* Image and operator names: 1..64 of [A-Za-z0-9._@-]. */
bool store_name_valid(const char *name);
/* A batch: many writes in one transaction, made durable by one commit (one fsync) instead of one
 * each; the server queues a fleet command and records a burst of command results this way. Every
 * store_* write inside it runs as a savepoint: a write that fails is undone alone and the batch
 * goes on. Until store_batch_commit returns 0 nothing in it is durable, so nothing written in it
 * may be reported to a device or an operator before. -EBUSY: a transaction is already open
 * (batches do not nest). store_batch_abort rolls an open batch back (no-op otherwise); a batch
 * whose transaction SQLite ended (I/O error, full disk) fails every later write and its commit. */
int store_batch_begin(Store *s);
int store_batch_commit(Store *s);
void store_batch_abort(Store *s);
/* Tests only: the clock the store uses for created/expiry/audit times (0 = time(NULL)). */
void store_set_now(Store *s, time_t now);

/* ---- enrollment tokens (only SHA-256 of the token is stored) ----
 * Token text: "tpe_" + base64url (RFC 4648 §5, no padding) of 32 random bytes (47 characters);
 * operator tokens look the same with "tpo_". The prefix lets a secret scanner recognise them and
 * makes pasting one kind where the other belongs fail cleanly. The database holds lower-case hex
 * SHA-256 of the whole text. Returned token strings are secrets: free with erase_and_free(). */
/* Creates a token valid for ttl seconds (1 ≤ ttl ≤ 30 days, else -EINVAL), optionally tied to an
 * image (-ENOENT when no such image); audited ("token.create", actor,
 * subject "token:" + 16 hex digits of its hash, details {image, expires_at}) in the same transaction. */
int store_token_create(Store *s, const char *image, uint64_t ttl, const char *actor, char **ret_token,
		       time_t *ret_expires);
/* Atomically checks and consumes it: -ENOENT unknown, -ESTALE used or expired. *ret_image may be
 * NULL if the token names none. */
int store_token_consume(Store *s, const char *token, char **ret_image);
/* The same checks without consuming (the `enroll` message; the token is consumed by
 * store_device_enroll when the device is created, docs/PROTOCOL.md "Enrollment" step 3). */
int store_token_check(Store *s, const char *token, char **ret_image);

/* ---- devices ---- */
typedef enum DeviceState {
	DEVICE_ENROLLED,    /* enrolled, not attested yet */
	DEVICE_TRUSTED,	    /* last attestation passed */
	DEVICE_QUARANTINED, /* last attestation failed: only lock/unlock/wipe reach it */
} DeviceState;
const char *device_state_name(DeviceState s);

typedef struct DeviceRecord {
	char device_id[33];
	char *hostname;
	char *image;	  /* may be NULL */
	uint8_t *ek_cert; /* DER */
	size_t ek_cert_size;
	uint8_t *ak_public; /* TPM2B_PUBLIC */
	size_t ak_public_size;
	uint8_t *tls_public; /* SPKI DER of the certified TLS key */
	size_t tls_public_size;
	DeviceState state;
	char *reason; /* last attestation failure, may be NULL */
	time_t enrolled_at, last_seen, attested_at;
	char *posture_json; /* last reported posture, may be NULL */
	char *escrow_json;  /* escrowed recovery key blob, may be NULL */
} DeviceRecord;
void device_record_done(DeviceRecord *d);

/* Insert or replace (re-enrollment of the same EK): every column is set from d, including NULLs.
 * -ENOENT when d->image names no registered image; -EINVAL for a device_id that is not 32
 * lower-case hex digits or a NULL hostname. */
int store_device_put(Store *s, const DeviceRecord *d);
/* Enrollment in one transaction: consume token (-ENOENT/-ESTALE, nothing written), put d, audit
 * ("device.enroll" or "device.re-enroll", actor "device:<id>", subject the id, details JSON or NULL). */
int store_device_enroll(Store *s, const char *token, const DeviceRecord *d, const char *details);
int store_device_get(Store *s, const char *device_id, DeviceRecord *ret);
/* All devices, in device_id order. */
int store_device_list(Store *s, DeviceRecord **ret, size_t *ret_n);
int store_device_set_state(Store *s, const char *device_id, DeviceState state, const char *reason,
			   time_t attested_at);
int store_device_seen(Store *s, const char *device_id, time_t when, const char *posture_json);
int store_device_set_escrow(Store *s, const char *device_id, const char *escrow_json);

/* ---- images: expected PCR values (SHA-256 bank) ---- */
typedef struct ImageRecord {
	char *name;
	uint32_t pcr_mask;
	uint8_t pcr_values[24][32];
} ImageRecord;
void image_record_done(ImageRecord *i);
/* Insert or replace the expected values. Names: 1..64 of [A-Za-z0-9._@-]; pcr_mask non-zero (an
 * image without expected values would accept any quote) and below 1 << 24 (-EINVAL otherwise). */
int store_image_put(Store *s, const ImageRecord *i);
/* store_image_put + audit ("image.set", actor, details {pcr_mask, replaced}) in one transaction. */
int store_image_add(Store *s, const ImageRecord *i, const char *actor);
int store_image_get(Store *s, const char *name, ImageRecord *ret);
int store_image_list(Store *s, ImageRecord **ret, size_t *ret_n);

/* ---- operators (bearer tokens, SHA-256 stored) ---- */
typedef enum OperatorRole { ROLE_VIEWER = 1, ROLE_HELPDESK = 2, ROLE_ADMIN = 3 } OperatorRole;
const char *operator_role_name(OperatorRole r);
int operator_role_from_name(const char *s, OperatorRole *ret);
/* -EEXIST when the name is taken; names: 1..64 of [A-Za-z0-9._@-]. Not audited here (the caller
 * knows the actor). *ret_token ("tpo_…") is shown once and then only its hash exists. */
int store_operator_add(Store *s, const char *name, OperatorRole role, char **ret_token);
/* -ENOENT unknown token. */
int store_operator_auth(Store *s, const char *token, char **ret_name, OperatorRole *ret_role);

/* ---- audit log, hash-chained (docs/PROTOCOL.md "Audit log") ---- */
/* Chain (docs/PROTOCOL.md "Audit log"): hash = SHA-256(prev_hash ‖ seq ‖ time ‖ actor ‖ action ‖
 * subject ‖ details) with prev_hash the previous row's hash (32 zero bytes before the first row),
 * seq as 8 bytes and time as 8 bytes (two's complement) big-endian, and each text field as a 4-byte
 * big-endian length and its bytes; a NULL subject/details is length 0xffffffff with no bytes (so
 * NULL and "" differ). seq starts at 1 and never repeats (AUTOINCREMENT): a deleted row leaves a gap
 * that verify reports even when it was the last one and something was appended after it. A
 * rewrite of the whole chain from some row on is only caught against a copy of an earlier head
 * (store_audit_head), which is why `trustpcctl audit verify` prints it. */
typedef struct AuditEntry {
	uint64_t seq;
	time_t time;
	char *actor, *action, *subject, *details; /* details: JSON text or NULL */
	uint8_t hash[32];
} AuditEntry;
void audit_entry_done(AuditEntry *e);
/* actor and action non-empty (-EINVAL); subject and details may be NULL. details should be JSON
 * text (the admin API shows it as JSON when it parses, else as a string). */
int store_audit_append(Store *s, const char *actor, const char *action, const char *subject,
		       const char *details);
/* Entries with seq > after_seq, oldest first, at most limit (1..10000, else -EINVAL). */
int store_audit_list(Store *s, uint64_t after_seq, size_t limit, AuditEntry **ret, size_t *ret_n);
/* The last `limit` entries about subject, newest first. */
int store_audit_list_subject(Store *s, const char *subject, size_t limit, AuditEntry **ret, size_t *ret_n);
/* seq and hash of the newest row; -ENOENT on an empty log. */
int store_audit_head(Store *s, uint64_t *ret_seq, uint8_t ret_hash[32]);
/* Recomputes the chain: 0 ok (*ret_entries counted), -EBADMSG broken (*ret_first_bad = seq). */
int store_audit_verify(Store *s, uint64_t *ret_entries, uint64_t *ret_first_bad);

/* ---- commands (docs/PROTOCOL.md "Commands"; issue 4) ----
 * Life cycle: queued → delivered → done | rejected | failed. A command is stored already signed
 * (the COSE_Sign1 the device gets), so a restarted server delivers the very same bytes. seq is
 * allocated per device from devices.next_seq (1, 2, …; never reused, also across re-enrollment):
 * the device refuses a seq it has seen, so a reused one would be a lost command. */
typedef enum CommandState {
	COMMAND_STATE_QUEUED = 1,
	COMMAND_STATE_DELIVERED,
	COMMAND_STATE_DONE,
	COMMAND_STATE_REJECTED,
	COMMAND_STATE_FAILED,
} CommandState;
const char *command_state_name(CommandState s);
int command_state_from_name(const char *s, CommandState *ret);

#define COMMAND_ID_HEX_SIZE 33 /* 32 lower-case hex digits + NUL */

typedef struct CommandRecord {
	char id[COMMAND_ID_HEX_SIZE];
	char device_id[33];
	uint64_t seq;
	char *type;	 /* "lock", "unlock", "wipe", "policy" */
	char *args_json; /* the arguments as JSON text (what the helpdesk sees) */
	char *issuer;	 /* operator name */
	uint8_t *cose;	 /* the signed command */
	size_t cose_size;
	CommandState state;
	char *reason;				      /* the device's reason with the result, may be NULL */
	time_t created_at, delivered_at, finished_at; /* 0 = not yet */
	uint8_t *result_cose;			      /* the device's signed result, may be NULL */
	size_t result_cose_size;
	bool has_epoch;
	uint64_t epoch; /* the lock counter the result reported */
} CommandRecord;
void command_record_done(CommandRecord *c);
void command_records_free(CommandRecord *a, size_t n);

/* Signs the command once its seq is known (called inside the enqueue transaction, so the seq in
 * the signature is the one stored). *ret_cose is malloc'ed. */
typedef int (*StoreCommandSignFn)(void *userdata, uint64_t seq, time_t now, uint8_t **ret_cose,
				  size_t *ret_size);

/* In one transaction: allocate the device's next seq, sign (sign_fn), insert the command as
 * queued, audit ("command.queue", actor c->issuer, subject the device id, details
 * {id, seq, type, args}); committed before it returns. In: c->id (32 lower-case hex), device_id,
 * type, args_json, issuer. Out (on success): c->seq, c->cose, c->state, c->created_at.
 * -ENOENT unknown device, -EINVAL bad id/type/issuer, -EEXIST id taken, sign_fn's error. */
int store_command_enqueue(Store *s, CommandRecord *c, StoreCommandSignFn sign_fn, void *userdata);
int store_command_get(Store *s, const char *id, CommandRecord *ret);
/* Queued, or delivered and not finished, in seq order: what a (re)connecting device gets. */
int store_command_pending(Store *s, const char *device_id, CommandRecord **ret, size_t *ret_n);
/* queued → delivered (delivered_at = the first delivery; a redelivery keeps it). -ENOENT unknown,
 * -ESTALE already finished. */
int store_command_mark_delivered(Store *s, const char *id, time_t when);
/* delivered (or queued) → state (done/rejected/failed) with reason, the signed result and the
 * reported epoch, and the audit row ("command.done|rejected|failed", actor "device:<id>",
 * subject the device id, details {id, seq, type, reason, epoch}) in one transaction. -ENOENT
 * unknown, -ESTALE already finished (a redelivered result: nothing changes), -EINVAL state. */
typedef struct CommandOutcome {
	CommandState state;
	const char *reason;
	const uint8_t *result_cose;
	size_t result_cose_size;
	bool has_epoch;
	uint64_t epoch;
	bool quoted; /* the result came with a verified TPM quote (audit details "quote") */
	const char
	    *actor; /* for the audit row; NULL = "device:<id>" (the server finishes superseded ones) */
} CommandOutcome;
int store_command_finish(Store *s, const char *id, const CommandOutcome *o, time_t when);
/* The newest `limit` (1..10000) commands of device_id (NULL: of all devices), newest first. */
int store_command_list(Store *s, const char *device_id, size_t limit, CommandRecord **ret, size_t *ret_n);
/* The epoch reported by the newest finished lock with an epoch: -ENOENT when there is none. */
int store_command_last_lock_epoch(Store *s, const char *device_id, uint64_t *ret);
