/* SPDX-License-Identifier: Apache-2.0 */
/* Key import from untrusted bytes: PEM/DER (SEC1, PKCS#8, SubjectPublicKeyInfo) and the strict
 * SPKI parser. An accepted public key must export to exactly the SPKI it was parsed from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	EcKey *k = NULL;

	if (ec_key_from_spki_der(data, size, &k) == 0) {
		uint8_t *der = NULL;
		size_t n;
		if (ec_key_public_spki_der(k, &der, &n) < 0 || n != size || memcmp(der, data, n) != 0)
			abort(); /* the strict parser accepted a second encoding of a key */
		free(der);
		k = ec_key_free(k);
	}
	if (ec_key_from_pem_or_der(data, size, &k) == 0) {
		uint8_t p[EC_P256_POINT_SIZE];
		if (ec_key_get_point(k, p) < 0)
			abort();
		k = ec_key_free(k);
	}
	return 0;
}
