/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Issuing a command (docs/PROTOCOL.md "Commands", server side): check it against the device's
 * record, build the arguments (an unlock carries a disk policy signed here for the new epoch),
 * then sign and enqueue it in one store transaction (store_command_enqueue). Used by the admin
 * API; delivery is the server's (server-command.c). */

#include <stdbool.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "proto/command.h"
#include "store.h"

typedef struct CommandIssueKeys {
	const EcKey *command_key; /* signs commands (state dir command.key) */
	const EcKey *policy_key;  /* signs the unlock's disk policy (policy.key) */
	uint32_t policy_pcrs;	  /* PCRs the disk policy binds (PCR 15 = 0 is added) */
	uint32_t ttl;		  /* seconds from iat to exp */
} CommandIssueKeys;

typedef struct CommandSpec {
	CommandType type;
	const char *reason;	/* lock; may be NULL (= "") */
	bool poweroff;		/* lock */
	const char *class_name; /* wipe: a data class or "all" */
	DevicePolicy policy;	/* policy */
} CommandSpec;

/* The checks command_issue starts with, for callers that validate before touching any device
 * (a fleet-wide command): -EINVAL with *ret_why. */
int command_spec_check(const CommandSpec *spec, const char **ret_why);

/* Validates spec (-EINVAL, *ret_why says what), then enqueues. *ret is the stored command.
 *   -ENOENT  no such device
 *   -EBUSY   unlock while a lock of that device is still pending (its epoch is not known yet)
 *   -ENODATA unlock for a device whose image, expected PCR values or epoch are not known
 * *ret_why is a static or caller-lifetime string for the operator. */
int command_issue(Store *s, const CommandIssueKeys *k, const char *issuer, const char *device_id,
		  const CommandSpec *spec, CommandRecord *ret, const char **ret_why);

/* The lowest device epoch an unlock policy can be signed for (docs/PROTOCOL.md "Commands"):
 * the largest of the last lock result's epoch and the last posture's. -ENODATA when neither. */
int command_unlock_epoch(Store *s, const DeviceRecord *d, uint64_t *ret);
