/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* lib/proto: the wire format between trustpcd and trustpc-server (docs/PROTOCOL.md).
 * Frames: 4-byte big-endian length, then one CBOR map (RFC 8949) of at most PROTO_FRAME_MAX
 * bytes. Every message has the text key "t" naming its type. Decoders are strict (definite
 * lengths only, no duplicate keys, no unknown keys, exact byte-string sizes, bounded text) and
 * return -EBADMSG with a static reason naming the field. Only this module includes <cbor.h>. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_FRAME_MAX 65536
#define PROTO_NONCE_SIZE 32
#define PROTO_TEXT_MAX 1024       /* reasons, hostnames, versions, tokens */
#define PROTO_BLOB_MAX 16384      /* certificates, TPM structures, escrow blobs */
#define PROTO_EVENT_LOG_MAX 49152 /* the event log shares the frame with the quote */
#define PROTO_PCRS_MAX 24
#define PROTO_ACTIVATE_SECRET_MAX 64 /* activate.secret is a TPM2B_DIGEST */

typedef enum ProtoType {
	PROTO_ERROR = 1,       /* either way: {"t":"error","code":tstr,"message":tstr}, then close */
	PROTO_ENROLL,          /* device → server (enroll port) */
	PROTO_CREDENTIAL,      /* server → device */
	PROTO_ACTIVATE,        /* device → server */
	PROTO_ENROLLED,        /* server → device */
	PROTO_CHALLENGE,       /* server → device (device port), first message of every connection */
	PROTO_ATTEST,          /* device → server */
	PROTO_ATTEST_RESULT,   /* server → device */
	PROTO_HEARTBEAT,       /* device → server */
	PROTO_ACK,             /* server → device */
	PROTO_ESCROW,          /* device → server: escrowed recovery key */
	PROTO_COMMAND,         /* server → device: COSE_Sign1 command (issue 4) */
	PROTO_RESULT,          /* device → server: COSE_Sign1 result (issue 4) */
	_PROTO_TYPE_MAX,
} ProtoType;

const char *proto_type_name(ProtoType t); /* "enroll", … (the "t" value) */

typedef struct ProtoBytes {
	const uint8_t *data; /* points into the decoded frame's storage, see ProtoMessage */
	size_t size;
} ProtoBytes;

typedef struct ProtoPcrs {
	uint32_t mask;
	uint8_t values[PROTO_PCRS_MAX][32];
} ProtoPcrs;

typedef struct ProtoPosture {
	const char *image_version;  /* may be NULL */
	const char *agent_version;  /* may be NULL */
	uint64_t epoch;             /* lock counter */
	bool has_epoch;
	bool locked;
	bool disk_encrypted;
	uint64_t uptime;            /* seconds */
	uint64_t policy_version;    /* applied device policy version, 0 = none */
} ProtoPosture;

typedef struct ProtoMessage {
	ProtoType type;
	union {
		struct { const char *code, *message; } error;
		struct {
			const char *token;       /* one-time enrollment token */
			ProtoBytes ek_cert;      /* DER, the TPM's ECC P-256 EK certificate */
			ProtoBytes ak_public;    /* marshalled TPM2B_PUBLIC of the AK */
			ProtoBytes tls_public;   /* SubjectPublicKeyInfo DER of the device's TLS key */
			const char *hostname;
			ProtoPcrs pcrs;          /* current PCR values (for the first disk policy) */
			uint64_t epoch;          /* current lock counter */
		} enroll;
		struct { ProtoBytes id_object, encrypted_secret; } credential;
		struct { ProtoBytes secret; } activate;
		struct {
			const char *device_id;
			ProtoBytes device_cert, ca_cert, policy_key, escrow_key; /* DER */
			const char *policy;      /* signed disk policy JSON, may be NULL */
			bool has_command_key;    /* optional: the fleet command public key (issue 4) */
			ProtoBytes command_key;  /* SubjectPublicKeyInfo DER, when has_command_key */
		} enrolled;
		struct { uint8_t nonce[PROTO_NONCE_SIZE]; uint32_t pcr_mask; } challenge;
		struct {
			ProtoBytes quote;        /* marshalled TPMS_ATTEST (from TPM2B_ATTEST) */
			ProtoBytes signature;    /* ECDSA P-256 raw r||s, 64 bytes */
			ProtoPcrs pcrs;          /* the quoted PCR values */
			ProtoBytes event_log;    /* TCG PC Client crypto-agile event log, may be empty */
			ProtoPosture posture;
		} attest;
		struct { const char *state, *reason; uint32_t heartbeat; } attest_result; /* "trusted"|"quarantined" */
		struct { ProtoPosture posture; } heartbeat;
		struct { const char *luks_uuid; const char *blob; } escrow; /* blob: escrow JSON */
		struct { ProtoBytes cose; } command;
		struct {
			ProtoBytes cose;
			/* Optional, all three or none (has_quote): the TPM's proof for a lock or wipe
			 * result, a quote whose qualifying data is SHA-256 of cose (command.h). */
			bool has_quote;
			ProtoBytes quote;           /* marshalled TPMS_ATTEST */
			ProtoBytes quote_signature; /* ECDSA P-256 raw r||s, 64 bytes */
			ProtoPcrs pcrs;             /* the quoted PCR values */
		} result;
	};
	/* private: owns the decoded strings/bytes that the fields point to */
	void *_storage;
} ProtoMessage;

/* Decodes one CBOR payload (without the 4-byte length). -EBADMSG (*ret_reason set) on anything
 * malformed or oversized; -ENOMEM. *ret_reason is a static string naming the field, e.g.
 * "enroll.hostname: invalid UTF-8", "attest.signature: wrong size", "heartbeat: unknown key",
 * "t: unknown message type", "message: trailing bytes". ret_reason may be NULL. The strings and
 * byte strings of *ret point into storage owned by *ret (wiped when freed: it may hold the
 * enrollment token or the activation secret). Free with proto_message_done. Absent optional
 * fields: NULL strings, zero numbers (posture), NULL enrolled.policy for a CBOR null. */
int proto_decode(const uint8_t *buf, size_t n, ProtoMessage *ret, const char **ret_reason);
/* Frees the storage of a decoded message and zeroes *m. Safe on a zeroed (never decoded) message
 * and on NULL. Do not call it on a message you built yourself whose _storage is not NULL. */
void proto_message_done(ProtoMessage *m);

/* Encodes m into a malloc'ed frame INCLUDING the 4-byte length prefix. The encoder refuses what
 * the decoder would refuse: -EINVAL for an unknown type, a NULL required string, a string that is
 * not NUL-free UTF-8 or too long, a byte string of the wrong size (or NULL data with size > 0), a
 * PCR mask with bits above 23, an attest-result state other than "trusted"/"quarantined";
 * -EMSGSIZE when the payload would exceed PROTO_FRAME_MAX; -ENOMEM. The output is the preferred
 * serialization (shortest heads), keys in the order of the docs/PROTOCOL.md tables with "t" first;
 * PCR maps and lists in ascending PCR order. Free the frame with free() (or erase_and_free() for
 * enroll/activate: they carry the token and the activation secret). */
int proto_encode(const ProtoMessage *m, uint8_t **ret, size_t *ret_size);

/* Framing helper for stream readers: given the bytes received so far, returns the payload size
 * of the first frame once its 4-byte header is complete (0 while incomplete), -EMSGSIZE when it
 * announces more than PROTO_FRAME_MAX or zero bytes. *ret_payload (may be NULL) is set only when
 * the return value is positive, to that same value. */
int proto_frame_size(const uint8_t *buf, size_t n, size_t *ret_payload);

/* Field-by-field equality of two messages (strings and bytes by content, only the members of the
 * type; PCR values only for PCRs in the mask). For tests and for recognising a repeated message. */
bool proto_message_equal(const ProtoMessage *a, const ProtoMessage *b);
