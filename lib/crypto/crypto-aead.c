/* SPDX-License-Identifier: Apache-2.0 */
/* AES-GCM (NIST SP 800-38D) with 128/192/256-bit keys. */
#include <errno.h>

#include <mbedtls/gcm.h>

#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"

static const uint8_t empty[1];
#define NONNULL(p) ((const unsigned char *)((p) ?: empty))

static int aead_params_check(const AeadParams *p)
{
	if (!p || !p->key)
		return -EINVAL;
	if (p->key_len != 16 && p->key_len != 24 && p->key_len != 32)
		return log_debug_errno(EINVAL, "AES-GCM key of %zu bytes: must be 16, 24 or 32.",
				       p->key_len);
	/* A zero-length IV has no defined GHASH input (SP 800-38D section 5.2.1.1): refuse it. */
	if (!p->iv || p->iv_len == 0)
		return log_debug_errno(EINVAL, "AES-GCM needs an IV of at least one byte.");
	if (!p->aad && p->aad_len > 0)
		return -EINVAL;
	/* SP 800-38D section 5.2.1.2: tags of 128, 120, 112, 104, 96 bits, and 64 or 32 bits for
	 * special applications only. */
	if (!(p->tag_len == 4 || p->tag_len == 8 || (p->tag_len >= 12 && p->tag_len <= 16)))
		return log_debug_errno(EINVAL, "AES-GCM tag of %zu bytes is not allowed.", p->tag_len);
	return 0;
}

static int gcm_setup(mbedtls_gcm_context *ctx, const AeadParams *p)
{
	int r;

	mbedtls_gcm_init(ctx);
	r = mbedtls_gcm_setkey(ctx, MBEDTLS_CIPHER_ID_AES, p->key, (unsigned)(p->key_len * 8));
	if (r != 0)
		return crypto_error(r, "AES-GCM key setup");
	return 0;
}

int aes_gcm_encrypt(const AeadParams *p, const void *pt, size_t pt_len, void *ct, void *tag)
{
	mbedtls_gcm_context ctx;
	unsigned char dummy[1];
	int r;

	r = aead_params_check(p);
	if (r < 0)
		return r;
	if ((!pt || !ct) && pt_len > 0)
		return -EINVAL;
	if (!tag)
		return -EINVAL;

	r = gcm_setup(&ctx, p);
	if (r == 0) {
		r = mbedtls_gcm_crypt_and_tag(&ctx, MBEDTLS_GCM_ENCRYPT, pt_len, p->iv, p->iv_len,
					      NONNULL(p->aad), p->aad_len, NONNULL(pt),
					      pt_len > 0 ? ct : dummy, p->tag_len, tag);
		if (r != 0)
			r = crypto_error(r, "AES-GCM encryption");
	}
	/* The context holds the expanded key and the hash subkey H: mbedtls_gcm_free wipes them. */
	mbedtls_gcm_free(&ctx);
	if (r < 0) {
		memory_erase(ct, pt_len);
		memory_erase(tag, p->tag_len);
	}
	return r;
}

int aes_gcm_decrypt(const AeadParams *p, const void *ct, size_t ct_len, const void *tag, void *pt)
{
	mbedtls_gcm_context ctx;
	unsigned char dummy[1];
	int r;

	r = aead_params_check(p);
	if (r < 0)
		return r;
	if ((!pt || !ct) && ct_len > 0)
		return -EINVAL;
	if (!tag)
		return -EINVAL;

	r = gcm_setup(&ctx, p);
	if (r == 0) {
		/* Compares the tag in constant time, and wipes the output on mismatch. */
		r = mbedtls_gcm_auth_decrypt(&ctx, ct_len, p->iv, p->iv_len, NONNULL(p->aad), p->aad_len,
					     tag, p->tag_len, NONNULL(ct), ct_len > 0 ? pt : dummy);
		if (r != 0)
			r = crypto_error(r, "AES-GCM decryption");
	}
	mbedtls_gcm_free(&ctx);
	if (r < 0)
		/* Never hand out unauthenticated plaintext, whatever mbedTLS did with it. */
		memory_erase(pt, ct_len);
	return r;
}
