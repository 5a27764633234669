/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The executor's half of remote commands (issue 4, docs/PRIVSEP.md "EXECUTE"): it verifies the
 * COSE command again with its own copy of the command key and its own last_seq, then executes it
 * crash-safely:
 *   1. intent record (command-intent.json: id, seq, type, the lock counter before) written
 *      atomically BEFORE anything is done;
 *   2. the action (lock: TPM2_NV_Increment, at most once per command; unlock: the signed disk
 *      policy into policy.json and every volume's token; wipe: luks_erase of a class's volumes);
 *   3. the state (commands.json: last_seq, last_id, the result, locked, epoch) written atomically;
 *   4. the intent removed.
 * A crash between 1 and 3 leaves the intent: the redelivered command (same id and seq) finds it and
 * completes without acting twice. A redelivery after 3 (seq == last_seq, same id) is answered with
 * the stored result. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "privsep-executor.h"
#include "privsep-proto.h"

typedef struct ExecState {
	uint64_t last_seq;
	char last_id[DEVICE_ID_STRING_SIZE]; /* 32 hex + NUL; "" when no command ran yet */
	uint32_t last_type;		     /* CommandType */
	uint32_t last_status;		     /* ResultStatus */
	char last_reason[PRIVSEP_REASON_MAX];
	bool has_epoch;
	uint64_t epoch; /* the lock counter after the last command */
	bool locked;	/* a lock command ran and no unlock since */
	char lock_reason[PRIVSEP_REASON_MAX]; /* the operator's reason (shown by pam_trustpc), "" if none */
} ExecState;

typedef struct ExecIntent {
	char id[DEVICE_ID_STRING_SIZE];
	uint64_t seq;
	uint32_t type;
	bool has_epoch_before;
	uint64_t epoch_before; /* the lock counter read before acting */
} ExecIntent;

/* commands.json. A missing file is the zero state (0). -EBADMSG for a file that is not ours. */
int exec_state_load(const char *dir, ExecState *ret);
int exec_state_save(const char *dir, const ExecState *s);
/* command-intent.json. -ENOENT when there is none. */
int exec_intent_load(const char *dir, ExecIntent *ret);
int exec_intent_save(const char *dir, const ExecIntent *i);
int exec_intent_remove(const char *dir);

/* The lock idempotency rule: given the intent of this lock command (NULL: none survived a crash)
 * and the counter now, whether TPM2_NV_Increment must still be done. The counter only moves
 * forward and only the executor moves it: when it already differs from the value recorded
 * before acting, this command's increment happened before a crash. */
bool exec_lock_needs_increment(const ExecIntent *intent, uint64_t counter_now);

/* The applied device policy (STATE_DEVICE_POLICY, written by a `policy` command). -ENOENT when
 * none was applied; -EBADMSG (logged) for a file the strict parser refuses. */
struct DevicePolicy;
int exec_device_policy_load(const char *dir, struct DevicePolicy *ret);

/* The version rule (docs/PROTOCOL.md "Commands", policy): a policy is applied only when its
 * version is above the applied one (0 = none applied). An older or equal version is a replay of a
 * superseded policy through a valid signature (an admin's stale script, a server restored from a
 * backup): refused, so a fleet can never be rolled back to a longer offline lease. */
bool exec_policy_version_newer(uint64_t applied, uint64_t offered);

/* Serves one EXECUTE request (cose: the verified-by-the-gate size). Replies itself. */
int executor_execute(Executor *e, const uint8_t *cose, size_t n);

/* Serves one LEASE_LOCK request: the network process saw no successful check-in for the applied
 * policy's offline_lease. The executor cannot check the clock of check-ins itself; it trusts the
 * network process with this because that process can always cut the connection anyway — what it
 * checks is that a lease is in force (a policy with offline_lease > 0: -EPERM otherwise). The lock
 * is the remote lock's: TPM2_NV_Increment, commands.json locked with the new epoch, the sessions
 * locked; nothing again when already locked. Replies itself. */
int executor_lease_lock(Executor *e);

/* CHECKIN: records the time of a successful check-in (Unix s) in checkin.json, only while a lease
 * is in force (no write per heartbeat otherwise), so that the lease survives a restart or reboot:
 * a thief cannot reset it by power-cycling an offline machine. Replies itself. */
int executor_checkin(Executor *e);

/* POWEROFF: only after this executor executed (or answered the redelivery of) a lock with
 * poweroff = true — the network process cannot power the machine off on its own. Starts
 * poweroff.target through systemd ("replace-irreversibly": no inhibitor a user holds can stop it),
 * whose shutdown closes the dm-crypt mappings and so drops the disk keys from memory. */
int executor_poweroff(Executor *e);
/* checkin.json: -ENOENT when none, -EBADMSG when not ours. */
int exec_checkin_load(const char *dir, uint64_t *ret);

/* Tests only: called at the named points of a command's execution ("intent-written",
 * "counter-incremented"), so a test can kill the executor exactly there. NULL in trustpcd. */
extern void (*executor_crash_hook)(const char *point);
