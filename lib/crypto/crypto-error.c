/* SPDX-License-Identifier: Apache-2.0 */
/* The one place that turns mbedTLS error codes into errno values. */
#include <errno.h>

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>

#include "basic/log.h"
#include "crypto/crypto-internal.h"

/* mbedTLS codes are negative; a high-level part (bits 7..14, e.g. PK) may be added to a low-level
 * part (bits 0..6, e.g. ASN1 or MPI). Allocation failures win wherever they are; then the
 * high-level meaning; then the low-level one. */
static int errno_from_mbedtls(int code)
{
	int high = -((-code) & 0x7F80), low = -((-code) & 0x007F);

	switch (low) {
	case MBEDTLS_ERR_MPI_ALLOC_FAILED:
	case MBEDTLS_ERR_ASN1_ALLOC_FAILED:
		return -ENOMEM;
	}

	switch (high) {
	case MBEDTLS_ERR_ECP_ALLOC_FAILED:
	case MBEDTLS_ERR_PK_ALLOC_FAILED:
	case MBEDTLS_ERR_MD_ALLOC_FAILED:
	case MBEDTLS_ERR_PEM_ALLOC_FAILED:
		return -ENOMEM;

	case MBEDTLS_ERR_ECP_VERIFY_FAILED:
		return -EBADMSG;

	case MBEDTLS_ERR_ECP_BAD_INPUT_DATA:
	case MBEDTLS_ERR_ECP_INVALID_KEY:
	case MBEDTLS_ERR_ECP_FEATURE_UNAVAILABLE:
	case MBEDTLS_ERR_ECP_BUFFER_TOO_SMALL:
	case MBEDTLS_ERR_PK_TYPE_MISMATCH:
	case MBEDTLS_ERR_PK_BAD_INPUT_DATA:
	case MBEDTLS_ERR_PK_KEY_INVALID_VERSION:
	case MBEDTLS_ERR_PK_KEY_INVALID_FORMAT:
	case MBEDTLS_ERR_PK_UNKNOWN_PK_ALG:
	case MBEDTLS_ERR_PK_PASSWORD_REQUIRED:
	case MBEDTLS_ERR_PK_PASSWORD_MISMATCH:
	case MBEDTLS_ERR_PK_INVALID_PUBKEY:
	case MBEDTLS_ERR_PK_INVALID_ALG:
	case MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE:
	case MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE:
	case MBEDTLS_ERR_PEM_NO_HEADER_FOOTER_PRESENT:
	case MBEDTLS_ERR_PEM_INVALID_DATA:
	case MBEDTLS_ERR_PEM_INVALID_ENC_IV:
	case MBEDTLS_ERR_PEM_UNKNOWN_ENC_ALG:
	case MBEDTLS_ERR_PEM_PASSWORD_REQUIRED:
	case MBEDTLS_ERR_PEM_PASSWORD_MISMATCH:
	case MBEDTLS_ERR_PEM_FEATURE_UNAVAILABLE:
	case MBEDTLS_ERR_PEM_BAD_INPUT_DATA:
	case MBEDTLS_ERR_HKDF_BAD_INPUT_DATA:
	case MBEDTLS_ERR_MD_BAD_INPUT_DATA:
		return -EINVAL;
	}

	switch (low) {
	case MBEDTLS_ERR_GCM_AUTH_FAILED:
		return -EBADMSG;
	case MBEDTLS_ERR_GCM_BAD_INPUT:
	case MBEDTLS_ERR_MPI_BAD_INPUT_DATA:
	case MBEDTLS_ERR_MPI_NEGATIVE_VALUE:
	case MBEDTLS_ERR_MPI_BUFFER_TOO_SMALL:
	case MBEDTLS_ERR_ASN1_OUT_OF_DATA:
	case MBEDTLS_ERR_ASN1_UNEXPECTED_TAG:
	case MBEDTLS_ERR_ASN1_INVALID_LENGTH:
	case MBEDTLS_ERR_ASN1_LENGTH_MISMATCH:
	case MBEDTLS_ERR_ASN1_INVALID_DATA:
		return -EINVAL;
	}

	/* Entropy failures, hardware-acceleration failures and anything unexpected. */
	return -EIO;
}

int crypto_error(int mbedtls_code, const char *what)
{
	int r = errno_from_mbedtls(mbedtls_code);

	if (log_get_max_level() >= LOG_DEBUG) {
		char buf[160];

		mbedtls_strerror(mbedtls_code, buf, sizeof(buf));
		return log_debug_errno(r, "%s failed: mbedTLS error -0x%04x (%s)", what,
				       (unsigned)-mbedtls_code, buf);
	}
	return r;
}
