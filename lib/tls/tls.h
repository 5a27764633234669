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

/* fd: a connected, non-blocking or blocking socket (not owned). server_name: client only, the
 * name the server certificate must carry (SAN dNSName or CN). */
int tls_conn_new(TlsConfig *c, int fd, const char *server_name, TlsConn **ret);
TlsConn *tls_conn_free(TlsConn *t); /* does not close fd; sends close_notify if established */

/* Drives the handshake: 0 done, -EAGAIN want more I/O, -EPROTO/-EACCES (peer certificate
 * rejected: the verify result is logged at debug and available via tls_verify_error()),
 * -ECONNRESET peer closed. */
int tls_handshake(TlsConn *t);
const char *tls_verify_error(const TlsConn *t); /* human-readable reason of the last rejection */

ssize_t tls_read(TlsConn *t, void *buf, size_t n);        /* 0 = peer closed cleanly */
ssize_t tls_write(TlsConn *t, const void *buf, size_t n); /* may write less; -EAGAIN */
size_t tls_pending(const TlsConn *t);

/* After the handshake. */
bool tls_resumed(const TlsConn *t);
/* The peer certificate's SubjectPublicKeyInfo DER and its subject CN (malloc'ed). */
int tls_peer_public_key(const TlsConn *t, uint8_t **ret, size_t *ret_size);
int tls_peer_common_name(const TlsConn *t, char **ret);
/* RFC 5705 keying material exporter: label "EXPORTER-trustpc-attestation", no context, 32
 * bytes. Differs per connection (client/server randoms), also for resumed sessions. */
#define TLS_EXPORTER_SIZE 32
int tls_exporter(const TlsConn *t, uint8_t out[TLS_EXPORTER_SIZE]);

/* Client-side session cache for resumption across connections (one per device). */
int tls_conn_save_session(TlsConn *t);    /* after the handshake: keep the ticket in the config */
