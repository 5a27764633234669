/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256, HMAC-SHA-256 and HKDF-SHA-256 (RFC 5869). */
#include <errno.h>
#include <stdarg.h>

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"

/* mbedTLS rejects NULL buffers in some paths even for zero lengths. */
static const uint8_t empty[1];
#define NONNULL(p) ((const unsigned char *)((p) ?: empty))

int sha256(const void *data, size_t n, uint8_t out[SHA256_SIZE])
{
	uint8_t h[SHA256_SIZE];
	int r;

	if ((!data && n > 0) || !out)
		return -EINVAL;

	r = mbedtls_sha256_ret(NONNULL(data), n, h, 0);
	if (r != 0)
		return crypto_error(r, "SHA-256");
	memcpy(out, h, sizeof(h));
	return 0;
}

int sha256_many(uint8_t out[SHA256_SIZE], ...)
{
	mbedtls_sha256_context ctx;
	uint8_t h[SHA256_SIZE];
	va_list ap;
	int r;

	if (!out)
		return -EINVAL;

	mbedtls_sha256_init(&ctx);
	r = mbedtls_sha256_starts_ret(&ctx, 0);

	va_start(ap, out);
	while (r == 0) {
		const void *p = va_arg(ap, const void *);
		size_t n;

		if (!p)
			break;
		n = va_arg(ap, size_t);
		r = mbedtls_sha256_update_ret(&ctx, p, n);
	}
	va_end(ap);

	if (r == 0)
		r = mbedtls_sha256_finish_ret(&ctx, h);
	/* The context holds the (possibly secret) input's last block: mbedtls_sha256_free wipes it. */
	mbedtls_sha256_free(&ctx);
	if (r != 0)
		return crypto_error(r, "SHA-256");
	memcpy(out, h, sizeof(h));
	return 0;
}

int hmac_sha256(const void *key, size_t key_len, const void *data, size_t n, uint8_t out[SHA256_SIZE])
{
	uint8_t mac[SHA256_SIZE];
	int r;

	if ((!key && key_len > 0) || (!data && n > 0) || !out)
		return -EINVAL;

	/* mbedtls_md_hmac frees (and thereby wipes) its padded-key context itself. */
	r = mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), NONNULL(key), key_len,
			    NONNULL(data), n, mac);
	if (r != 0) {
		memory_erase(mac, sizeof(mac));
		return crypto_error(r, "HMAC-SHA-256");
	}
	memcpy(out, mac, sizeof(mac));
	memory_erase(mac, sizeof(mac));
	return 0;
}

int hkdf_sha256(const void *salt, size_t salt_len, const void *ikm, size_t ikm_len, const void *info,
		size_t info_len, void *out, size_t out_len)
{
	int r;

	if ((!salt && salt_len > 0) || (!ikm && ikm_len > 0) || (!info && info_len > 0) ||
	    (!out && out_len > 0))
		return -EINVAL;
	/* RFC 5869 section 2.3: L <= 255 * HashLen. */
	if (out_len > 255 * SHA256_SIZE)
		return log_debug_errno(EINVAL, "HKDF output of %zu bytes exceeds 255*32.", out_len);
	if (out_len == 0)
		return 0;

	/* mbedTLS wipes the intermediate PRK itself; salt NULL/0 means HashLen zero bytes. */
	r = mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), salt_len > 0 ? salt : NULL, salt_len,
			 NONNULL(ikm), ikm_len, NONNULL(info), info_len, out, out_len);
	if (r != 0) {
		memory_erase(out, out_len);
		return crypto_error(r, "HKDF-SHA-256");
	}
	return 0;
}
