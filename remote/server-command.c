/* SPDX-License-Identifier: Apache-2.0 */
/* Commands on the device port (docs/PROTOCOL.md "Commands"): delivery of the stored, signed
 * commands to an attested device, and the device's signed results.
 *
 * Delivery happens right after every attestation, whenever a command is queued for a device
 * that is connected and attested, and after each result (one command in flight per device). Every pending
 * command (queued, or delivered without a result) is sent again on each new connection: the device answers a
 * command it already executed with the stored result (its seq check makes a second execution impossible), so
 * a connection or a server that died between sending and the result loses nothing and doubles nothing. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "proto/command.h"
#include "server.h"
#include "tpm2/tpm2-attest.h"

/* What reaches a quarantined device: the commands that contain or recover it. A device whose
 * measurements are wrong must not get a new policy from us (it may not apply it honestly), but
 * it must still be lockable and wipeable. */
static bool allowed_when_quarantined(const char *type)
{
	return streq(type, "lock") || streq(type, "unlock") || streq(type, "wipe");
}

/* A held-back command that a later one overtook can never be executed: the device refuses any
 * seq at or below the last one it saw. Finished by the server as failed, so the helpdesk sees
 * why and can re-issue it. */
static void command_supersede(Server *s, const CommandRecord *held, uint64_t by_seq)
{
	char reason[160];
	int r;

	snprintf(reason, sizeof(reason),
		 "not delivered while the device was quarantined; superseded by seq %" PRIu64
		 " (re-issue it)",
		 by_seq);
	r = store_command_finish(
	    s->store, held->id,
	    &(CommandOutcome){.state = COMMAND_STATE_FAILED, .reason = reason, .actor = SERVER_ACTOR},
	    time(NULL));
	if (r < 0 && r != -ESTALE)
		log_error_errno(r, "Cannot record command %s as superseded: %m.", held->id);
	else
		log_notice("Command %s (%s, seq %" PRIu64 ") for %s: %s.", held->id, held->type, held->seq,
			   held->device_id, reason);
}

int server_commands_deliver(ServerConn *c, const char *device_id, DeviceState state, uint64_t *sent_seq)
{
	Server *s = c->server;
	CommandRecord *list = NULL;
	size_t n = 0;
	int r;

	r = store_command_pending(s->store, device_id, &list, &n);
	if (r < 0) {
		log_error_errno(r, "Cannot read the pending commands of %s: %m; they stay queued.",
				device_id);
		return 0; /* the next connection tries again; the device itself is fine */
	}
	/* One command in flight per device: the next is sent when the previous one's result is in.
	 * The device keeps only its last result, so with one in flight a redelivery after a crash is
	 * always of the last executed command and gets its real result; with two in flight the
	 * older one would come back "rejected (replayed or old)" although it ran. */
	for (size_t i = 0; i < n; i++) {
		CommandRecord *cmd = &list[i];

		if (state != DEVICE_TRUSTED && !allowed_when_quarantined(cmd->type))
			continue; /* held back, does not block the ones the device may get */
		if (cmd->seq <= *sent_seq)
			break; /* sent on this connection: wait for its result */

		/* Anything held back below this seq is dead once this one is sent. */
		for (size_t k = 0; k < i; k++)
			if (list[k].seq > *sent_seq && state != DEVICE_TRUSTED &&
			    !allowed_when_quarantined(list[k].type) && list[k].state != 0) {
				command_supersede(s, &list[k], cmd->seq);
				list[k].state = 0;
			}

		r = conn_send(c, &(ProtoMessage){.type = PROTO_COMMAND,
						 .command = {.cose = {cmd->cose, cmd->cose_size}}});
		if (r < 0) {
			log_warning_errno(r, "Cannot send command %s to %s: %m; it stays pending.", cmd->id,
					  device_id);
			break;
		}
		*sent_seq = cmd->seq;
		/* After it is queued on the connection: a crash between the two leaves it queued and
		 * it is sent again, which the device answers with its stored result. */
		r = store_command_mark_delivered(s->store, cmd->id, time(NULL));
		if (r < 0 && r != -ESTALE)
			log_error_errno(r, "Cannot record command %s as delivered: %m.", cmd->id);
		log_info("Command %s (%s, seq %" PRIu64 ") sent to %s.", cmd->id, cmd->type, cmd->seq,
			 device_id);
		break;
	}
	command_records_free(list, n);
	return 0;
}

static void result_refused(Server *s, const char *device_id, const char *peer, const char *why)
{
	log_warning("Device %s (%s): command result refused: %s.", device_id, peer, why);
	/* Rate limited: the device's connection is authenticated, but a broken or hostile agent could
	 * still send refused results in a loop and grow the audit chain without bound. */
	server_audit_rate_limited(s, "command.result-refused", device_id,
				  json_pack("{s:s,s:s}", "reason", why, "peer", peer));
}

static CommandState state_from_status(ResultStatus st)
{
	switch (st) {
	case RESULT_DONE:
		return COMMAND_STATE_DONE;
	case RESULT_REJECTED:
		return COMMAND_STATE_REJECTED;
	case RESULT_FAILED:
		return COMMAND_STATE_FAILED;
	}
	return 0;
}

/* A `rejected` without an id: the device could not read the command at all (no command key,
 * bad signature, malformed) and so cannot name it. With one command in flight per connection
 * it can only be the one sent last; finished as rejected so that the helpdesk sees why and it
 * is not sent again on every connection. Returns 1 with *ret = that command, 0 when there is
 * nothing to match (logged). */
static int unreadable_command(Server *s, const DeviceCommandPeer *peer, CommandResult *res,
			      CommandRecord *ret)
{
	CommandRecord *list = NULL;
	size_t n = 0;
	int r, found = 0;

	if (res->status != RESULT_REJECTED || res->seq != 0 || peer->sent_seq == 0) {
		log_notice("Device %s: result without a command id (%s); ignored.", peer->device_id,
			   result_status_name(res->status) ?: "?");
		return 0;
	}
	r = store_command_pending(s->store, peer->device_id, &list, &n);
	if (r < 0)
		return log_error_errno(r, "Cannot read the pending commands of %s: %m.", peer->device_id);
	for (size_t i = 0; i < n; i++)
		if (list[i].seq == peer->sent_seq) {
			*ret = list[i];
			list[i] = (CommandRecord){};
			found = 1;
			break;
		}
	command_records_free(list, n);
	if (!found) {
		log_notice("Device %s: unreadable-command result, but seq %" PRIu64
			   " is not pending; ignored.",
			   peer->device_id, peer->sent_seq);
		return 0;
	}
	/* The result keeps the device's words; the record gets the id and seq it answers. */
	memcpy(res->id, ret->id, sizeof(res->id));
	res->seq = ret->seq;
	return 1;
}

static uint8_t *bytes_dup(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ?: 1);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

/* A result on its way: a copy of what the loop knew and of the message (the connection may be
 * gone by the time the workers are done), and the worker's verdict. */
typedef struct ResultJob {
	char device_id[DEVICE_ID_STRING_SIZE];
	char peer[64];
	uint64_t sent_seq;
	uint64_t session; /* the DeviceSession's serial: its "verifying" flag is cleared when done */
	uint8_t tls_point[EC_P256_POINT_SIZE];
	uint8_t ak_point[65];
	uint8_t *cose;
	size_t cose_size;
	bool has_quote;
	uint8_t *quote;
	size_t quote_size;
	uint8_t quote_signature[64];
	ProtoPcrs pcrs;
	/* the worker's verdict: why it is refused, or the verified result */
	const char *why;
	CommandResult res;
} ResultJob;

void server_result_drop(void *p)
{
	ResultJob *j = p;

	if (!j)
		return;
	command_result_done(&j->res);
	free(j->cose);
	free(j->quote);
	free(j);
}

/* Worker thread: both signatures. Touches nothing but the job. */
void server_result_verify(void *p)
{
	ResultJob *j = p;
	_cleanup_ec_key_ EcKey *key = NULL;
	uint8_t digest[SHA256_SIZE];
	const char *why = NULL;
	int r;

	/* The agent signs results with its TLS key: the key this connection's certificate carries
	 * and that enrollment registered, so only this device can have made it. */
	r = ec_key_from_point(j->tls_point, sizeof(j->tls_point), &key);
	if (r >= 0)
		r = command_result_verify(key, j->cose, j->cose_size, &j->res, &why);
	if (r < 0) {
		j->why = why ?: "bad signature or malformed result";
		return;
	}
	if (!streq(j->res.device_id, j->device_id)) {
		j->why = "result names another device";
		return;
	}
	/* The TPM's proof (lock and wipe): its qualifying data must be the hash of this result. */
	if (j->has_quote) {
		r = sha256(j->cose, j->cose_size, digest);
		if (r >= 0)
			r = tpm2_quote_verify(j->ak_point, j->quote, j->quote_size, j->quote_signature,
					      digest, sizeof(digest), j->pcrs.mask, j->pcrs.values, &why);
		if (r < 0)
			j->why = "the quote with the result does not verify";
	}
}

int server_command_result(ServerConn *c, const DeviceCommandPeer *peer, const ProtoMessage *m)
{
	ResultJob *j;
	int r;

	/* The decoder takes a quote_signature of exactly 64 bytes (lib/proto/proto-schema.c). */
	assert(!m->result.has_quote || m->result.quote_signature.size == sizeof(j->quote_signature));
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	snprintf(j->device_id, sizeof(j->device_id), "%s", peer->device_id);
	snprintf(j->peer, sizeof(j->peer), "%s", c->peer);
	j->sent_seq = peer->sent_seq;
	j->session = peer->session;
	memcpy(j->ak_point, peer->ak_point, sizeof(j->ak_point));
	j->cose = bytes_dup(m->result.cose.data, m->result.cose.size);
	j->cose_size = m->result.cose.size;
	j->has_quote = m->result.has_quote;
	if (j->has_quote) {
		j->quote = bytes_dup(m->result.quote.data, m->result.quote.size);
		j->quote_size = m->result.quote.size;
		memcpy(j->quote_signature, m->result.quote_signature.data, sizeof(j->quote_signature));
		j->pcrs = m->result.pcrs;
	}
	r = ec_key_get_point(peer->tls_key, j->tls_point);
	if (r >= 0 && (!j->cose || (j->has_quote && !j->quote)))
		r = -ENOMEM;
	if (r >= 0)
		r = work_pool_submit(c->server->results, j);
	if (r < 0) {
		server_result_drop(j);
		return r;
	}
	return 1; /* being verified */
}

/* Loop thread, inside the burst's store batch: match and record one verified result. */
static void result_record(Server *s, ResultJob *j)
{
	CommandResult *res = &j->res;
	_cleanup_(command_record_done) CommandRecord cmd = {};
	DeviceCommandPeer peer = {.device_id = j->device_id, .sent_seq = j->sent_seq};
	CommandState state;
	int r;

	if (j->why) {
		result_refused(s, j->device_id, j->peer, j->why);
		return;
	}
	if (res->id[0] == 0) {
		r = unreadable_command(s, &peer, res, &cmd);
		if (r <= 0)
			return;
	} else
		r = store_command_get(s->store, res->id, &cmd);
	if (r == -ENOENT || (r >= 0 && (!streq(cmd.device_id, j->device_id) || cmd.seq != res->seq))) {
		/* A result we cannot match (a command of another server, an edited database): logged, not
		 * acted on. */
		log_notice("Device %s: result for unknown command %s (seq %" PRIu64 "); ignored.",
			   j->device_id, res->id, res->seq);
		return;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read command %s: %m; the device will send its result again.",
				res->id);
		return;
	}
	state = state_from_status(res->status);
	if (state == 0) {
		result_refused(s, j->device_id, j->peer, "unknown result status");
		return;
	}
	r = store_command_finish(s->store, res->id,
				 &(CommandOutcome){.state = state,
						   .reason = res->reason,
						   .result_cose = j->cose,
						   .result_cose_size = j->cose_size,
						   .has_epoch = res->has_epoch,
						   .epoch = res->epoch,
						   .quoted = j->has_quote},
				 time(NULL));
	if (r == -ESTALE) {
		/* The answer to a redelivery: the first result counts. */
		log_debug("Device %s: result for finished command %s again; ignored.", j->device_id,
			  res->id);
		return;
	}
	if (r < 0) {
		log_error_errno(r,
				"Cannot record the result of command %s: %m; the device will send it again.",
				res->id);
		return;
	}
	log_info("Command %s (%s, seq %" PRIu64 ") on %s: %s%s%s.", res->id, cmd.type, res->seq,
		 j->device_id, command_state_name(state), res->reason && *res->reason ? ": " : "",
		 res->reason ?: "");
}

/* Loop thread: a burst of verified results. Recorded under one store batch (one commit); only
 * after that commit does any of their devices get its next command — the device keeps only its
 * last result, so a next command sent before this result is durable could, after a crash, leave
 * this one to be answered "replayed or old" although it ran. */
void server_results_done(void *userdata, void **jobs, size_t n)
{
	Server *s = userdata;
	bool batch = store_batch_begin(s->store) >= 0, deliver = true;

	for (size_t i = 0; i < n; i++)
		result_record(s, jobs[i]);
	if (batch && store_batch_commit(s->store) < 0) {
		log_error("Cannot commit %zu command results; the devices will send them again on their "
			  "next connections.",
			  n);
		store_batch_abort(s->store);
		deliver = false;
	}
	for (size_t i = 0; i < n; i++) {
		ResultJob *j = jobs[i];

		server_device_result_done(s, j->device_id, j->session, deliver);
		server_result_drop(j);
	}
}
