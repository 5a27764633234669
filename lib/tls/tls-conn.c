/* SPDX-License-Identifier: Apache-2.0 */
/* TLS connections: socket I/O, the handshake, the RFC 5705 exporter, peer identity. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>

#include "basic/log.h"
#include "basic/memory-secure.h"
#include "tls/tls-internal.h"

/* The connection whose handshake this thread is driving. mbedTLS 2.28 only has a config-wide
 * export-keys callback without the ssl context (3.x: mbedtls_ssl_set_export_keys_cb per
 * connection); key derivation happens inside mbedtls_ssl_handshake_step, which only
 * tls_handshake calls, so the thread-local names the right connection. */
static _Thread_local TlsConn *tls_current;

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	TlsConn *t = ctx;

	len = MIN(len, (size_t)INT_MAX);
	for (;;) {
		/* MSG_NOSIGNAL: a peer that went away must give EPIPE, not kill us with SIGPIPE. */
		ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return (int)n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return MBEDTLS_ERR_SSL_WANT_WRITE;
		if (errno == EPIPE || errno == ECONNRESET)
			return MBEDTLS_ERR_NET_CONN_RESET;
		log_debug_errno(errno, "TLS send() failed: %m");
		return MBEDTLS_ERR_NET_SEND_FAILED;
	}
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	TlsConn *t = ctx;

	len = MIN(len, (size_t)INT_MAX);
	for (;;) {
		ssize_t n = recv(t->fd, buf, len, 0);
		if (n >= 0)
			return (int)n; /* 0: EOF, which mbedTLS reports as MBEDTLS_ERR_SSL_CONN_EOF */
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return MBEDTLS_ERR_SSL_WANT_READ;
		if (errno == ECONNRESET)
			return MBEDTLS_ERR_NET_CONN_RESET;
		log_debug_errno(errno, "TLS recv() failed: %m");
		return MBEDTLS_ERR_NET_RECV_FAILED;
	}
}

/* RFC 5705 section 4: PRF(master_secret, label, client_random || server_random)[0..31], no
 * context, with the negotiated suite's TLS 1.2 PRF hash. Called for full and resumed handshakes
 * alike (mbedtls_ssl_derive_keys); the randoms are fresh in both, so the value is per connection.
 * Only the exporter value is kept, never the master secret. */
int tls_export_keys(void *p, const unsigned char *ms, const unsigned char *kb, size_t maclen,
		    size_t keylen, size_t ivlen, const unsigned char client_random[32],
		    const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
	TlsConn *t = tls_current;
	uint8_t seed[64];
	int r;

	if (!t)
		return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
	memcpy(seed, client_random, 32);
	memcpy(seed + 32, server_random, 32);
	r = mbedtls_ssl_tls_prf(prf, ms, 48, TLS_EXPORTER_LABEL, seed, sizeof(seed), t->exporter,
				sizeof(t->exporter));
	t->exporter_set = r == 0;
	return r;
}

static const char *alert_name(unsigned alert)
{
	switch (alert) {
	case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE:
		return "handshake failure";
	case MBEDTLS_SSL_ALERT_MSG_NO_CERT:
		return "no certificate";
	case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
		return "bad certificate";
	case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT:
		return "unsupported certificate";
	case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
		return "certificate expired";
	case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
		return "certificate unknown";
	case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
		return "unknown CA";
	case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
		return "access denied";
	case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR:
		return "decrypt error";
	case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION:
		return "protocol version";
	case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY:
		return "insufficient security";
	case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME:
		return "unrecognized name";
	default:
		return "other";
	}
}

/* mbedtls_x509_crt_verify_info writes one line per flag; make it one line. */
static void format_verify_flags(TlsConn *t, uint32_t flags)
{
	char buf[512];
	size_t k = 0;

	if (mbedtls_x509_crt_verify_info(buf, sizeof(buf), "", flags) < 0)
		snprintf(buf, sizeof(buf), "verification flags 0x%x", flags);
	for (char *p = buf; *p && k + 3 < sizeof(t->verify_error); p++) {
		if (*p != '\n')
			t->verify_error[k++] = *p;
		else if (p[1]) {
			t->verify_error[k++] = ';';
			t->verify_error[k++] = ' ';
		}
	}
	t->verify_error[k] = 0;
}

int tls_error(TlsConn *t, int code, const char *what)
{
	char buf[160];
	uint32_t flags = t ? mbedtls_ssl_get_verify_result(&t->ssl) : 0;
	int r;

	mbedtls_strerror(code, buf, sizeof(buf));
	switch (code) {
	case MBEDTLS_ERR_SSL_WANT_READ:
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return -EAGAIN;
	case MBEDTLS_ERR_SSL_ALLOC_FAILED:
	case MBEDTLS_ERR_X509_ALLOC_FAILED:
		r = -ENOMEM;
		break;
	case MBEDTLS_ERR_SSL_CONN_EOF:
	case MBEDTLS_ERR_NET_CONN_RESET:
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
		r = -ECONNRESET;
		if (t)
			snprintf(t->verify_error, sizeof(t->verify_error), "the peer closed the connection");
		break;
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
		r = -EACCES;
		if (t)
			snprintf(t->verify_error, sizeof(t->verify_error),
				 "the peer sent no certificate, but one is required");
		break;
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
	case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
		/* BAD_HS_CERTIFICATE with flags: mbedTLS refused the certificate's key or purpose
		 * (wrong curve, extendedKeyUsage); without flags it is a malformed message. */
		if (t && flags != 0 && flags != UINT32_MAX) {
			r = -EACCES;
			format_verify_flags(t, flags);
			break;
		}
		r = -EPROTO;
		if (t)
			snprintf(t->verify_error, sizeof(t->verify_error), "malformed certificate message");
		break;
	case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
		r = -EPROTO;
		/* mbedTLS 2.28 keeps the alert record in in_msg ({level, description}); 3.x hides it. */
		if (t)
			snprintf(t->verify_error, sizeof(t->verify_error),
				 "the peer refused the handshake: alert %u (%s)", t->ssl.in_msg[1],
				 alert_name(t->ssl.in_msg[1]));
		break;
	case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
		r = -EPROTO;
		if (t)
			snprintf(t->verify_error, sizeof(t->verify_error),
				 "protocol version refused: only TLS 1.2 is allowed");
		break;
	case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
	case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
		r = -EPROTO;
		if (t)
			snprintf(t->verify_error, sizeof(t->verify_error),
				 "no common cipher suite (ECDHE-ECDSA with AES-GCM on P-256 only)");
		break;
	default:
		r = -EPROTO;
		if (t)
			snprintf(t->verify_error, sizeof(t->verify_error), "TLS error -0x%04x: %s",
				 (unsigned)-code, buf);
	}
	return log_debug_errno(r, "%s failed: mbedTLS error -0x%04x (%s)%s%s", what, (unsigned)-code, buf,
			       t ? ": " : "", t ? t->verify_error : "");
}

int tls_conn_new(TlsConfig *c, int fd, const char *server_name, TlsConn **ret)
{
	TlsConn *t;
	int r;

	if (!c || fd < 0 || !ret)
		return -EINVAL;
	/* CVE-2025-27809: a client without an expected name accepts any certificate of the CA. */
	if (!c->server && (!server_name || !*server_name))
		return -EINVAL;
	if (c->server && server_name)
		return -EINVAL;

	t = calloc(1, sizeof(TlsConn));
	if (!t)
		return -ENOMEM;
	t->config = c;
	t->fd = fd;
	mbedtls_ssl_init(&t->ssl);
	r = mbedtls_ssl_setup(&t->ssl, &c->conf);
	if (r != 0) {
		r = tls_error(NULL, r, "Setting up a TLS connection");
		goto fail;
	}
	if (!c->server) {
		t->server_name = strdup(server_name);
		if (!t->server_name) {
			r = -ENOMEM;
			goto fail;
		}
		r = mbedtls_ssl_set_hostname(&t->ssl, server_name);
		if (r != 0) {
			r = tls_error(NULL, r, "Setting the server name");
			goto fail;
		}
		/* A resumed handshake checks neither the certificate nor the name again: offer a saved
		 * session only to the name it was verified for. */
		if (c->session_name && streq(c->session_name, server_name)) {
			r = mbedtls_ssl_set_session(&t->ssl, &c->session);
			if (r != 0) /* not fatal: the handshake is then a full one */
				(void)tls_error(NULL, r, "Offering the saved session");
		}
	}
	/* A handshake flight is several small records written one by one: with Nagle's algorithm and
	 * the peer's delayed ACK each flight stalls ~40 ms (bench-tls: 11 instead of ~100 handshakes/s
	 * on loopback). Best effort: not a TCP socket (socketpair, unix socket) is fine. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	*ret = t;
	return 0;
fail:
	tls_conn_free(t);
	return r;
}

TlsConn *tls_conn_free(TlsConn *t)
{
	if (!t)
		return NULL;
	/* One attempt: a non-blocking socket may not take it, and the fd is the caller's to close. */
	if (t->established && !t->failed)
		(void)mbedtls_ssl_close_notify(&t->ssl);
	mbedtls_ssl_free(&t->ssl); /* wipes keys and buffers */
	memory_erase(t->exporter, sizeof(t->exporter));
	free(t->server_name);
	free(t);
	return NULL;
}

int tls_handshake(TlsConn *t)
{
	int r = 0;

	if (!t)
		return -EINVAL;
	if (t->established)
		return 0;
	if (t->failed)
		return t->failed;

	tls_current = t;
	/* mbedtls_ssl_handshake, one step at a time: a resumed handshake never enters the state in
	 * which the server's Certificate is written or parsed, which is how tls_resumed knows (2.28
	 * has no API for it). */
	while (t->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
		r = mbedtls_ssl_handshake_step(&t->ssl);
		if (t->ssl.state == MBEDTLS_SSL_SERVER_CERTIFICATE)
			t->full_handshake = true;
		if (r != 0)
			break;
	}
	tls_current = NULL;

	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return -EAGAIN;
	if (r != 0) {
		t->failed = tls_error(t, r, "TLS handshake");
		return t->failed;
	}
	if (!t->exporter_set) {
		snprintf(t->verify_error, sizeof(t->verify_error), "no exporter value was derived");
		return (t->failed = log_debug_errno(EPROTO, "TLS handshake done without an exporter value"));
	}
	/* Belt and braces over VERIFY_REQUIRED: a client must hold a verified server certificate. */
	if (!t->config->server && (!mbedtls_ssl_get_peer_cert(&t->ssl) || mbedtls_ssl_get_verify_result(&t->ssl) != 0)) {
		snprintf(t->verify_error, sizeof(t->verify_error), "no verified server certificate");
		return (t->failed = log_debug_errno(EACCES, "TLS handshake done without a verified peer"));
	}
	t->established = true;
	log_debug("TLS handshake done (%s, %s)", mbedtls_ssl_get_ciphersuite(&t->ssl),
		  t->full_handshake ? "full" : "resumed");
	return 0;
}

const char *tls_verify_error(const TlsConn *t)
{
	return t && t->verify_error[0] ? t->verify_error : NULL;
}

ssize_t tls_read(TlsConn *t, void *buf, size_t n)
{
	int r;

	if (!t || !buf || n == 0)
		return -EINVAL;
	if (!t->established) {
		r = tls_handshake(t);
		if (r < 0)
			return r;
	}
	r = mbedtls_ssl_read(&t->ssl, buf, MIN(n, (size_t)INT_MAX));
	if (r > 0)
		return r;
	if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		return 0;
	/* EOF without close_notify: possibly a truncation by an attacker; never report it as a clean
	 * end of stream. */
	if (r == 0 || r == MBEDTLS_ERR_SSL_CONN_EOF)
		return -ECONNRESET;
	return tls_error(NULL, r, "TLS read");
}

ssize_t tls_write(TlsConn *t, const void *buf, size_t n)
{
	int r;

	if (!t || (!buf && n > 0))
		return -EINVAL;
	if (n == 0)
		return 0;
	if (!t->established) {
		r = tls_handshake(t);
		if (r < 0)
			return r;
	}
	r = mbedtls_ssl_write(&t->ssl, buf, MIN(n, (size_t)INT_MAX));
	if (r >= 0)
		return r;
	return tls_error(NULL, r, "TLS write");
}

size_t tls_pending(const TlsConn *t)
{
	return t ? mbedtls_ssl_get_bytes_avail(&t->ssl) : 0;
}

bool tls_resumed(const TlsConn *t)
{
	return t && t->established && !t->full_handshake;
}

static const mbedtls_x509_crt *peer_cert(const TlsConn *t)
{
	if (!t || !t->established)
		return NULL;
	return mbedtls_ssl_get_peer_cert(&t->ssl);
}

int tls_peer_public_key(const TlsConn *t, uint8_t **ret, size_t *ret_size)
{
	const mbedtls_x509_crt *crt;
	uint8_t buf[512], *der;
	int r;

	if (!t || !ret || !ret_size)
		return -EINVAL;
	if (!t->established)
		return -ENOTCONN;
	crt = peer_cert(t);
	if (!crt)
		return -ENOENT;
	/* The writer fills the buffer from its end. */
	r = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&crt->pk, buf, sizeof(buf));
	if (r <= 0)
		return tls_error(NULL, r, "Encoding the peer public key");
	der = malloc((size_t)r);
	if (!der)
		return -ENOMEM;
	memcpy(der, buf + sizeof(buf) - (size_t)r, (size_t)r);
	*ret = der;
	*ret_size = (size_t)r;
	return 0;
}

int tls_peer_common_name(const TlsConn *t, char **ret)
{
	const mbedtls_x509_crt *crt;
	const mbedtls_x509_name *cn = NULL;
	char *s;

	if (!t || !ret)
		return -EINVAL;
	if (!t->established)
		return -ENOTCONN;
	crt = peer_cert(t);
	if (!crt)
		return -ENOENT;
	for (const mbedtls_x509_name *n = &crt->subject; n; n = n->next) {
		if (!n->oid.p || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		/* Two CNs: which one is "the" name is up to the reader — refuse the ambiguity. */
		if (cn)
			return -EBADMSG;
		cn = n;
	}
	if (!cn)
		return -ENOENT;
	if (memchr(cn->val.p, 0, cn->val.len))
		return -EBADMSG; /* "device-a\0.evil" must not read as "device-a" */
	s = memdup_str(cn->val.p, cn->val.len);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int tls_exporter(const TlsConn *t, uint8_t out[TLS_EXPORTER_SIZE])
{
	if (!t || !out)
		return -EINVAL;
	if (!t->established || !t->exporter_set)
		return -ENOTCONN;
	memcpy(out, t->exporter, TLS_EXPORTER_SIZE);
	return 0;
}

int tls_conn_save_session(TlsConn *t)
{
	mbedtls_ssl_session s;
	TlsConfig *c;
	char *name;
	int r;

	if (!t || t->config->server)
		return -EINVAL;
	if (!t->established)
		return -ENOTCONN;
	c = t->config;
	name = strdup(t->server_name);
	if (!name)
		return -ENOMEM;
	mbedtls_ssl_session_init(&s);
	r = mbedtls_ssl_get_session(&t->ssl, &s);
	if (r != 0) {
		mbedtls_ssl_session_free(&s);
		free(name);
		return tls_error(NULL, r, "Saving the TLS session");
	}
	/* The struct owns its peer certificate and ticket: moving it moves them. */
	mbedtls_ssl_session_free(&c->session);
	c->session = s;
	free(c->session_name);
	c->session_name = name;
	return 0;
}
