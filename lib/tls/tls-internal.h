/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Private to lib/tls: the layouts of TlsConfig and TlsConn. */

#include <stdbool.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include "tls/tls.h"

#define TLS_EXPORTER_LABEL "EXPORTER-trustpc-attestation"
#define TLS_VERIFY_ERROR_MAX 256

struct TlsConfig {
	bool server;
	bool require_client_cert;
	bool session_tickets;
	bool have_cert;
	mbedtls_ssl_config conf;
	mbedtls_ctr_drbg_context drbg; /* one per config, seeded from getrandom() */
	mbedtls_x509_crt ca;
	mbedtls_x509_crt cert;
	mbedtls_pk_context key;
	mbedtls_ssl_ticket_context ticket; /* server: AES-256-GCM ticket keys, rotated */
	/* Client: the session saved by tls_conn_save_session, offered again only to the same server
	 * name (a resumed handshake skips certificate and name checks). */
	mbedtls_ssl_session session;
	char *session_name;
};

struct TlsConn {
	TlsConfig *config;
	mbedtls_ssl_context ssl;
	int fd;
	char *server_name;
	bool established;
	bool full_handshake; /* a Certificate message was part of this handshake */
	bool exporter_set;
	int failed; /* the errno of a failed handshake: the context is dead after it */
	uint8_t exporter[TLS_EXPORTER_SIZE];
	char verify_error[TLS_VERIFY_ERROR_MAX];
};

/* Config-wide export-keys callback (mbedTLS 2.28 has no per-connection one). */
int tls_export_keys(void *p, const unsigned char *ms, const unsigned char *kb, size_t maclen,
		    size_t keylen, size_t ivlen, const unsigned char client_random[32],
		    const unsigned char server_random[32], mbedtls_tls_prf_types prf);

/* Converts an mbedTLS TLS/X.509 code to a negative errno, logs the code at debug level and, for
 * a connection, records a readable reason in t->verify_error. */
int tls_error(TlsConn *t, int code, const char *what);
