/* SPDX-License-Identifier: Apache-2.0 */
/* lib/tls: real TLS 1.2 handshakes over non-blocking socketpairs, both ends in this process.
 * Mutual authentication, the exporter, ticket resumption, and each rejection with its reason. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "crypto/crypto-x509.h"
#include "crypto/crypto.h"
#include "tls/tls.h"

typedef struct Pki {
	EcKey *ca_key, *other_ca_key, *server_key, *client_key;
	char *ca_pem, *other_ca_pem;
	char *server_pem;         /* CN server.example, SAN localhost, serverAuth */
	char *client_pem;         /* CN device-1, clientAuth */
	char *server_other_pem;   /* the server key certified by the other CA */
	char *client_other_pem;   /* the client key certified by the other CA */
	char *server_expired_pem; /* expired yesterday */
	char *client_as_server_pem; /* the server key with clientAuth only */
} Pki;

static Pki pki;

static char *issue_at(const EcKey *key, const char *cn, const char *dns, const EcKey *ik, const char *ipem,
		      int is_ca, int client_auth, time_t now)
{
	X509IssueParams p = {
		.subject_key = key,
		.subject_cn = cn,
		.dns_name = dns,
		.issuer_key = ik,
		.issuer_cert_pem = ipem,
		.days = 1,
		.is_ca = is_ca,
		.client_auth = client_auth,
	};
	char *pem = NULL;

	assert_int_equal(x509_issue_at(&p, now, &pem), 0);
	return pem;
}

static int group_setup(void **state)
{
	time_t now = time(NULL);

	assert_int_equal(ec_key_generate(&pki.ca_key), 0);
	assert_int_equal(ec_key_generate(&pki.other_ca_key), 0);
	assert_int_equal(ec_key_generate(&pki.server_key), 0);
	assert_int_equal(ec_key_generate(&pki.client_key), 0);
	pki.ca_pem = issue_at(pki.ca_key, "test fleet CA", NULL, NULL, NULL, 1, 0, now);
	pki.other_ca_pem = issue_at(pki.other_ca_key, "test fleet CA", NULL, NULL, NULL, 1, 0, now);
	pki.server_pem = issue_at(pki.server_key, "server.example", "localhost", pki.ca_key, pki.ca_pem, 0, 0, now);
	pki.client_pem = issue_at(pki.client_key, "device-1", NULL, pki.ca_key, pki.ca_pem, 0, 1, now);
	pki.server_other_pem = issue_at(pki.server_key, "server.example", "localhost", pki.other_ca_key,
					pki.other_ca_pem, 0, 0, now);
	pki.client_other_pem = issue_at(pki.client_key, "device-1", NULL, pki.other_ca_key, pki.other_ca_pem, 0,
					1, now);
	pki.server_expired_pem = issue_at(pki.server_key, "server.example", "localhost", pki.ca_key, pki.ca_pem,
					  0, 0, now - 3 * 86400);
	pki.client_as_server_pem = issue_at(pki.server_key, "server.example", "localhost", pki.ca_key,
					    pki.ca_pem, 0, 1, now);
	return 0;
}

static int group_teardown(void **state)
{
	ec_key_free(pki.ca_key);
	ec_key_free(pki.other_ca_key);
	ec_key_free(pki.server_key);
	ec_key_free(pki.client_key);
	free(pki.ca_pem);
	free(pki.other_ca_pem);
	free(pki.server_pem);
	free(pki.client_pem);
	free(pki.server_other_pem);
	free(pki.client_other_pem);
	free(pki.server_expired_pem);
	free(pki.client_as_server_pem);
	return 0;
}

static TlsConfig *server_config(const char *cert, bool require_client_cert, bool tickets)
{
	TlsConfigParams p = {
		.server = true,
		.ca_pem = pki.ca_pem,
		.cert_pem = cert,
		.key = pki.server_key,
		.require_client_cert = require_client_cert,
		.session_tickets = tickets,
	};
	TlsConfig *c = NULL;

	assert_int_equal(tls_config_new(&p, &c), 0);
	return c;
}

static TlsConfig *client_config(const char *ca, const char *cert, bool tickets)
{
	TlsConfigParams p = {
		.ca_pem = ca,
		.cert_pem = cert,
		.key = cert ? pki.client_key : NULL,
		.session_tickets = tickets,
	};
	TlsConfig *c = NULL;

	assert_int_equal(tls_config_new(&p, &c), 0);
	return c;
}

typedef struct Pair {
	int fd[2]; /* 0 server, 1 client */
	TlsConn *server, *client;
	int rs, rc;
} Pair;

static void pair_free(Pair *p)
{
	p->server = tls_conn_free(p->server);
	p->client = tls_conn_free(p->client);
	if (p->fd[0] >= 0)
		close(p->fd[0]);
	if (p->fd[1] >= 0)
		close(p->fd[1]);
	p->fd[0] = p->fd[1] = -1;
}

/* Both ends step in turn until neither wants more I/O. A side that fails closes its socket so the
 * other sees the end instead of waiting forever (what the server's event loop does too). Bounded:
 * a handshake is a handful of flights. */
static void handshake(Pair *p, TlsConfig *s, TlsConfig *c, const char *name)
{
	int i;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fd), 0);
	assert_int_equal(tls_conn_new(s, p->fd[0], NULL, &p->server), 0);
	assert_int_equal(tls_conn_new(c, p->fd[1], name, &p->client), 0);
	p->rs = p->rc = -EAGAIN;
	for (i = 0; i < 100 && (p->rs == -EAGAIN || p->rc == -EAGAIN); i++) {
		if (p->rc == -EAGAIN) {
			p->rc = tls_handshake(p->client);
			if (p->rc < 0 && p->rc != -EAGAIN)
				shutdown(p->fd[1], SHUT_RDWR);
		}
		if (p->rs == -EAGAIN) {
			p->rs = tls_handshake(p->server);
			if (p->rs < 0 && p->rs != -EAGAIN)
				shutdown(p->fd[0], SHUT_RDWR);
		}
	}
	assert_true(i < 100);
}

static void exchange(Pair *p)
{
	char buf[64];

	assert_int_equal(tls_write(p->client, "ping", 4), 4);
	assert_int_equal(tls_read(p->server, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(tls_write(p->server, "pong!", 5), 5);
	assert_int_equal(tls_read(p->client, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "pong!", 5);
	/* nothing more: -EAGAIN, not 0 */
	assert_int_equal(tls_read(p->client, buf, sizeof(buf)), -EAGAIN);
}

static void assert_reason(const TlsConn *t, const char *needle)
{
	const char *e = tls_verify_error(t);

	if (!e || !strstr(e, needle))
		fail_msg("verify error \"%s\" does not contain \"%s\"", e ? e : "(null)", needle);
}

static void test_mutual_auth(void **state)
{
	TlsConfig *s = server_config(pki.server_pem, true, false), *c = client_config(pki.ca_pem, pki.client_pem, false);
	Pair p = {.fd = {-1, -1}};
	uint8_t es[TLS_EXPORTER_SIZE], ec[TLS_EXPORTER_SIZE], zero[TLS_EXPORTER_SIZE] = {0};
	uint8_t *spki = NULL, *expect = NULL;
	size_t n, expect_n;
	char *cn = NULL;

	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rs, 0);
	assert_int_equal(p.rc, 0);
	assert_null(tls_verify_error(p.server));
	assert_false(tls_resumed(p.server));
	assert_false(tls_resumed(p.client));
	exchange(&p);

	assert_int_equal(tls_exporter(p.server, es), 0);
	assert_int_equal(tls_exporter(p.client, ec), 0);
	assert_memory_equal(es, ec, sizeof(es));
	assert_memory_not_equal(es, zero, sizeof(es));

	/* the server sees the device's key and name; the device sees the server's */
	assert_int_equal(tls_peer_public_key(p.server, &spki, &n), 0);
	assert_int_equal(ec_key_public_spki_der(pki.client_key, &expect, &expect_n), 0);
	assert_int_equal(n, expect_n);
	assert_memory_equal(spki, expect, n);
	free(spki);
	free(expect);
	assert_int_equal(tls_peer_common_name(p.server, &cn), 0);
	assert_string_equal(cn, "device-1");
	free(cn);
	assert_int_equal(tls_peer_common_name(p.client, &cn), 0);
	assert_string_equal(cn, "server.example");
	free(cn);

	/* close_notify: a clean 0 at the other end */
	p.client = tls_conn_free(p.client);
	{
		char buf[8];
		assert_int_equal(tls_read(p.server, buf, sizeof(buf)), 0);
	}
	pair_free(&p);
	tls_config_free(s);
	tls_config_free(c);
}

static void test_exporter_per_connection(void **state)
{
	TlsConfig *s = server_config(pki.server_pem, true, false), *c = client_config(pki.ca_pem, pki.client_pem, false);
	Pair a = {.fd = {-1, -1}}, b = {.fd = {-1, -1}};
	uint8_t ea[TLS_EXPORTER_SIZE], eb[TLS_EXPORTER_SIZE], ebs[TLS_EXPORTER_SIZE];

	handshake(&a, s, c, "localhost");
	handshake(&b, s, c, "localhost");
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(tls_exporter(a.client, ea), 0);
	assert_int_equal(tls_exporter(b.client, eb), 0);
	assert_int_equal(tls_exporter(b.server, ebs), 0);
	assert_memory_equal(eb, ebs, sizeof(eb));
	assert_memory_not_equal(ea, eb, sizeof(ea));
	pair_free(&a);
	pair_free(&b);
	tls_config_free(s);
	tls_config_free(c);
}

static void test_resumption(void **state)
{
	TlsConfig *s = server_config(pki.server_pem, true, true), *c = client_config(pki.ca_pem, pki.client_pem, true);
	Pair a = {.fd = {-1, -1}}, b = {.fd = {-1, -1}}, x = {.fd = {-1, -1}};
	uint8_t ea[TLS_EXPORTER_SIZE], eb[TLS_EXPORTER_SIZE], ebs[TLS_EXPORTER_SIZE];
	uint8_t *spki = NULL, *expect = NULL;
	size_t n, expect_n;
	char *cn = NULL;

	handshake(&a, s, c, "localhost");
	assert_int_equal(a.rc, 0);
	assert_false(tls_resumed(a.client));
	assert_int_equal(tls_conn_save_session(a.client), 0);
	assert_int_equal(tls_conn_save_session(a.server), -EINVAL);
	assert_int_equal(tls_exporter(a.client, ea), 0);
	pair_free(&a);

	handshake(&b, s, c, "localhost");
	assert_int_equal(b.rs, 0);
	assert_int_equal(b.rc, 0);
	assert_true(tls_resumed(b.client));
	assert_true(tls_resumed(b.server));
	exchange(&b);
	assert_int_equal(tls_exporter(b.client, eb), 0);
	assert_int_equal(tls_exporter(b.server, ebs), 0);
	assert_memory_equal(eb, ebs, sizeof(eb));
	assert_memory_not_equal(ea, eb, sizeof(ea));
	/* the device identity survives resumption (the ticket carries the certificate) */
	assert_int_equal(tls_peer_public_key(b.server, &spki, &n), 0);
	assert_int_equal(ec_key_public_spki_der(pki.client_key, &expect, &expect_n), 0);
	assert_int_equal(n, expect_n);
	assert_memory_equal(spki, expect, n);
	assert_int_equal(tls_peer_common_name(b.server, &cn), 0);
	assert_string_equal(cn, "device-1");
	free(cn);
	free(spki);
	free(expect);
	pair_free(&b);

	/* the saved session is not offered for another name: a full handshake, whose name check
	 * fails (the server certificate is for localhost) */
	handshake(&x, s, c, "other.example");
	assert_int_equal(x.rc, -EACCES);
	assert_reason(x.client, "CN");
	pair_free(&x);

	/* a server without tickets: a full handshake even with a saved session */
	{
		TlsConfig *s2 = server_config(pki.server_pem, true, false);
		handshake(&x, s2, c, "localhost");
		assert_int_equal(x.rc, 0);
		assert_false(tls_resumed(x.client));
		assert_false(tls_resumed(x.server));
		pair_free(&x);
		tls_config_free(s2);
	}
	/* another server config (other ticket key, e.g. another port) does not resume it */
	{
		TlsConfig *s3 = server_config(pki.server_pem, true, true);
		handshake(&x, s3, c, "localhost");
		assert_int_equal(x.rc, 0);
		assert_false(tls_resumed(x.server));
		pair_free(&x);
		tls_config_free(s3);
	}
	tls_config_free(s);
	tls_config_free(c);
}

static void test_client_cert_other_ca(void **state)
{
	TlsConfig *s = server_config(pki.server_pem, true, false);
	TlsConfig *c = client_config(pki.ca_pem, pki.client_other_pem, false);
	Pair p = {.fd = {-1, -1}};

	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rs, -EACCES);
	assert_reason(p.server, "not correctly signed by the trusted CA");
	assert_true(p.rc < 0);
	assert_reason(p.client, "the peer refused the handshake");
	assert_int_equal(tls_peer_public_key(p.server, &(uint8_t *){NULL}, &(size_t){0}), -ENOTCONN);
	/* a failed connection stays failed */
	assert_int_equal(tls_handshake(p.server), -EACCES);
	pair_free(&p);
	tls_config_free(s);
	tls_config_free(c);
}

static void test_server_cert_other_ca(void **state)
{
	TlsConfig *s = server_config(pki.server_other_pem, true, false);
	TlsConfig *c = client_config(pki.ca_pem, pki.client_pem, false);
	Pair p = {.fd = {-1, -1}};
	uint8_t e[TLS_EXPORTER_SIZE];

	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rc, -EACCES);
	assert_reason(p.client, "not correctly signed by the trusted CA");
	assert_true(p.rs < 0);
	assert_int_equal(tls_exporter(p.client, e), -ENOTCONN);
	pair_free(&p);
	tls_config_free(s);
	tls_config_free(c);
}

static void test_name_mismatch(void **state)
{
	TlsConfig *s = server_config(pki.server_pem, true, false);
	TlsConfig *c = client_config(pki.ca_pem, pki.client_pem, false);
	Pair p = {.fd = {-1, -1}};

	/* the CN is server.example but only the SAN counts when there is one (RFC 6125) */
	handshake(&p, s, c, "server.example");
	assert_int_equal(p.rc, -EACCES);
	assert_reason(p.client, "Common Name (CN) does not match");
	pair_free(&p);
	handshake(&p, s, c, "evil.example");
	assert_int_equal(p.rc, -EACCES);
	pair_free(&p);
	/* positive control on the same configs */
	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rc, 0);
	pair_free(&p);
	/* CVE-2025-27809: no name, no connection */
	assert_int_equal(tls_conn_new(c, 0, NULL, &p.client), -EINVAL);
	assert_int_equal(tls_conn_new(c, 0, "", &p.client), -EINVAL);
	assert_int_equal(tls_conn_new(s, 0, "localhost", &p.server), -EINVAL);
	assert_null(p.client);
	tls_config_free(s);
	tls_config_free(c);
}

static void test_expired(void **state)
{
	TlsConfig *s = server_config(pki.server_expired_pem, true, false);
	TlsConfig *c = client_config(pki.ca_pem, pki.client_pem, false);
	Pair p = {.fd = {-1, -1}};

	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rc, -EACCES);
	assert_reason(p.client, "validity has expired");
	pair_free(&p);
	tls_config_free(s);
	tls_config_free(c);
}

static void test_no_client_cert(void **state)
{
	TlsConfig *s = server_config(pki.server_pem, true, false);
	TlsConfig *open_s = server_config(pki.server_pem, false, false);
	TlsConfig *c = client_config(pki.ca_pem, NULL, false);
	Pair p = {.fd = {-1, -1}};
	uint8_t *spki = NULL;
	size_t n;

	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rs, -EACCES);
	assert_reason(p.server, "no certificate");
	assert_true(p.rc < 0);
	pair_free(&p);

	/* the enroll/admin ports: no client certificate asked, none seen */
	handshake(&p, open_s, c, "localhost");
	assert_int_equal(p.rs, 0);
	assert_int_equal(p.rc, 0);
	exchange(&p);
	assert_int_equal(tls_peer_public_key(p.server, &spki, &n), -ENOENT);
	assert_null(spki);
	pair_free(&p);
	tls_config_free(s);
	tls_config_free(open_s);
	tls_config_free(c);
}

/* Certificates carry one purpose: a device certificate never serves as a server certificate, a
 * server certificate never authenticates a device. */
static void test_wrong_purpose(void **state)
{
	TlsConfig *s = server_config(pki.client_as_server_pem, true, false);
	TlsConfig *c = client_config(pki.ca_pem, pki.client_pem, false);
	TlsConfig *s_ok = server_config(pki.server_pem, true, false);
	TlsConfigParams cp = {.ca_pem = pki.ca_pem, .cert_pem = pki.server_pem, .key = pki.server_key};
	TlsConfig *c_server_cert = NULL;
	Pair p = {.fd = {-1, -1}};

	/* mbedTLS will not even present a clientAuth-only certificate as a server (ssl_pick_cert checks
	 * the purpose of its own certificate), so the handshake fails at the server */
	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rs, -EPROTO);
	assert_reason(p.server, "no common cipher suite");
	assert_int_equal(p.rc, -EPROTO);
	assert_reason(p.client, "alert 40 (handshake failure)");
	pair_free(&p);

	assert_int_equal(tls_config_new(&cp, &c_server_cert), 0);
	handshake(&p, s_ok, c_server_cert, "localhost");
	assert_int_equal(p.rs, -EACCES);
	assert_reason(p.server, "extendedKeyUsage");
	pair_free(&p);
	tls_config_free(s);
	tls_config_free(s_ok);
	tls_config_free(c);
	tls_config_free(c_server_cert);
}

/* A raw mbedTLS client that offers TLS 1.1 (or only CBC suites) to our server. */
static void raw_client_against(TlsConfig *s, int max_minor, const int *suites, Pair *p)
{
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_net_context net;
	int rc = MBEDTLS_ERR_SSL_WANT_READ, i;

	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	mbedtls_ctr_drbg_init(&drbg);
	assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, crypto_rng, NULL, NULL, 0), 0);
	assert_int_equal(mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
						     MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_1);
	mbedtls_ssl_conf_max_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, max_minor);
	if (suites)
		mbedtls_ssl_conf_ciphersuites(&conf, suites);
	assert_int_equal(mbedtls_ssl_setup(&ssl, &conf), 0);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fd), 0);
	assert_int_equal(tls_conn_new(s, p->fd[0], NULL, &p->server), 0);
	net.fd = p->fd[1];
	mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, mbedtls_net_recv, NULL);
	p->rs = -EAGAIN;
	for (i = 0; i < 100 && (p->rs == -EAGAIN || rc == MBEDTLS_ERR_SSL_WANT_READ); i++) {
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			rc = mbedtls_ssl_handshake(&ssl);
		if (p->rs == -EAGAIN) {
			p->rs = tls_handshake(p->server);
			if (p->rs != -EAGAIN)
				shutdown(p->fd[0], SHUT_RDWR);
		}
	}
	assert_true(i < 100);
	assert_int_not_equal(rc, 0);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_ctr_drbg_free(&drbg);
}

static void test_old_versions_and_suites(void **state)
{
	static const int cbc_only[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, 0};
	TlsConfig *s = server_config(pki.server_pem, false, false);
	Pair p = {.fd = {-1, -1}};

	raw_client_against(s, MBEDTLS_SSL_MINOR_VERSION_2, NULL, &p); /* TLS 1.1 at most */
	assert_int_equal(p.rs, -EPROTO);
	assert_reason(p.server, "only TLS 1.2");
	pair_free(&p);
	raw_client_against(s, MBEDTLS_SSL_MINOR_VERSION_1, NULL, &p); /* TLS 1.0 */
	assert_int_equal(p.rs, -EPROTO);
	assert_reason(p.server, "only TLS 1.2");
	pair_free(&p);
	raw_client_against(s, MBEDTLS_SSL_MINOR_VERSION_3, cbc_only, &p);
	assert_int_equal(p.rs, -EPROTO);
	assert_reason(p.server, "no common cipher suite");
	pair_free(&p);
	tls_config_free(s);
}

/* Several records in the socket at once: after poll() says readable, an event loop reads, then
 * keeps reading while tls_pending() is non-zero; the next record is still in the socket, so poll()
 * reports it. Nothing is lost, nothing is stuck inside mbedTLS. */
static void test_pending(void **state)
{
	TlsConfig *s = server_config(pki.server_pem, true, false), *c = client_config(pki.ca_pem, pki.client_pem, false);
	Pair p = {.fd = {-1, -1}};
	char sent[3 * 1000], got[sizeof(sent)], small[7];
	size_t have = 0;
	bool saw_pending = false;
	int rounds = 0;

	for (size_t i = 0; i < sizeof(sent); i++)
		sent[i] = (char)(i * 7 + 3);
	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rc, 0);
	assert_int_equal(tls_pending(p.server), 0);
	for (int r = 0; r < 3; r++)
		assert_int_equal(tls_write(p.client, sent + r * 1000, 1000), 1000);

	while (have < sizeof(sent)) {
		struct pollfd pfd = {.fd = p.fd[0], .events = POLLIN};
		ssize_t n;

		assert_true(++rounds <= 10);
		assert_int_equal(poll(&pfd, 1, 0), 1); /* no timeout needed: the bytes are there */
		do {
			n = tls_read(p.server, small, sizeof(small));
			assert_true(n > 0);
			assert_true(have + (size_t)n <= sizeof(got));
			memcpy(got + have, small, (size_t)n);
			have += (size_t)n;
			if (tls_pending(p.server) > 0)
				saw_pending = true;
		} while (tls_pending(p.server) > 0);
	}
	assert_int_equal(have, sizeof(sent));
	assert_memory_equal(got, sent, sizeof(sent));
	assert_true(saw_pending);
	assert_int_equal(rounds, 3); /* one record per readable event */
	assert_int_equal(tls_read(p.server, small, sizeof(small)), -EAGAIN);
	pair_free(&p);
	tls_config_free(s);
	tls_config_free(c);
}

static void test_unclean_close(void **state)
{
	TlsConfig *s = server_config(pki.server_pem, true, false), *c = client_config(pki.ca_pem, pki.client_pem, false);
	Pair p = {.fd = {-1, -1}};
	char buf[8];

	handshake(&p, s, c, "localhost");
	assert_int_equal(p.rc, 0);
	/* EOF without close_notify is not a clean end (truncation) */
	shutdown(p.fd[1], SHUT_WR);
	assert_int_equal(tls_read(p.server, buf, sizeof(buf)), -ECONNRESET);
	assert_int_equal(tls_read(p.server, buf, 0), -EINVAL);
	pair_free(&p);
	tls_config_free(s);
	tls_config_free(c);
}

static void test_config_refusals(void **state)
{
	TlsConfig *c = NULL;
	TlsConfigParams p;

	/* a client without a CA could verify nothing */
	p = (TlsConfigParams){.cert_pem = pki.client_pem, .key = pki.client_key};
	assert_int_equal(tls_config_new(&p, &c), -EINVAL);
	/* a server without a certificate */
	p = (TlsConfigParams){.server = true, .ca_pem = pki.ca_pem};
	assert_int_equal(tls_config_new(&p, &c), -EINVAL);
	/* mutual auth without a CA */
	p = (TlsConfigParams){.server = true, .cert_pem = pki.server_pem, .key = pki.server_key,
			      .require_client_cert = true};
	assert_int_equal(tls_config_new(&p, &c), -EINVAL);
	/* the key of another certificate */
	p = (TlsConfigParams){.server = true, .cert_pem = pki.server_pem, .key = pki.client_key};
	assert_int_equal(tls_config_new(&p, &c), -EINVAL);
	/* a certificate without its key */
	p = (TlsConfigParams){.ca_pem = pki.ca_pem, .cert_pem = pki.client_pem};
	assert_int_equal(tls_config_new(&p, &c), -EINVAL);
	/* a CA that does not parse */
	p = (TlsConfigParams){.ca_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"};
	assert_int_equal(tls_config_new(&p, &c), -EINVAL);
	assert_null(c);
	/* positive control */
	p = (TlsConfigParams){.server = true, .cert_pem = pki.server_pem, .key = pki.server_key};
	assert_int_equal(tls_config_new(&p, &c), 0);
	tls_config_free(c);
	assert_null(tls_config_free(NULL));
	assert_null(tls_conn_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutual_auth),
		cmocka_unit_test(test_exporter_per_connection),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_client_cert_other_ca),
		cmocka_unit_test(test_server_cert_other_ca),
		cmocka_unit_test(test_name_mismatch),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_no_client_cert),
		cmocka_unit_test(test_wrong_purpose),
		cmocka_unit_test(test_old_versions_and_suites),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_unclean_close),
		cmocka_unit_test(test_config_refusals),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
