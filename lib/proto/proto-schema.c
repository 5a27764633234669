/* SPDX-License-Identifier: Apache-2.0 */
/* The message schema of docs/PROTOCOL.md "Framing", as data: one table per message type, read by
 * both the encoder and the decoder. */
#include <stddef.h>
#include <string.h>

#include "basic/macro.h"
#include "proto/proto-internal.h"

#define REASONS(name)                                                                                \
	{                                                                                            \
		.type = name ": wrong type", .size = name ": wrong size", .utf8 = name ": invalid UTF-8", \
		.nul = name ": contains NUL", .value = name ": bad value", .dup = name ": duplicate key", \
		.missing = name ": missing", .indefinite = name ": indefinite length",               \
		.truncated = name ": truncated", .malformed = name ": malformed CBOR", .pcr = name ": PCR number not 0-23",                \
		.pcr_dup = name ": duplicate PCR",                                                   \
	}

#define M(member) offsetof(ProtoMessage, member)

/* A field of a message: required, length bounds min..max where they apply. */
#define FIELD(msg, k, kind_, member, min_, max_)                                                     \
	{                                                                                            \
		.key = k, .kind = kind_, .offset = M(member), .min = min_, .max = max_,             \
		.present_offset = -1, .r = REASONS(msg "." k),                                       \
	}

#define TEXT(msg, k, member) FIELD(msg, k, PROTO_FIELD_TEXT, member, 0, PROTO_TEXT_MAX)
#define BYTES(msg, k, member, max_) FIELD(msg, k, PROTO_FIELD_BYTES, member, 0, max_)

#define SCHEMA(t, name_, table)                                                                      \
	[t] = {                                                                                      \
		.name = name_,                                                                       \
		.fields = table,                                                                     \
		.n_fields = ELEMENTSOF(table),                                                       \
		.unknown_key = name_ ": unknown key",                                                \
		.key_type = name_ ": key not a text string",                                         \
	}

static const ProtoField error_fields[] = {
	TEXT("error", "code", error.code),
	TEXT("error", "message", error.message),
};

static const ProtoField enroll_fields[] = {
	TEXT("enroll", "token", enroll.token),
	BYTES("enroll", "ek_cert", enroll.ek_cert, PROTO_BLOB_MAX),
	BYTES("enroll", "ak_public", enroll.ak_public, PROTO_BLOB_MAX),
	BYTES("enroll", "tls_public", enroll.tls_public, PROTO_BLOB_MAX),
	TEXT("enroll", "hostname", enroll.hostname),
	FIELD("enroll", "pcrs", PROTO_FIELD_PCR_MAP, enroll.pcrs, 0, 0),
	FIELD("enroll", "epoch", PROTO_FIELD_UINT64, enroll.epoch, 0, 0),
};

static const ProtoField credential_fields[] = {
	BYTES("credential", "id_object", credential.id_object, PROTO_BLOB_MAX),
	BYTES("credential", "encrypted_secret", credential.encrypted_secret, PROTO_BLOB_MAX),
};

static const ProtoField activate_fields[] = {
	/* TPM2B_DIGEST: at most the largest digest, 64 bytes */
	BYTES("activate", "secret", activate.secret, PROTO_ACTIVATE_SECRET_MAX),
};

/* A field of a group that is optional as a whole: present_offset is the group's flag; the
 * decoder requires every member once one is there, the encoder writes all of them or none. */
#define GROUP(msg, k, kind_, member, min_, max_, flag)                                               \
	{                                                                                            \
		.key = k, .kind = kind_, .offset = M(member), .min = min_, .max = max_,             \
		.optional = true, .present_offset = M(flag), .r = REASONS(msg "." k),                \
	}

static const ProtoField enrolled_fields[] = {
	TEXT("enrolled", "device_id", enrolled.device_id),
	BYTES("enrolled", "device_cert", enrolled.device_cert, PROTO_BLOB_MAX),
	BYTES("enrolled", "ca_cert", enrolled.ca_cert, PROTO_BLOB_MAX),
	BYTES("enrolled", "policy_key", enrolled.policy_key, PROTO_BLOB_MAX),
	BYTES("enrolled", "escrow_key", enrolled.escrow_key, PROTO_BLOB_MAX),
	/* a signed policy is a document, not a label: bounded like a blob */
	FIELD("enrolled", "policy", PROTO_FIELD_TEXT_OR_NULL, enrolled.policy, 0, PROTO_BLOB_MAX),
	/* optional (a group of one): the fleet command public key, SPKI DER (issue 4) */
	GROUP("enrolled", "command_key", PROTO_FIELD_BYTES, enrolled.command_key, 1, PROTO_BLOB_MAX,
	      enrolled.has_command_key),
};

static const ProtoField challenge_fields[] = {
	FIELD("challenge", "nonce", PROTO_FIELD_NONCE, challenge.nonce, PROTO_NONCE_SIZE, PROTO_NONCE_SIZE),
	FIELD("challenge", "pcrs", PROTO_FIELD_PCR_LIST, challenge.pcr_mask, 0, 0),
};

static const ProtoField attest_fields[] = {
	BYTES("attest", "quote", attest.quote, PROTO_BLOB_MAX),
	FIELD("attest", "signature", PROTO_FIELD_BYTES, attest.signature, 64, 64),
	FIELD("attest", "pcrs", PROTO_FIELD_PCR_MAP, attest.pcrs, 0, 0),
	BYTES("attest", "event_log", attest.event_log, PROTO_EVENT_LOG_MAX),
	FIELD("attest", "posture", PROTO_FIELD_POSTURE, attest.posture, 0, 0),
};

static const ProtoField attest_result_fields[] = {
	FIELD("attest-result", "state", PROTO_FIELD_STATE, attest_result.state, 0, PROTO_TEXT_MAX),
	TEXT("attest-result", "reason", attest_result.reason),
	FIELD("attest-result", "heartbeat", PROTO_FIELD_UINT32, attest_result.heartbeat, 0, 0),
};

static const ProtoField heartbeat_fields[] = {
	FIELD("heartbeat", "posture", PROTO_FIELD_POSTURE, heartbeat.posture, 0, 0),
};

static const ProtoField escrow_fields[] = {
	TEXT("escrow", "luks_uuid", escrow.luks_uuid),
	/* escrow JSON (lib/crypto escrow_seal): a blob, like the policy */
	FIELD("escrow", "blob", PROTO_FIELD_TEXT, escrow.blob, 0, PROTO_BLOB_MAX),
};

/* COSE_Sign1 envelopes: at least the 4-element array head, at most what cose_sign1_verify takes
 * (COSE_MAX_SIZE, lib/proto/cose.h; equal to PROTO_BLOB_MAX). */
static const ProtoField command_fields[] = {
	FIELD("command", "cose", PROTO_FIELD_BYTES, command.cose, 1, PROTO_BLOB_MAX),
};

static const ProtoField result_fields[] = {
	FIELD("result", "cose", PROTO_FIELD_BYTES, result.cose, 1, PROTO_BLOB_MAX),
	/* the lock/wipe proof: a quote without its signature or PCRs proves nothing */
	GROUP("result", "quote", PROTO_FIELD_BYTES, result.quote, 1, PROTO_BLOB_MAX, result.has_quote),
	GROUP("result", "quote_signature", PROTO_FIELD_BYTES, result.quote_signature, 64, 64, result.has_quote),
	GROUP("result", "pcrs", PROTO_FIELD_PCR_MAP, result.pcrs, 0, 0, result.has_quote),
};

static const ProtoSchema schemas[_PROTO_TYPE_MAX] = {
	SCHEMA(PROTO_ERROR, "error", error_fields),
	SCHEMA(PROTO_ENROLL, "enroll", enroll_fields),
	SCHEMA(PROTO_CREDENTIAL, "credential", credential_fields),
	SCHEMA(PROTO_ACTIVATE, "activate", activate_fields),
	SCHEMA(PROTO_ENROLLED, "enrolled", enrolled_fields),
	SCHEMA(PROTO_CHALLENGE, "challenge", challenge_fields),
	SCHEMA(PROTO_ATTEST, "attest", attest_fields),
	SCHEMA(PROTO_ATTEST_RESULT, "attest-result", attest_result_fields),
	SCHEMA(PROTO_HEARTBEAT, "heartbeat", heartbeat_fields),
	[PROTO_ACK] = {.name = "ack", .fields = NULL, .n_fields = 0, .unknown_key = "ack: unknown key", .key_type = "ack: key not a text string"}, /* only "t" */
	SCHEMA(PROTO_ESCROW, "escrow", escrow_fields),
	SCHEMA(PROTO_COMMAND, "command", command_fields),
	SCHEMA(PROTO_RESULT, "result", result_fields),
};

#define P(member) offsetof(ProtoPosture, member)
#define POSTURE(k, kind_, member, max_)                                                              \
	{                                                                                            \
		.key = k, .kind = kind_, .offset = P(member), .min = 0, .max = max_, .optional = true, \
		.present_offset = -1, .r = REASONS("posture." k),                                    \
	}

/* docs/PROTOCOL.md: every posture field is optional. */
static const ProtoField posture_fields[] = {
	POSTURE("image_version", PROTO_FIELD_TEXT, image_version, PROTO_TEXT_MAX),
	POSTURE("agent_version", PROTO_FIELD_TEXT, agent_version, PROTO_TEXT_MAX),
	{
		.key = "epoch",
		.kind = PROTO_FIELD_UINT64,
		.offset = P(epoch),
		.optional = true,
		.present_offset = P(has_epoch),
		.r = REASONS("posture.epoch"),
	},
	POSTURE("locked", PROTO_FIELD_BOOL, locked, 0),
	POSTURE("disk_encrypted", PROTO_FIELD_BOOL, disk_encrypted, 0),
	POSTURE("uptime", PROTO_FIELD_UINT64, uptime, 0),
	POSTURE("policy_version", PROTO_FIELD_UINT64, policy_version, 0),
};

const ProtoSchema proto_posture_schema = {
	.name = "posture",
	.fields = posture_fields,
	.n_fields = ELEMENTSOF(posture_fields),
	.unknown_key = "posture: unknown key",
	.key_type = "posture: key not a text string",
};

const ProtoSchema *proto_schema(ProtoType t)
{
	if (t <= 0 || t >= _PROTO_TYPE_MAX)
		return NULL;
	return &schemas[t];
}

ProtoType proto_type_from_name(const uint8_t *s, size_t n)
{
	for (ProtoType t = 1; t < _PROTO_TYPE_MAX; t++)
		if (strlen(schemas[t].name) == n && memcmp(schemas[t].name, s, n) == 0)
			return t;
	return 0;
}

const char *proto_type_name(ProtoType t)
{
	const ProtoSchema *s = proto_schema(t);
	return s ? s->name : NULL;
}
