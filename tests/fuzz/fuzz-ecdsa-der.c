/* SPDX-License-Identifier: Apache-2.0 */
/* The strict ECDSA-Sig-Value parser: whatever it accepts must re-encode to exactly the input
 * (one DER encoding per signature), and verification must never crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Public key of the scalar 0x01…01 (32 bytes); seeds in tests/fuzz/corpus/ecdsa-der/ include a
 * valid signature by it over SHA-256("trustpc fuzz"). */
static const uint8_t fuzz_ecdsa_key[32] = {
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EcKey *key;
	static uint8_t hash[SHA256_SIZE];
	uint8_t raw[ECDSA_P256_RAW_SIG_SIZE], der[ECDSA_P256_DER_SIG_MAX];
	size_t der_n;

	if (!key) {
		if (ec_key_from_private_scalar(fuzz_ecdsa_key, sizeof(fuzz_ecdsa_key), &key) < 0 ||
		    sha256("trustpc fuzz", 12, hash) < 0)
			abort();
	}

	if (ecdsa_sig_der_to_raw(data, size, raw) == 0) {
		if (ecdsa_sig_raw_to_der(raw, der, sizeof(der), &der_n) < 0)
			abort();
		if (der_n != size || memcmp(der, data, size) != 0)
			abort(); /* the parser accepted a non-canonical encoding */
	}
	(void)ecdsa_verify_der(key, hash, sizeof(hash), data, size);
	/* The same bytes as a raw signature, when they have the size of one. */
	(void)ecdsa_verify_raw(key, hash, sizeof(hash), data, size);
	return 0;
}
