/* SPDX-License-Identifier: Apache-2.0 */
/* X.509 for the fleet CA: issuing certificates (RFC 5280 profile below), verifying certificates
 * against a CA bundle (device and EK certificates), PEM/DER conversion; and the EcKey-to-pk bridge
 * that lib/tls uses (crypto-mbedtls.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"
#include "crypto/crypto-mbedtls.h"
#include "crypto/crypto-x509.h"

#define CERT_DER_MAX 4096
#define CERT_PEM_MAX 6144
#define SERIAL_SIZE 16
#define CN_MAX 64       /* ub-common-name, RFC 5280 appendix A.1 */
#define DNS_NAME_MAX 253 /* RFC 1035 section 2.3.4, without the trailing dot */
#define VALIDITY_DAYS_MAX 36500u

#define PEM_BEGIN_CRT "-----BEGIN CERTIFICATE-----\n"
#define PEM_END_CRT "-----END CERTIFICATE-----\n"

static void x509_crt_freep(mbedtls_x509_crt *c)
{
	mbedtls_x509_crt_free(c);
}
#define _cleanup_crt_ _cleanup_(x509_crt_freep)

static void pk_freep(mbedtls_pk_context *pk)
{
	mbedtls_pk_free(pk);
}
#define _cleanup_pk_ _cleanup_(pk_freep)

int ec_key_to_pk(const EcKey *k, mbedtls_pk_context *pk)
{
	mbedtls_ecp_keypair *kp;
	int r;

	if (!k || !pk)
		return -EINVAL;

	r = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (r != 0)
		return crypto_error(r, "Setting up a pk context");
	kp = mbedtls_pk_ec(*pk);
	r = mbedtls_ecp_group_load(&kp->grp, MBEDTLS_ECP_DP_SECP256R1);
	if (r == 0)
		r = mbedtls_ecp_copy(&kp->Q, &k->Q);
	if (r == 0 && k->has_private)
		r = mbedtls_mpi_copy(&kp->d, &k->d);
	if (r != 0) {
		mbedtls_pk_free(pk);
		mbedtls_pk_init(pk);
		return crypto_error(r, "Copying a key into a pk context");
	}
	return 0;
}

/* mbedTLS X.509 parse errors carry an X509 high-level code that crypto_error does not know; every
 * failure to parse untrusted bytes is a malformed message to us, except running out of memory. */
static int x509_parse_error(int code, const char *what)
{
	if (code == MBEDTLS_ERR_X509_ALLOC_FAILED || (-code & 0x7F) == -MBEDTLS_ERR_ASN1_ALLOC_FAILED)
		return log_debug_errno(ENOMEM, "%s: out of memory", what);
	(void)crypto_error(code, what);
	return -EBADMSG;
}

/* Parses exactly one DER certificate: mbedtls_x509_crt_parse_der ignores bytes after the outer
 * SEQUENCE, and a second reading of the same input must not be possible (the bytes we verify are
 * the bytes we store). */
static int crt_parse_der_exact(mbedtls_x509_crt *crt, const uint8_t *der, size_t n)
{
	int r;

	r = mbedtls_x509_crt_parse_der(crt, der, n);
	if (r != 0)
		return x509_parse_error(r, "Parsing a DER certificate");
	if (crt->raw.len != n || crt->next)
		return log_debug_errno(EBADMSG, "Trailing bytes after the certificate");
	return 0;
}

/* A PEM bundle (or a single DER certificate) whose every certificate parses. */
static int crt_parse_bundle(mbedtls_x509_crt *crt, const char *pem)
{
	int r;

	/* The PEM parser wants the terminating NUL counted in the length. */
	r = mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, strlen(pem) + 1);
	if (r < 0)
		return x509_parse_error(r, "Parsing a PEM certificate bundle");
	if (r > 0)
		return log_debug_errno(EBADMSG, "%d certificate(s) of the PEM bundle do not parse", r);
	return 0;
}

/* Our names go through mbedtls_x509_string_to_names ("CN=..."), whose separators and escapes we
 * refuse outright instead of escaping: a CN such as "x,O=Evil" must never become two attributes. */
static bool common_name_is_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > CN_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || strchr(",=+<>#;\"\\", *p))
			return false;
	return true;
}

/* RFC 1035 letters, digits, hyphens and dots (no wildcards: we never issue them). */
static bool dns_name_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DNS_NAME_MAX || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.'))
			return false;
	return true;
}

/* SubjectAltName ::= SEQUENCE OF GeneralName; dNSName [2] IMPLICIT IA5String. The name is at most
 * 253 bytes, so every length fits the long form with one length byte. */
static int san_dns_encode(const char *name, uint8_t *buf, size_t size, size_t *ret_len)
{
	size_t n = strlen(name), inner = (n < 128 ? 2 : 3) + n, total = (inner < 128 ? 2 : 3) + inner;
	uint8_t *p = buf;

	if (total > size)
		return -ENOBUFS;
	*p++ = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
	if (inner >= 128)
		*p++ = 0x81;
	*p++ = (uint8_t)inner;
	*p++ = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2;
	if (n >= 128)
		*p++ = 0x81;
	*p++ = (uint8_t)n;
	memcpy(p, name, n);
	*ret_len = total;
	return 0;
}

/* ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId: exactly one purpose, so a device
 * certificate can never serve as a server certificate (mbedTLS checks the purpose of the peer's
 * certificate in the handshake) and a server certificate never authenticates a device. */
static const uint8_t eku_server_auth[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01,
					  0x05, 0x05, 0x07, 0x03, 0x01};
static const uint8_t eku_client_auth[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01,
					  0x05, 0x05, 0x07, 0x03, 0x02};

static int format_time(time_t t, char out[16])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1950)
		return -ERANGE;
	if (strftime(out, 16, "%Y%m%d%H%M%S", &tm) != 14)
		return -ERANGE;
	return 0;
}

static int random_serial(mbedtls_mpi *serial)
{
	uint8_t b[SERIAL_SIZE];
	int r;

	r = crypto_random_bytes(b, sizeof(b));
	if (r < 0)
		return r;
	/* RFC 5280 4.1.2.2: a positive integer of at most 20 octets. Top bit clear keeps it positive
	 * without a leading zero octet; the next bit set keeps it exactly 16 octets long. */
	b[0] = (uint8_t)((b[0] & 0x7f) | 0x40);
	r = mbedtls_mpi_read_binary(serial, b, sizeof(b));
	if (r != 0)
		return crypto_error(r, "Reading the serial number");
	return 0;
}

/* The issued certificate must chain to its issuer exactly: same name bytes, valid signature, an
 * issuer that may sign certificates. Time is not checked (x509_issue_at may issue in the past). */
static int check_issued(const uint8_t *der, size_t n, const mbedtls_x509_crt *issuer)
{
	_cleanup_crt_ mbedtls_x509_crt crt, self;
	const mbedtls_x509_crt *anchor = issuer;
	uint32_t flags = 0;
	int r;

	mbedtls_x509_crt_init(&crt);
	mbedtls_x509_crt_init(&self);
	r = crt_parse_der_exact(&crt, der, n);
	if (r < 0)
		return r;
	if (!issuer) {
		r = crt_parse_der_exact(&self, der, n);
		if (r < 0)
			return r;
		anchor = &self;
	} else if (crt.issuer_raw.len != issuer->subject_raw.len ||
		   memcmp(crt.issuer_raw.p, issuer->subject_raw.p, crt.issuer_raw.len) != 0)
		return log_debug_errno(EINVAL, "The issuer's name did not survive re-encoding");

	r = mbedtls_x509_crt_verify(&crt, (mbedtls_x509_crt *)anchor, NULL, NULL, &flags, NULL, NULL);
	flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
	if (r != 0 && flags != 0)
		return log_debug_errno(EINVAL, "The new certificate does not verify (flags 0x%x)", flags);
	return 0;
}

int x509_issue_at(const X509IssueParams *p, time_t now, char **ret_pem)
{
	_cleanup_crt_ mbedtls_x509_crt issuer_crt;
	_cleanup_pk_ mbedtls_pk_context subject_pk, issuer_pk;
	mbedtls_x509write_cert w;
	mbedtls_mpi serial;
	char not_before[16], not_after[16], name[CN_MAX + 4], issuer_name[512];
	uint8_t san[DNS_NAME_MAX + 8];
	_cleanup_free_ uint8_t *der = NULL;
	_cleanup_free_ char *pem = NULL;
	size_t san_len = 0, der_len;
	int r;

	mbedtls_x509_crt_init(&issuer_crt);
	mbedtls_pk_init(&subject_pk);
	mbedtls_pk_init(&issuer_pk);
	if (!p || !ret_pem || !p->subject_key || !common_name_is_valid(p->subject_cn))
		return -EINVAL;
	if ((p->dns_name && !dns_name_is_valid(p->dns_name)) || p->days > VALIDITY_DAYS_MAX)
		return -EINVAL;
	if (!p->issuer_key != !p->issuer_cert_pem)
		return -EINVAL;
	/* A self-signed certificate is signed by its own subject key. */
	if (!ec_key_has_private(p->issuer_key ?: p->subject_key))
		return -EINVAL;

	r = format_time(now - 3600, not_before); /* tolerate clocks up to an hour behind */
	if (r == 0)
		r = format_time(now + (time_t)p->days * 86400, not_after);
	if (r < 0)
		return -EINVAL;
	if (p->dns_name) {
		r = san_dns_encode(p->dns_name, san, sizeof(san), &san_len);
		if (r < 0)
			return r;
	}

	r = ec_key_to_pk(p->subject_key, &subject_pk);
	if (r < 0)
		return r;
	r = ec_key_to_pk(p->issuer_key ?: p->subject_key, &issuer_pk);
	if (r < 0)
		return r;

	snprintf(name, sizeof(name), "CN=%s", p->subject_cn);
	if (p->issuer_cert_pem) {
		r = crt_parse_bundle(&issuer_crt, p->issuer_cert_pem);
		if (r < 0)
			return r == -EBADMSG ? -EINVAL : r;
		/* The key must be the one certified as the issuer, or the chain is broken. */
		if (mbedtls_pk_check_pair(&issuer_crt.pk, &issuer_pk) != 0)
			return log_debug_errno(EINVAL, "The issuer key does not match the issuer certificate");
		if (mbedtls_x509_dn_gets(issuer_name, sizeof(issuer_name), &issuer_crt.subject) < 0)
			return -EINVAL;
	} else
		snprintf(issuer_name, sizeof(issuer_name), "%s", name);

	der = malloc(CERT_DER_MAX);
	if (!der)
		return -ENOMEM;

	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&serial);
	r = random_serial(&serial);
	if (r < 0)
		goto out;
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &subject_pk);
	mbedtls_x509write_crt_set_issuer_key(&w, &issuer_pk);
	r = mbedtls_x509write_crt_set_serial(&w, &serial);
	if (r == 0)
		r = mbedtls_x509write_crt_set_validity(&w, not_before, not_after);
	if (r == 0)
		r = mbedtls_x509write_crt_set_subject_name(&w, name);
	if (r == 0)
		r = mbedtls_x509write_crt_set_issuer_name(&w, issuer_name);
	if (r == 0)
		r = mbedtls_x509write_crt_set_basic_constraints(&w, !!p->is_ca, -1);
	if (r == 0)
		r = mbedtls_x509write_crt_set_key_usage(
			&w, MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
				    (p->is_ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN : 0));
	if (r == 0)
		r = mbedtls_x509write_crt_set_subject_key_identifier(&w);
	if (r == 0)
		r = mbedtls_x509write_crt_set_authority_key_identifier(&w);
	if (r == 0 && san_len > 0)
		r = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_SUBJECT_ALT_NAME,
							MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, san,
							san_len);
	/* Leaf certificates name their one purpose; CA certificates carry none (RFC 5280 4.2.1.12). */
	if (r == 0 && !p->is_ca)
		r = mbedtls_x509write_crt_set_extension(
			&w, MBEDTLS_OID_EXTENDED_KEY_USAGE, MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0,
			p->client_auth ? eku_client_auth : eku_server_auth, sizeof(eku_server_auth));
	if (r != 0) {
		r = crypto_error(r, "Preparing the certificate");
		goto out;
	}

	/* The writer fills the buffer from its end. */
	r = mbedtls_x509write_crt_der(&w, der, CERT_DER_MAX, crypto_rng, NULL);
	if (r <= 0) {
		r = crypto_error(r, "Signing the certificate");
		goto out;
	}
	der_len = (size_t)r;
	memmove(der, der + CERT_DER_MAX - der_len, der_len);

	r = check_issued(der, der_len, p->issuer_cert_pem ? &issuer_crt : NULL);
	if (r < 0)
		goto out;
	r = x509_der_to_pem(der, der_len, &pem);
	if (r < 0)
		goto out;
	*ret_pem = TAKE_PTR(pem);
	r = 0;
out:
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&w);
	return r;
}

int x509_issue(const X509IssueParams *p, char **ret_pem)
{
	return x509_issue_at(p, time(NULL), ret_pem);
}

/* The first reason that applies, most fundamental first: an untrusted chain makes every other
 * flag meaningless. */
static const char *verify_reason(uint32_t flags)
{
	static const struct {
		uint32_t flag;
		const char *reason;
	} table[] = {
		{MBEDTLS_X509_BADCERT_NOT_TRUSTED, "not issued by a trusted CA (no valid chain to the bundle)"},
		{MBEDTLS_X509_BADCERT_BAD_MD, "signed with a hash algorithm that is not allowed"},
		{MBEDTLS_X509_BADCERT_BAD_PK, "a key type in the chain is not allowed"},
		{MBEDTLS_X509_BADCERT_BAD_KEY, "a key in the chain is too weak or on a curve not allowed"},
		{MBEDTLS_X509_BADCERT_KEY_USAGE, "an issuer is not allowed to sign certificates (keyUsage)"},
		{MBEDTLS_X509_BADCERT_EXT_KEY_USAGE, "extendedKeyUsage does not allow this use"},
		{MBEDTLS_X509_BADCERT_REVOKED, "the certificate is revoked"},
		{MBEDTLS_X509_BADCERT_OTHER, "the chain is invalid"},
		{MBEDTLS_X509_BADCERT_EXPIRED, "the certificate (or an issuer) has expired"},
		{MBEDTLS_X509_BADCERT_FUTURE, "the certificate (or an issuer) is not valid yet"},
	};

	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		if (flags & table[i].flag)
			return table[i].reason;
	return "the certificate does not verify";
}

int x509_verify_der(const uint8_t *der, size_t n, const char *ca_bundle_pem, uint8_t **ret_spki,
		    size_t *ret_spki_size, const char **ret_reason)
{
	_cleanup_crt_ mbedtls_x509_crt crt, ca;
	const uint32_t time_flags = MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE;
	uint32_t flags = 0;
	uint8_t *spki;
	int r;

	mbedtls_x509_crt_init(&crt);
	mbedtls_x509_crt_init(&ca);
	if ((!der && n > 0) || !ca_bundle_pem || !ret_spki || !ret_spki_size)
		return -EINVAL;
	r = crt_parse_bundle(&ca, ca_bundle_pem);
	if (r < 0) /* a broken bundle is a configuration error, not a bad certificate */
		return r == -EBADMSG ? -EINVAL : r;
	if (n == 0)
		return -EBADMSG;
	r = crt_parse_der_exact(&crt, der, n);
	if (r < 0)
		return r;

	/* The default profile: SHA-2 signatures, RSA >= 2048 bits, any named curve. EK certificates
	 * are signed by RSA or P-384 manufacturer CAs, so this cannot be our TLS profile. */
	r = mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL);
	if (r != 0) {
		if (ret_reason)
			*ret_reason = verify_reason(flags);
		log_debug("Certificate verification failed: flags 0x%x (%s)", flags, verify_reason(flags));
		if (flags != 0 && (flags & ~time_flags) == 0)
			return -ETIME;
		if (r == MBEDTLS_ERR_X509_ALLOC_FAILED)
			return -ENOMEM;
		return -EKEYREJECTED;
	}

	spki = malloc(crt.pk_raw.len);
	if (!spki)
		return -ENOMEM;
	memcpy(spki, crt.pk_raw.p, crt.pk_raw.len);
	*ret_spki = spki;
	*ret_spki_size = crt.pk_raw.len;
	return 0;
}

int x509_pem_to_der(const char *pem, uint8_t **ret, size_t *ret_size)
{
	_cleanup_crt_ mbedtls_x509_crt crt;
	uint8_t *der;
	int r;

	mbedtls_x509_crt_init(&crt);
	if (!pem || !ret || !ret_size)
		return -EINVAL;
	if (!strstr(pem, "-----BEGIN CERTIFICATE-----"))
		return -EBADMSG; /* mbedtls_x509_crt_parse would also take DER here */
	r = crt_parse_bundle(&crt, pem);
	if (r < 0)
		return r;
	der = malloc(crt.raw.len);
	if (!der)
		return -ENOMEM;
	memcpy(der, crt.raw.p, crt.raw.len);
	*ret = der;
	*ret_size = crt.raw.len;
	return 0;
}

int x509_der_to_pem(const uint8_t *der, size_t n, char **ret_pem)
{
	_cleanup_crt_ mbedtls_x509_crt crt;
	_cleanup_free_ char *pem = NULL;
	size_t olen = 0, size;
	int r;

	mbedtls_x509_crt_init(&crt);
	if (!der || n == 0 || n > CERT_PEM_MAX * 4 || !ret_pem)
		return -EINVAL;
	r = crt_parse_der_exact(&crt, der, n);
	if (r < 0)
		return r;

	/* base64 with a newline every 64 characters, the two armour lines and a NUL. */
	size = (n + 2) / 3 * 4 + (n + 47) / 48 + sizeof(PEM_BEGIN_CRT) + sizeof(PEM_END_CRT) + 1;
	pem = malloc(size);
	if (!pem)
		return -ENOMEM;
	r = mbedtls_pem_write_buffer(PEM_BEGIN_CRT, PEM_END_CRT, der, n, (unsigned char *)pem, size, &olen);
	if (r != 0)
		return crypto_error(r, "Writing PEM");
	*ret_pem = TAKE_PTR(pem);
	return 0;
}
