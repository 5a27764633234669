/* SPDX-License-Identifier: Apache-2.0 */
/* TLS configurations: one per listener or per client identity, shared by its connections. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ssl_ciphersuites.h>

#include "basic/log.h"
#include "crypto/crypto-mbedtls.h"
#include "tls/tls-internal.h"

/* Ticket keys rotate after this long; a ticket is accepted for at most that long. A resumed
 * session skips certificate verification, so this also bounds how long a session outlives the
 * check of its certificate (a device certificate that expires within the window still resumes). */
#define TLS_TICKET_LIFETIME_SEC (12 * 3600)

/* Forward secrecy (ECDHE), authenticated encryption (GCM), ECDSA certificates: the only suites
 * either side offers or accepts. AES-128 first: the server picks by its own preference. */
static const int tls_ciphersuites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	0,
};

static const mbedtls_ecp_group_id tls_curves[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};

static const int tls_sig_hashes[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_NONE};

/* Every certificate of a peer chain (ours are all P-256 ECDSA with SHA-256): refusing everything
 * else keeps mbedTLS's RSA and other-curve code paths out of reach of a peer. */
static const mbedtls_x509_crt_profile tls_cert_profile = {
	.allowed_mds = MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384),
	.allowed_pks = MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECDSA) | MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECKEY),
	.allowed_curves = MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1),
	.rsa_min_bitlen = 2048,
};

static int parse_pem_chain(mbedtls_x509_crt *crt, const char *pem, const char *what)
{
	int r;

	r = mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, strlen(pem) + 1);
	if (r != 0) /* > 0: that many certificates did not parse; a partial chain is an error too */
		return log_debug_errno(EINVAL, "Parsing %s failed (%s%x)", what, r < 0 ? "-0x" : "count ",
				       (unsigned)(r < 0 ? -r : r));
	return 0;
}

static int check_params(const TlsConfigParams *p)
{
	if (!p->cert_pem != !p->key)
		return log_debug_errno(EINVAL, "A certificate needs its key and a key its certificate");
	if (p->key && !ec_key_has_private(p->key))
		return log_debug_errno(EINVAL, "The TLS key has no private part");
	if (p->server) {
		if (!p->cert_pem)
			return log_debug_errno(EINVAL, "A TLS server needs a certificate and key");
		if (p->require_client_cert && !p->ca_pem)
			return log_debug_errno(EINVAL, "Requiring client certificates needs a CA");
	} else {
		/* A client always verifies the server: without a CA there is nothing to verify against. */
		if (!p->ca_pem)
			return log_debug_errno(EINVAL, "A TLS client needs the CA the server must chain to");
		if (p->require_client_cert)
			return log_debug_errno(EINVAL, "require_client_cert is a server setting");
	}
	return 0;
}

int tls_config_new(const TlsConfigParams *p, TlsConfig **ret)
{
	static const char personalization[] = "trustpc tls";
	TlsConfig *c;
	int r;

	if (!p || !ret)
		return -EINVAL;
	r = check_params(p);
	if (r < 0)
		return r;

	c = calloc(1, sizeof(TlsConfig));
	if (!c)
		return -ENOMEM;
	c->server = p->server;
	c->require_client_cert = p->require_client_cert;
	c->session_tickets = p->session_tickets;
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_ctr_drbg_init(&c->drbg);
	mbedtls_x509_crt_init(&c->ca);
	mbedtls_x509_crt_init(&c->cert);
	mbedtls_pk_init(&c->key);
	mbedtls_ssl_ticket_init(&c->ticket);
	mbedtls_ssl_session_init(&c->session);

	/* crypto_rng is getrandom(): the DRBG never runs on a weak seed (the lwIP glue's mistake). */
	r = mbedtls_ctr_drbg_seed(&c->drbg, crypto_rng, NULL, (const unsigned char *)personalization,
				  sizeof(personalization) - 1);
	if (r != 0) {
		r = tls_error(NULL, r, "Seeding the TLS DRBG");
		goto fail;
	}

	if (p->ca_pem) {
		r = parse_pem_chain(&c->ca, p->ca_pem, "the CA certificate(s)");
		if (r < 0)
			goto fail;
	}
	if (p->cert_pem) {
		r = parse_pem_chain(&c->cert, p->cert_pem, "our certificate chain");
		if (r < 0)
			goto fail;
		r = ec_key_to_pk(p->key, &c->key);
		if (r < 0)
			goto fail;
		if (mbedtls_pk_check_pair(&c->cert.pk, &c->key) != 0) {
			r = log_debug_errno(EINVAL, "The TLS key does not belong to the certificate");
			goto fail;
		}
		c->have_cert = true;
	}

	r = mbedtls_ssl_config_defaults(&c->conf, p->server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
					MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (r != 0) {
		r = tls_error(NULL, r, "Setting TLS defaults");
		goto fail;
	}
	/* TLS 1.2 only: 1.0/1.1 lack AEAD suites and have been deprecated (RFC 8996). */
	mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&c->conf, tls_ciphersuites);
	mbedtls_ssl_conf_curves(&c->conf, tls_curves);
	mbedtls_ssl_conf_sig_hashes(&c->conf, tls_sig_hashes);
	mbedtls_ssl_conf_cert_profile(&c->conf, &tls_cert_profile);
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
	mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	/* RFC 7627: binds the master secret (and so the exporter) to the whole handshake, which keeps
	 * the channel binding of the attestation sound across resumption (triple handshake attack). */
	mbedtls_ssl_conf_extended_master_secret(&c->conf, MBEDTLS_SSL_EXTENDED_MS_ENABLED);
	mbedtls_ssl_conf_export_keys_ext_cb(&c->conf, tls_export_keys, NULL);

	/* A client verifies the server always; a server its clients only where the port says so
	 * (docs/PROTOCOL.md "Ports"; Keylime CVE-2026-1709 was a registrar that did not). */
	if (!p->server || p->require_client_cert)
		mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	else
		mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
	if (p->ca_pem)
		mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
	if (c->have_cert) {
		r = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key);
		if (r != 0) {
			r = tls_error(NULL, r, "Setting our certificate");
			goto fail;
		}
	}

	if (p->server) {
		if (p->session_tickets) {
			r = mbedtls_ssl_ticket_setup(&c->ticket, mbedtls_ctr_drbg_random, &c->drbg,
						     MBEDTLS_CIPHER_AES_256_GCM, TLS_TICKET_LIFETIME_SEC);
			if (r != 0) {
				r = tls_error(NULL, r, "Setting up session tickets");
				goto fail;
			}
			mbedtls_ssl_conf_session_tickets_cb(&c->conf, mbedtls_ssl_ticket_write,
							    mbedtls_ssl_ticket_parse, &c->ticket);
		}
	} else
		mbedtls_ssl_conf_session_tickets(&c->conf, p->session_tickets ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
									       : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);

	*ret = c;
	return 0;
fail:
	tls_config_free(c);
	return r;
}

TlsConfig *tls_config_free(TlsConfig *c)
{
	if (!c)
		return NULL;
	/* The _free functions wipe keys, ticket keys, the DRBG state and the saved master secret. */
	mbedtls_ssl_session_free(&c->session);
	free(c->session_name);
	mbedtls_ssl_ticket_free(&c->ticket);
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_pk_free(&c->key);
	mbedtls_x509_crt_free(&c->cert);
	mbedtls_x509_crt_free(&c->ca);
	mbedtls_ctr_drbg_free(&c->drbg);
	free(c);
	return NULL;
}
