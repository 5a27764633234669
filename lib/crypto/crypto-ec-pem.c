/* SPDX-License-Identifier: Apache-2.0 */
/* P-256 keys in files: PEM and DER import (SEC1, PKCS#8, SubjectPublicKeyInfo) and PEM export. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/pem.h>
#include <mbedtls/pk.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"

#define KEY_FILE_MAX (64 * 1024)

/* RFC 5915 ECPrivateKey for P-256, fixed layout:
 *   SEQUENCE { INTEGER 1, OCTET STRING d(32), [0] { OID prime256v1 }, [1] { BIT STRING 0x00 point } } */
#define SEC1_D_OFFSET 7
#define SEC1_POINT_OFFSET 56
#define SEC1_SIZE (SEC1_POINT_OFFSET + EC_P256_POINT_SIZE)
static const uint8_t sec1_head[SEC1_D_OFFSET] = {0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20};
static const uint8_t sec1_mid[SEC1_POINT_OFFSET - SEC1_D_OFFSET - 32] = {
    0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0xa1, 0x44, 0x03, 0x42, 0x00,
};

static int ec_key_from_private_pk(const unsigned char *buf, size_t len, EcKey **ret)
{
	_cleanup_ec_key_ EcKey *k = NULL;
	mbedtls_ecp_keypair *kp;
	mbedtls_pk_context pk;
	int r;

	mbedtls_pk_init(&pk);
	/* SEC1 or PKCS#8, PEM (NUL-terminated, len includes the NUL) or DER. No password: an
	 * encrypted key fails with -EINVAL. */
	r = mbedtls_pk_parse_key(&pk, buf, len, NULL, 0);
	if (r != 0) {
		r = crypto_error(r, "Parsing a private key");
		goto out;
	}
	if (mbedtls_pk_get_type(&pk) != MBEDTLS_PK_ECKEY) {
		r = log_debug_errno(EINVAL, "Private key is not an EC key but %s.",
				    mbedtls_pk_get_name(&pk));
		goto out;
	}
	kp = mbedtls_pk_ec(pk);
	if (kp->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
		r = log_debug_errno(EINVAL, "Private key is not a P-256 key.");
		goto out;
	}

	r = ec_key_from_private_mpi(&kp->d, &k);
	if (r < 0)
		goto out;
	/* A stored public key that is not d*G means a corrupt or crafted file: refuse it rather than
	 * let the key's fingerprint and its signatures disagree. */
	if (!mbedtls_ecp_is_zero(&kp->Q) && mbedtls_ecp_point_cmp(&kp->Q, &k->Q) != 0) {
		r = log_debug_errno(EINVAL, "Private key file's public key does not match its private key.");
		goto out;
	}
	*ret = TAKE_PTR(k);
	r = 0;
out:
	mbedtls_pk_free(&pk); /* wipes the parsed scalar */
	return r;
}

static int ec_key_from_public_pem(const char *pem_text, EcKey **ret)
{
	mbedtls_pem_context pem;
	size_t used;
	int r;

	mbedtls_pem_init(&pem);
	r = mbedtls_pem_read_buffer(&pem, "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----",
				    (const unsigned char *)pem_text, NULL, 0, &used);
	if (r != 0)
		r = crypto_error(r, "Decoding a PEM public key");
	else
		r = ec_key_from_spki_der(pem.buf, pem.buflen, ret);
	mbedtls_pem_free(&pem);
	return r;
}

int ec_key_from_pem_or_der(const void *data, size_t n, EcKey **ret)
{
	_cleanup_secure_ char *text = NULL;
	DerCursor c = {.p = data, .n = n}, seq;

	if (!data || n == 0 || !ret)
		return -EINVAL;

	if (memmem(data, n, "-----BEGIN ", 11)) {
		/* mbedTLS wants PEM NUL-terminated; a private key is a secret, so is this copy. */
		if (memchr(data, 0, n))
			return log_debug_errno(EINVAL, "PEM key contains a NUL byte.");
		text = secure_alloc(n + 1);
		if (!text)
			return -ENOMEM;
		memcpy(text, data, n);
		text[n] = 0;

		if (strstr(text, "-----BEGIN PUBLIC KEY-----"))
			return ec_key_from_public_pem(text, ret);
		return ec_key_from_private_pk((const unsigned char *)text, n + 1, ret);
	}

	/* DER: a SubjectPublicKeyInfo begins SEQUENCE { SEQUENCE (AlgorithmIdentifier) …, SEC1 and
	 * PKCS#8 private keys begin SEQUENCE { INTEGER (version) …. */
	if (der_read_tlv(&c, DER_TAG_SEQUENCE, &seq) == 0 && der_peek_tag(&seq) == DER_TAG_SEQUENCE)
		return ec_key_from_spki_der(data, n, ret);
	return ec_key_from_private_pk(data, n, ret);
}

int ec_key_load_file(const char *path, EcKey **ret)
{
	_cleanup_secure_ char *buf = NULL;
	size_t size;
	int r;

	if (!path || !ret)
		return -EINVAL;
	r = read_full_file(path, KEY_FILE_MAX, /* secure= */ true, &buf, &size);
	if (r < 0)
		return log_debug_errno(r, "Failed to read key file %s: %m", path);
	r = ec_key_from_pem_or_der(buf, size, ret);
	if (r < 0)
		return log_debug_errno(r, "Failed to load key from %s: %m", path);
	return 0;
}

/* RFC 7468 textual encoding, 64 characters a line. */
static int pem_encode(const char *label, const uint8_t *der, size_t n, bool secure, char **ret)
{
	_cleanup_erase_ char *b64 = NULL;
	size_t l, lines, size, lb = strlen(label);
	char *out, *p;

	b64 = base64_encode(der, n);
	if (!b64)
		return -ENOMEM;
	l = strlen(b64);
	lines = (l + 63) / 64;
	size = (11 + lb + 6) + (l + lines) + (9 + lb + 6) + 1;

	out = secure ? secure_alloc(size) : malloc(size);
	if (!out)
		return -ENOMEM;
	p = out;
	p = stpcpy(stpcpy(stpcpy(p, "-----BEGIN "), label), "-----\n");
	for (size_t i = 0; i < l; i += 64) {
		size_t m = MIN((size_t)64, l - i);
		memcpy(p, b64 + i, m);
		p += m;
		*p++ = '\n';
	}
	p = stpcpy(stpcpy(stpcpy(p, "-----END "), label), "-----\n");
	*ret = out;
	return 0;
}

int ec_key_public_pem(const EcKey *k, char **ret)
{
	uint8_t spki[P256_SPKI_SIZE];
	int r;

	if (!k || !ret)
		return -EINVAL;
	memcpy(spki, p256_spki_prefix, P256_SPKI_PREFIX_SIZE);
	r = ec_key_get_point(k, spki + P256_SPKI_PREFIX_SIZE);
	if (r < 0)
		return r;
	return pem_encode("PUBLIC KEY", spki, sizeof(spki), false, ret);
}

int ec_key_private_pem(const EcKey *k, char **ret)
{
	uint8_t der[SEC1_SIZE];
	ERASE_ON_EXIT(der);
	int r;

	if (!k || !ret)
		return -EINVAL;
	if (!k->has_private)
		return log_debug_errno(EINVAL, "Key has no private part to export.");

	memcpy(der, sec1_head, sizeof(sec1_head));
	r = mbedtls_mpi_write_binary(&k->d, der + SEC1_D_OFFSET, 32);
	if (r != 0)
		return crypto_error(r, "Writing a private scalar");
	memcpy(der + SEC1_D_OFFSET + 32, sec1_mid, sizeof(sec1_mid));
	r = ec_key_get_point(k, der + SEC1_POINT_OFFSET);
	if (r < 0)
		return r;
	return pem_encode("EC PRIVATE KEY", der, sizeof(der), true, ret);
}
