/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* X.509 for the fleet CA (mbedTLS x509write/x509_crt). Certificates are ECDSA P-256 with
 * SHA-256. All outputs are malloc'ed; PEM strings are NUL-terminated. */

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

typedef struct X509IssueParams {
	const EcKey *subject_key;   /* public part is certified */
	const char *subject_cn;     /* e.g. "trustpc fleet CA", "server.example", device id */
	const char *dns_name;       /* subjectAltName dNSName (server certs), may be NULL */
	const EcKey *issuer_key;    /* NULL: self-signed (the CA) */
	const char *issuer_cert_pem;/* the issuer's certificate, NULL when self-signed */
	unsigned days;              /* validity from now */
	int is_ca;                  /* basicConstraints CA:TRUE, keyCertSign */
	int client_auth;            /* extendedKeyUsage clientAuth (device certs) else serverAuth */
} X509IssueParams;

int x509_issue(const X509IssueParams *p, char **ret_pem);

/* Verifies a DER certificate against a PEM bundle of trusted CAs (chain: the bundle may hold
 * intermediates). On success returns its SubjectPublicKeyInfo DER. -EBADMSG malformed,
 * -EKEYREJECTED does not chain to the bundle (reason in *ret_reason, static or NULL),
 * -ETIME expired or not yet valid. */
int x509_verify_der(const uint8_t *der, size_t n, const char *ca_bundle_pem, uint8_t **ret_spki,
		    size_t *ret_spki_size, const char **ret_reason);

int x509_pem_to_der(const char *pem, uint8_t **ret, size_t *ret_size);
int x509_der_to_pem(const uint8_t *der, size_t n, char **ret_pem);
