/* SPDX-License-Identifier: Apache-2.0 */
/* escrow_open on arbitrary bytes, with a fixed recipient key (the seeds are sealed to it, so the
 * fuzzer starts from blobs that get all the way to decryption). */
#include <stdint.h>
#include <stdlib.h>

#include "basic/memory-secure.h"
#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixed recipient scalar; tests/fuzz/corpus/escrow/ was sealed to its public key. */
static const uint8_t fuzz_escrow_key[32] = {
    0x5e, 0x3a, 0x8f, 0x21, 0x90, 0x4c, 0x7d, 0x11, 0x2b, 0x66, 0xe0, 0x9a, 0x31, 0x47, 0xc8, 0x02,
    0x77, 0x1d, 0xb5, 0x4e, 0x08, 0xf3, 0x6a, 0x9c, 0x12, 0x85, 0xd4, 0x3e, 0x60, 0xab, 0x27, 0x19,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EcKey *key;
	uint8_t *pt = NULL;
	size_t n;

	if (!key && ec_key_from_private_scalar(fuzz_escrow_key, sizeof(fuzz_escrow_key), &key) < 0)
		abort();

	if (escrow_open(key, NULL, (const char *)data, size, &pt, &n) >= 0) {
		/* Success promises a NUL after the secret. */
		if (!pt || pt[n] != 0)
			abort();
		secure_free(pt);
	}
	pt = NULL;
	if (escrow_open(key, "fuzz", (const char *)data, size, &pt, &n) >= 0)
		secure_free(pt);
	return 0;
}
