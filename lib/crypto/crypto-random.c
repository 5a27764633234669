/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <sys/random.h>

#include <mbedtls/entropy.h>

#include "basic/log.h"
#include "crypto/crypto-internal.h"

int crypto_random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;

	if (!buf && n > 0)
		return -EINVAL;

	/* Flags 0: block until the kernel pool is initialized, never fall back to anything weaker.
	 * Reads above 256 bytes may be short, and a signal may interrupt a blocked call. */
	while (n > 0) {
		ssize_t l = getrandom(p, n, 0);
		if (l < 0) {
			if (errno == EINTR)
				continue;
			return log_debug_errno(errno, "getrandom() failed: %m");
		}
		p += l;
		n -= (size_t)l;
	}
	return 0;
}

int crypto_rng(void *ctx, unsigned char *buf, size_t n)
{
	/* mbedTLS expects 0 or one of its own error codes from an f_rng. */
	return crypto_random_bytes(buf, n) < 0 ? MBEDTLS_ERR_ENTROPY_SOURCE_FAILED : 0;
}
