/* SPDX-License-Identifier: Apache-2.0 */
/* AES in CFB mode with a 128-bit feedback segment (NIST SP 800-38A section 6.3), as TPM 2.0 uses it
 * for parameter encryption and credential protection (TPM 2.0 Part 1, 11.4.6 and 24). */
#include <errno.h>

#include <mbedtls/aes.h>

#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"

static int aes_cfb128(int mode, const void *key, size_t key_len, const uint8_t iv[16], const void *in, size_t n,
		      void *out)
{
	mbedtls_aes_context ctx;
	uint8_t iv_copy[16];
	size_t iv_off = 0;
	int r;

	if (!key || !iv || ((!in || !out) && n > 0))
		return -EINVAL;
	if (key_len != 16 && key_len != 24 && key_len != 32)
		return log_debug_errno(EINVAL, "AES-CFB key of %zu bytes: must be 16, 24 or 32.", key_len);
	if (n == 0)
		return 0;

	/* mbedTLS updates the IV in place; the caller's stays as it was. */
	memcpy(iv_copy, iv, sizeof(iv_copy));
	mbedtls_aes_init(&ctx);
	/* CFB runs the block cipher forward in both directions: always the encryption key schedule. */
	r = mbedtls_aes_setkey_enc(&ctx, key, (unsigned)(key_len * 8));
	if (r == 0)
		r = mbedtls_aes_crypt_cfb128(&ctx, mode, n, &iv_off, iv_copy, in, out);
	/* mbedtls_aes_free wipes the key schedule. */
	mbedtls_aes_free(&ctx);
	memory_erase(iv_copy, sizeof(iv_copy));
	if (r != 0) {
		memory_erase(out, n);
		return crypto_error(r, "AES-CFB");
	}
	return 0;
}

int aes_cfb128_encrypt(const void *key, size_t key_len, const uint8_t iv[16], const void *pt, size_t n, void *ct)
{
	return aes_cfb128(MBEDTLS_AES_ENCRYPT, key, key_len, iv, pt, n, ct);
}

int aes_cfb128_decrypt(const void *key, size_t key_len, const uint8_t iv[16], const void *ct, size_t n, void *pt)
{
	return aes_cfb128(MBEDTLS_AES_DECRYPT, key, key_len, iv, ct, n, pt);
}
