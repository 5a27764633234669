/* SPDX-License-Identifier: Apache-2.0 */
/* Commands on the device port (docs/PROTOCOL.md "Commands"): delivery of the stored, signed
 * commands to an attested device, and the device's signed results.
 *
 * Delivery happens right after every attestation, whenever a command is queued for a device
 * that is connected and attested, and after each result (one command in flight per device). Every pending command (queued, or delivered without a result)
 * is sent again on each new connection: the device answers a command it already executed with
 * the stored result (its seq check makes a second execution impossible), so a connection or a
 * server that died between sending and the result loses nothing and doubles nothing. */
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

static void result_refused(ServerConn *c, const char *device_id, const char *why)
{
	log_warning("Device %s (%s): command result refused: %s.", device_id, c->peer, why);
	/* Rate limited: the device's connection is authenticated, but a broken or hostile agent could
	 * still send refused results in a loop and grow the audit chain without bound. */
	server_audit_rate_limited(c->server, "command.result-refused", device_id,
				  json_pack("{s:s,s:s}", "reason", why, "peer", c->peer));
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

int server_command_result(ServerConn *c, const DeviceCommandPeer *peer, const ProtoMessage *m)
{
	Server *s = c->server;
	_cleanup_(command_result_done) CommandResult res = {};
	_cleanup_(command_record_done) CommandRecord cmd = {};
	uint8_t digest[SHA256_SIZE];
	const char *why = NULL;
	CommandState state;
	int r;

	/* The agent signs results with its TLS key: the key this connection's certificate carries
	 * and that enrollment registered, so only this device can have made it. */
	r = command_result_verify(peer->tls_key, m->result.cose.data, m->result.cose.size, &res, &why);
	if (r < 0) {
		result_refused(c, peer->device_id, why ?: "bad signature or malformed result");
		return 0;
	}
	if (!streq(res.device_id, peer->device_id)) {
		result_refused(c, peer->device_id, "result names another device");
		return 0;
	}
	/* The TPM's proof (lock and wipe): its qualifying data must be the hash of this result. */
	if (m->result.has_quote) {
		r = sha256(m->result.cose.data, m->result.cose.size, digest);
		if (r >= 0)
			r = tpm2_quote_verify(peer->ak_point, m->result.quote.data, m->result.quote.size,
					      m->result.quote_signature.data, digest, sizeof(digest),
					      m->result.pcrs.mask, m->result.pcrs.values, &why);
		if (r < 0) {
			result_refused(c, peer->device_id, "the quote with the result does not verify");
			return 0;
		}
	}
	if (res.id[0] == 0) {
		r = unreadable_command(s, peer, &res, &cmd);
		if (r <= 0)
			return r;
	} else
		r = store_command_get(s->store, res.id, &cmd);
	if (r == -ENOENT || (r >= 0 && (!streq(cmd.device_id, peer->device_id) || cmd.seq != res.seq))) {
		/* A result we cannot match (a command of another server, an edited database): logged, not
		 * acted on. */
		log_notice("Device %s: result for unknown command %s (seq %" PRIu64 "); ignored.",
			   peer->device_id, res.id, res.seq);
		return 0;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read command %s: %m; the device will send its result again.",
				res.id);
		return 0;
	}
	state = state_from_status(res.status);
	if (state == 0) {
		result_refused(c, peer->device_id, "unknown result status");
		return 0;
	}
	r = store_command_finish(s->store, res.id,
				 &(CommandOutcome){.state = state,
						   .reason = res.reason,
						   .result_cose = m->result.cose.data,
						   .result_cose_size = m->result.cose.size,
						   .has_epoch = res.has_epoch,
						   .epoch = res.epoch,
						   .quoted = m->result.has_quote},
				 time(NULL));
	if (r == -ESTALE) {
		/* The answer to a redelivery: the first result counts. */
		log_debug("Device %s: result for finished command %s again; ignored.", peer->device_id,
			  res.id);
		return 0;
	}
	if (r < 0) {
		log_error_errno(
		    r, "Cannot record the result of command %s: %m; the device will send it again.", res.id);
		return 0;
	}
	log_info("Command %s (%s, seq %" PRIu64 ") on %s: %s%s%s.", res.id, cmd.type, res.seq,
		 peer->device_id, command_state_name(state), res.reason && *res.reason ? ": " : "",
		 res.reason ?: "");
	return 0;
}
