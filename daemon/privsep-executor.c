/* SPDX-License-Identifier: Apache-2.0 */
/* The executor's request loop. Every request has passed privsep_request_check (exact size, every
 * range) before a handler sees it; a handler re-derives what it can from its own sources (device
 * id from its own TPM, epoch from the TPM counter) instead of trusting the network process. */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "agent-state.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "executor-command.h"
#include "privsep-executor.h"
#include "privsep-proto.h"
#include "proto/command.h"

static int handle_status(Executor *e)
{
	PrivsepStatusReply s = {0};
	ExecState st = {0};
	DevicePolicy dp = {0};
	uint64_t counter = 0;
	int r;

	s.enrolled = e->enrolled;
	s.disk_encrypted = e->disk_encrypted;
	memcpy(s.device_id, e->device_id, sizeof(s.device_id));
	if (e->tpm) {
		r = tpm2_counter_read(e->tpm, TPM2_LOCK_COUNTER_NV_INDEX, &counter);
		if (r >= 0) {
			s.epoch = counter;
			s.have_epoch = 1;
		} else
			log_debug_errno(r, "Reading the lock counter failed: %m");
		if (!e->device_id[0] && tpm2_device_id(e->tpm, s.device_id) < 0)
			s.device_id[0] = 0;
	}
	/* Locked: the counter moved past the stored policy's epoch (a remote lock), or no valid
	 * policy: the disk will not unlock at the next boot either way. */
	s.locked = !e->has_policy || (s.have_epoch && counter != e->policy_epoch);
	/* The command state is the executor's own: the network process learns last_seq from here to
	 * pre-check commands, the executor still checks against its file itself. */
	if (exec_state_load(e->state_dir, &st) >= 0) {
		s.last_seq = st.last_seq;
		s.locked = s.locked || st.locked;
	}
	if (exec_device_policy_load(e->state_dir, &dp) >= 0) {
		s.policy_version = dp.version;
		s.policy_offline_lease = dp.offline_lease;
		s.policy_heartbeat = dp.heartbeat;
		s.policy_screen_lock = dp.screen_lock;
		s.policy_usb_storage = dp.usb_storage;
		if (dp.offline_lease > 0)
			(void)exec_checkin_load(e->state_dir, &s.last_checkin);
	}
	return privsep_send_reply(e->fd, PRIVSEP_STATUS, 0, &s, sizeof(s));
}

static int handle_quote(Executor *e, const uint8_t *payload)
{
	_cleanup_free_ PrivsepQuoteReply *rep = NULL;
	PrivsepQuoteRequest q;
	Tpm2Quote tq = {0};
	int r;

	memcpy(&q, payload, sizeof(q));
	if (!e->tpm || !e->ak)
		return privsep_send_reply(e->fd, PRIVSEP_QUOTE, e->tpm ? -ENOLINK : -ENODEV, NULL, 0);
	r = tpm2_quote(e->tpm, e->ak, q.qualifying, sizeof(q.qualifying), q.pcr_mask, &tq);
	if (r < 0) {
		log_warning_errno(r, "TPM2_Quote failed: %m");
		return privsep_send_reply(e->fd, PRIVSEP_QUOTE, r, NULL, 0);
	}
	rep = calloc(1, sizeof(*rep));
	if (!rep || tq.attest_size == 0 || tq.attest_size > PRIVSEP_ATTEST_MAX) {
		tpm2_quote_done(&tq);
		return privsep_send_reply(e->fd, PRIVSEP_QUOTE, rep ? -EIO : -ENOMEM, NULL, 0);
	}
	rep->attest_size = (uint32_t)tq.attest_size;
	rep->pcr_mask = q.pcr_mask;
	memcpy(rep->attest, tq.attest, tq.attest_size);
	memcpy(rep->signature, tq.signature, sizeof(rep->signature));
	memcpy(rep->pcr_values, tq.pcr_values, sizeof(rep->pcr_values));
	tpm2_quote_done(&tq);
	log_debug("Quoted PCR mask 0x%06x for the network process.", q.pcr_mask);
	return privsep_send_reply(e->fd, PRIVSEP_QUOTE, 0, rep, sizeof(*rep));
}

/* Replies with a file's bytes (PrivsepBytesReply); a missing or unreadable file is an empty reply
 * because the caller goes on without it (empty event log, no escrow pending). */
static int reply_file(Executor *e, PrivsepType type, const char *path, size_t max)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	size_t n = 0;
	uint32_t size;
	int r;

	r = read_full_file(path, max, false, &data, &n);
	if (r == -EFBIG)
		log_warning("%s is larger than %zu bytes; sending none of it.", path, max);
	else if (r < 0 && r != -ENOENT)
		log_debug_errno(r, "Cannot read %s: %m", path);
	if (r < 0)
		n = 0;
	buf = malloc(sizeof(uint32_t) + n);
	if (!buf)
		return privsep_send_reply(e->fd, type, -ENOMEM, NULL, 0);
	size = (uint32_t)n;
	memcpy(buf, &size, sizeof(size));
	if (n > 0)
		memcpy(buf + sizeof(size), data, n);
	return privsep_send_reply(e->fd, type, 0, buf, sizeof(uint32_t) + n);
}

static int handle_escrow_done(Executor *e)
{
	_cleanup_free_ char *from = NULL, *to = NULL;
	int r;

	r = state_path(e->state_dir, STATE_ESCROW, &from);
	if (r >= 0)
		r = state_path(e->state_dir, STATE_ESCROW_DONE, &to);
	if (r >= 0 && rename(from, to) < 0)
		r = -errno;
	if (r >= 0)
		r = fsync_parent_dir(to);
	if (r >= 0)
		log_info("Recovery key escrow acknowledged by the server; moved %s to %s.", from, to);
	else
		log_warning_errno(r, "Cannot move the uploaded escrow file aside: %m");
	return privsep_send_reply(e->fd, PRIVSEP_ESCROW_DONE, r, NULL, 0);
}

static int handle_activate(Executor *e, const uint8_t *payload)
{
	PrivsepActivateRequest a;
	PrivsepActivateReply rep = {0};
	_cleanup_secure_ uint8_t *secret = NULL;
	size_t n = 0;
	int r;

	memcpy(&a, payload, sizeof(a));
	if (!e->tpm || !e->ak)
		return privsep_send_reply(e->fd, PRIVSEP_ACTIVATE, -ENODEV, NULL, 0);
	r = tpm2_activate_credential(e->tpm, e->ak, a.id_object, a.id_object_size, a.encrypted_secret,
				     a.encrypted_secret_size, &secret, &n);
	if (r >= 0 && (n == 0 || n > PRIVSEP_SECRET_MAX))
		r = -EBADMSG;
	if (r < 0) {
		log_error_errno(r, "TPM2_ActivateCredential failed: %m. The credential was not made for this "
				   "TPM's endorsement key and this AK.");
		return privsep_send_reply(e->fd, PRIVSEP_ACTIVATE, r, NULL, 0);
	}
	rep.secret_size = (uint32_t)n;
	memcpy(rep.secret, secret, n);
	log_info("Activated the enrollment credential with the TPM.");
	r = privsep_send_reply(e->fd, PRIVSEP_ACTIVATE, 0, &rep, sizeof(rep));
	memory_erase(&rep, sizeof(rep));
	return r;
}

/* Sequence numbers belong to a command key: a server with another key (the device re-enrolled
 * with a new or rebuilt server) starts again at 1, and would find every command refused as old.
 * Commands of the old key no longer verify, so nothing can be replayed by starting again; the
 * lock state and epoch stay. Written after the new key: a crash in between leaves the old
 * sequence (commands refused, visibly), never the old key with a sequence restarted. */
static int restart_sequence(const char *dir)
{
	ExecState st;
	int r;

	r = exec_state_load(dir, &st);
	if (r < 0)
		return log_error_errno(r, "Cannot read commands.json to restart the command sequence: %m");
	if (st.last_seq == 0)
		return 0;
	log_notice("New fleet command key: command sequence numbers start again (they were at %llu).",
		   (unsigned long long)st.last_seq);
	st.last_seq = 0;
	st.last_id[0] = 0;
	st.last_type = 0;
	st.last_status = 0;
	st.last_reason[0] = 0;
	return exec_state_save(dir, &st);
}

static int handle_store(Executor *e, const uint8_t *payload, size_t n)
{
	static const char *const names[_STORE_BLOB_MAX] = {
		[STORE_DEVICE_CERT] = STATE_DEVICE_CERT, [STORE_CA_CERT] = STATE_CA_CERT,
		[STORE_POLICY_KEY] = STATE_POLICY_KEY,   [STORE_ESCROW_KEY] = STATE_ESCROW_KEY,
		[STORE_POLICY] = STATE_POLICY,          [STORE_COMMAND_KEY] = STATE_COMMAND_KEY,
	};
	_cleanup_free_ char *old_key = NULL;
	char own_id[DEVICE_ID_STRING_SIZE];
	PrivsepStoreRequest s;
	size_t o = sizeof(s), old_key_size = 0;
	int r;

	memcpy(&s, payload, sizeof(s));
	/* The server derives the device id from the EK certificate; we derive it from our own EK.
	 * A different id means the enrollment is for another TPM (or a confused server): keep
	 * nothing of it. */
	r = e->tpm ? tpm2_device_id(e->tpm, own_id) : -ENODEV;
	if (r < 0) {
		log_error_errno(r, "Cannot derive this TPM's device id: %m");
		return privsep_send_reply(e->fd, PRIVSEP_STORE, r, NULL, 0);
	}
	if (!streq(own_id, s.device_id)) {
		log_error("The server enrolled device %s, but this TPM is device %s; storing nothing.",
			  s.device_id, own_id);
		return privsep_send_reply(e->fd, PRIVSEP_STORE, -EREMCHG, NULL, 0);
	}
	if (!e->tls_key_pem || !e->ak_blob)
		return privsep_send_reply(e->fd, PRIVSEP_STORE, -EINVAL, NULL, 0);

	/* The command key this device had (another server's, if it re-enrolls elsewhere). */
	if (state_read(e->state_dir, STATE_COMMAND_KEY, false, &old_key, &old_key_size) < 0) {
		free(old_key);
		old_key = NULL;
	}

	/* Everything but the device id first, the device id last: a crash in between leaves a
	 * state dir that reads as "not enrolled", never a mix of two enrollments in use. */
	r = state_write(e->state_dir, STATE_AK, e->ak_blob, e->ak_blob_size);
	if (r >= 0)
		r = state_write(e->state_dir, STATE_TLS_KEY, e->tls_key_pem, strlen(e->tls_key_pem));
	for (size_t i = 0; r >= 0 && i < _STORE_BLOB_MAX; i++) {
		if (s.sizes[i] > 0)
			r = state_write(e->state_dir, names[i], payload + o, s.sizes[i]);
		else if (i == STORE_COMMAND_KEY) {
			/* A command key of an earlier enrollment must not outlive it. */
			_cleanup_free_ char *p = NULL;
			r = state_path(e->state_dir, names[i], &p);
			if (r >= 0 && unlink(p) < 0 && errno != ENOENT)
				r = -errno;
		}
		o += s.sizes[i];
	}
	if (r >= 0 && old_key) {
		const uint8_t *new_key = payload + sizeof(s);
		size_t new_size = s.sizes[STORE_COMMAND_KEY];

		for (size_t i = 0; i < STORE_COMMAND_KEY; i++)
			new_key += s.sizes[i];
		if (new_size != old_key_size || memcmp(new_key, old_key, new_size) != 0)
			r = restart_sequence(e->state_dir);
	}
	if (r >= 0) {
		char line[DEVICE_ID_STRING_SIZE + 1];
		snprintf(line, sizeof(line), "%s\n", own_id);
		r = state_write(e->state_dir, STATE_DEVICE_ID, line, strlen(line));
	}
	if (r < 0) {
		log_error_errno(r, "Writing the enrollment into %s failed: %m", e->state_dir);
		return privsep_send_reply(e->fd, PRIVSEP_STORE, r, NULL, 0);
	}
	assert(o == n);
	e->stored = true;
	log_info("Stored the enrollment of device %s in %s.", own_id, e->state_dir);
	return privsep_send_reply(e->fd, PRIVSEP_STORE, 0, NULL, 0);
}

static int dispatch(Executor *e, PrivsepType type, const uint8_t *payload, size_t n)
{
	switch (type) {
	case PRIVSEP_READY:
		if (!e->notified) {
			(void)sd_notify(false, "READY=1\nSTATUS=Running.");
			e->notified = true;
		}
		return privsep_send_reply(e->fd, type, 0, NULL, 0);
	case PRIVSEP_STATUS:
		return handle_status(e);
	case PRIVSEP_QUOTE:
		return handle_quote(e, payload);
	case PRIVSEP_EVENT_LOG:
		return reply_file(e, type, e->event_log_path ?: EVENT_LOG_FIRMWARE, PRIVSEP_EVENT_LOG_MAX);
	case PRIVSEP_ESCROW_GET: {
		_cleanup_free_ char *p = NULL;
		if (state_path(e->state_dir, STATE_ESCROW, &p) < 0)
			return privsep_send_reply(e->fd, type, -ENOMEM, NULL, 0);
		return reply_file(e, type, p, PRIVSEP_ESCROW_MAX);
	}
	case PRIVSEP_ESCROW_DONE:
		return handle_escrow_done(e);
	case PRIVSEP_ACTIVATE:
		return handle_activate(e, payload);
	case PRIVSEP_STORE:
		return handle_store(e, payload, n);
	case PRIVSEP_EXECUTE:
		return executor_execute(e, payload + sizeof(PrivsepExecuteRequest), n - sizeof(PrivsepExecuteRequest));
	case PRIVSEP_LEASE_LOCK:
		return executor_lease_lock(e);
	case PRIVSEP_CHECKIN:
		return executor_checkin(e);
	case PRIVSEP_POWEROFF:
		return executor_poweroff(e);
	default:
		return -EPROTO; /* unreachable: privsep_request_check refused it */
	}
}

/* recv() returns 0 both at EOF and for an empty SEQPACKET datagram; only a hang-up is EOF. */
static bool peer_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};

	if (poll(&p, 1, 0) < 0)
		return true;
	return p.revents & (POLLHUP | POLLRDHUP | POLLERR);
}

int executor_run(Executor *e)
{
	_cleanup_free_ uint8_t *buf = NULL;
	const char *why = NULL;
	PrivsepType type;
	ssize_t k;
	int r;

	buf = malloc(PRIVSEP_MSG_MAX);
	if (!buf)
		return log_oom();
	for (;;) {
		k = privsep_recv(e->fd, buf, PRIVSEP_MSG_MAX);
		if (k == 0 && peer_gone(e->fd))
			return 0;
		if (k == 0)
			why = "empty datagram";
		else if (k == -EMSGSIZE)
			why = "datagram larger than any message";
		else if (k < 0)
			return log_error_errno((int)k, "Reading from the network process failed: %m");
		else {
			r = privsep_request_check(buf, (size_t)k, e->enroll, &type, &why);
			if (r >= 0) {
				r = dispatch(e, type, buf + sizeof(PrivsepHeader), (size_t)k - sizeof(PrivsepHeader));
				memory_erase(buf, (size_t)k);
				if (r < 0)
					return log_error_errno(r, "Answering the network process failed: %m");
				e->requests++;
				continue;
			}
		}
		/* The network process only ever sends well-formed requests; anything else means it
		 * no longer runs our code. */
		/* A truncated datagram still left its first bytes in buf: name what it claimed to be. */
		size_t got = k > 0 ? (size_t)k : k == -EMSGSIZE ? PRIVSEP_MSG_MAX : 0;
		uint32_t t = 0;
		if (got >= sizeof(t))
			memcpy(&t, buf, sizeof(t));
		log_error("Protocol violation by the network process: %s (type %u %s, %s%zu bytes). Treating it as "
			  "compromised: stopping it and exiting.",
			  why, t, privsep_type_name(t), k == -EMSGSIZE ? "more than " : "", got);
		return -EPROTO;
	}
}
