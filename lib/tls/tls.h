/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* lib/tls: TLS 1.2 (mbedTLS 2.28) for the device and admin ports. The only code that includes
 * mbedTLS ssl headers. Kept to API that mbedTLS 3.6 also has, so a move is small.
 *
 * Rules this module enforces, not its callers:
 *   - certificate verification REQUIRED on both sides (a server with require_client_cert, a
 *     client always); the peer chain must end at the configured CA (the fleet CA), nothing else
 *   - the client always sets the expected server name (mbedtls_ssl_set_hostname; CVE-2025-27809)
 *   - ECDHE-ECDSA with AES-GCM, P-256 only
 *   - the server issues session tickets (rotating key) so reconnects are cheap; a resumed
 *     session still gets a fresh exporter value (it differs per connection: new randoms)
 * Non-blocking use: tls_read/tls_write return -EAGAIN when the socket would block; callers
 * MUST call tls_pending() after a read and keep reading while it is non-zero — bytes decrypted
 * inside mbedTLS are invisible to epoll. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crypto/crypto.h"

typedef struct TlsConfig TlsConfig; /* shared by all connections of one listener/client */
typedef struct TlsConn TlsConn;

typedef struct TlsConfigParams {
	bool server;
	const char *ca_pem;          /* the CA that peers must chain to (PEM, one or more certs) */
	const char *cert_pem;        /* our certificate (chain) */
	const EcKey *key;            /* our private key */
	bool require_client_cert;    /* server only: mutual authentication */
	bool session_tickets;        /* server: issue tickets; client: use them */
} TlsConfigParams;

int tls_config_new(const TlsConfigParams *p, TlsConfig **ret);
TlsConfig *tls_config_free(TlsConfig *c);

/* fd: a connected, non-blocking or blocking socket (not owned; TCP_NODELAY is set on it, see
 * tls-conn.c). server_name: client only and required (-EINVAL when NULL or empty, and when given
 * to a server), the name the server certificate must carry (SAN dNSName, else CN). A session saved
 * with tls_conn_save_session is offered only when server_name equals the name it was saved for.
 * The config must outlive its connections; a config and its connections belong to one thread. */
int tls_conn_new(TlsConfig *c, int fd, const char *server_name, TlsConn **ret);
TlsConn *tls_conn_free(TlsConn *t); /* does not close fd; sends close_notify if established */

/* Drives the handshake: 0 done, -EAGAIN want more I/O, -EACCES we rejected the peer's
 * certificate (or its absence), -EPROTO any other protocol failure (the peer refused us with an
 * alert, TLS < 1.2 offered, no common suite, malformed messages), -ECONNRESET peer closed,
 * -ENOMEM. The reason is logged at debug and available via tls_verify_error(). A failed handshake
 * keeps returning its error: free the connection. */
int tls_handshake(TlsConn *t);
/* Human-readable reason of the handshake failure (mbedtls_x509_crt_verify_info for certificate
 * rejections, the alert for a peer's refusal), NULL when there was none. */
const char *tls_verify_error(const TlsConn *t);

/* Both drive the handshake first if it is not done. */
/* 0 = the peer sent close_notify; EOF without it is -ECONNRESET (truncation); n == 0 is -EINVAL. */
ssize_t tls_read(TlsConn *t, void *buf, size_t n);
/* May write less (at most one 16 KiB record). After -EAGAIN call it again with the SAME data:
 * mbedTLS has already encrypted the record and sends the rest of it first. */
ssize_t tls_write(TlsConn *t, const void *buf, size_t n);
/* Decrypted bytes of the current record still inside mbedTLS (mbedtls_ssl_get_bytes_avail). In
 * stream mode mbedTLS reads one record at a time from the socket, so when this is 0 every further
 * byte is still in the socket and epoll sees it. */
size_t tls_pending(const TlsConn *t);

/* After the handshake (-ENOTCONN before it). */
bool tls_resumed(const TlsConn *t); /* ticket resumption: no certificate was exchanged */
/* The peer certificate's SubjectPublicKeyInfo DER and its subject CN (malloc'ed); also after a
 * resumption (the ticket carries the certificate). -ENOENT when the peer sent none (a server
 * without require_client_cert); the CN: -ENOENT none, -EBADMSG two CNs or a NUL inside. */
int tls_peer_public_key(const TlsConn *t, uint8_t **ret, size_t *ret_size);
int tls_peer_common_name(const TlsConn *t, char **ret);
/* RFC 5705 keying material exporter: label "EXPORTER-trustpc-attestation", no context, 32
 * bytes. Differs per connection (client/server randoms), also for resumed sessions. */
#define TLS_EXPORTER_SIZE 32
int tls_exporter(const TlsConn *t, uint8_t out[TLS_EXPORTER_SIZE]);

/* Client-side session cache for resumption across connections (one per device). */
/* After the handshake: keep the session (ticket) in the config for the next tls_conn_new with the
 * same server name; replaces an earlier one. -EINVAL on a server connection. Note: a resumed
 * session is not re-verified; the server's ticket lifetime (12 h) bounds how long that lasts. */
int tls_conn_save_session(TlsConn *t);
