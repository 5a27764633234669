/* SPDX-License-Identifier: Apache-2.0 */
/* P-256 keys: creation, validation, SubjectPublicKeyInfo (RFC 5480) and fingerprints. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"

/* SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID prime256v1 }, BIT STRING (0 unused bits) } */
const uint8_t p256_spki_prefix[P256_SPKI_PREFIX_SIZE] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
};
/* 1.2.840.10045.2.1 */
static const uint8_t oid_ec_public_key[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
/* 1.2.840.10045.3.1.7 */
static const uint8_t oid_prime256v1[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

int p256_group_load(mbedtls_ecp_group *grp)
{
	int r;

	mbedtls_ecp_group_init(grp);
	r = mbedtls_ecp_group_load(grp, MBEDTLS_ECP_DP_SECP256R1);
	if (r != 0)
		return crypto_error(r, "Loading the P-256 group");
	return 0;
}

/* One group per thread in thread-specific data, so that the destructor frees it when a thread
 * ends (a __thread variable would leak it). */
static pthread_key_t group_key;
static bool group_key_ok;
static pthread_once_t group_once = PTHREAD_ONCE_INIT;

static void group_destroy(void *p)
{
	mbedtls_ecp_group_free(p);
	free(p);
}

static void group_key_init(void)
{
	group_key_ok = pthread_key_create(&group_key, group_destroy) == 0;
}

int p256_group_shared(mbedtls_ecp_group **ret)
{
	mbedtls_ecp_group *g;
	int r;

	if (pthread_once(&group_once, group_key_init) != 0 || !group_key_ok)
		return -EAGAIN;
	g = pthread_getspecific(group_key);
	if (!g) {
		g = malloc(sizeof(*g));
		if (!g)
			return -ENOMEM;
		r = p256_group_load(g);
		if (r < 0) {
			free(g);
			return r;
		}
		if (pthread_setspecific(group_key, g) != 0) {
			group_destroy(g);
			return -ENOMEM;
		}
	}
	*ret = g;
	return 0;
}

EcKey *ec_key_new(void)
{
	EcKey *k = calloc(1, sizeof(EcKey));

	if (!k)
		return NULL;
	mbedtls_ecp_point_init(&k->Q);
	mbedtls_mpi_init(&k->d);
	return k;
}

EcKey *ec_key_free(EcKey *k)
{
	if (!k)
		return NULL;
	/* mbedtls_mpi_free wipes the limbs of the private scalar before freeing them. */
	mbedtls_mpi_free(&k->d);
	mbedtls_ecp_point_free(&k->Q);
	memory_erase(k, sizeof(*k));
	free(k);
	return NULL;
}

/* Q = d*G for a private scalar d that has been checked to lie in [1, n-1]. */
static int ec_key_derive_public(EcKey *k)
{
	mbedtls_ecp_group grp;
	int r;

	r = p256_group_load(&grp);
	if (r < 0)
		return r;
	/* crypto_rng randomizes the projective coordinates (side-channel blinding). */
	r = mbedtls_ecp_mul(&grp, &k->Q, &k->d, &grp.G, crypto_rng, NULL);
	mbedtls_ecp_group_free(&grp);
	if (r != 0)
		return crypto_error(r, "Computing the public key");
	return 0;
}

int ec_key_generate(EcKey **ret)
{
	_cleanup_ec_key_ EcKey *k = NULL;
	mbedtls_ecp_group grp;
	int r;

	if (!ret)
		return -EINVAL;
	k = ec_key_new();
	if (!k)
		return -ENOMEM;
	r = p256_group_load(&grp);
	if (r < 0)
		return r;
	/* Rejection sampling of d in [1, n-1] from crypto_rng (FIPS 186-4 B.4.2), then Q = d*G. */
	r = mbedtls_ecp_gen_keypair(&grp, &k->d, &k->Q, crypto_rng, NULL);
	mbedtls_ecp_group_free(&grp);
	if (r != 0)
		return crypto_error(r, "Generating a P-256 key");
	k->has_private = true;
	*ret = TAKE_PTR(k);
	return 0;
}

/* Takes the point already read into k->Q and rejects it unless it is a point of P-256 other than
 * the point at infinity (SEC 1 v2 section 3.2.2.1): this is what stops invalid-curve attacks. */
static int ec_key_check_public(EcKey *k)
{
	mbedtls_ecp_group grp;
	int r;

	r = p256_group_load(&grp);
	if (r < 0)
		return r;
	r = mbedtls_ecp_check_pubkey(&grp, &k->Q);
	mbedtls_ecp_group_free(&grp);
	if (r != 0)
		return crypto_error(r, "Validating a P-256 public point");
	return 0;
}

int ec_key_from_point(const uint8_t *point, size_t n, EcKey **ret)
{
	_cleanup_ec_key_ EcKey *k = NULL;
	int r;

	if (!point || !ret)
		return -EINVAL;
	/* Uncompressed form only: 0x04 || X || Y. */
	if (n != EC_P256_POINT_SIZE || point[0] != 0x04)
		return log_debug_errno(EINVAL, "Not an uncompressed P-256 point (%zu bytes).", n);

	k = ec_key_new();
	if (!k)
		return -ENOMEM;
	r = mbedtls_mpi_read_binary(&k->Q.X, point + 1, 32);
	if (r == 0)
		r = mbedtls_mpi_read_binary(&k->Q.Y, point + 1 + 32, 32);
	if (r == 0)
		r = mbedtls_mpi_lset(&k->Q.Z, 1);
	if (r != 0)
		return crypto_error(r, "Reading a P-256 point");
	r = ec_key_check_public(k);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(k);
	return 0;
}

int ec_key_from_xy(const uint8_t x[32], const uint8_t y[32], EcKey **ret)
{
	uint8_t point[EC_P256_POINT_SIZE];

	if (!x || !y || !ret)
		return -EINVAL;
	point[0] = 0x04;
	memcpy(point + 1, x, 32);
	memcpy(point + 1 + 32, y, 32);
	return ec_key_from_point(point, sizeof(point), ret);
}

int ec_key_from_private_mpi(const mbedtls_mpi *d, EcKey **ret)
{
	_cleanup_ec_key_ EcKey *k = NULL;
	mbedtls_ecp_group grp;
	int r;

	r = p256_group_load(&grp);
	if (r < 0)
		return r;
	/* 1 <= d <= n-1 */
	r = mbedtls_ecp_check_privkey(&grp, d);
	mbedtls_ecp_group_free(&grp);
	if (r != 0)
		return crypto_error(r, "Validating a P-256 private scalar");

	k = ec_key_new();
	if (!k)
		return -ENOMEM;
	r = mbedtls_mpi_copy(&k->d, d);
	if (r != 0)
		return crypto_error(r, "Copying a private scalar");
	k->has_private = true;
	r = ec_key_derive_public(k);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(k);
	return 0;
}

int ec_key_from_private_scalar(const void *d, size_t n, EcKey **ret)
{
	mbedtls_mpi m;
	int r;

	if (!d || !ret)
		return -EINVAL;
	if (n == 0 || n > EC_P256_SCALAR_SIZE + 1)
		return log_debug_errno(EINVAL, "A P-256 private scalar of %zu bytes is not valid.", n);

	mbedtls_mpi_init(&m);
	r = mbedtls_mpi_read_binary(&m, d, n);
	if (r != 0)
		r = crypto_error(r, "Reading a private scalar");
	else
		r = ec_key_from_private_mpi(&m, ret);
	mbedtls_mpi_free(&m); /* wipes */
	return r;
}

bool ec_key_has_private(const EcKey *k)
{
	return k && k->has_private;
}

int ec_key_get_point(const EcKey *k, uint8_t out[EC_P256_POINT_SIZE])
{
	uint8_t p[EC_P256_POINT_SIZE];
	int r;

	if (!k || !out)
		return -EINVAL;
	p[0] = 0x04;
	r = mbedtls_mpi_write_binary(&k->Q.X, p + 1, 32);
	if (r == 0)
		r = mbedtls_mpi_write_binary(&k->Q.Y, p + 1 + 32, 32);
	if (r != 0)
		return crypto_error(r, "Writing a P-256 point");
	memcpy(out, p, sizeof(p));
	return 0;
}

static int ec_key_spki(const EcKey *k, uint8_t out[P256_SPKI_SIZE])
{
	memcpy(out, p256_spki_prefix, P256_SPKI_PREFIX_SIZE);
	return ec_key_get_point(k, out + P256_SPKI_PREFIX_SIZE);
}

int ec_key_public_spki_der(const EcKey *k, uint8_t **ret, size_t *ret_size)
{
	uint8_t spki[P256_SPKI_SIZE];
	int r;

	if (!k || !ret || !ret_size)
		return -EINVAL;
	r = ec_key_spki(k, spki);
	if (r < 0)
		return r;
	*ret = malloc(sizeof(spki));
	if (!*ret)
		return -ENOMEM;
	memcpy(*ret, spki, sizeof(spki));
	*ret_size = sizeof(spki);
	return 0;
}

int ec_key_fingerprint(const EcKey *k, uint8_t out[SHA256_SIZE])
{
	uint8_t spki[P256_SPKI_SIZE];
	int r;

	if (!k || !out)
		return -EINVAL;
	r = ec_key_spki(k, spki);
	if (r < 0)
		return r;
	return sha256(spki, sizeof(spki), out);
}

static bool der_content_eq(DerCursor c, const uint8_t *v, size_t n)
{
	return c.n == n && memcmp(c.p, v, n) == 0;
}

int ec_key_from_spki_der(const void *der, size_t n, EcKey **ret)
{
	DerCursor in = {.p = der, .n = n}, spki, alg, oid, params, bits;

	if (!der || !ret)
		return -EINVAL;

	/* Parsed strictly: one DER encoding per key. Every deviation is refused rather than
	 * tolerated, so the fingerprint of the key we use is the fingerprint of what we were given. */
	if (der_read_tlv(&in, DER_TAG_SEQUENCE, &spki) < 0 || in.n != 0)
		return log_debug_errno(EINVAL, "SubjectPublicKeyInfo: not one DER SEQUENCE.");
	if (der_read_tlv(&spki, DER_TAG_SEQUENCE, &alg) < 0)
		return log_debug_errno(EINVAL, "SubjectPublicKeyInfo: bad AlgorithmIdentifier.");
	if (der_read_tlv(&alg, DER_TAG_OID, &oid) < 0 ||
	    !der_content_eq(oid, oid_ec_public_key, sizeof(oid_ec_public_key)))
		return log_debug_errno(EINVAL, "SubjectPublicKeyInfo: not an EC public key.");

	/* RFC 5480 section 2.1.1: PKIX forbids implicitCurve and specifiedCurve. Explicit
	 * parameters are how "modified curve" attacks are smuggled in, so only the named curve
	 * prime256v1 is accepted, even when explicit parameters would describe P-256 exactly. */
	if (der_peek_tag(&alg) == DER_TAG_SEQUENCE)
		return log_debug_errno(EINVAL,
				       "SubjectPublicKeyInfo: explicit curve parameters are not supported.");
	if (der_read_tlv(&alg, DER_TAG_OID, &params) < 0 || alg.n != 0)
		return log_debug_errno(EINVAL, "SubjectPublicKeyInfo: bad EC parameters.");
	if (!der_content_eq(params, oid_prime256v1, sizeof(oid_prime256v1)))
		return log_debug_errno(EINVAL, "SubjectPublicKeyInfo: not a P-256 key.");

	if (der_read_tlv(&spki, DER_TAG_BIT_STRING, &bits) < 0 || spki.n != 0)
		return log_debug_errno(EINVAL, "SubjectPublicKeyInfo: bad subjectPublicKey.");
	if (bits.n < 1 || bits.p[0] != 0)
		return log_debug_errno(EINVAL, "SubjectPublicKeyInfo: BIT STRING has unused bits.");
	if (bits.n != 1 + EC_P256_POINT_SIZE || bits.p[1] != 0x04)
		return log_debug_errno(EINVAL, "SubjectPublicKeyInfo: not an uncompressed P-256 point.");

	return ec_key_from_point(bits.p + 1, bits.n - 1, ret);
}
