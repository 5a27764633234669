/* SPDX-License-Identifier: Apache-2.0 */
/* ECDH over P-256 (SEC 1 v2 section 3.3.1): the shared secret is the X coordinate of d*Q. */
#include <errno.h>

#include <mbedtls/ecdh.h>

#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"

int ecdh_p256(const EcKey *priv, const EcKey *peer, uint8_t out[32])
{
	uint8_t z_bytes[32];
	ERASE_ON_EXIT(z_bytes);
	mbedtls_ecp_group grp;
	mbedtls_mpi z;
	int r;

	if (!priv || !peer || !out)
		return -EINVAL;
	if (!priv->has_private)
		return log_debug_errno(EINVAL, "ECDH needs a private key.");

	r = p256_group_load(&grp);
	if (r < 0)
		return r;

	/* Our importers already validate every point, but this is the check an invalid-curve attack
	 * must get past, so it is made here again where the private scalar is used. */
	r = mbedtls_ecp_check_pubkey(&grp, &peer->Q);
	if (r != 0) {
		mbedtls_ecp_group_free(&grp);
		(void)crypto_error(r, "Validating the ECDH peer point");
		return -EBADMSG;
	}

	mbedtls_mpi_init(&z);
	r = mbedtls_ecdh_compute_shared(&grp, &z, &peer->Q, &priv->d, crypto_rng, NULL);
	if (r == 0)
		r = mbedtls_mpi_write_binary(&z, z_bytes, sizeof(z_bytes));
	mbedtls_mpi_free(&z); /* wipes */
	mbedtls_ecp_group_free(&grp);
	if (r != 0) {
		r = crypto_error(r, "ECDH");
		return r == -EINVAL ? -EBADMSG : r;
	}
	memcpy(out, z_bytes, sizeof(z_bytes));
	return 0;
}
