/* SPDX-License-Identifier: Apache-2.0 */
/* The one outbound connection to the server's device port (docs/PROTOCOL.md "Attestation"):
 * TCP connect → TLS handshake (mutual, fleet CA pinned, server name = host of --server) →
 * challenge → attest → attest-result → heartbeats at the server's interval. Any failure closes the
 * connection and schedules a reconnect with jittered exponential backoff. When idle and connected
 * the only wake-up is the heartbeat timer. */
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "privsep-proto.h"
#include "proto/proto.h"

#define RBUF_SIZE (4 + PROTO_FRAME_MAX)

static uint64_t now_usec(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static int timer_arm(Agent *a, uint64_t delay)
{
	uint64_t when = now_usec(CLOCK_MONOTONIC) + delay;
	int r;

	if (!a->timer) {
		/* Accuracy 1 s: lets the kernel coalesce our wake-up with others (we never need more). */
		r = sd_event_add_time(a->event, &a->timer, CLOCK_MONOTONIC, when, 1000000, on_timer, a);
		if (r < 0)
			return r;
		return 0;
	}
	r = sd_event_source_set_time(a->timer, when);
	if (r >= 0)
		r = sd_event_source_set_enabled(a->timer, SD_EVENT_ONESHOT);
	return r;
}

static void timer_disarm(Agent *a)
{
	if (a->timer)
		(void)sd_event_source_set_enabled(a->timer, SD_EVENT_OFF);
}

static int io_set(Agent *a)
{
	uint32_t ev = EPOLLIN;

	if (!a->io)
		return 0;
	/* Writable interest only while something waits for the socket, or the wake-up would repeat
	 * forever on an idle connection. */
	if (a->state == CONN_CONNECTING || a->wlen > 0)
		ev |= EPOLLOUT;
	return sd_event_source_set_io_events(a->io, ev);
}

void agent_conn_close(Agent *a, bool retry)
{
	a->conn = tls_conn_free(a->conn);
	a->io = sd_event_source_disable_unref(a->io);
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -EBADF;
	a->rlen = 0;
	free(a->wbuf);
	a->wbuf = NULL;
	a->wlen = 0;
	a->nacks = 0;
	a->state = CONN_IDLE;
	agent_set_connected(a, false);
	agent_set_attested(a, false);
	timer_disarm(a);
	if (retry && a->enrolled) {
		uint32_t rnd = 0;
		(void)crypto_random_bytes(&rnd, sizeof(rnd));
		uint64_t d = backoff_next(&a->backoff, rnd);
		log_info("Reconnecting to %s:%s in %.1f s.", a->host, a->port, (double)d / 1e6);
		if (timer_arm(a, d) < 0)
			log_warning("Cannot arm the reconnect timer; reconnecting only on CheckInNow().");
	}
}

void agent_conn_done(Agent *a)
{
	agent_conn_close(a, false);
	a->timer = sd_event_source_disable_unref(a->timer);
	a->poweroff_timer = sd_event_source_disable_unref(a->poweroff_timer);
	free(a->rbuf);
	a->rbuf = NULL;
}

static void conn_fail(Agent *a, int r, const char *what)
{
	log_warning_errno(r, "Connection to %s:%s: %s: %m", a->host, a->port, what);
	agent_conn_close(a, true);
}

static int flush(Agent *a)
{
	while (a->wlen > 0) {
		ssize_t k = tls_write(a->conn, a->wbuf, a->wlen);
		if (k == -EAGAIN)
			break;
		if (k < 0)
			return (int)k;
		memmove(a->wbuf, a->wbuf + k, a->wlen - (size_t)k);
		a->wlen -= (size_t)k;
	}
	return io_set(a);
}

int agent_send(Agent *a, const ProtoMessage *m)
{
	_cleanup_free_ uint8_t *frame = NULL;
	uint8_t *nb;
	size_t n;
	int r;

	r = proto_encode(m, &frame, &n);
	if (r < 0)
		return r;
	nb = realloc(a->wbuf, a->wlen + n);
	if (!nb)
		return -ENOMEM;
	memcpy(nb + a->wlen, frame, n);
	a->wbuf = nb;
	a->wlen += n;
	return flush(a);
}

static int ack_push(Agent *a, AckKind k)
{
	if (a->nacks >= AGENT_ACKS_MAX)
		return -ENOBUFS; /* the server stopped answering: the caller reconnects */
	a->acks[a->nacks++] = k;
	return 0;
}

static bool ack_outstanding(const Agent *a, AckKind k)
{
	for (unsigned i = 0; i < a->nacks; i++)
		if (a->acks[i] == k)
			return true;
	return false;
}

static int send_heartbeat_kind(Agent *a, AckKind kind)
{
	ProtoMessage m = {.type = PROTO_HEARTBEAT};
	int r;

	r = agent_posture(a, &m.heartbeat.posture);
	if (r < 0)
		return r;
	r = ack_push(a, kind);
	if (r < 0)
		return r;
	return agent_send(a, &m);
}

static int send_heartbeat(Agent *a)
{
	return send_heartbeat_kind(a, ACK_HEARTBEAT);
}

static void poweroff_now(Agent *a, const char *why)
{
	int r;

	if (!a->poweroff_timer)
		return; /* done already (the ack and the timer both end up here) */
	a->poweroff_timer = sd_event_source_disable_unref(a->poweroff_timer);
	log_notice("Lock with power-off: %s; asking the executor to power off.", why);
	r = privsep_poweroff(a->privsep_fd);
	if (r < 0)
		log_error_errno(r, "The executor did not power off: %m");
}

static int on_poweroff_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	poweroff_now(userdata, "the server did not acknowledge the result in time");
	return 0;
}

void agent_poweroff_begin(Agent *a)
{
	int r;

	if (a->poweroff_timer)
		return;
	r = sd_event_add_time_relative(a->event, &a->poweroff_timer, CLOCK_MONOTONIC,
				       AGENT_POWEROFF_WAIT_USEC, 0, on_poweroff_timer, a);
	if (r < 0) {
		log_warning_errno(r, "Cannot arm the power-off timer: %m");
		a->poweroff_timer = NULL;
		(void)privsep_poweroff(a->privsep_fd);
		return;
	}
	r = a->state == CONN_READY ? send_heartbeat_kind(a, ACK_POWEROFF) : -ENOTCONN;
	if (r < 0)
		poweroff_now(a, "the result could not be confirmed");
}

/* The escrow file is JSON made by trustpc-disk (escrow_seal); its context names the volume:
 * "recovery-key:<device id>:<luks uuid>". */
static int escrow_luks_uuid(const Agent *a, const char *blob, size_t n, char **ret)
{
	_cleanup_(json_decrefp) json_t *o = json_loadb(blob, n, JSON_REJECT_DUPLICATES, NULL);
	const char *ctx, *rest, *colon;

	ctx = json_string_value(json_object_get(o, "context"));
	if (!ctx)
		return -EBADMSG;
	rest = startswith(ctx, "recovery-key:");
	if (!rest)
		return -EBADMSG;
	colon = strchr(rest, ':');
	if (!colon || (size_t)(colon - rest) != DEVICE_ID_STRING_SIZE - 1 ||
	    strncmp(rest, a->device_id, DEVICE_ID_STRING_SIZE - 1) != 0)
		return -EXDEV;
	if (!colon[1] || strlen(colon + 1) > 64)
		return -EBADMSG;
	*ret = strdup(colon + 1);
	return *ret ? 0 : -ENOMEM;
}

static int upload_escrow(Agent *a)
{
	_cleanup_free_ char *blob = NULL, *uuid = NULL;
	ProtoMessage m = {.type = PROTO_ESCROW};
	size_t n;
	int r;

	a->escrow_sent = true;
	r = privsep_escrow_get(a->privsep_fd, &blob, &n);
	if (r < 0) {
		log_warning_errno(r, "Cannot read the pending escrow file: %m");
		return 0;
	}
	if (n == 0)
		return 0;
	r = escrow_luks_uuid(a, blob, n, &uuid);
	if (r < 0) {
		log_warning_errno(r, "The pending escrow file is not a recovery key escrow for device %s; not "
				     "uploading it.", a->device_id);
		return 0;
	}
	m.escrow.luks_uuid = uuid;
	m.escrow.blob = blob;
	r = ack_push(a, ACK_ESCROW);
	if (r < 0)
		return r;
	log_info("Uploading the escrowed recovery key of LUKS volume %s.", uuid);
	return agent_send(a, &m);
}

static int handle_challenge(Agent *a, const ProtoMessage *m)
{
	_cleanup_free_ PrivsepQuoteReply *q = NULL;
	_cleanup_free_ uint8_t *log = NULL;
	uint8_t exporter[TLS_EXPORTER_SIZE], qualifying[32];
	ProtoMessage out = {.type = PROTO_ATTEST};
	size_t log_size;
	int r;

	if (m->challenge.pcr_mask == 0 || (m->challenge.pcr_mask & ~PRIVSEP_QUOTE_PCRS))
		return log_warning_errno(EBADMSG, "The server asked for an invalid PCR selection 0x%x.",
					 m->challenge.pcr_mask);
	/* Channel binding: the quote names this TLS connection, so it cannot be relayed into
	 * another session or replayed later (docs/PROTOCOL.md, Attestation step 2). */
	r = tls_exporter(a->conn, exporter);
	if (r < 0)
		return r;
	r = sha256_many(qualifying, m->challenge.nonce, (size_t)PROTO_NONCE_SIZE, exporter, sizeof(exporter), NULL);
	if (r < 0)
		return r;
	q = malloc(sizeof(*q));
	if (!q)
		return -ENOMEM;
	r = privsep_quote(a->privsep_fd, qualifying, m->challenge.pcr_mask, q);
	if (r < 0)
		return log_warning_errno(r, "The executor could not quote: %m");
	r = privsep_event_log(a->privsep_fd, &log, &log_size);
	if (r < 0)
		return log_warning_errno(r, "The executor could not read the event log: %m");
	r = agent_posture(a, &out.attest.posture);
	if (r < 0)
		return r;
	out.attest.quote = (ProtoBytes){q->attest, q->attest_size};
	out.attest.signature = (ProtoBytes){q->signature, sizeof(q->signature)};
	out.attest.pcrs.mask = q->pcr_mask;
	memcpy(out.attest.pcrs.values, q->pcr_values, sizeof(out.attest.pcrs.values));
	out.attest.event_log = (ProtoBytes){log, log_size};
	r = agent_send(a, &out);
	if (r < 0)
		return r;
	a->state = CONN_ATTESTING;
	log_debug("Sent attest (PCR mask 0x%06x, event log %zu bytes).", q->pcr_mask, log_size);
	return 0;
}

static int handle_attest_result(Agent *a, const ProtoMessage *m)
{
	uint32_t hb = m->attest_result.heartbeat;
	bool trusted = streq_ptr(m->attest_result.state, "trusted");
	PrivsepStatusReply st;
	int r;

	if (!trusted && !streq_ptr(m->attest_result.state, "quarantined"))
		return log_warning_errno(EBADMSG, "Unknown attestation state from the server.");
	/* The device policy's heartbeat (signed by the fleet) wins over this unsigned hint. */
	a->server_heartbeat = hb;
	if (privsep_status(a->privsep_fd, &st) >= 0)
		agent_policy_update(a, &st);
	else
		a->heartbeat_sec = agent_heartbeat_interval(a->policy_heartbeat, hb);
	a->state = CONN_READY;
	backoff_reset(&a->backoff);
	agent_set_attested(a, trusted);
	agent_set_last_checkin(a, now_usec(CLOCK_REALTIME));
	if (trusted) {
		/* a successful attested check-in: the offline lease starts again */
		agent_lease_checkin(a);
		log_info("Attested to %s:%s; heartbeat every %u s.", a->host, a->port, a->heartbeat_sec);
	} else
		log_warning("The server quarantined this device: %s. Only lock, unlock and wipe reach it.",
			    strna(m->attest_result.reason));
	r = timer_arm(a, (uint64_t)a->heartbeat_sec * 1000000);
	if (r < 0)
		return r;
	if (trusted && !a->escrow_sent)
		return upload_escrow(a);
	return 0;
}

static int handle_ack(Agent *a)
{
	AckKind k;

	if (a->nacks == 0) {
		log_debug("Unsolicited ack from the server; ignored.");
		return 0;
	}
	k = a->acks[0];
	memmove(a->acks, a->acks + 1, (a->nacks - 1) * sizeof(a->acks[0]));
	a->nacks--;
	if (k == ACK_HEARTBEAT || k == ACK_POWEROFF) {
		agent_set_last_checkin(a, now_usec(CLOCK_REALTIME));
		/* a heartbeat acknowledged on a trusted connection is a check-in for the lease */
		if (a->attested)
			agent_lease_checkin(a);
		if (k == ACK_POWEROFF)
			poweroff_now(a, "the server has the result");
	} else if (k == ACK_ESCROW) {
		int r = privsep_escrow_done(a->privsep_fd);
		if (r < 0)
			log_warning_errno(r, "The escrow upload was acknowledged, but the executor could not record it: %m");
	}
	return 0;
}

static int handle_message(Agent *a, const ProtoMessage *m)
{
	switch (m->type) {
	case PROTO_ERROR:
		if (streq_ptr(m->error.code, "not-enrolled"))
			log_error("The server does not know this device (not-enrolled: %s). Enroll it again: "
				  "trustpcd enroll --server HOST:PORT --token TOKEN --ca FLEET_CA.pem",
				  strna(m->error.message));
		else
			log_warning("The server closed the connection with error %s: %s", strna(m->error.code),
				    strna(m->error.message));
		return -ECONNRESET;
	case PROTO_CHALLENGE:
		if (a->state != CONN_CHALLENGE)
			break;
		return handle_challenge(a, m);
	case PROTO_ATTEST_RESULT:
		if (a->state != CONN_ATTESTING)
			break;
		return handle_attest_result(a, m);
	case PROTO_ACK:
		if (a->state != CONN_READY)
			break;
		return handle_ack(a);
	case PROTO_COMMAND:
		if (a->state != CONN_READY)
			break;
		return agent_command_handle(a, m->command.cose.data, m->command.cose.size);
	default:
		break;
	}
	return log_warning_errno(EBADMSG, "Unexpected '%s' from the server in this state; reconnecting.",
				 proto_type_name(m->type));
}

static int process_frames(Agent *a)
{
	for (;;) {
		ProtoMessage m = {0};
		const char *why = NULL;
		size_t payload;
		int r;

		r = proto_frame_size(a->rbuf, a->rlen, &payload);
		if (r < 0)
			return log_warning_errno(r, "The server sent an oversized or empty frame.");
		if (r == 0 || a->rlen < 4 + payload)
			return 0;
		r = proto_decode(a->rbuf + 4, payload, &m, &why);
		if (r < 0)
			return log_warning_errno(r, "Malformed message from the server: %s", strna(why));
		r = handle_message(a, &m);
		proto_message_done(&m);
		if (r < 0)
			return r;
		memmove(a->rbuf, a->rbuf + 4 + payload, a->rlen - 4 - payload);
		a->rlen -= 4 + payload;
		if (a->state == CONN_IDLE)
			return 0;
	}
}

static int do_read(Agent *a)
{
	/* Read until mbedTLS says it would block: records already decrypted inside it are invisible
	 * to epoll (tls.h), so stopping early could leave a message unread until the next packet. */
	for (;;) {
		ssize_t k;
		int r;

		if (a->rlen >= RBUF_SIZE)
			return -EMSGSIZE; /* cannot happen: process_frames consumes whole frames */
		k = tls_read(a->conn, a->rbuf + a->rlen, RBUF_SIZE - a->rlen);
		if (k == -EAGAIN)
			return 0; /* nothing decrypted left either: tls_read drains tls_pending() first */
		if (k < 0)
			return (int)k;
		if (k == 0)
			return -ECONNRESET;
		a->rlen += (size_t)k;
		r = process_frames(a);
		if (r < 0 || a->state == CONN_IDLE)
			return r;
	}
}

static int handshake_step(Agent *a)
{
	int r = tls_handshake(a->conn);

	if (r == -EAGAIN)
		return io_set(a);
	if (r == -EACCES || r == -EPROTO) {
		log_error("TLS handshake with %s:%s failed: %s. The server must present a certificate from the "
			  "fleet CA for '%s'.",
			  a->host, a->port, strna(tls_verify_error(a->conn)), a->host);
		return r;
	}
	if (r < 0)
		return r;
	if (tls_conn_save_session(a->conn) < 0)
		log_debug("Cannot keep the TLS session for resumption.");
	log_info("Connected to %s:%s (%s); waiting for the challenge.", a->host, a->port,
		 tls_resumed(a->conn) ? "resumed session" : "full handshake");
	a->state = CONN_CHALLENGE;
	agent_set_connected(a, true);
	r = io_set(a);
	if (r < 0)
		return r;
	return do_read(a);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Agent *a = userdata;
	int r = 0, err = 0;
	socklen_t len = sizeof(err);

	switch (a->state) {
	case CONN_CONNECTING:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			conn_fail(a, -err, "connect failed");
			return 0;
		}
		a->state = CONN_HANDSHAKE;
		r = handshake_step(a);
		break;
	case CONN_HANDSHAKE:
		r = handshake_step(a);
		break;
	case CONN_IDLE:
		return 0;
	default:
		if (revents & EPOLLOUT)
			r = flush(a);
		if (r >= 0 && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			r = do_read(a);
		break;
	}
	if (r < 0 && a->state != CONN_IDLE)
		conn_fail(a, r, r == -ECONNRESET ? "closed by the server" : "failed");
	return 0;
}

int agent_conn_start(Agent *a)
{
	_cleanup_close_ int fd = -EBADF;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
	int r;

	if (!a->enrolled)
		return -ENOLINK;
	agent_conn_close(a, false);
	if (!a->rbuf) {
		a->rbuf = malloc(RBUF_SIZE);
		if (!a->rbuf)
			return -ENOMEM;
	}
	r = getaddrinfo(a->host, a->port, &hints, &ai);
	if (r != 0) {
		log_warning("Cannot resolve %s: %s", a->host, gai_strerror(r));
		agent_conn_close(a, true);
		return 0;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)) {
		r = -errno;
		freeaddrinfo(ai);
		conn_fail(a, r, "connect failed");
		return 0;
	}
	freeaddrinfo(ai);
	r = tls_conn_new(a->tls, fd, a->host, &a->conn);
	if (r < 0)
		return log_error_errno(r, "Cannot set up TLS: %m");
	r = sd_event_add_io(a->event, &a->io, fd, EPOLLOUT, on_io, a);
	if (r < 0) {
		a->conn = tls_conn_free(a->conn);
		return log_error_errno(r, "Cannot watch the connection: %m");
	}
	a->fd = TAKE_FD(fd);
	a->state = CONN_CONNECTING;
	a->escrow_sent = false;
	log_debug("Connecting to %s:%s.", a->host, a->port);
	/* One deadline for TCP, TLS and the attestation exchange: a server that accepts and then
	 * says nothing must not hold the agent forever. */
	return timer_arm(a, AGENT_CONNECT_TIMEOUT_USEC);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Agent *a = userdata;
	int r;

	switch (a->state) {
	case CONN_IDLE:
		r = agent_conn_start(a);
		if (r < 0)
			agent_conn_close(a, true);
		return 0;
	case CONN_READY:
		/* The previous heartbeat is still unanswered after a whole interval: the connection is
		 * dead even if TCP has not noticed yet. */
		if (ack_outstanding(a, ACK_HEARTBEAT)) {
			conn_fail(a, -ETIMEDOUT, "no answer to the last heartbeat");
			return 0;
		}
		r = send_heartbeat(a);
		if (r >= 0)
			r = timer_arm(a, (uint64_t)a->heartbeat_sec * 1000000);
		if (r < 0)
			conn_fail(a, r, "heartbeat failed");
		return 0;
	default:
		conn_fail(a, -ETIMEDOUT, "no attestation within 30 s");
		return 0;
	}
}

int agent_check_in_now(Agent *a)
{
	int r;

	if (!a->enrolled)
		return -ENOLINK;
	switch (a->state) {
	case CONN_READY:
		if (ack_outstanding(a, ACK_HEARTBEAT))
			return 0;
		r = send_heartbeat(a);
		if (r >= 0)
			r = timer_arm(a, (uint64_t)a->heartbeat_sec * 1000000);
		if (r < 0)
			conn_fail(a, r, "heartbeat failed");
		return 0;
	case CONN_IDLE:
		backoff_reset(&a->backoff);
		return agent_conn_start(a);
	default:
		return 0; /* a connection attempt is under way */
	}
}
