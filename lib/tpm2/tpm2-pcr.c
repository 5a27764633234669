/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "tpm2/tpm2-internal.h"

int tpm2_pcr_read(Tpm2Context *c, uint32_t mask, uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE])
{
	uint32_t remaining = mask;

	/* PCR_Read returns at most 8 digests per call; ask again for what is still missing. */
	while (remaining) {
		TPML_PCR_SELECTION sel, *out_sel = NULL;
		TPML_DIGEST *digests = NULL;
		uint32_t got = 0;
		size_t k = 0;
		TSS2_RC rc;

		tpm2_pcr_selection(remaining, &sel);
		rc = Esys_PCR_Read(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, NULL, &out_sel, &digests);
		if (rc != TSS2_RC_SUCCESS)
			return tpm2_rc_errno(rc, "PCR_Read");
		for (uint32_t i = 0; i < out_sel->count; i++) {
			const TPMS_PCR_SELECTION *s = &out_sel->pcrSelections[i];
			if (s->hash != TPM2_ALG_SHA256)
				continue;
			for (unsigned b = 0; b < s->sizeofSelect * 8u && b < TPM2_PCRS_MAX; b++)
				if (s->pcrSelect[b / 8] & (1u << (b % 8)))
					got |= UINT32_C(1) << b;
		}
		for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
			if (!(got & (UINT32_C(1) << i)))
				continue;
			if (k >= digests->count || digests->digests[k].size != 32) {
				free(out_sel);
				free(digests);
				return -EIO;
			}
			memcpy(values[i], digests->digests[k++].buffer, 32);
		}
		free(out_sel);
		free(digests);
		if ((got & remaining) == 0) {
			log_debug("The TPM has no SHA-256 bank for PCRs 0x%x.", remaining);
			return -EOPNOTSUPP;
		}
		remaining &= ~got;
	}
	return 0;
}

int tpm2_pcr_extend(Tpm2Context *c, unsigned pcr, const uint8_t digest[TPM2_SHA256_SIZE])
{
	TPML_DIGEST_VALUES v = {.count = 1, .digests[0] = {.hashAlg = TPM2_ALG_SHA256}};
	TSS2_RC rc;

	if (pcr >= TPM2_PCRS_MAX)
		return -EINVAL;
	memcpy(v.digests[0].digest.sha256, digest, 32);
	rc = Esys_PCR_Extend(c->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &v);
	return tpm2_rc_errno(rc, "PCR_Extend");
}
