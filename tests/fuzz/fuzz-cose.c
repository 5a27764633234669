/* SPDX-License-Identifier: Apache-2.0 */
/* cose_sign1_verify on arbitrary bytes with a fixed key (the seeds in tests/fuzz/corpus/cose/ are
 * signed by it, so the fuzzer starts from envelopes that reach the signature check), with and
 * without external_aad. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "proto/cose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The signer of the seeds; its kid is f1d59449…7da7. */
static const uint8_t fuzz_cose_key[32] = {
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
	0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
};

static void verify(const EcKey *key, const char *aad, const uint8_t *data, size_t size)
{
	uint8_t *payload = NULL;
	const char *reason = NULL;
	size_t n = 0;
	int r;

	r = cose_sign1_verify(key, aad, aad ? strlen(aad) : 0, data, size, &payload, &n, &reason);
	if (r == 0) {
		/* the payload is a copy of bytes inside the envelope */
		if (!payload || n >= size || (n > 0 && !memmem(data, size, payload, n)))
			abort();
		free(payload);
		return;
	}
	if (payload || !reason || (r != -EBADMSG && r != -ENOKEY && r != -EFBIG))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EcKey *key;

	if (!key && ec_key_from_private_scalar(fuzz_cose_key, sizeof(fuzz_cose_key), &key) < 0)
		abort();

	verify(key, NULL, data, size);
	verify(key, "fuzz", data, size);
	return 0;
}
