/* SPDX-License-Identifier: Apache-2.0 */
/* The network process's half of remote commands (docs/PROTOCOL.md "Commands", issue 4): check the
 * COSE command with the fleet command key (so that garbage never reaches the executor), hand the
 * raw bytes to the executor (which checks them again, on its own), sign the outcome with the
 * device's TLS key and send it back as a `result`, with a TPM quote over it for lock and wipe. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "privsep-proto.h"
#include "proto/command.h"
#include "proto/proto.h"

/* PCRs quoted with a lock/wipe result: Secure Boot state and the UKI, what the server already
 * checks at attestation. */
#define COMMAND_QUOTE_PCRS ((UINT32_C(1) << 7) | (UINT32_C(1) << 11))

static int send_result(Agent *a, const CommandResult *res)
{
	_cleanup_free_ PrivsepQuoteReply *q = NULL;
	_cleanup_free_ uint8_t *cose = NULL;
	ProtoMessage m = {.type = PROTO_RESULT};
	uint8_t digest[32];
	size_t n;
	int r;

	if (!a->result_key)
		return log_warning_errno(ENOKEY, "No device key to sign the result of command %s with.",
					 res->id);
	r = command_result_sign(a->result_key, res, &cose, &n);
	if (r < 0)
		return log_warning_errno(r, "Cannot sign the result of command %s: %m", res->id);
	m.result.cose = (ProtoBytes){cose, n};

	/* The TPM's word that the lock or wipe happened on this machine: a quote over the signed
	 * result, which a stolen TLS key alone cannot produce. */
	if (res->status == RESULT_DONE && (res->type == COMMAND_LOCK || res->type == COMMAND_WIPE)) {
		q = malloc(sizeof(*q));
		if (!q)
			return -ENOMEM;
		r = sha256(cose, n, digest);
		if (r >= 0)
			r = privsep_quote(a->privsep_fd, digest, COMMAND_QUOTE_PCRS, q);
		if (r < 0)
			log_warning_errno(
			    r,
			    "The executor could not quote the result of command %s: %m; sending it "
			    "without the quote.",
			    res->id);
		else {
			m.result.has_quote = true;
			m.result.quote = (ProtoBytes){q->attest, q->attest_size};
			m.result.quote_signature = (ProtoBytes){q->signature, sizeof(q->signature)};
			m.result.pcrs.mask = q->pcr_mask;
			memcpy(m.result.pcrs.values, q->pcr_values, sizeof(m.result.pcrs.values));
		}
	}
	log_info("Command %s (%s, seq %llu): %s%s%s.", res->id[0] ? res->id : "?",
		 res->type ? command_type_name(res->type) : "unparsed", (unsigned long long)res->seq,
		 result_status_name(res->status), res->reason && res->reason[0] ? ": " : "",
		 res->reason ?: "");
	return agent_send(a, &m);
}

static int send_rejected(Agent *a, const Command *c, bool parsed, const char *reason)
{
	CommandResult res = {
	    .seq = parsed ? c->seq : 0,
	    .type = parsed ? c->type : 0,
	    .status = RESULT_REJECTED,
	    .reason = (char *)reason,
	    .time = (uint64_t)time(NULL),
	};

	memcpy(res.device_id, a->device_id, sizeof(res.device_id));
	if (parsed)
		memcpy(res.id, c->id, sizeof(res.id));
	return send_result(a, &res);
}

int agent_command_handle(Agent *a, const uint8_t *cose, size_t n)
{
	_cleanup_(command_done) Command c = {0};
	PrivsepExecuteReply rep;
	PrivsepStatusReply st;
	const char *why = NULL;
	int r;

	if (!a->command_key)
		return send_rejected(a, &c, false, "no fleet command key on the device");
	/* last_seq is the executor's (it checks again against its own file): this is only the
	 * first filter, so that a forged or stale command costs no privileged work. */
	r = privsep_status(a->privsep_fd, &st);
	if (r < 0)
		return log_warning_errno(r, "The executor does not answer: %m");
	r = command_verify(a->command_key, a->device_id, st.last_seq, (uint64_t)time(NULL), cose, n, &c,
			   &why);
	/* The same seq as the last executed one may be a redelivery: the executor answers it with
	 * the stored result (or rejects it when the id differs). */
	if (r < 0 && !(r == -ESTALE && c.seq == st.last_seq))
		return send_rejected(a, &c, r == -ESTALE, why ?: "invalid command");

	r = privsep_execute(a->privsep_fd, cose, n, &rep);
	if (r < 0)
		return log_warning_errno(r, "The executor could not execute command %s: %m", c.id);

	CommandResult res = {
	    .seq = rep.seq,
	    .type = rep.type,
	    .status = rep.status,
	    .reason = rep.reason,
	    .time = (uint64_t)time(NULL),
	    .has_epoch = rep.has_epoch,
	    .epoch = rep.epoch,
	};
	memcpy(res.device_id, a->device_id, sizeof(res.device_id));
	memcpy(res.id, rep.id, sizeof(res.id));
	r = send_result(a, &res);
	if (rep.poweroff)
		agent_poweroff_begin(a);

	/* D-Bus Locked/Epoch and the next posture follow the executor's state. */
	if (privsep_status(a->privsep_fd, &st) >= 0) {
		agent_set_status(a, st.epoch, st.locked);
		/* a policy command: its heartbeat from the next interval on */
		agent_policy_update(a, &st);
	}
	return r;
}
