/* SPDX-License-Identifier: Apache-2.0 */
/* Listeners and connections: small non-blocking state machines on the server's sd-event loop.
 *
 *   accept → TLS handshake → established (handler) → frames (4-byte length + CBOR) → message
 *   (handler) → … → close after the queued output is written
 *
 * The socket is registered edge-triggered (EPOLLET): every event is processed until the socket
 * says EAGAIN, both for reading and writing. This also covers the TLS trap: bytes that mbedTLS
 * has already decrypted into its record buffer are invisible to epoll, so a reader that stopped
 * after one frame would wait forever for the next; reading until tls_read() says EAGAIN (which it
 * only does once tls_pending() is 0) drains them. Each connection has one deadline (handshake +
 * attestation, then the idle timeout); limits: frame size (PROTO_FRAME_MAX), queued output,
 * connection count per listener (accepting pauses at the bound; the kernel's backlog holds the
 * rest). */
#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "http.h"
#include "server.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define LISTEN_BACKLOG 4096
#define ACCEPT_BURST 64		 /* per dispatch: established connections get their turn too */
#define OUTPUT_MAX (1024 * 1024) /* queued output of a peer that does not read */
/* An admin answer is queued whole (one request per connection): up to what trustpcctl accepts.
 * A fleet command's answer lists every device's command, ~350 bytes each: 3.5 MB for 10,000. */
#define ADMIN_OUTPUT_MAX (HTTP_HEAD_MAX + HTTP_CLIENT_BODY_MAX)
#define CLOSE_FLUSH_SECONDS 5 /* time without write progress on the last message before closing */
#define ADMIN_MAX_CONNECTIONS 64
#define ADMIN_TIMEOUT_SECONDS 10
#define ADMIN_INPUT_MAX (8 * 1024 + 64 * 1024) /* docs/PROTOCOL.md: headers ≤ 8 KiB, body ≤ 64 KiB */

static const char *const listener_names[_LISTENER_MAX] = {
    [LISTENER_ENROLL] = "enroll",
    [LISTENER_DEVICE] = "device",
    [LISTENER_ADMIN] = "admin",
};

static const ConnHandler *const listener_handlers[_LISTENER_MAX] = {
    [LISTENER_ENROLL] = &enroll_handler,
    [LISTENER_DEVICE] = &device_handler,
    [LISTENER_ADMIN] = &admin_handler,
};

static void conn_free(ServerConn *c);

static void *buf_free(void *p)
{
	free(p);
	return NULL;
}

/* ---- listeners ---- */

static bool listener_full(const Listener *l)
{
	const Server *s = l->server;
	if (l->kind == LISTENER_ADMIN)
		return l->n_conns >= l->max_conns;
	/* enroll and device share the bound: both are reachable without an operator credential. */
	return s->listeners[LISTENER_ENROLL].n_conns + s->listeners[LISTENER_DEVICE].n_conns >=
	       s->config.max_connections;
}

static void listener_pause(Listener *l, const char *why)
{
	if (l->paused)
		return;
	l->paused = true;
	(void)sd_event_source_set_enabled(l->io, SD_EVENT_OFF);
	log_warning("Not accepting on the %s port for now: %s.", listener_names[l->kind], why);
}

static void server_resume_listeners(Server *s)
{
	for (size_t i = 0; i < _LISTENER_MAX; i++) {
		Listener *l = &s->listeners[i];
		if (!l->paused || !l->io || listener_full(l))
			continue;
		l->paused = false;
		(void)sd_event_source_set_enabled(l->io, SD_EVENT_ON);
		log_info("Accepting on the %s port again.", listener_names[l->kind]);
	}
}

static void format_peer(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		port = ntohs(in->sin_port);
		snprintf(buf, n, "%s:%u", a, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		port = ntohs(in6->sin6_port);
		snprintf(buf, n, "[%s]:%u", a, port);
	} else
		snprintf(buf, n, "?");
}

static int conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata);
static int conn_timer(sd_event_source *src, uint64_t usec, void *userdata);

static int conn_new(Listener *l, int fd, const struct sockaddr_storage *ss)
{
	Server *s = l->server;
	ServerConn *c;
	uint64_t timeout = l->kind == LISTENER_ADMIN ? ADMIN_TIMEOUT_SECONDS : s->config.attest_timeout;
	int one = 1, r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return log_oom();
	}
	c->server = s;
	c->listener = l;
	c->handler = listener_handlers[l->kind];
	c->fd = fd;
	c->in_max = l->kind == LISTENER_ADMIN ? ADMIN_INPUT_MAX : 4 + PROTO_FRAME_MAX;
	format_peer(ss, c->peer, sizeof(c->peer));
	/* Request/response messages: Nagle would hold each answer for the peer's delayed ACK. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	r = tls_conn_new(l->tls, fd, NULL, &c->tls);
	if (r < 0) {
		log_warning_errno(r, "Cannot set up TLS for %s: %m.", c->peer);
		goto fail;
	}
	r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, conn_io, c);
	if (r < 0) {
		log_warning_errno(r, "Cannot watch the connection of %s: %m.", c->peer);
		goto fail;
	}
	/* Accuracy 1 s: thousands of idle deadlines then share wake-ups. */
	r = sd_event_add_time_relative(s->event, &c->timer, CLOCK_MONOTONIC, timeout * USEC_PER_SEC,
				       USEC_PER_SEC, conn_timer, c);
	if (r < 0) {
		log_warning_errno(r, "Cannot arm the deadline of %s: %m.", c->peer);
		goto fail;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	l->n_conns++;
	log_debug("%s port: connection from %s (%zu open).", listener_names[l->kind], c->peer, s->n_conns);
	return 0;

fail:
	tls_conn_free(c->tls);
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	close(fd);
	free(c);
	return r;
}

static int listener_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	Listener *l = userdata;

	for (unsigned i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss = {};
		socklen_t len = sizeof(ss);
		int cfd;

		if (listener_full(l)) {
			listener_pause(l, "connection bound reached (max_connections)");
			break;
		}
		cfd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered: retrying now would spin. Resume when a connection closes.
				 */
				listener_pause(l, "out of file descriptors or memory (raise LimitNOFILE=)");
				break;
			}
			log_debug_errno(errno, "accept() on the %s port: %m", listener_names[l->kind]);
			continue;
		}
		(void)conn_new(l, cfd, &ss);
	}
	return 0;
}

int listener_open(Server *s, ListenerKind kind, const char *address, uint16_t port)
{
	Listener *l = &s->listeners[kind];
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa = {};
	socklen_t salen;
	int one = 1, r;
	_cleanup_close_ int fd = -EBADF;

	if (inet_pton(AF_INET, address, &sa.in.sin_addr) == 1) {
		sa.in.sin_family = AF_INET;
		sa.in.sin_port = htons(port);
		salen = sizeof(sa.in);
	} else if (inet_pton(AF_INET6, address, &sa.in6.sin6_addr) == 1) {
		sa.in6.sin6_family = AF_INET6;
		sa.in6.sin6_port = htons(port);
		salen = sizeof(sa.in6);
	} else
		return log_error_errno(EINVAL, "'%s' is not a numeric IP address.", address);

	fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(errno, "Cannot create a socket: %m.");
	/* A restarted server (after a crash) must get its ports back while old connections sit in
	 * TIME_WAIT: devices are reconnecting right now. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return log_error_errno(errno, "Cannot set SO_REUSEADDR: %m.");
	if (bind(fd, &sa.sa, salen) < 0)
		return log_error_errno(
		    errno,
		    "Cannot listen on %s port %u (%s port): %m. Is another server running? "
		    "Set %s_port in the config or --%s-port.",
		    address, port, listener_names[kind], listener_names[kind], listener_names[kind]);
	if (listen(fd, LISTEN_BACKLOG) < 0)
		return log_error_errno(errno, "listen() on the %s port failed: %m.", listener_names[kind]);
	salen = sizeof(sa);
	if (getsockname(fd, &sa.sa, &salen) < 0)
		return log_error_errno(errno, "getsockname() failed: %m.");
	l->port = ntohs(sa.sa.sa_family == AF_INET ? sa.in.sin_port : sa.in6.sin6_port);
	r = sd_event_add_io(s->event, &l->io, fd, EPOLLIN, listener_io, l);
	if (r < 0)
		return log_error_errno(r, "Cannot watch the %s port: %m.", listener_names[kind]);
	l->server = s;
	l->kind = kind;
	l->max_conns = kind == LISTENER_ADMIN ? ADMIN_MAX_CONNECTIONS : s->config.max_connections;
	l->fd = TAKE_FD(fd);
	return 0;
}

void listener_close(Listener *l)
{
	l->io = sd_event_source_disable_unref(l->io);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -EBADF;
	l->tls = tls_config_free(l->tls);
}

/* ---- connections ---- */

int conn_set_deadline(ServerConn *c, uint64_t seconds)
{
	int r = sd_event_source_set_time_relative(c->timer, seconds * USEC_PER_SEC);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
	return r;
}

void conn_close_after_write(ServerConn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	(void)conn_set_deadline(c, CLOSE_FLUSH_SECONDS);
}

int conn_send_raw(ServerConn *c, const void *data, size_t n)
{
	uint8_t *p;

	if (c->closing || c->dead)
		return -ECONNRESET;
	if (c->out_size + n > (c->listener->kind == LISTENER_ADMIN ? ADMIN_OUTPUT_MAX : OUTPUT_MAX)) {
		log_info("%s does not read its messages; closing.", c->peer);
		c->dead = true;
		return -ENOBUFS;
	}
	p = realloc(c->out, c->out_size + n);
	if (!p)
		return log_oom();
	memcpy(p + c->out_size, data, n);
	c->out = p;
	c->out_size += n;
	return 0;
}

int conn_send(ServerConn *c, const ProtoMessage *m)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t n;
	int r;

	r = proto_encode(m, &frame, &n);
	if (r < 0)
		return log_error_errno(r, "Cannot encode a '%s' message for %s: %m.",
				       proto_type_name(m->type), c->peer);
	return conn_send_raw(c, frame, n);
}

void conn_send_error(ServerConn *c, const char *code, const char *message)
{
	(void)conn_send(c,
			&(ProtoMessage){.type = PROTO_ERROR, .error = {.code = code, .message = message}});
	conn_close_after_write(c);
}

void conn_input_consume(ServerConn *c, size_t n)
{
	assert(n <= c->in_size);
	memmove(c->in, c->in + n, c->in_size - n);
	c->in_size -= n;
}

void conn_close(ServerConn *c)
{
	if (c->in_dispatch)
		c->dead = true;
	else
		conn_free(c);
}

static void conn_flush(ServerConn *c)
{
	while (!c->dead && c->out_off < c->out_size) {
		/* mbedTLS: after WANT_WRITE the same call must be repeated with the same length (it
		 * has already framed that many bytes into a record and reports them as written once
		 * the record is out). */
		size_t len = c->out_inflight ?: c->out_size - c->out_off;
		ssize_t n = tls_write(c->tls, c->out + c->out_off, len);
		if (n == -EAGAIN) {
			c->out_inflight = len;
			return;
		}
		if (n <= 0) {
			log_debug_errno((int)n, "Writing to %s failed: %m", c->peer);
			c->dead = true;
			return;
		}
		c->out_inflight = 0;
		c->out_off += (size_t)n;
		/* A peer that reads keeps its last message coming, however long it is (the server may
		 * be busy between writes); one that stops reading is dropped CLOSE_FLUSH_SECONDS later. */
		if (c->closing)
			(void)conn_set_deadline(c, CLOSE_FLUSH_SECONDS);
	}
	c->out = buf_free(c->out);
	c->out_size = c->out_off = 0;
	if (c->closing)
		c->dead = true;
}

void conn_kick(ServerConn *c)
{
	/* Inside its own dispatch the flush at the end does it. */
	if (c->in_dispatch)
		return;
	c->in_dispatch = true;
	conn_flush(c);
	c->in_dispatch = false;
	if (c->dead)
		conn_free(c);
}

/* One complete frame in c->in: decode and hand over. */
static void conn_frame(ServerConn *c)
{
	ProtoMessage m = {};
	const char *why = NULL;
	int r;

	r = proto_decode(c->in + 4, c->in_size - 4, &m, &why);
	if (r < 0) {
		c->handler->fail(c, "bad-message", why ?: "malformed message");
		conn_close_after_write(c);
		return;
	}
	r = c->handler->message(c, &m);
	proto_message_done(&m);
	if (r < 0)
		conn_close_after_write(c);
}

/* How many more bytes the frame being received needs (0: the header announced a bad size). */
static size_t conn_frame_want(ServerConn *c)
{
	size_t payload;
	int r;

	if (c->in_size < 4)
		return 4 - c->in_size;
	r = proto_frame_size(c->in, c->in_size, &payload);
	if (r < 0 || payload == 0 || payload > PROTO_FRAME_MAX)
		return 0;
	return 4 + payload - c->in_size;
}

static void conn_read(ServerConn *c)
{
	bool admin = c->listener->kind == LISTENER_ADMIN;

	while (!c->dead && !c->closing) {
		size_t want;
		ssize_t n;

		if (admin) {
			want = MIN((size_t)16384, c->in_max - c->in_size);
			if (want == 0) {
				c->handler->fail(c, "too-large", "request larger than 72 KiB");
				conn_close_after_write(c);
				return;
			}
		} else {
			want = conn_frame_want(c);
			if (want == 0) {
				c->handler->fail(c, "bad-message", "frame length is 0 or above 65536 bytes");
				conn_close_after_write(c);
				return;
			}
		}
		if (c->in_alloc < c->in_size + want) {
			uint8_t *p = realloc(c->in, c->in_size + want);
			if (!p) {
				log_oom();
				c->dead = true;
				return;
			}
			c->in = p;
			c->in_alloc = c->in_size + want;
		}
		n = tls_read(c->tls, c->in + c->in_size, want);
		if (n == -EAGAIN)
			return;
		if (n == 0) {
			log_debug("%s closed the connection.", c->peer);
			c->dead = true;
			return;
		}
		if (n < 0) {
			log_debug_errno((int)n, "Reading from %s failed: %m", c->peer);
			c->dead = true;
			return;
		}
		c->in_size += (size_t)n;

		if (admin) {
			if (c->handler->input(c) < 0)
				conn_close_after_write(c);
			continue;
		}
		/* Loop: want() sees an invalid header, or the frame is not complete yet. */
		if (c->in_size < 4 || proto_frame_size(c->in, c->in_size, NULL) <= 0 ||
		    conn_frame_want(c) > 0)
			continue;
		conn_frame(c);
		/* Idle devices hold no input buffer: memory per connection is the target (issue 3). */
		c->in = buf_free(c->in);
		c->in_size = c->in_alloc = 0;
	}
}

static void conn_handshake_failed(ServerConn *c, int r)
{
	const char *why = tls_verify_error(c->tls);

	if (c->listener->kind == LISTENER_DEVICE && r == -EACCES) {
		/* A client certificate that is missing or not from the fleet CA: issue 3 wants this
		 * visible (audited, rate limited: anyone can cause it). */
		log_notice("Device port: refused %s: %s.", c->peer,
			   why && *why ? why : "client certificate rejected");
		server_audit_rate_limited(c->server, "device.rejected", c->peer,
					  json_pack("{s:s,s:s}", "reason",
						    why && *why ? why : "client certificate rejected",
						    "peer", c->peer));
		return;
	}
	log_debug_errno(r, "%s port: TLS handshake with %s failed: %m (%s)",
			listener_names[c->listener->kind], c->peer, strna(why));
}

static void conn_process(ServerConn *c)
{
	int r;

	if (!c->established) {
		r = tls_handshake(c->tls);
		if (r == -EAGAIN)
			return;
		if (r < 0) {
			conn_handshake_failed(c, r);
			c->dead = true;
			return;
		}
		c->established = true;
		r = c->handler->established(c);
		if (r < 0)
			conn_close_after_write(c);
	}
	conn_flush(c);
	conn_read(c);
	conn_flush(c);
}

static int conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	ServerConn *c = userdata;

	c->in_dispatch = true;
	conn_process(c);
	c->in_dispatch = false;
	if (c->dead)
		conn_free(c);
	return 0;
}

static int conn_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
	ServerConn *c = userdata;

	c->in_dispatch = true;
	if (c->closing || !c->established) {
		if (!c->established)
			log_debug("%s did not finish the TLS handshake in time.", c->peer);
		c->dead = true;
	} else {
		c->handler->timeout(c);
		conn_close_after_write(c);
		conn_flush(c);
	}
	c->in_dispatch = false;
	if (c->dead)
		conn_free(c);
	return 0;
}

static void conn_free(ServerConn *c)
{
	Server *s = c->server;

	c->handler->closed(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	c->listener->n_conns--;
	tls_conn_free(c->tls); /* close_notify, best effort */
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
	server_resume_listeners(s);
}

void server_close_all_conns(Server *s)
{
	while (s->conns)
		conn_free(s->conns);
}
