/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Signed remote commands and their results (docs/PROTOCOL.md "Commands"; issue 4).
 *
 * A command is a COSE_Sign1 (cose.h) by the server's command key over a CBOR map:
 *   {"id": tstr (32 hex), "device": tstr (device id), "seq": uint (per device, from 1, strictly
 *    increasing), "iat": uint (Unix s), "exp": uint (Unix s), "type": "lock"|"unlock"|"wipe"|
 *    "policy", "args": map (per type, below), "issuer": tstr (operator name)}
 * with external_aad = "trustpc-command" — a command cannot be replayed as anything else.
 *   lock:   {"reason": tstr, "poweroff": bool}
 *   unlock: {"policy": tstr}            the signed disk policy JSON for the new epoch
 *   wipe:   {"class": tstr}             a data class name, or "all"
 *   policy: {"version": uint, "heartbeat": uint (s), "offline_lease": uint (s, 0 = none),
 *            "usb_storage": bool, "screen_lock": uint (s)}
 * A result is a COSE_Sign1 by the device (external_aad = "trustpc-result") over:
 *   {"id", "device", "seq" (of the command), "type", "status": "done"|"rejected"|"failed",
 *    "reason": tstr, "time": uint, "epoch": uint (lock counter after execution, optional)}
 * Lock and wipe results travel with a TPM quote whose qualifying data is SHA-256 of the result's
 * COSE bytes (the `result` message's optional quote fields, proto.h). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

#define COMMAND_ID_SIZE 16
#define COMMAND_CLOCK_SKEW 300 /* seconds an iat may lie in the future */

typedef enum CommandType {
	COMMAND_LOCK = 1,
	COMMAND_UNLOCK,
	COMMAND_WIPE,
	COMMAND_POLICY,
} CommandType;
const char *command_type_name(CommandType t);
int command_type_from_name(const char *s, CommandType *ret);

typedef struct DevicePolicy {
	uint64_t version;
	uint32_t heartbeat;      /* seconds */
	uint64_t offline_lease;  /* seconds, 0 = none */
	bool usb_storage;
	uint32_t screen_lock;    /* seconds */
} DevicePolicy;

typedef struct Command {
	char id[COMMAND_ID_SIZE * 2 + 1];
	char device_id[33];
	uint64_t seq;
	uint64_t iat, exp;
	CommandType type;
	char *issuer;
	union {
		struct { char *reason; bool poweroff; } lock;
		struct { char *policy; } unlock;
		struct { char *class_name; } wipe;
		DevicePolicy policy;
	} args;
} Command;
void command_done(Command *c);

/* Server side: encodes and signs. c->id is filled with a random id when empty. Refuses (-EINVAL)
 * what command_verify would refuse: ids not 32 lower-case hex, seq 0, exp <= iat, unknown type,
 * issuer NULL/empty/> PROTO_TEXT_MAX, lock.reason NULL or > PROTO_TEXT_MAX, unlock.policy empty or
 * > PROTO_BLOB_MAX, a wipe class not 1..64 of [A-Za-z0-9_.-] or starting with '.', a policy with
 * version 0, heartbeat 0 or version/offline_lease > INT64_MAX; -EFBIG when the envelope would
 * exceed COSE_MAX_SIZE; -EINVAL for a key without its private part. */
int command_sign(const EcKey *command_key, Command *c, uint8_t **ret_cose, size_t *ret_size);

/* Device side (both the network process and the executor call this, each on its own):
 * verifies signature and kid against the command key, then the payload:
 *   -EBADMSG  malformed, bad signature, unknown field
 *   -ENOKEY   signed by another key
 *   -EXDEV    for another device
 *   -ESTALE   seq <= last_seq (a replay or an old sequence from the server)
 *   -ETIME    expired (now > exp) or issued in the future (iat > now + COMMAND_CLOCK_SKEW)
 *   -EOPNOTSUPP unknown type
 *   -EFBIG    larger than COSE_MAX_SIZE
 * *ret_reason (static) says which in words. On -ESTALE *ret is still filled (id, seq) so that a
 * redelivery of the last executed command can be answered with its stored result.
 * The checks run in this order, the first failure wins: size, kid, signature, payload, device,
 * seq, time, type. *ret is set on success and on -ESTALE only (free it with command_done; on
 * -ESTALE its type is 0 when the type is unknown); *ret_reason on every error but -ENOMEM. */
int command_verify(const EcKey *command_key, const char *device_id, uint64_t last_seq, uint64_t now,
		   const uint8_t *cose, size_t n, Command *ret, const char **ret_reason);

typedef enum ResultStatus { RESULT_DONE = 1, RESULT_REJECTED, RESULT_FAILED } ResultStatus;
const char *result_status_name(ResultStatus s);

typedef struct CommandResult {
	char id[COMMAND_ID_SIZE * 2 + 1];
	char device_id[33];
	uint64_t seq;
	CommandType type;     /* 0 when the command could not be parsed */
	ResultStatus status;
	char *reason;
	uint64_t time;
	bool has_epoch;
	uint64_t epoch;
} CommandResult;
void command_result_done(CommandResult *r);

/* id may be "" (the command could not be parsed), seq 0 and type 0 likewise; device_id must be 32
 * lower-case hex, reason non-NULL (may be empty, <= PROTO_TEXT_MAX). -EINVAL otherwise. */
int command_result_sign(const EcKey *device_key, const CommandResult *r, uint8_t **ret_cose, size_t *ret_size);
/* Server side: verifies with the device's registered key. Errors as command_verify (no -ESTALE). */
int command_result_verify(const EcKey *device_key, const uint8_t *cose, size_t n, CommandResult *ret,
			  const char **ret_reason);

/* The device policy document as stored on the device (JSON, policy.d): strict parser (exactly
 * the five keys, integers in range, <= 4096 bytes; -EBADMSG with *ret_reason naming the key), and
 * its writer (compact, keys in struct order; -EINVAL for a policy the parser would refuse). */
int device_policy_parse_json(const char *json, size_t n, DevicePolicy *ret, const char **ret_reason);
int device_policy_format_json(const DevicePolicy *p, char **ret);
