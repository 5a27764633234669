/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* lib/crypto: the only code that includes mbedTLS crypto headers (lib/tls includes the TLS ones).
 * Every function returns >= 0 on success and a negative errno on failure:
 *   -EINVAL   bad argument or malformed input (bad key encoding, wrong length)
 *   -EBADMSG  signature or authentication tag does not verify, invalid point/key material
 *   -ENOMEM   out of memory
 *   -EIO      unexpected mbedTLS failure (the mbedTLS code is logged at debug level)
 * ret_* outputs are set only on success. Secrets (private keys, shared secrets, derived keys)
 * are wiped before their memory is freed. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_SIZE 32
#define EC_P256_POINT_SIZE 65 /* 0x04 || X || Y */
#define EC_P256_SCALAR_SIZE 32
#define ECDSA_P256_RAW_SIG_SIZE 64 /* r || s, COSE/IEEE P1363 form */
#define ECDSA_P256_DER_SIG_MAX 72  /* SEQUENCE { INTEGER r, INTEGER s }, 33-byte integers */

/* ---- random ---- */
int crypto_random_bytes(void *buf, size_t n); /* getrandom(), blocking until seeded */
/* An f_rng for mbedTLS-style callers inside lib/crypto and lib/tls. ctx is unused. Follows the
 * mbedTLS convention, not ours: 0 on success, MBEDTLS_ERR_ENTROPY_SOURCE_FAILED on failure. */
int crypto_rng(void *ctx, unsigned char *buf, size_t n);

/* ---- hashes ---- */
int sha256(const void *data, size_t n, uint8_t out[SHA256_SIZE]);
/* Hash of several buffers concatenated: pairs of (const void *, size_t), ends with NULL.
 * The lengths must really be size_t (sizeof or a size_t variable; a bare int literal is undefined
 * behaviour through varargs), and a pointer may not be NULL (use "" for an empty buffer): the
 * first NULL pointer ends the list. */
int sha256_many(uint8_t out[SHA256_SIZE], ...);
int hmac_sha256(const void *key, size_t key_len, const void *data, size_t n, uint8_t out[SHA256_SIZE]);
/* RFC 5869. salt may be NULL/0, info may be NULL/0. out_len <= 255*32 else -EINVAL. */
int hkdf_sha256(const void *salt, size_t salt_len, const void *ikm, size_t ikm_len, const void *info,
		size_t info_len, void *out, size_t out_len);

/* ---- AES-GCM (128/192/256 by key length) ---- */
typedef struct AeadParams {
	const void *key;
	size_t key_len; /* 16, 24 or 32 */
	const void *iv;
	size_t iv_len; /* >= 1; 12 recommended */
	const void *aad;
	size_t aad_len;
	size_t tag_len; /* 4, 8, 12..16 */
} AeadParams;
/* ct has room for pt_len bytes, tag for p->tag_len bytes. ct may equal pt (in place).
 * -EINVAL for a bad key length, an empty IV, or a tag length outside {4, 8, 12..16}; on any failure
 * ct and tag are wiped. */
int aes_gcm_encrypt(const AeadParams *p, const void *pt, size_t pt_len, void *ct, void *tag);
/* -EBADMSG when the tag does not match (pt is then wiped). A tag_len < 16 compares the leading
 * tag_len bytes of the full tag (SP 800-38D truncation). pt may equal ct. */
int aes_gcm_decrypt(const AeadParams *p, const void *ct, size_t ct_len, const void *tag, void *pt);

/* ---- AES-CFB (SP 800-38A, 128-bit segments), unauthenticated: for TPM 2.0 formats only ----
 * key_len 16, 24 or 32 (-EINVAL otherwise); iv is 16 bytes and is not modified; out may equal in.
 * No padding: n may be any length. On failure out is wiped. */
int aes_cfb128_encrypt(const void *key, size_t key_len, const uint8_t iv[16], const void *pt, size_t n, void *ct);
int aes_cfb128_decrypt(const void *key, size_t key_len, const uint8_t iv[16], const void *ct, size_t n, void *pt);

/* ---- EC P-256 keys ---- */
typedef struct EcKey EcKey;

int ec_key_generate(EcKey **ret);
/* PEM or DER; private key (SEC1 or PKCS#8, unencrypted) or public key (SubjectPublicKeyInfo, with
 * the strictness of ec_key_from_spki_der). Only P-256 keys are accepted (-EINVAL "not a P-256 key"
 * otherwise). A private key file whose embedded public key is not d*G is refused (-EINVAL). */
int ec_key_from_pem_or_der(const void *data, size_t n, EcKey **ret);
/* Reads at most 64 KiB into secure memory; errors of open()/read() pass through (-ENOENT, …). */
int ec_key_load_file(const char *path, EcKey **ret);
/* From an uncompressed point (0x04||X||Y); the point is checked to be on the curve (-EINVAL
 * otherwise, as for every importer below). */
int ec_key_from_point(const uint8_t *point, size_t n, EcKey **ret);
int ec_key_from_xy(const uint8_t x[32], const uint8_t y[32], EcKey **ret);
/* Public key as SubjectPublicKeyInfo DER (RFC 5480), parsed strictly: exactly one DER encoding,
 * no trailing bytes. -EINVAL for points not on P-256, other curves, compressed points, and explicit
 * curve parameters (refused even when they describe P-256: RFC 5480 forbids them in PKIX, and they
 * are the vehicle of modified-curve attacks; only the named curve prime256v1 is accepted). */
int ec_key_from_spki_der(const void *der, size_t n, EcKey **ret);
bool ec_key_has_private(const EcKey *k);
int ec_key_get_point(const EcKey *k, uint8_t out[EC_P256_POINT_SIZE]);
/* SHA-256 of the SubjectPublicKeyInfo DER: the key's identity in our files ("kid"). */
int ec_key_fingerprint(const EcKey *k, uint8_t out[SHA256_SIZE]);
/* malloc'ed, NUL-terminated PEM. The private variant is SEC1 "EC PRIVATE KEY" (RFC 5915, with the
 * public key); -EINVAL for a key without a private part. */
int ec_key_public_pem(const EcKey *k, char **ret);
int ec_key_private_pem(const EcKey *k, char **ret); /* free with secure_free() */
int ec_key_public_spki_der(const EcKey *k, uint8_t **ret, size_t *ret_size);
EcKey *ec_key_free(EcKey *k);

/* ---- ECDSA P-256 ---- */
/* hash is the message digest (any length >= 1; P-256 uses its leftmost 32 bytes). Signing is
 * deterministic (RFC 6979, nonce from HMAC-SHA-256) with crypto_rng blinding the scalar
 * multiplication; -EINVAL for a key without a private part. */
int ecdsa_sign_raw(const EcKey *k, const void *hash, size_t hash_len, uint8_t sig[ECDSA_P256_RAW_SIG_SIZE]);
/* Raw r||s: -EBADMSG unless sig_len == 64, 0 < r,s < n and it verifies. */
int ecdsa_verify_raw(const EcKey *k, const void *hash, size_t hash_len, const void *sig, size_t sig_len);
/* Strict DER (minimal lengths and integers, no trailing bytes): -EBADMSG otherwise. */
int ecdsa_verify_der(const EcKey *k, const void *hash, size_t hash_len, const void *sig, size_t sig_len);
/* Strict DER as above; -EBADMSG for anything else, including integers >= 2^256. Values 0 or >= n
 * convert (they are encodable) and are then rejected by ecdsa_verify_raw. */
int ecdsa_sig_der_to_raw(const void *der, size_t n, uint8_t raw[ECDSA_P256_RAW_SIG_SIZE]);
/* Minimal DER, at most ECDSA_P256_DER_SIG_MAX bytes; -ENOBUFS when der_max is too small. */
int ecdsa_sig_raw_to_der(const uint8_t raw[ECDSA_P256_RAW_SIG_SIZE], uint8_t *der, size_t der_max,
			 size_t *ret_size);

/* ---- ECDH P-256 ---- */
/* Shared secret = X coordinate. priv must hold a private key (-EINVAL); -EBADMSG for invalid peer
 * points. */
int ecdh_p256(const EcKey *priv, const EcKey *peer, uint8_t out[32]);
/* Private scalar as big-endian bytes (leading zeros allowed, <= 33 bytes), for test vectors.
 * -EINVAL unless 1 <= d <= n-1. */
int ec_key_from_private_scalar(const void *d, size_t n, EcKey **ret);

/* ---- Escrow: a secret encrypted to a public key (ECIES) ----
 * Ephemeral P-256 key; ECDH with the recipient; HKDF-SHA256(salt = epk || recipient point,
 * info = "trustpc escrow v1" || context) -> 32-byte key + 12-byte IV; AES-256-GCM with
 * AAD = context. The output is one JSON object (a line of text):
 *   {"v":1,"alg":"ECDH-ES-P256+HKDF-SHA256+A256GCM","kid":HEX(fingerprint),
 *    "context":"…","epk":B64(65-byte point),"ct":B64(ciphertext||16-byte tag)}
 * context binds the blob to its use (e.g. "recovery-key:<device-id>:<luks-uuid>").
 * *ret_json is malloc'ed, NUL-terminated, without a trailing newline. context must be valid UTF-8
 * of at most ESCROW_CONTEXT_MAX bytes; the secret 1..ESCROW_SECRET_MAX bytes (-EINVAL otherwise). */
#define ESCROW_CONTEXT_MAX 1024
#define ESCROW_SECRET_MAX (64 * 1024)
int escrow_seal(const EcKey *recipient, const char *context, const void *secret, size_t n, char **ret_json);
/* Checks kid, alg, version, context (must equal expected_context unless it is NULL). *ret is
 * secure memory (secure_free), NUL-terminated after *ret_size bytes. -EBADMSG on any mismatch and
 * on any malformed blob (not JSON, unknown or missing members, bad base64, epk not on the curve,
 * authentication failure), -ENOKEY when kid names another key and the blob does not decrypt with
 * recipient (when it does decrypt, the kid was altered: -EBADMSG). -EINVAL when recipient has no
 * private part. */
int escrow_open(const EcKey *recipient, const char *expected_context, const char *json, size_t json_len,
		uint8_t **ret, size_t *ret_size);

static inline void ec_key_freep(EcKey **k)
{
	ec_key_free(*k);
}
#define _cleanup_ec_key_ __attribute__((cleanup(ec_key_freep)))
