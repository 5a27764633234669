/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* X.509 for the fleet CA (mbedTLS x509write/x509_crt). Certificates are ECDSA P-256 with
 * SHA-256. All outputs are malloc'ed; PEM strings are NUL-terminated. */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

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

/* Profile: v3, random positive 16-byte serial, SHA-256/ECDSA, validity now-1h (clock skew) to
 * now+days, subject "CN=subject_cn", basicConstraints (CA:TRUE for is_ca), keyUsage
 * digitalSignature (+keyCertSign, cRLSign for a CA), extendedKeyUsage serverAuth or clientAuth
 * (leaves only), subject and authority key identifiers, subjectAltName dNSName when dns_name.
 * -EINVAL: subject_cn empty, longer than 64 or holding one of ,=+<>#;"\ or a control character
 * (refused, not escaped: a CN must never turn into several attributes); dns_name not LDH;
 * days > 36500; an issuer key without its certificate or the reverse; a signing key without its
 * private part; an issuer key that is not the key of issuer_cert_pem. The new certificate is
 * parsed and verified against its issuer before it is returned. */
int x509_issue(const X509IssueParams *p, char **ret_pem);
/* The same with "now" given: tests make expired and not-yet-valid certificates with it. */
int x509_issue_at(const X509IssueParams *p, time_t now, char **ret_pem);

/* Verifies a DER certificate against a PEM bundle of trusted CAs (chain: the bundle may hold
 * intermediates; every certificate in the bundle is a trust anchor). On success returns its
 * SubjectPublicKeyInfo DER exactly as in the certificate (any key type: EK certificates are RSA or
 * ECC; parse it with ec_key_from_spki_der to require P-256). Profile: mbedTLS default (SHA-2
 * signatures, RSA >= 2048 bits, any named curve) — EK manufacturer CAs are RSA or P-384.
 * -EBADMSG malformed DER, trailing bytes or an empty input; -EINVAL a CA bundle that does not
 * parse completely; -EKEYREJECTED does not chain to the bundle (or a bad key/hash/keyUsage in the
 * chain); -ETIME chains, but it or an issuer is expired or not yet valid. On -EKEYREJECTED and
 * -ETIME *ret_reason (when not NULL) is set to a static human-readable reason. */
int x509_verify_der(const uint8_t *der, size_t n, const char *ca_bundle_pem, uint8_t **ret_spki,
		    size_t *ret_spki_size, const char **ret_reason);

/* The first certificate of a PEM text (every certificate in it must parse: -EBADMSG otherwise). */
int x509_pem_to_der(const char *pem, uint8_t **ret, size_t *ret_size);
/* DER must be exactly one certificate (-EBADMSG otherwise). */
int x509_der_to_pem(const uint8_t *der, size_t n, char **ret_pem);
