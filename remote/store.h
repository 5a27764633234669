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

/* ---- enrollment tokens (only SHA-256 of the token is stored) ---- */
/* Creates a token valid for ttl seconds, optionally tied to an image; returns the token text. */
int store_token_create(Store *s, const char *image, uint64_t ttl, const char *actor, char **ret_token,
		       time_t *ret_expires);
/* Atomically checks and consumes it: -ENOENT unknown, -ESTALE used or expired. *ret_image may be
 * NULL if the token names none. */
int store_token_consume(Store *s, const char *token, char **ret_image);

/* ---- devices ---- */
typedef enum DeviceState {
	DEVICE_ENROLLED,    /* enrolled, not attested yet */
	DEVICE_TRUSTED,     /* last attestation passed */
	DEVICE_QUARANTINED, /* last attestation failed: only lock/unlock/wipe reach it */
} DeviceState;
const char *device_state_name(DeviceState s);

typedef struct DeviceRecord {
	char device_id[33];
	char *hostname;
	char *image;              /* may be NULL */
	uint8_t *ek_cert;         /* DER */
	size_t ek_cert_size;
	uint8_t *ak_public;       /* TPM2B_PUBLIC */
	size_t ak_public_size;
	uint8_t *tls_public;      /* SPKI DER of the certified TLS key */
	size_t tls_public_size;
	DeviceState state;
	char *reason;             /* last attestation failure, may be NULL */
	time_t enrolled_at, last_seen, attested_at;
	char *posture_json;       /* last reported posture, may be NULL */
	char *escrow_json;        /* escrowed recovery key blob, may be NULL */
} DeviceRecord;
void device_record_done(DeviceRecord *d);

/* Insert or replace (re-enrollment of the same EK). */
int store_device_put(Store *s, const DeviceRecord *d);
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
int store_image_put(Store *s, const ImageRecord *i);
int store_image_get(Store *s, const char *name, ImageRecord *ret);
int store_image_list(Store *s, ImageRecord **ret, size_t *ret_n);

/* ---- operators (bearer tokens, SHA-256 stored) ---- */
typedef enum OperatorRole { ROLE_VIEWER = 1, ROLE_HELPDESK = 2, ROLE_ADMIN = 3 } OperatorRole;
const char *operator_role_name(OperatorRole r);
int operator_role_from_name(const char *s, OperatorRole *ret);
int store_operator_add(Store *s, const char *name, OperatorRole role, char **ret_token);
/* -ENOENT unknown token. */
int store_operator_auth(Store *s, const char *token, char **ret_name, OperatorRole *ret_role);

/* ---- audit log, hash-chained (docs/PROTOCOL.md "Audit log") ---- */
typedef struct AuditEntry {
	uint64_t seq;
	time_t time;
	char *actor, *action, *subject, *details; /* details: JSON text or NULL */
	uint8_t hash[32];
} AuditEntry;
void audit_entry_done(AuditEntry *e);
int store_audit_append(Store *s, const char *actor, const char *action, const char *subject,
		       const char *details);
int store_audit_list(Store *s, uint64_t after_seq, size_t limit, AuditEntry **ret, size_t *ret_n);
/* Recomputes the chain: 0 ok (*ret_entries counted), -EBADMSG broken (*ret_first_bad = seq). */
int store_audit_verify(Store *s, uint64_t *ret_entries, uint64_t *ret_first_bad);
