/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The privilege-separation protocol between trustpcd's network/D-Bus process (unprivileged, parses
 * everything untrusted) and its executor (privileged: holds the TPM context, the AK and the state
 * dir). docs/PRIVSEP.md explains the split.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET socketpair, so message boundaries are kept by the kernel and
 * a request is exactly one datagram. Every request is a PrivsepHeader followed by the payload of its
 * type; every payload is a fixed-size struct, or (two types) a fixed-size struct with a trailing
 * area whose length fields must add up exactly. The executor checks the exact size and every range
 * before it acts (privsep_request_check) and treats any violation as a compromise of the network
 * process: it kills it and exits. It never parses TLS, CBOR or D-Bus data.
 *
 * All integers are host byte order: both ends are the same binary on the same machine. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tpm2/tpm2.h"

#define PRIVSEP_MSG_MAX (96 * 1024)            /* below the default socket buffer (208 KiB) */
#define PRIVSEP_ATTEST_MAX 1024                /* a quote's TPMS_ATTEST is ~150 bytes */
#define PRIVSEP_CRED_MAX 256                   /* TPM2B_ID_OBJECT / TPM2B_ENCRYPTED_SECRET (ECC: ~70) */
#define PRIVSEP_SECRET_MAX 64                  /* the activated credential (the server sends 32) */
#define PRIVSEP_EVENT_LOG_MAX (48 * 1024)      /* = PROTO_EVENT_LOG_MAX: it must fit the attest frame */
#define PRIVSEP_ESCROW_MAX (16 * 1024)         /* = PROTO_BLOB_MAX */
#define PRIVSEP_STORE_BLOB_MAX (16 * 1024)     /* each stored enrollment file */
#define PRIVSEP_QUOTE_PCRS UINT32_C(0x00ffffff) /* PCRs 0–23 */
#define PRIVSEP_COSE_MAX 16384                 /* = COSE_MAX_SIZE (proto/cose.h): one signed command */
#define PRIVSEP_REASON_MAX 256                 /* an EXECUTE outcome's reason, NUL-terminated */

typedef enum PrivsepType {
	PRIVSEP_READY = 1,   /* net → exec: D-Bus name owned, loop running; exec tells systemd */
	PRIVSEP_STATUS,      /* → PrivsepStatusReply */
	PRIVSEP_QUOTE,       /* PrivsepQuoteRequest → PrivsepQuoteReply */
	PRIVSEP_EVENT_LOG,   /* → PrivsepBytesReply (the firmware event log or --event-log) */
	PRIVSEP_ESCROW_GET,  /* → PrivsepBytesReply (escrow.json of the state dir; size 0 = none) */
	PRIVSEP_ESCROW_DONE, /* the server acknowledged the escrow: exec moves escrow.json aside */
	PRIVSEP_ACTIVATE,    /* enroll only: PrivsepActivateRequest → PrivsepActivateReply */
	PRIVSEP_STORE,       /* enroll only: PrivsepStoreRequest + blobs → empty */
	PRIVSEP_EXECUTE,     /* run only: PrivsepExecuteRequest + COSE bytes → PrivsepExecuteReply */
	PRIVSEP_LEASE_LOCK,  /* run only: the device policy's offline lease expired → PrivsepExecuteReply */
	PRIVSEP_CHECKIN,     /* run only: a successful check-in; exec records its time → empty */
	PRIVSEP_POWEROFF,    /* run only: a lock --poweroff was reported; exec powers off → empty */
	_PRIVSEP_TYPE_MAX,
} PrivsepType;

typedef struct PrivsepHeader {
	uint32_t type;       /* PrivsepType */
	uint32_t size;       /* payload bytes after this header: must equal datagram size - 8 */
} PrivsepHeader;

/* Every reply: the request's type, an errno (0 or negative) and the payload size. A reply with
 * error < 0 carries no payload. */
typedef struct PrivsepReplyHeader {
	uint32_t type;
	int32_t error;
	uint32_t size;
} PrivsepReplyHeader;

typedef struct PrivsepQuoteRequest {
	uint8_t qualifying[32]; /* SHA-256(nonce || TLS exporter), computed by the network process */
	uint32_t pcr_mask;      /* non-zero, PCRs 0–23 only */
} PrivsepQuoteRequest;

typedef struct PrivsepQuoteReply {
	uint32_t attest_size;   /* 1 … PRIVSEP_ATTEST_MAX */
	uint32_t pcr_mask;
	uint8_t attest[PRIVSEP_ATTEST_MAX];
	uint8_t signature[64];  /* ECDSA P-256 r||s */
	uint8_t pcr_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
} PrivsepQuoteReply;

typedef struct PrivsepStatusReply {
	uint64_t epoch;         /* the TPM lock counter */
	uint8_t have_epoch;     /* 0: the counter could not be read (not defined, TPM unreachable) */
	uint8_t locked;         /* the counter is past the stored policy's epoch, or no policy */
	uint8_t enrolled;       /* the state dir holds an enrollment */
	uint8_t disk_encrypted; /* the config names at least one trustpc-tpm2 volume */
	char device_id[DEVICE_ID_STRING_SIZE]; /* "" when not enrolled and no TPM */
	uint8_t _pad[3];
	uint64_t last_seq;      /* the seq of the last command the executor executed (0: none) */
	/* the applied device policy (STATE_DEVICE_POLICY); policy_version 0: none applied */
	uint64_t policy_version;
	uint64_t policy_offline_lease; /* s, 0 = none */
	uint32_t policy_heartbeat;     /* s */
	uint32_t policy_screen_lock;   /* s */
	uint8_t policy_usb_storage;
	uint8_t _pad2[7];
	uint64_t last_checkin;         /* Unix s of the last recorded check-in (CHECKIN), 0 = none */
} PrivsepStatusReply;

typedef struct PrivsepBytesReply {
	uint32_t size;
	uint8_t data[];         /* size bytes follow; the reply's length must match exactly */
} PrivsepBytesReply;

typedef struct PrivsepActivateRequest {
	uint32_t id_object_size;        /* 1 … PRIVSEP_CRED_MAX */
	uint32_t encrypted_secret_size; /* 1 … PRIVSEP_CRED_MAX */
	uint8_t id_object[PRIVSEP_CRED_MAX];
	uint8_t encrypted_secret[PRIVSEP_CRED_MAX];
} PrivsepActivateRequest;

typedef struct PrivsepActivateReply {
	uint32_t secret_size;
	uint8_t secret[PRIVSEP_SECRET_MAX];
} PrivsepActivateReply;

/* The files of a finished enrollment, as opaque bytes: the executor writes them, it does not parse
 * them. device_id is checked against the id the executor derives from its own TPM's EK. */
typedef enum PrivsepStoreBlob {
	STORE_DEVICE_CERT,  /* device.pem (PEM, converted by the network process) */
	STORE_CA_CERT,      /* ca.pem */
	STORE_POLICY_KEY,   /* policy-key.pem */
	STORE_ESCROW_KEY,   /* escrow-key.pem */
	STORE_COMMAND_KEY,  /* command-key.pem (size 0: the server sent none) */
	STORE_POLICY,       /* policy.json (size 0: the server sent none); last */
	_STORE_BLOB_MAX,
} PrivsepStoreBlob;

typedef struct PrivsepStoreRequest {
	char device_id[DEVICE_ID_STRING_SIZE]; /* NUL-terminated, 32 lower-case hex digits */
	uint8_t _pad[3];
	uint32_t sizes[_STORE_BLOB_MAX]; /* each ≤ PRIVSEP_STORE_BLOB_MAX; the blobs follow in order */
} PrivsepStoreRequest;

/* A signed command (docs/PRIVSEP.md "EXECUTE"): the raw COSE_Sign1 exactly as the server sent it.
 * The executor verifies it again with its own copy of the command key and its own last_seq. */
typedef struct PrivsepExecuteRequest {
	uint32_t size;          /* 1 … PRIVSEP_COSE_MAX; exactly that many COSE bytes follow */
} PrivsepExecuteRequest;

/* The executor's outcome; the network process turns it into a signed result (command.h). */
typedef struct PrivsepExecuteReply {
	char id[DEVICE_ID_STRING_SIZE];        /* the command id (32 hex), "" if it could not be parsed */
	uint8_t _pad[3];
	uint32_t type;          /* CommandType, 0 when unparsed */
	uint32_t status;        /* ResultStatus: done, rejected, failed */
	uint64_t seq;
	uint64_t epoch;         /* the lock counter after execution */
	uint8_t has_epoch;
	uint8_t locked;         /* the lock state after execution */
	uint8_t redelivered;    /* the stored result of the last command, nothing was done again */
	uint8_t poweroff;       /* a lock --poweroff is done: send its result, then POWEROFF */
	uint8_t _pad2[4];
	char reason[PRIVSEP_REASON_MAX];
} PrivsepExecuteReply;

const char *privsep_type_name(uint32_t type);

/* The executor's gate: given one received datagram, checks the header, the exact size of its type
 * and every field range. 0 and *ret_type on success; -EPROTO with *ret_reason (static) otherwise.
 * enroll: ACTIVATE and STORE are allowed only then; QUOTE/ESCROW only when not enrolling. */
int privsep_request_check(const void *buf, size_t n, bool enroll, PrivsepType *ret_type,
			  const char **ret_reason);

/* One datagram each way. privsep_send: -EMSGSIZE above PRIVSEP_MSG_MAX. privsep_recv returns the
 * datagram size, 0 at EOF (the peer is gone), -EMSGSIZE when it was truncated. EINTR is retried. */
int privsep_send(int fd, const void *buf, size_t n);
ssize_t privsep_recv(int fd, void *buf, size_t max);
/* Sends header + payload as one datagram. */
int privsep_send_msg(int fd, uint32_t type, const void *payload, size_t size);
int privsep_send_reply(int fd, uint32_t type, int error, const void *payload, size_t size);

/* ---- the network side's calls (blocking round trips) ----
 * Each returns the executor's error (negative errno), -ECONNRESET when the executor is gone, and
 * -EPROTO for a reply that does not match the request (type, size). */
int privsep_call(int fd, PrivsepType type, const void *req, size_t req_size, void *reply, size_t reply_max,
		 size_t *ret_reply_size);
int privsep_ready(int fd);
int privsep_status(int fd, PrivsepStatusReply *ret);
int privsep_quote(int fd, const uint8_t qualifying[32], uint32_t pcr_mask, PrivsepQuoteReply *ret);
/* *ret malloc'ed (may be empty: *ret_size == 0, *ret non-NULL). */
int privsep_event_log(int fd, uint8_t **ret, size_t *ret_size);
int privsep_escrow_get(int fd, char **ret, size_t *ret_size);
int privsep_escrow_done(int fd);
int privsep_activate(int fd, const uint8_t *id_object, size_t id_object_size, const uint8_t *encrypted_secret,
		     size_t encrypted_secret_size, uint8_t **ret_secret, size_t *ret_secret_size);
typedef struct PrivsepStoreBlobs {
	const char *device_id;
	const void *data[_STORE_BLOB_MAX];
	size_t size[_STORE_BLOB_MAX];
} PrivsepStoreBlobs;
int privsep_store(int fd, const PrivsepStoreBlobs *b);
/* -EINVAL for an empty or larger than PRIVSEP_COSE_MAX command (never sent: the executor would
 * take it for a violation). */
int privsep_execute(int fd, const uint8_t *cose, size_t n, PrivsepExecuteReply *ret);
/* The offline lease expired: the executor locks (as a remote lock) if the applied policy has a
 * lease. -EPERM when it has none. The reply's id is "" and seq 0. */
int privsep_lease_lock(int fd, PrivsepExecuteReply *ret);
/* Records a successful check-in (so that a restart does not start the lease afresh). */
int privsep_checkin(int fd);
/* After the result of a lock --poweroff reached the server (or a bound passed): the executor powers
 * the machine off through systemd. -EPERM: no such lock was executed since the executor started. */
int privsep_poweroff(int fd);
