/* SPDX-License-Identifier: Apache-2.0 */
/* The software side of attestation: KDFa/KDFe, AES-CFB, MakeCredential (opened again here with the
 * EK's private key, following TPM 2.0 Part 1 24 step by step), the AK public area check, quote
 * verification against quotes built and signed here, and the event log. The TPM side runs against
 * swtpm in tests/integration/test-tpm2-attest.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <tss2/tss2_mu.h>

#include "basic/macro.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-attest.h"
#include "tpm2/tpm2-kdf-internal.h"

/* ---- KDFa / KDFe known answers ----
 * Computed at development time with an independent Python 3 implementation written from the spec
 * text (TPM 2.0 Library Part 1, 11.4.10.2 and 11.4.10.3), hashlib and hmac only:
 *   kdfa(key, label, u, v, n): concat over i = 1, 2, … of
 *       HMAC-SHA256(key, be32(i) || label || 00 || u || v || be32(8 n)), first n bytes
 *   kdfe(z, use, u, v, n): concat of SHA256(be32(i) || z || use || 00 || u || v), first n bytes
 * with key = 00 01 … 1f, name = 00 0b || 40 41 … 5f, z = 80 … 9f, u = a0 … bf, v = c0 … df. */
static const uint8_t kdfa_storage_16[16] = {
	0x7a, 0x58, 0xc2, 0x07, 0x9b, 0xee, 0x13, 0xe0, 0x0e, 0xd1, 0x60, 0xd6, 0x57, 0xae, 0xca, 0xef,
};
static const uint8_t kdfa_integrity_32[32] = {
	0xba, 0xcf, 0x68, 0x9f, 0x63, 0x4e, 0xce, 0x30, 0x1e, 0x1f, 0x1b, 0x15, 0xb0, 0x72, 0xd9, 0xc8,
	0x7d, 0xb6, 0xa6, 0x95, 0x85, 0xdb, 0x42, 0xb1, 0xa0, 0xcb, 0x8f, 0x73, 0xeb, 0xe2, 0x69, 0x2e,
};
/* label "TEST", contextU = name, contextV = key, 80 bytes: three HMAC blocks, the last truncated. */
static const uint8_t kdfa_test_80[80] = {
	0x01, 0x72, 0xec, 0xda, 0x5c, 0xb8, 0x03, 0xee, 0x2e, 0x68, 0x0c, 0x48, 0xac, 0xc4, 0x6a, 0x93,
	0xf5, 0xaa, 0xa4, 0x33, 0x77, 0x31, 0x08, 0x6a, 0x5e, 0x49, 0xe5, 0x33, 0x65, 0x56, 0x7e, 0xb3,
	0x66, 0xcf, 0xf3, 0xb3, 0x57, 0x37, 0x57, 0xc4, 0x90, 0x0b, 0xb3, 0xc3, 0x33, 0xbd, 0xb4, 0x04,
	0x86, 0xe8, 0xa1, 0x05, 0x31, 0x05, 0x6d, 0xae, 0x66, 0x85, 0xb1, 0xe6, 0x09, 0x6b, 0x34, 0x75,
	0xce, 0x42, 0x18, 0x55, 0xe0, 0xc4, 0xed, 0xa3, 0xa3, 0x4a, 0xbb, 0xb2, 0x9d, 0x12, 0xa2, 0x0a,
};
/* KDFe "IDENTITY", 48 bytes (two blocks; KDFe hashes no length, so the first 32 are the 32-byte
 * output). */
static const uint8_t kdfe_identity_48[48] = {
	0xe7, 0xbc, 0x9c, 0xd0, 0x96, 0x47, 0xb8, 0xa1, 0x22, 0x60, 0x55, 0xb7, 0x27, 0x03, 0x03, 0x35,
	0xee, 0x6b, 0x2b, 0x52, 0x13, 0x1b, 0x3c, 0x8f, 0x61, 0x9d, 0xa9, 0x82, 0x5b, 0x89, 0x9b, 0x9d,
	0xe7, 0x0a, 0xce, 0x1b, 0xb8, 0x5f, 0x41, 0xa0, 0x46, 0xfc, 0x31, 0xf7, 0x59, 0x7f, 0x99, 0xdb,
};

static void fill(uint8_t *p, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(start + i);
}

static void test_kdfa(void **state)
{
	uint8_t key[32], name[34], out[80];

	(void)state;
	fill(key, sizeof(key), 0x00);
	name[0] = 0x00, name[1] = 0x0b;
	fill(name + 2, 32, 0x40);

	assert_int_equal(tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = key, .key_len = 32, .label = "STORAGE",
							    .u = name, .u_len = sizeof(name)},
					  out, 16),
			 0);
	assert_memory_equal(out, kdfa_storage_16, 16);
	assert_int_equal(tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = key, .key_len = 32, .label = "INTEGRITY"}, out, 32),
			 0);
	assert_memory_equal(out, kdfa_integrity_32, 32);
	assert_int_equal(tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = key, .key_len = 32, .label = "TEST", .u = name,
							    .u_len = sizeof(name), .v = key, .v_len = 32},
					  out, 80),
			 0);
	assert_memory_equal(out, kdfa_test_80, 80);
	/* The length is an input of KDFa: 16 bytes are not the prefix of 32. */
	assert_int_equal(tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = key, .key_len = 32, .label = "STORAGE",
							    .u = name, .u_len = sizeof(name)},
					  out, 32),
			 0);
	assert_memory_not_equal(out, kdfa_storage_16, 16);

	assert_int_equal(tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = key, .key_len = 32, .label = "X"}, out, 0), -EINVAL);
	assert_int_equal(tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = key, .key_len = 32}, out, 16), -EINVAL);
}

static void test_kdfe(void **state)
{
	uint8_t z[32], u[32], v[32], out[48];

	(void)state;
	fill(z, sizeof(z), 0x80);
	fill(u, sizeof(u), 0xa0);
	fill(v, sizeof(v), 0xc0);
	assert_int_equal(tpm2_kdfe_sha256(&(Tpm2KdfParams){.key = z, .key_len = 32, .label = "IDENTITY", .u = u,
							    .u_len = 32, .v = v, .v_len = 32},
					  out, 32),
			 0);
	assert_memory_equal(out, kdfe_identity_48, 32);
	assert_int_equal(tpm2_kdfe_sha256(&(Tpm2KdfParams){.key = z, .key_len = 32, .label = "IDENTITY", .u = u,
							    .u_len = 32, .v = v, .v_len = 32},
					  out, 48),
			 0);
	assert_memory_equal(out, kdfe_identity_48, 48);
	/* PartyUInfo and PartyVInfo in the other order give another seed. */
	assert_int_equal(tpm2_kdfe_sha256(&(Tpm2KdfParams){.key = z, .key_len = 32, .label = "IDENTITY", .u = v,
							    .u_len = 32, .v = u, .v_len = 32},
					  out, 32),
			 0);
	assert_memory_not_equal(out, kdfe_identity_48, 32);
	assert_int_equal(tpm2_kdfe_sha256(&(Tpm2KdfParams){.key = z, .key_len = 32, .label = "IDENTITY"}, out, 8193),
			 -EINVAL);
}

/* NIST SP 800-38A F.3.13, CFB128-AES128.Encrypt. */
static void test_aes_cfb(void **state)
{
	static const uint8_t key[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
					0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
	static const uint8_t pt[32] = {0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e,
				       0x11, 0x73, 0x93, 0x17, 0x2a, 0xae, 0x2d, 0x8a, 0x57, 0x1e, 0x03,
				       0xac, 0x9c, 0x9e, 0xb7, 0x6f, 0xac, 0x45, 0xaf, 0x8e, 0x51};
	static const uint8_t ct[32] = {0x3b, 0x3f, 0xd9, 0x2e, 0xb7, 0x2d, 0xad, 0x20, 0x33, 0x34, 0x49,
				       0xf8, 0xe8, 0x3c, 0xfb, 0x4a, 0xc8, 0xa6, 0x45, 0x37, 0xa0, 0xb3,
				       0xa9, 0x3f, 0xcd, 0xe3, 0xcd, 0xad, 0x9f, 0x1c, 0xe5, 0x8b};
	uint8_t iv[16], out[32], back[32];

	(void)state;
	fill(iv, sizeof(iv), 0x00);
	assert_int_equal(aes_cfb128_encrypt(key, 16, iv, pt, 32, out), 0);
	assert_memory_equal(out, ct, 32);
	/* The IV is not consumed: the same call again gives the same output. */
	assert_int_equal(aes_cfb128_encrypt(key, 16, iv, pt, 21, out), 0);
	assert_memory_equal(out, ct, 21);
	assert_int_equal(aes_cfb128_decrypt(key, 16, iv, ct, 32, back), 0);
	assert_memory_equal(back, pt, 32);
	assert_int_equal(aes_cfb128_encrypt(key, 15, iv, pt, 32, out), -EINVAL);
}

/* ---- MakeCredential, opened in software with the EK private key ---- */

static void open_credential(const EcKey *ek, const uint8_t ek_point[65], const uint8_t name[TPM2_NAME_SIZE],
			    const uint8_t *id, size_t id_size, const uint8_t *enc, size_t enc_size, uint8_t *ret,
			    size_t *ret_size)
{
	static const uint8_t zero_iv[16] = {};
	TPM2B_ID_OBJECT ido = {};
	TPM2B_ENCRYPTED_SECRET es = {};
	TPMS_ECC_POINT p = {};
	_cleanup_ec_key_ EcKey *eph = NULL;
	uint8_t z[32], seed[32], sym[16], hkey[32], mac[32], buf[128], plain[64];
	size_t off = 0, enc_id_size;

	assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(id, id_size, &off, &ido), TSS2_RC_SUCCESS);
	assert_int_equal(off, id_size);
	off = 0;
	assert_int_equal(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(enc, enc_size, &off, &es), TSS2_RC_SUCCESS);
	assert_int_equal(off, enc_size);
	off = 0;
	assert_int_equal(Tss2_MU_TPMS_ECC_POINT_Unmarshal(es.secret, es.size, &off, &p), TSS2_RC_SUCCESS);
	assert_int_equal(off, es.size);
	assert_int_equal(p.x.size, 32);
	assert_int_equal(ec_key_from_xy(p.x.buffer, p.y.buffer, &eph), 0);
	assert_int_equal(ecdh_p256(ek, eph, z), 0);
	assert_int_equal(tpm2_kdfe_sha256(&(Tpm2KdfParams){.key = z, .key_len = 32, .label = "IDENTITY",
							    .u = p.x.buffer, .u_len = 32, .v = ek_point + 1, .v_len = 32},
					  seed, 32),
			 0);
	/* integrityHMAC (TPM2B_DIGEST) || encIdentity */
	assert_true(ido.size > 34);
	assert_int_equal(ido.credential[0], 0);
	assert_int_equal(ido.credential[1], 32);
	enc_id_size = ido.size - 34u;
	assert_int_equal(tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = seed, .key_len = 32, .label = "INTEGRITY"}, hkey, 32),
			 0);
	memcpy(buf, ido.credential + 34, enc_id_size);
	memcpy(buf + enc_id_size, name, TPM2_NAME_SIZE);
	assert_int_equal(hmac_sha256(hkey, 32, buf, enc_id_size + TPM2_NAME_SIZE, mac), 0);
	assert_memory_equal(mac, ido.credential + 2, 32);
	assert_int_equal(tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = seed, .key_len = 32, .label = "STORAGE", .u = name,
							    .u_len = TPM2_NAME_SIZE},
					  sym, 16),
			 0);
	assert_int_equal(aes_cfb128_decrypt(sym, 16, zero_iv, ido.credential + 34, enc_id_size, plain), 0);
	*ret_size = (size_t)plain[0] << 8 | plain[1];
	assert_int_equal(*ret_size + 2, enc_id_size);
	memcpy(ret, plain + 2, *ret_size);
}

static void test_make_credential(void **state)
{
	_cleanup_ec_key_ EcKey *ek = NULL;
	uint8_t ek_point[65], name[TPM2_NAME_SIZE], secret[32], got[64], bad_point[65];
	uint8_t *id = NULL, *enc = NULL;
	size_t id_size, enc_size, got_size;

	(void)state;
	assert_int_equal(ec_key_generate(&ek), 0);
	assert_int_equal(ec_key_get_point(ek, ek_point), 0);
	name[0] = 0x00, name[1] = 0x0b;
	fill(name + 2, 32, 0x33);
	fill(secret, sizeof(secret), 0x10);

	assert_int_equal(tpm2_make_credential(ek_point, name, secret, 32, &id, &id_size, &enc, &enc_size), 0);
	/* TPM2B_ID_OBJECT: size || (TPM2B_DIGEST hmac: 2 + 32) || encIdentity (2 + 32);
	 * TPM2B_ENCRYPTED_SECRET: size || TPMS_ECC_POINT (2 + 32, 2 + 32). */
	assert_int_equal(id_size, 2 + 34 + 34);
	assert_int_equal(enc_size, 2 + 68);
	open_credential(ek, ek_point, name, id, id_size, enc, enc_size, got, &got_size);
	assert_int_equal(got_size, 32);
	assert_memory_equal(got, secret, 32);
	free(id);
	free(enc);

	/* A short credential, and a fresh ephemeral key each time. */
	assert_int_equal(tpm2_make_credential(ek_point, name, secret, 3, &id, &id_size, &enc, &enc_size), 0);
	open_credential(ek, ek_point, name, id, id_size, enc, enc_size, got, &got_size);
	assert_int_equal(got_size, 3);
	assert_memory_equal(got, secret, 3);
	{
		uint8_t *id2 = NULL, *enc2 = NULL;
		size_t id2_size, enc2_size;
		assert_int_equal(tpm2_make_credential(ek_point, name, secret, 3, &id2, &id2_size, &enc2, &enc2_size),
				 0);
		assert_memory_not_equal(enc, enc2, enc_size);
		free(id2);
		free(enc2);
	}
	free(id);
	free(enc);

	id = enc = NULL;
	assert_int_equal(tpm2_make_credential(ek_point, name, secret, 0, &id, &id_size, &enc, &enc_size), -EINVAL);
	assert_int_equal(tpm2_make_credential(ek_point, name, got, 33, &id, &id_size, &enc, &enc_size), -EINVAL);
	memcpy(bad_point, ek_point, 65);
	bad_point[64] ^= 1; /* not on the curve: an invalid-curve attack would leak Z */
	assert_int_equal(tpm2_make_credential(bad_point, name, secret, 32, &id, &id_size, &enc, &enc_size), -EINVAL);
	name[1] = 0x04; /* SHA-1 name */
	assert_int_equal(tpm2_make_credential(ek_point, name, secret, 32, &id, &id_size, &enc, &enc_size), -EINVAL);
	assert_null(id);
	assert_null(enc);
}

/* ---- AK public area ---- */

static TPM2B_PUBLIC ak_template(const uint8_t point[65])
{
	TPM2B_PUBLIC p = {
		.publicArea = {
			.type = TPM2_ALG_ECC,
			.nameAlg = TPM2_ALG_SHA256,
			.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
					    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
					    TPMA_OBJECT_USERWITHAUTH,
			.parameters.eccDetail = {
				.symmetric.algorithm = TPM2_ALG_NULL,
				.scheme = {.scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256},
				.curveID = TPM2_ECC_NIST_P256,
				.kdf.scheme = TPM2_ALG_NULL,
			},
			.unique.ecc = {.x.size = 32, .y.size = 32},
		},
	};
	memcpy(p.publicArea.unique.ecc.x.buffer, point + 1, 32);
	memcpy(p.publicArea.unique.ecc.y.buffer, point + 33, 32);
	return p;
}

static size_t marshal_public(const TPM2B_PUBLIC *p, uint8_t buf[sizeof(TPM2B_PUBLIC)])
{
	size_t off = 0;
	assert_int_equal(Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf, sizeof(TPM2B_PUBLIC), &off), TSS2_RC_SUCCESS);
	return off;
}

static void expect_ak_rejected(const TPM2B_PUBLIC *p, const char *reason_part)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)], name[TPM2_NAME_SIZE] = {}, point[65] = {};
	const char *reason = NULL;
	size_t n = marshal_public(p, buf);

	assert_int_equal(tpm2_ak_public_check(buf, n, name, point, &reason), -EBADMSG);
	assert_non_null(reason);
	if (!strstr(reason, reason_part))
		fail_msg("reason '%s' does not mention '%s'", reason, reason_part);
	/* Nothing written on failure. */
	for (size_t i = 0; i < sizeof(name); i++)
		assert_int_equal(name[i], 0);
}

static void test_ak_public_check(void **state)
{
	_cleanup_ec_key_ EcKey *k = NULL;
	uint8_t point[65], buf[sizeof(TPM2B_PUBLIC) + 1], name[TPM2_NAME_SIZE], expect_name[TPM2_NAME_SIZE],
		got_point[65], tbuf[sizeof(TPMT_PUBLIC)];
	TPM2B_PUBLIC good, p;
	const char *reason = NULL;
	size_t n, off = 0;

	(void)state;
	assert_int_equal(ec_key_generate(&k), 0);
	assert_int_equal(ec_key_get_point(k, point), 0);
	good = ak_template(point);
	n = marshal_public(&good, buf);
	assert_int_equal(tpm2_ak_public_check(buf, n, name, got_point, &reason), 0);
	assert_memory_equal(got_point, point, 65);
	/* name = 000b || SHA-256(TPMT_PUBLIC) (Part 1, 16) */
	assert_int_equal(Tss2_MU_TPMT_PUBLIC_Marshal(&good.publicArea, tbuf, sizeof(tbuf), &off), TSS2_RC_SUCCESS);
	expect_name[0] = 0x00, expect_name[1] = 0x0b;
	assert_int_equal(sha256(tbuf, off, expect_name + 2), 0);
	assert_memory_equal(name, expect_name, TPM2_NAME_SIZE);

	p = good, p.publicArea.objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
	expect_ak_rejected(&p, "restricted");
	p = good, p.publicArea.objectAttributes &= ~TPMA_OBJECT_FIXEDTPM;
	expect_ak_rejected(&p, "fixedTPM");
	p = good, p.publicArea.objectAttributes &= ~TPMA_OBJECT_FIXEDPARENT;
	expect_ak_rejected(&p, "fixedParent");
	p = good, p.publicArea.objectAttributes &= ~TPMA_OBJECT_SENSITIVEDATAORIGIN;
	expect_ak_rejected(&p, "sensitiveDataOrigin");
	p = good, p.publicArea.objectAttributes |= TPMA_OBJECT_DECRYPT;
	expect_ak_rejected(&p, "signing-only");
	p = good, p.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA1;
	expect_ak_rejected(&p, "SHA-256");
	p = good, p.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDAA;
	expect_ak_rejected(&p, "ECDSA");
	p = good, p.publicArea.nameAlg = TPM2_ALG_SHA1;
	expect_ak_rejected(&p, "name algorithm");

	/* P-384, with coordinates of its size. */
	p = good;
	p.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
	p.publicArea.unique.ecc.x.size = p.publicArea.unique.ecc.y.size = 48;
	expect_ak_rejected(&p, "P-256");

	/* RSA 2048 restricted signing key. */
	p = (TPM2B_PUBLIC){
		.publicArea = {
			.type = TPM2_ALG_RSA,
			.nameAlg = TPM2_ALG_SHA256,
			.objectAttributes = good.publicArea.objectAttributes,
			.parameters.rsaDetail = {
				.symmetric.algorithm = TPM2_ALG_NULL,
				.scheme = {.scheme = TPM2_ALG_RSASSA, .details.rsassa.hashAlg = TPM2_ALG_SHA256},
				.keyBits = 2048,
			},
			.unique.rsa.size = 256,
		},
	};
	memset(p.publicArea.unique.rsa.buffer, 0xc5, 256);
	expect_ak_rejected(&p, "ECC");

	/* A point that is not on the curve. */
	p = good, p.publicArea.unique.ecc.y.buffer[31] ^= 1;
	expect_ak_rejected(&p, "not on P-256");

	/* Encodings: truncated, a trailing byte, the size field not matching. */
	n = marshal_public(&good, buf);
	assert_int_equal(tpm2_ak_public_check(buf, n - 1, NULL, NULL, &reason), -EBADMSG);
	buf[n] = 0;
	assert_int_equal(tpm2_ak_public_check(buf, n + 1, NULL, NULL, &reason), -EBADMSG);
	buf[1] ^= 1;
	assert_int_equal(tpm2_ak_public_check(buf, n, NULL, NULL, &reason), -EBADMSG);
	assert_int_equal(tpm2_ak_public_check(buf, 0, NULL, NULL, &reason), -EBADMSG);
}

/* ---- quotes, built and signed in software ---- */

#define MASK ((UINT32_C(1) << 0) | (UINT32_C(1) << 7) | (UINT32_C(1) << 11))

typedef struct QuoteCase {
	EcKey *key, *other;
	uint8_t point[65];
	uint8_t qualifying[32];
	uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
} QuoteCase;

static TPMS_ATTEST attest_template(const QuoteCase *qc)
{
	TPMS_ATTEST a = {
		.magic = TPM2_GENERATED_VALUE,
		.type = TPM2_ST_ATTEST_QUOTE,
		.qualifiedSigner = {.size = 34},
		.extraData = {.size = 32},
		.clockInfo = {.clock = 123456, .resetCount = 1, .restartCount = 0, .safe = 1},
		.firmwareVersion = 0x2023,
		.attested.quote = {
			.pcrSelect = {.count = 1,
				      .pcrSelections[0] = {.hash = TPM2_ALG_SHA256, .sizeofSelect = 3,
							   .pcrSelect = {MASK & 0xff, (MASK >> 8) & 0xff, MASK >> 16}}},
			.pcrDigest = {.size = 32},
		},
	};
	uint8_t buf[TPM2_PCRS_MAX * 32];
	size_t n = 0;

	memcpy(a.extraData.buffer, qc->qualifying, 32);
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
		if (MASK & (UINT32_C(1) << i)) {
			memcpy(buf + n, qc->values[i], 32);
			n += 32;
		}
	assert_int_equal(sha256(buf, n, a.attested.quote.pcrDigest.buffer), 0);
	return a;
}

/* Marshals a, appends extra bytes, signs it all with key. */
static size_t attest_sign(const TPMS_ATTEST *a, const EcKey *key, size_t extra, uint8_t buf[sizeof(TPMS_ATTEST)],
			  uint8_t sig[64])
{
	uint8_t h[32];
	size_t off = 0;

	assert_int_equal(Tss2_MU_TPMS_ATTEST_Marshal(a, buf, sizeof(TPMS_ATTEST), &off), TSS2_RC_SUCCESS);
	memset(buf + off, 0, extra);
	off += extra;
	assert_int_equal(sha256(buf, off, h), 0);
	assert_int_equal(ecdsa_sign_raw(key, h, 32, sig), 0);
	return off;
}

static int verify(const QuoteCase *qc, const TPMS_ATTEST *a, const EcKey *key, const char **reason)
{
	uint8_t buf[sizeof(TPMS_ATTEST)], sig[64];
	size_t n = attest_sign(a, key, 0, buf, sig);
	*reason = NULL;
	return tpm2_quote_verify(qc->point, buf, n, sig, qc->qualifying, 32, MASK, qc->values, reason);
}

static int quote_setup(void **state)
{
	QuoteCase *qc = calloc(1, sizeof(*qc));
	assert_int_equal(ec_key_generate(&qc->key), 0);
	assert_int_equal(ec_key_generate(&qc->other), 0);
	assert_int_equal(ec_key_get_point(qc->key, qc->point), 0);
	fill(qc->qualifying, 32, 0x61);
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
		memset(qc->values[i], (int)i + 1, 32);
	*state = qc;
	return 0;
}

static int quote_teardown(void **state)
{
	QuoteCase *qc = *state;
	ec_key_free(qc->key);
	ec_key_free(qc->other);
	free(qc);
	return 0;
}

static void test_quote_verify(void **state)
{
	QuoteCase *qc = *state;
	TPMS_ATTEST good = attest_template(qc), a;
	uint8_t buf[sizeof(TPMS_ATTEST)], sig[64], values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE], other_q[32];
	const char *reason = NULL;
	size_t n;

	assert_int_equal(verify(qc, &good, qc->key, &reason), 0);

	/* Each rejection with everything else right (and validly signed by the AK). */
	a = good, a.magic ^= 1;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -EBADMSG);
	assert_non_null(strstr(reason, "magic"));
	a = good, a.type = TPM2_ST_ATTEST_TIME;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -EBADMSG);
	assert_non_null(strstr(reason, "type"));
	a = good, a.extraData.buffer[0] ^= 1;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -ESTALE);
	a = good, a.extraData.size = 31;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -ESTALE);
	a = good, a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[0] ^= 0x02; /* PCR 1 too */
	assert_int_equal(verify(qc, &a, qc->key, &reason), -EBADMSG);
	assert_non_null(strstr(reason, "selection"));
	a = good, a.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA1;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -EBADMSG);
	a = good, a.attested.quote.pcrSelect.count = 2;
	a.attested.quote.pcrSelect.pcrSelections[1] = a.attested.quote.pcrSelect.pcrSelections[0];
	a.attested.quote.pcrSelect.pcrSelections[1].hash = TPM2_ALG_SHA1;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -EBADMSG);
	a = good, a.attested.quote.pcrSelect.count = 0;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -EBADMSG);
	a = good, a.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 4; /* PCR 24 */
	a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[3] = 0x01;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -EBADMSG);
	/* Four select bytes, nothing above PCR 23: the same selection. */
	a = good, a.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 4;
	assert_int_equal(verify(qc, &a, qc->key, &reason), 0);
	a = good, a.attested.quote.pcrDigest.size = 20;
	assert_int_equal(verify(qc, &a, qc->key, &reason), -EPERM);
	/* Signed by another key. */
	assert_int_equal(verify(qc, &good, qc->other, &reason), -EBADMSG);
	assert_non_null(strstr(reason, "signature"));

	/* PCR values that differ from the quoted ones; a PCR outside the mask does not matter. */
	n = attest_sign(&good, qc->key, 0, buf, sig);
	memcpy(values, qc->values, sizeof(values));
	values[11][5] ^= 1;
	assert_int_equal(tpm2_quote_verify(qc->point, buf, n, sig, qc->qualifying, 32, MASK, values, &reason), -EPERM);
	memcpy(values, qc->values, sizeof(values));
	values[12][5] ^= 1;
	assert_int_equal(tpm2_quote_verify(qc->point, buf, n, sig, qc->qualifying, 32, MASK, values, &reason), 0);
	/* Another expected mask than was quoted. */
	assert_int_equal(tpm2_quote_verify(qc->point, buf, n, sig, qc->qualifying, 32, MASK & ~1u, qc->values, &reason),
			 -EBADMSG);
	/* Other qualifying data given to the verifier. */
	memcpy(other_q, qc->qualifying, 32);
	other_q[31] ^= 0x80;
	assert_int_equal(tpm2_quote_verify(qc->point, buf, n, sig, other_q, 32, MASK, qc->values, &reason), -ESTALE);
	/* A damaged signature. */
	sig[10] ^= 1;
	assert_int_equal(tpm2_quote_verify(qc->point, buf, n, sig, qc->qualifying, 32, MASK, qc->values, &reason),
			 -EBADMSG);
	sig[10] ^= 1;

	/* Truncated: every shorter prefix is refused. */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(tpm2_quote_verify(qc->point, buf, k, sig, qc->qualifying, 32, MASK, qc->values, &reason),
				 -EBADMSG);
	/* Extended by a byte that is signed too: still refused (trailing bytes are never looked at). */
	n = attest_sign(&good, qc->key, 1, buf, sig);
	assert_int_equal(tpm2_quote_verify(qc->point, buf, n, sig, qc->qualifying, 32, MASK, qc->values, &reason),
			 -EBADMSG);
	assert_non_null(strstr(reason, "TPMS_ATTEST"));
}

/* ---- event log ---- */

typedef struct LogBuf {
	uint8_t b[1 << 20];
	size_t n;
} LogBuf;

static void lb_u8(LogBuf *l, uint8_t v)
{
	assert_true(l->n < sizeof(l->b));
	l->b[l->n++] = v;
}
static void lb_u16(LogBuf *l, uint16_t v)
{
	lb_u8(l, (uint8_t)v);
	lb_u8(l, (uint8_t)(v >> 8));
}
static void lb_u32(LogBuf *l, uint32_t v)
{
	lb_u16(l, (uint16_t)v);
	lb_u16(l, (uint16_t)(v >> 16));
}
static void lb_bytes(LogBuf *l, const void *p, size_t n)
{
	assert_true(n <= sizeof(l->b) - l->n);
	memcpy(l->b + l->n, p, n);
	l->n += n;
}

/* TCG_PCR_EVENT + Spec ID Event03 with the given (alg, size) table. */
static void lb_header(LogBuf *l, const uint16_t *algs, const uint16_t *sizes, uint32_t count)
{
	static const uint8_t zero[20];
	lb_u32(l, 0);
	lb_u32(l, 3); /* EV_NO_ACTION */
	lb_bytes(l, zero, 20);
	lb_u32(l, 16 + 4 + 4 + 4 + 4 * count + 1);
	lb_bytes(l, "Spec ID Event03", 16);
	lb_u32(l, 0);
	lb_u8(l, 0), lb_u8(l, 2), lb_u8(l, 0), lb_u8(l, 2);
	lb_u32(l, count);
	for (uint32_t i = 0; i < count; i++)
		lb_u16(l, algs[i]), lb_u16(l, sizes[i]);
	lb_u8(l, 0);
}

static const uint16_t alg_sha256[] = {0x000b}, size_sha256[] = {32};

static void lb_event(LogBuf *l, uint32_t pcr, uint32_t type, const uint8_t digest[32], const char *data)
{
	lb_u32(l, pcr);
	lb_u32(l, type);
	lb_u32(l, 1);
	lb_u16(l, 0x000b);
	lb_bytes(l, digest, 32);
	lb_u32(l, (uint32_t)strlen(data));
	lb_bytes(l, data, strlen(data));
}

static int replay(const LogBuf *l, uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE], uint32_t *mask)
{
	const char *reason = NULL;
	int r = tpm2_eventlog_replay(l->b, l->n, values, mask, &reason);
	if (r < 0)
		assert_non_null(reason);
	return r;
}

static void test_eventlog_roundtrip(void **state)
{
	Tpm2Event ev[5] = {
		{.pcr = 0, .type = 0x08, .data = "CRTM"},
		{.pcr = 7, .type = 0x80000001, .data = "SecureBoot"},
		{.pcr = 7, .type = 0x80000001, .data = NULL},
		{.pcr = 11, .type = 0x0d, .data = "kernel"},
		{.pcr = 23, .type = 0x0d, .data = "last PCR"},
	};
	uint8_t expect[TPM2_PCRS_MAX][TPM2_SHA256_SIZE] = {}, values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	_cleanup_free_ uint8_t *log = NULL;
	uint32_t mask = 0;
	size_t n;

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(ev); i++) {
		memset(ev[i].digest, (int)(0x20 + i), 32);
		/* PCR_new = SHA-256(PCR_old || digest) */
		assert_int_equal(sha256_many(expect[ev[i].pcr], expect[ev[i].pcr], (size_t)32, ev[i].digest, (size_t)32,
					     NULL),
				 0);
	}
	assert_int_equal(tpm2_eventlog_build(ev, ELEMENTSOF(ev), &log, &n), 0);
	assert_int_equal(tpm2_eventlog_replay(log, n, values, &mask, NULL), 0);
	assert_int_equal(mask, (1u << 0) | (1u << 7) | (1u << 11) | (1u << 23));
	assert_memory_equal(values, expect, sizeof(expect));

	/* An empty log (only the Spec ID event) replays to all zeros. */
	free(log);
	log = NULL;
	assert_int_equal(tpm2_eventlog_build(NULL, 0, &log, &n), 0);
	assert_int_equal(tpm2_eventlog_replay(log, n, values, &mask, NULL), 0);
	assert_int_equal(mask, 0);

	ev[0].pcr = 24;
	assert_int_equal(tpm2_eventlog_build(ev, 1, &log, &n), -EINVAL);
}

static void test_eventlog_features(void **state)
{
	static const uint16_t algs2[] = {0x0004, 0x000b}, sizes2[] = {20, 32};
	LogBuf *l = calloc(1, sizeof(*l));
	uint8_t d[32], sha1[20], values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE], expect[32] = {};
	uint32_t mask;

	(void)state;
	memset(d, 0x42, 32);
	memset(sha1, 0x11, 20);

	/* StartupLocality 3: PCR 0 starts at 0…03 (PC Client PFP 10.4.5.3). */
	lb_header(l, alg_sha256, size_sha256, 1);
	{
		static const uint8_t zero[32];
		lb_u32(l, 0), lb_u32(l, 3), lb_u32(l, 1), lb_u16(l, 0x000b), lb_bytes(l, zero, 32);
		lb_u32(l, 17), lb_bytes(l, "StartupLocality", 16), lb_u8(l, 3);
	}
	lb_event(l, 0, 0x08, d, "CRTM");
	assert_int_equal(replay(l, values, &mask), 0);
	expect[31] = 3;
	assert_int_equal(sha256_many(expect, expect, (size_t)32, d, (size_t)32, NULL), 0);
	assert_memory_equal(values[0], expect, 32);
	assert_int_equal(mask, 1);

	/* The same locality event after PCR 0 was extended: refused. */
	l->n = 0;
	lb_header(l, alg_sha256, size_sha256, 1);
	lb_event(l, 0, 0x08, d, "CRTM");
	lb_u32(l, 0), lb_u32(l, 3), lb_u32(l, 1), lb_u16(l, 0x000b), lb_bytes(l, d, 32);
	lb_u32(l, 17), lb_bytes(l, "StartupLocality", 16), lb_u8(l, 3);
	assert_int_equal(replay(l, values, &mask), -EBADMSG);

	/* Other EV_NO_ACTION events are not extended. */
	l->n = 0;
	lb_header(l, alg_sha256, size_sha256, 1);
	lb_event(l, 7, 3, d, "informational");
	assert_int_equal(replay(l, values, &mask), 0);
	assert_int_equal(mask, 0);

	/* Two banks: SHA-1 digests are skipped by their size from the table, SHA-256 is replayed. */
	l->n = 0;
	lb_header(l, algs2, sizes2, 2);
	lb_u32(l, 7), lb_u32(l, 0x0d), lb_u32(l, 2);
	lb_u16(l, 0x0004), lb_bytes(l, sha1, 20);
	lb_u16(l, 0x000b), lb_bytes(l, d, 32);
	lb_u32(l, 2), lb_bytes(l, "ab", 2);
	assert_int_equal(replay(l, values, &mask), 0);
	memset(expect, 0, 32);
	assert_int_equal(sha256_many(expect, expect, (size_t)32, d, (size_t)32, NULL), 0);
	assert_memory_equal(values[7], expect, 32);
	assert_int_equal(mask, 1u << 7);
	/* An event with only the SHA-1 digest: cannot be replayed. */
	l->n = 0;
	lb_header(l, algs2, sizes2, 2);
	lb_u32(l, 7), lb_u32(l, 0x0d), lb_u32(l, 1);
	lb_u16(l, 0x0004), lb_bytes(l, sha1, 20);
	lb_u32(l, 0);
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	free(l);
}

static void test_eventlog_rejects(void **state)
{
	static const uint16_t bad_size[] = {48}, sha1_only[] = {0x0004}, size20[] = {20};
	LogBuf *l = calloc(1, sizeof(*l)), *good = calloc(1, sizeof(*good));
	uint8_t d[32], values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE], before[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	uint32_t mask = 0xdeadbeef;

	(void)state;
	memset(d, 0x42, 32);
	lb_header(good, alg_sha256, size_sha256, 1);
	lb_event(good, 7, 0x0d, d, "one");
	lb_event(good, 11, 0x0d, d, "two");
	assert_int_equal(replay(good, values, &mask), 0);

	/* Truncated inside a record, anywhere: refused, outputs untouched. At a record boundary the
	 * rest is a valid shorter log; it replays to other values, which the quote then refuses. */
	memset(values, 0x77, sizeof(values));
	memcpy(before, values, sizeof(values));
	mask = 0xdeadbeef;
	for (size_t k = 0; k < good->n; k++) {
		const size_t header = 65, first = header + 4 + 4 + 4 + 2 + 32 + 4 + 3;
		if (k == header || k == first)
			continue;
		*l = (LogBuf){.n = k};
		memcpy(l->b, good->b, k);
		if (replay(l, values, &mask) != -EBADMSG)
			fail_msg("a log truncated to %zu of %zu bytes was accepted", k, good->n);
	}
	assert_memory_equal(values, before, sizeof(values));
	assert_int_equal(mask, 0xdeadbeef);
	*l = (LogBuf){.n = 65 + 4 + 4 + 4 + 2 + 32 + 4 + 3};
	memcpy(l->b, good->b, l->n);
	assert_int_equal(replay(l, values, &mask), 0);
	assert_int_equal(mask, 1u << 7);

	/* Digest count 0 and 9. */
	for (uint32_t count = 0; count <= 9; count += 9) {
		l->n = 0;
		lb_header(l, alg_sha256, size_sha256, 1);
		lb_u32(l, 7), lb_u32(l, 0x0d), lb_u32(l, count);
		for (uint32_t i = 0; i < count; i++)
			lb_u16(l, 0x000b), lb_bytes(l, d, 32);
		lb_u32(l, 0);
		assert_int_equal(replay(l, values, &mask), -EBADMSG);
	}
	/* An algorithm the Spec ID event gives no size for (SHA-384). */
	l->n = 0;
	lb_header(l, alg_sha256, size_sha256, 1);
	lb_u32(l, 7), lb_u32(l, 0x0d), lb_u32(l, 2);
	lb_u16(l, 0x000b), lb_bytes(l, d, 32);
	lb_u16(l, 0x000c), lb_bytes(l, d, 32), lb_bytes(l, d, 16);
	lb_u32(l, 0);
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	/* Event size beyond the buffer (by one, and by 4 GiB - 1). */
	l->n = 0;
	lb_header(l, alg_sha256, size_sha256, 1);
	lb_u32(l, 7), lb_u32(l, 0x0d), lb_u32(l, 1), lb_u16(l, 0x000b), lb_bytes(l, d, 32);
	lb_u32(l, 4), lb_bytes(l, "abc", 3);
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	l->n -= 7;
	lb_u32(l, UINT32_MAX), lb_bytes(l, "abc", 3);
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	/* PCR 24. */
	l->n = 0;
	lb_header(l, alg_sha256, size_sha256, 1);
	lb_event(l, 24, 0x0d, d, "x");
	assert_int_equal(replay(l, values, &mask), -EBADMSG);

	/* Missing Spec ID event: an empty log, a log starting with an EVENT2 record, a wrong
	 * signature, a header that is not EV_NO_ACTION. */
	l->n = 0;
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	lb_event(l, 0, 3, d, "Spec ID Event03");
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	*l = *good;
	l->b[32 + 5] ^= 1; /* inside "Spec ID Event03" */
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	*l = *good;
	l->b[4] = 4;
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	/* Spec ID tables: SHA-256 with a wrong size, no SHA-256 at all, no algorithm. */
	l->n = 0;
	lb_header(l, alg_sha256, bad_size, 1);
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	l->n = 0;
	lb_header(l, sha1_only, size20, 1);
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	l->n = 0;
	lb_header(l, alg_sha256, size_sha256, 0);
	assert_int_equal(replay(l, values, &mask), -EBADMSG);

	/* Too many events: 4096 records in all are fine, 4097 are not. */
	l->n = 0;
	lb_header(l, alg_sha256, size_sha256, 1);
	for (int i = 0; i < 4095; i++)
		lb_event(l, 7, 0x0d, d, "");
	assert_int_equal(replay(l, values, &mask), 0);
	lb_event(l, 7, 0x0d, d, "");
	assert_int_equal(replay(l, values, &mask), -EBADMSG);
	{
		Tpm2Event *ev = calloc(4096, sizeof(*ev));
		uint8_t *log = NULL;
		size_t n;
		assert_int_equal(tpm2_eventlog_build(ev, 4096, &log, &n), -EINVAL);
		assert_int_equal(tpm2_eventlog_build(ev, 4095, &log, &n), 0);
		assert_int_equal(tpm2_eventlog_replay(log, n, values, &mask, NULL), 0);
		free(log);
		free(ev);
	}
	free(l);
	free(good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kdfa),
		cmocka_unit_test(test_kdfe),
		cmocka_unit_test(test_aes_cfb),
		cmocka_unit_test(test_make_credential),
		cmocka_unit_test(test_ak_public_check),
		cmocka_unit_test_setup_teardown(test_quote_verify, quote_setup, quote_teardown),
		cmocka_unit_test(test_eventlog_roundtrip),
		cmocka_unit_test(test_eventlog_features),
		cmocka_unit_test(test_eventlog_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
