/* SPDX-License-Identifier: Apache-2.0 */
/* The TCG event log arrives from the device with every attestation: replayed on the server. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tpm2/tpm2-attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE], before[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	uint32_t mask = 0x5a5a5a5a;
	const char *reason = NULL;
	int r;

	memset(values, 0x6b, sizeof(values));
	memcpy(before, values, sizeof(values));
	r = tpm2_eventlog_replay(data, size, values, &mask, &reason);
	if (r < 0) {
		/* Rejections say why and leave the outputs alone. */
		if (r != -EBADMSG || !reason || mask != 0x5a5a5a5a || memcmp(values, before, sizeof(values)))
			abort();
		return 0;
	}
	if (mask >= (UINT32_C(1) << TPM2_PCRS_MAX))
		abort();
	return 0;
}
