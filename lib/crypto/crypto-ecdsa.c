/* SPDX-License-Identifier: Apache-2.0 */
/* ECDSA over P-256 (FIPS 186-4 section 6), signatures as raw r||s (IEEE P1363, COSE) or as the
 * DER SEQUENCE { INTEGER r, INTEGER s } of RFC 3279 section 2.2.3, parsed strictly by us. */
#include <errno.h>

#include <mbedtls/ecdsa.h>

#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"

int ecdsa_sign_raw(const EcKey *k, const void *hash, size_t hash_len, uint8_t sig[ECDSA_P256_RAW_SIG_SIZE])
{
	uint8_t out[ECDSA_P256_RAW_SIG_SIZE];
	mbedtls_ecp_group *grp;
	mbedtls_mpi r_, s_;
	int r;

	if (!k || !hash || hash_len == 0 || !sig)
		return -EINVAL;
	if (!k->has_private)
		return log_debug_errno(EINVAL, "Cannot sign with a public key.");

	r = p256_group_shared(&grp);
	if (r < 0)
		return r;
	mbedtls_mpi_init(&r_);
	mbedtls_mpi_init(&s_);

	/* RFC 6979 deterministic nonce: a weak RNG cannot leak the key through nonce bias or reuse.
	 * crypto_rng still blinds the scalar multiplication against side channels. */
	r = mbedtls_ecdsa_sign_det_ext(grp, &r_, &s_, &k->d, hash, hash_len, MBEDTLS_MD_SHA256, crypto_rng,
				       NULL);
	if (r == 0)
		r = mbedtls_mpi_write_binary(&r_, out, 32);
	if (r == 0)
		r = mbedtls_mpi_write_binary(&s_, out + 32, 32);

	mbedtls_mpi_free(&r_);
	mbedtls_mpi_free(&s_);
	if (r != 0)
		return crypto_error(r, "ECDSA signing");
	memcpy(sig, out, sizeof(out));
	return 0;
}

int ecdsa_verify_raw(const EcKey *k, const void *hash, size_t hash_len, const void *sig, size_t sig_len)
{
	const uint8_t *b = sig;
	mbedtls_ecp_group *grp;
	mbedtls_mpi r_, s_;
	int r;

	if (!k || !hash || hash_len == 0)
		return -EINVAL;
	if (!sig || sig_len != ECDSA_P256_RAW_SIG_SIZE)
		return log_debug_errno(EBADMSG, "Raw P-256 signature of %zu bytes, expected 64.", sig_len);

	r = p256_group_shared(&grp);
	if (r < 0)
		return r;
	mbedtls_mpi_init(&r_);
	mbedtls_mpi_init(&s_);

	r = mbedtls_mpi_read_binary(&r_, b, 32);
	if (r == 0)
		r = mbedtls_mpi_read_binary(&s_, b + 32, 32);
	/* Checks 0 < r, s < n itself (FIPS 186-4 section 6.4.2 step 1) and that R is not infinity. */
	if (r == 0)
		r = mbedtls_ecdsa_verify(grp, hash, hash_len, &k->Q, &r_, &s_);

	mbedtls_mpi_free(&r_);
	mbedtls_mpi_free(&s_);
	if (r != 0) {
		r = crypto_error(r, "ECDSA verification");
		/* Whatever mbedTLS disliked about the signature, it does not verify. */
		return r == -ENOMEM ? r : -EBADMSG;
	}
	return 0;
}

/* One INTEGER holding a value in [0, 2^256): DER requires the fewest octets (no 0x00 before a
 * byte < 0x80, X.690 section 8.3.2) and ECDSA values are non-negative, so a leading 0x00 appears
 * exactly when the top bit of the next byte is set. */
static int der_read_uint256(DerCursor *c, uint8_t out[32])
{
	DerCursor i;

	if (der_read_tlv(c, DER_TAG_INTEGER, &i) < 0)
		return -EBADMSG;
	if (i.n == 0)
		return log_debug_errno(EBADMSG, "ECDSA signature: empty INTEGER.");
	if (i.p[0] & 0x80)
		return log_debug_errno(EBADMSG, "ECDSA signature: negative INTEGER.");
	if (i.n > 1 && i.p[0] == 0x00) {
		if (!(i.p[1] & 0x80))
			return log_debug_errno(EBADMSG, "ECDSA signature: INTEGER not minimally encoded.");
		i.p++;
		i.n--;
	}
	if (i.n > 32)
		return log_debug_errno(EBADMSG, "ECDSA signature: INTEGER larger than 256 bits.");

	memset(out, 0, 32 - i.n);
	memcpy(out + 32 - i.n, i.p, i.n);
	return 0;
}

int ecdsa_sig_der_to_raw(const void *der, size_t n, uint8_t raw[ECDSA_P256_RAW_SIG_SIZE])
{
	DerCursor in = {.p = der, .n = n}, seq;
	uint8_t out[ECDSA_P256_RAW_SIG_SIZE];
	int r;

	if (!der || !raw)
		return -EINVAL;

	if (der_read_tlv(&in, DER_TAG_SEQUENCE, &seq) < 0)
		return log_debug_errno(EBADMSG, "ECDSA signature: not a DER SEQUENCE.");
	if (in.n != 0)
		return log_debug_errno(EBADMSG, "ECDSA signature: trailing bytes after the SEQUENCE.");
	r = der_read_uint256(&seq, out);
	if (r < 0)
		return r;
	r = der_read_uint256(&seq, out + 32);
	if (r < 0)
		return r;
	if (seq.n != 0)
		return log_debug_errno(EBADMSG, "ECDSA signature: trailing bytes inside the SEQUENCE.");

	memcpy(raw, out, sizeof(out));
	return 0;
}

/* Writes INTEGER v (32 big-endian bytes) minimally; returns the bytes written. */
static size_t der_write_uint256(const uint8_t v[32], uint8_t *p)
{
	size_t skip = 0, len;

	while (skip < 31 && v[skip] == 0)
		skip++;
	len = 32 - skip + (v[skip] & 0x80 ? 1 : 0);
	p[0] = DER_TAG_INTEGER;
	p[1] = (uint8_t)len;
	if (v[skip] & 0x80)
		p[2] = 0x00;
	memcpy(p + 2 + len - (32 - skip), v + skip, 32 - skip);
	return 2 + len;
}

int ecdsa_sig_raw_to_der(const uint8_t raw[ECDSA_P256_RAW_SIG_SIZE], uint8_t *der, size_t der_max,
			 size_t *ret_size)
{
	uint8_t out[ECDSA_P256_DER_SIG_MAX];
	size_t l;

	if (!raw || !der || !ret_size)
		return -EINVAL;

	/* At most 2 + 2 * (2 + 33) = 72 bytes: every length fits the short form. */
	l = 2;
	l += der_write_uint256(raw, out + l);
	l += der_write_uint256(raw + 32, out + l);
	out[0] = DER_TAG_SEQUENCE;
	out[1] = (uint8_t)(l - 2);

	if (l > der_max)
		return -ENOBUFS;
	memcpy(der, out, l);
	*ret_size = l;
	return 0;
}

int ecdsa_verify_der(const EcKey *k, const void *hash, size_t hash_len, const void *sig, size_t sig_len)
{
	uint8_t raw[ECDSA_P256_RAW_SIG_SIZE];
	int r;

	if (!k || !hash || hash_len == 0)
		return -EINVAL;
	if (!sig)
		return -EBADMSG;
	r = ecdsa_sig_der_to_raw(sig, sig_len, raw);
	if (r < 0)
		return r;
	return ecdsa_verify_raw(k, hash, hash_len, raw, sizeof(raw));
}
