/* SPDX-License-Identifier: Apache-2.0 */
/* Attestation evidence from the network: the AK public area (enrollment) and quotes (every
 * connection). Input: signature (64 bytes, raw r||s) || TPMS_ATTEST, verified with a fixed AK key,
 * qualifying data and PCR values; the whole input is also tried as an AK TPM2B_PUBLIC.
 *
 * The seeds in corpus/tpm2-attest come from a real swtpm (tests/unit/tpm2/test-tpm2-attest-swtpm.c
 * with TRUSTPC_ATTEST_DUMP_DIR): quote-swtpm.bin is signed by the AK whose point is below, over
 * qualifying data 32 × 0xa5 and PCRs 7 and 11 at zero, so the seed passes every check and the
 * fuzzer starts from the deepest path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tpm2/tpm2-attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t ak_point[65] = {
	0x04, 0x5c, 0xef, 0x8c, 0xda, 0xd3, 0xd0, 0x1b, 0x3e, 0x9b, 0x7c, 0x51, 0xb5, 0x90, 0x4d, 0xef,
	0xdd, 0x16, 0x8c, 0xd7, 0x24, 0x06, 0x99, 0xc9, 0xe9, 0x67, 0xd0, 0xb6, 0xaf, 0xbe, 0x69, 0xb9,
	0x5a, 0xef, 0xb6, 0xc1, 0x50, 0xb8, 0x24, 0x21, 0xa3, 0x7d, 0x92, 0x49, 0x1e, 0xf8, 0x38, 0xf6,
	0xfe, 0x94, 0xe0, 0x29, 0x95, 0x32, 0x6b, 0x73, 0x6a, 0xea, 0xfd, 0x59, 0xea, 0x57, 0x4e, 0x7b,
	0x75,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t zero_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	uint8_t qualifying[32], name[TPM2_NAME_SIZE], point[65];
	const char *reason = NULL;
	int r;

	memset(qualifying, 0xa5, sizeof(qualifying));
	if (size >= 64) {
		r = tpm2_quote_verify(ak_point, data + 64, size - 64, data, qualifying, sizeof(qualifying),
				      (1u << 7) | (1u << 11), zero_values, &reason);
		/* Only the documented errors, each with its reason. */
		if (r < 0 && (!reason || (r != -EBADMSG && r != -ESTALE && r != -EPERM)))
			abort();
	}

	reason = NULL;
	r = tpm2_ak_public_check(data, size, name, point, &reason);
	if (r < 0 && (r != -EBADMSG || !reason))
		abort();
	/* An accepted AK names itself consistently: a second check gives the same name and point. */
	if (r == 0) {
		uint8_t name2[TPM2_NAME_SIZE], point2[65];
		if (tpm2_ak_public_check(data, size, name2, point2, &reason) != 0 || memcmp(name, name2, sizeof(name)) ||
		    memcmp(point, point2, sizeof(point)) || name[0] != 0x00 || name[1] != 0x0b || point[0] != 0x04)
			abort();
	}
	return 0;
}
