/* SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto X.509: issuing (profile checked by parsing the result with mbedTLS), verification
 * against a bundle with an intermediate, every rejection with its errno and reason, PEM/DER. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include "crypto/crypto-x509.h"
#include "crypto/crypto.h"

typedef struct Fixture {
	EcKey *ca_key, *other_ca_key, *inter_key, *leaf_key;
	char *ca_pem, *other_ca_pem, *inter_pem;
} Fixture;

static char *issue(const EcKey *key, const char *cn, const char *dns, const EcKey *issuer_key,
		   const char *issuer_pem, int is_ca, int client_auth)
{
	X509IssueParams p = {
		.subject_key = key,
		.subject_cn = cn,
		.dns_name = dns,
		.issuer_key = issuer_key,
		.issuer_cert_pem = issuer_pem,
		.days = 30,
		.is_ca = is_ca,
		.client_auth = client_auth,
	};
	char *pem = NULL;

	assert_int_equal(x509_issue(&p, &pem), 0);
	assert_non_null(pem);
	return pem;
}

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	assert_int_equal(ec_key_generate(&f->ca_key), 0);
	assert_int_equal(ec_key_generate(&f->other_ca_key), 0);
	assert_int_equal(ec_key_generate(&f->inter_key), 0);
	assert_int_equal(ec_key_generate(&f->leaf_key), 0);
	f->ca_pem = issue(f->ca_key, "test root CA", NULL, NULL, NULL, 1, 0);
	f->other_ca_pem = issue(f->other_ca_key, "test root CA", NULL, NULL, NULL, 1, 0);
	f->inter_pem = issue(f->inter_key, "test intermediate CA", NULL, f->ca_key, f->ca_pem, 1, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;

	ec_key_free(f->ca_key);
	ec_key_free(f->other_ca_key);
	ec_key_free(f->inter_key);
	ec_key_free(f->leaf_key);
	free(f->ca_pem);
	free(f->other_ca_pem);
	free(f->inter_pem);
	free(f);
	return 0;
}

static void pem_to_der(const char *pem, uint8_t **der, size_t *n)
{
	assert_int_equal(x509_pem_to_der(pem, der, n), 0);
	assert_true(*n > 100);
}

static void test_round_trip(void **state)
{
	Fixture *f = *state;
	char *pem = issue(f->leaf_key, "localhost", "localhost", f->ca_key, f->ca_pem, 0, 0), *pem2 = NULL;
	uint8_t *der = NULL, *spki = NULL, *expect = NULL;
	size_t n, spki_n, expect_n;
	const char *reason = NULL;

	pem_to_der(pem, &der, &n);
	assert_int_equal(x509_verify_der(der, n, f->ca_pem, &spki, &spki_n, &reason), 0);
	assert_null(reason);
	assert_int_equal(ec_key_public_spki_der(f->leaf_key, &expect, &expect_n), 0);
	assert_int_equal(spki_n, expect_n);
	assert_memory_equal(spki, expect, spki_n);

	assert_int_equal(x509_der_to_pem(der, n, &pem2), 0);
	assert_string_equal(pem, pem2);
	free(pem);
	free(pem2);
	free(der);
	free(spki);
	free(expect);
}

/* The profile, read back with mbedTLS's parser. */
static void test_profile(void **state)
{
	Fixture *f = *state;
	char *a = issue(f->leaf_key, "localhost", "localhost", f->ca_key, f->ca_pem, 0, 0);
	char *b = issue(f->leaf_key, "device-1", NULL, f->ca_key, f->ca_pem, 0, 1);
	mbedtls_x509_crt ca_crt, sa, sb;

	mbedtls_x509_crt_init(&ca_crt);
	mbedtls_x509_crt_init(&sa);
	mbedtls_x509_crt_init(&sb);
	assert_int_equal(mbedtls_x509_crt_parse(&ca_crt, (const unsigned char *)f->ca_pem, strlen(f->ca_pem) + 1), 0);
	assert_int_equal(mbedtls_x509_crt_parse(&sa, (const unsigned char *)a, strlen(a) + 1), 0);
	assert_int_equal(mbedtls_x509_crt_parse(&sb, (const unsigned char *)b, strlen(b) + 1), 0);

	assert_int_equal(sa.version, 3);
	/* 16-byte positive serials, different each time */
	assert_int_equal(sa.serial.len, 16);
	assert_true((sa.serial.p[0] & 0x80) == 0);
	assert_int_equal(sb.serial.len, 16);
	assert_memory_not_equal(sa.serial.p, sb.serial.p, 16);
	/* validity: starts an hour back, ends 30 days on */
	assert_int_equal(mbedtls_x509_time_is_past(&sa.valid_from), 1);
	assert_int_equal(mbedtls_x509_time_is_future(&sa.valid_to), 1);
	/* CA bits */
	assert_int_equal(ca_crt.ca_istrue, 1);
	assert_int_equal(mbedtls_x509_crt_check_key_usage(&ca_crt, MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);
	assert_int_equal(sa.ca_istrue, 0);
	assert_int_not_equal(mbedtls_x509_crt_check_key_usage(&sa, MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);
	assert_int_equal(mbedtls_x509_crt_check_key_usage(&sa, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
	/* one purpose each */
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&sa, MBEDTLS_OID_SERVER_AUTH,
								  MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)), 0);
	assert_int_not_equal(mbedtls_x509_crt_check_extended_key_usage(&sa, MBEDTLS_OID_CLIENT_AUTH,
								      MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)), 0);
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&sb, MBEDTLS_OID_CLIENT_AUTH,
								  MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)), 0);
	assert_int_not_equal(mbedtls_x509_crt_check_extended_key_usage(&sb, MBEDTLS_OID_SERVER_AUTH,
								      MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)), 0);
	/* SAN dNSName only when asked */
	assert_true(sa.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME);
	assert_int_equal(sa.subject_alt_names.buf.len, strlen("localhost"));
	assert_memory_equal(sa.subject_alt_names.buf.p, "localhost", strlen("localhost"));
	assert_false(sb.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME);
	/* key identifiers chain: the leaf's AKI is the CA's SKI */
	assert_true(sa.ext_types & MBEDTLS_X509_EXT_KEY_USAGE);
	/* issuer name bytes equal the CA's subject bytes */
	assert_int_equal(sa.issuer_raw.len, ca_crt.subject_raw.len);
	assert_memory_equal(sa.issuer_raw.p, ca_crt.subject_raw.p, sa.issuer_raw.len);

	mbedtls_x509_crt_free(&ca_crt);
	mbedtls_x509_crt_free(&sa);
	mbedtls_x509_crt_free(&sb);
	free(a);
	free(b);
}

/* EK-style: root -> intermediate -> leaf; the bundle holds both CAs. */
static void test_chain_with_intermediate(void **state)
{
	Fixture *f = *state;
	char *leaf = issue(f->leaf_key, "ek", NULL, f->inter_key, f->inter_pem, 0, 1);
	size_t bl = strlen(f->inter_pem) + strlen(f->ca_pem) + 1;
	char *bundle = malloc(bl);
	uint8_t *der = NULL, *spki = NULL;
	size_t n, spki_n;
	const char *reason = NULL;

	assert_non_null(bundle);
	strcpy(bundle, f->inter_pem);
	strcat(bundle, f->ca_pem);
	pem_to_der(leaf, &der, &n);
	assert_int_equal(x509_verify_der(der, n, bundle, &spki, &spki_n, &reason), 0);
	free(spki);
	spki = NULL;
	/* the root alone does not reach the leaf: the intermediate is missing */
	assert_int_equal(x509_verify_der(der, n, f->ca_pem, &spki, &spki_n, &reason), -EKEYREJECTED);
	assert_non_null(reason);
	assert_non_null(strstr(reason, "trusted CA"));
	assert_null(spki);
	/* the intermediate alone is a trust anchor too */
	assert_int_equal(x509_verify_der(der, n, f->inter_pem, &spki, &spki_n, &reason), 0);
	free(spki);
	free(der);
	free(leaf);
	free(bundle);
}

static void test_wrong_ca(void **state)
{
	Fixture *f = *state;
	/* same CN as the real CA: only the key tells them apart */
	char *leaf = issue(f->leaf_key, "device-1", NULL, f->other_ca_key, f->other_ca_pem, 0, 1);
	uint8_t *der = NULL, *spki = NULL;
	size_t n, spki_n = 0;
	const char *reason = NULL;

	pem_to_der(leaf, &der, &n);
	assert_int_equal(x509_verify_der(der, n, f->ca_pem, &spki, &spki_n, &reason), -EKEYREJECTED);
	assert_string_equal(reason, "not issued by a trusted CA (no valid chain to the bundle)");
	assert_null(spki);
	assert_int_equal(spki_n, 0);
	/* positive control: the right CA accepts it */
	assert_int_equal(x509_verify_der(der, n, f->other_ca_pem, &spki, &spki_n, &reason), 0);
	free(spki);
	free(der);
	free(leaf);
}

static void test_garbage(void **state)
{
	Fixture *f = *state;
	static const uint8_t garbage[] = {0x30, 0x03, 0x02, 0x01, 0x01};
	char *leaf = issue(f->leaf_key, "device-1", NULL, f->ca_key, f->ca_pem, 0, 1);
	uint8_t *der = NULL, *spki = NULL, *longer;
	size_t n, spki_n;
	const char *reason = NULL;

	assert_int_equal(x509_verify_der(garbage, sizeof(garbage), f->ca_pem, &spki, &spki_n, &reason), -EBADMSG);
	assert_int_equal(x509_verify_der((const uint8_t *)"hello", 5, f->ca_pem, &spki, &spki_n, &reason), -EBADMSG);
	assert_int_equal(x509_verify_der(garbage, 0, f->ca_pem, &spki, &spki_n, &reason), -EBADMSG);
	pem_to_der(leaf, &der, &n);
	/* truncated */
	assert_int_equal(x509_verify_der(der, n - 1, f->ca_pem, &spki, &spki_n, &reason), -EBADMSG);
	/* one trailing byte: refused, though mbedTLS alone would ignore it */
	longer = malloc(n + 1);
	assert_non_null(longer);
	memcpy(longer, der, n);
	longer[n] = 0;
	assert_int_equal(x509_verify_der(longer, n + 1, f->ca_pem, &spki, &spki_n, &reason), -EBADMSG);
	/* a flipped bit in the signature: parses, does not verify */
	memcpy(longer, der, n);
	longer[n - 3] ^= 0x01;
	assert_int_equal(x509_verify_der(longer, n, f->ca_pem, &spki, &spki_n, &reason), -EKEYREJECTED);
	assert_null(spki);
	/* a broken CA bundle is a configuration error */
	assert_int_equal(x509_verify_der(der, n, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
					 &spki, &spki_n, &reason), -EINVAL);
	assert_int_equal(x509_der_to_pem(garbage, sizeof(garbage), &leaf), -EBADMSG);
	assert_int_equal(x509_pem_to_der("not a certificate", &spki, &spki_n), -EBADMSG);
	assert_null(spki);
	free(longer);
	free(der);
	free(leaf);
}

static void test_validity(void **state)
{
	Fixture *f = *state;
	X509IssueParams p = {
		.subject_key = f->leaf_key,
		.subject_cn = "device-1",
		.issuer_key = f->ca_key,
		.issuer_cert_pem = f->ca_pem,
		.days = 0,
		.client_auth = 1,
	};
	char *pem = NULL;
	uint8_t *der = NULL, *spki = NULL;
	size_t n, spki_n;
	const char *reason = NULL;

	/* expired two days ago */
	assert_int_equal(x509_issue_at(&p, time(NULL) - 2 * 86400, &pem), 0);
	pem_to_der(pem, &der, &n);
	assert_int_equal(x509_verify_der(der, n, f->ca_pem, &spki, &spki_n, &reason), -ETIME);
	assert_string_equal(reason, "the certificate (or an issuer) has expired");
	free(pem);
	free(der);
	/* valid from tomorrow on */
	p.days = 30;
	assert_int_equal(x509_issue_at(&p, time(NULL) + 2 * 86400, &pem), 0);
	pem_to_der(pem, &der, &n);
	assert_int_equal(x509_verify_der(der, n, f->ca_pem, &spki, &spki_n, &reason), -ETIME);
	assert_string_equal(reason, "the certificate (or an issuer) is not valid yet");
	/* not trusted wins over time: another CA's bundle gives -EKEYREJECTED */
	assert_int_equal(x509_verify_der(der, n, f->other_ca_pem, &spki, &spki_n, &reason), -EKEYREJECTED);
	assert_null(spki);
	free(pem);
	free(der);
}

static void test_issue_refusals(void **state)
{
	Fixture *f = *state;
	EcKey *pub = NULL;
	uint8_t point[EC_P256_POINT_SIZE];
	X509IssueParams p = {
		.subject_key = f->leaf_key,
		.subject_cn = "device-1",
		.issuer_key = f->ca_key,
		.issuer_cert_pem = f->ca_pem,
		.days = 1,
	};
	char *pem = NULL;

	p.subject_cn = "x,O=evil";
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	p.subject_cn = "";
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	p.subject_cn = "a\\b";
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	p.subject_cn = "device-1";
	p.dns_name = "*.example.com";
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	p.dns_name = "bad..name";
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	p.dns_name = NULL;
	/* the issuer key does not match the issuer certificate */
	p.issuer_key = f->other_ca_key;
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	/* a key without its certificate */
	p.issuer_key = f->ca_key;
	p.issuer_cert_pem = NULL;
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	/* a public key cannot sign */
	assert_int_equal(ec_key_get_point(f->ca_key, point), 0);
	assert_int_equal(ec_key_from_point(point, sizeof(point), &pub), 0);
	p.issuer_key = pub;
	p.issuer_cert_pem = f->ca_pem;
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	/* an issuer that is not a CA: the self-check catches the broken chain */
	{
		char *leaf = issue(f->inter_key, "not a ca", NULL, f->ca_key, f->ca_pem, 0, 0);
		p.issuer_key = f->inter_key;
		p.issuer_cert_pem = leaf;
		assert_int_equal(x509_issue(&p, &pem), -EINVAL);
		free(leaf);
	}
	p.days = 40000;
	assert_int_equal(x509_issue(&p, &pem), -EINVAL);
	assert_null(pem);
	/* a certificate for a public-only subject key is fine */
	p.subject_key = pub;
	p.issuer_key = f->ca_key;
	p.issuer_cert_pem = f->ca_pem;
	p.days = 1;
	assert_int_equal(x509_issue(&p, &pem), 0);
	free(pem);
	ec_key_free(pub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_profile),
		cmocka_unit_test(test_chain_with_intermediate),
		cmocka_unit_test(test_wrong_ca),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_validity),
		cmocka_unit_test(test_issue_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
