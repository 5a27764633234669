/* SPDX-License-Identifier: Apache-2.0 */
/* TPM2_Quote by the AK (TPM 2.0 Part 3, 18.4) and the PCR values that go with it. */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "tpm2/tpm2-attest-internal.h"

#define QUOTE_ATTEMPTS 3

void tpm2_quote_done(Tpm2Quote *q)
{
	if (!q)
		return;
	free(q->attest);
	*q = (Tpm2Quote){};
}

/* r and s are TPM2B_ECC_PARAMETERs without leading zeros on some TPMs: left-pad each to 32. */
static int signature_raw(const TPMT_SIGNATURE *sig, uint8_t ret[64])
{
	const TPMS_SIGNATURE_ECC *e = &sig->signature.ecdsa;

	if (sig->sigAlg != TPM2_ALG_ECDSA || e->hash != TPM2_ALG_SHA256 || e->signatureR.size == 0 ||
	    e->signatureR.size > 32 || e->signatureS.size == 0 || e->signatureS.size > 32)
		return -EIO;
	memset(ret, 0, 64);
	memcpy(ret + 32 - e->signatureR.size, e->signatureR.buffer, e->signatureR.size);
	memcpy(ret + 64 - e->signatureS.size, e->signatureS.buffer, e->signatureS.size);
	return 0;
}

/* One quote and the PCR values read right after it. *ret_consistent tells whether the values
 * hash to the quoted pcrDigest (false: a PCR was extended between the two commands). */
static int quote_once(Tpm2Context *c, ESYS_TR ak, const TPM2B_DATA *qualifying, uint32_t mask, Tpm2Quote *q,
		      bool *ret_consistent)
{
	const TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256};
	TPML_PCR_SELECTION sel;
	TPM2B_ATTEST *quoted = NULL;
	TPMT_SIGNATURE *sig = NULL;
	TPMS_ATTEST a = {};
	uint8_t digest[TPM2_SHA256_SIZE];
	size_t off = 0;
	TSS2_RC rc;
	int r;

	tpm2_pcr_selection(mask, &sel);
	/* The AK has an empty authValue and its output is signed: a password session suffices. */
	rc = Esys_Quote(c->esys, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, qualifying, &scheme, &sel,
			&quoted, &sig);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "Quote");
	r = signature_raw(sig, q->signature);
	if (r < 0)
		goto out;
	if (Tss2_MU_TPMS_ATTEST_Unmarshal(quoted->attestationData, quoted->size, &off, &a) != TSS2_RC_SUCCESS ||
	    off != quoted->size || a.type != TPM2_ST_ATTEST_QUOTE) {
		r = -EIO;
		goto out;
	}
	free(q->attest);
	q->attest = malloc(quoted->size);
	if (!q->attest) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(q->attest, quoted->attestationData, quoted->size);
	q->attest_size = quoted->size;

	r = tpm2_pcr_read(c, mask, q->pcr_values);
	if (r < 0)
		goto out;
	r = tpm2_pcr_values_digest(mask, q->pcr_values, digest);
	if (r < 0)
		goto out;
	*ret_consistent = a.attested.quote.pcrDigest.size == sizeof(digest) &&
			  memcmp(a.attested.quote.pcrDigest.buffer, digest, sizeof(digest)) == 0;
	r = 0;
out:
	free(quoted);
	free(sig);
	return r;
}

int tpm2_quote(Tpm2Context *c, const Tpm2Ak *ak, const uint8_t *qualifying, size_t qualifying_size,
	       uint32_t pcr_mask, Tpm2Quote *ret)
{
	TPM2B_DATA data = {};
	ESYS_TR h = ESYS_TR_NONE;
	Tpm2Quote q = {};
	bool consistent = false;
	int r;

	if (!c || !ak || !ret || (!qualifying && qualifying_size > 0) || qualifying_size > sizeof(data.buffer))
		return -EINVAL;
	if (pcr_mask == 0 || pcr_mask >= (UINT32_C(1) << TPM2_PCRS_MAX))
		return -EINVAL;
	data.size = (UINT16)qualifying_size;
	if (qualifying_size)
		memcpy(data.buffer, qualifying, qualifying_size);

	r = tpm2_ak_load(c, ak, &h, NULL, 0);
	if (r < 0)
		return r;
	/* PCR_Read cannot be part of the quote: when something extends a PCR in between, the values
	 * would not match the quoted digest and the server would refuse (-EPERM). Quote again then;
	 * a PCR that changes on every attempt is reported as it is. */
	for (unsigned i = 0; i < QUOTE_ATTEMPTS && !consistent; i++) {
		r = quote_once(c, h, &data, pcr_mask, &q, &consistent);
		if (r < 0)
			goto out;
	}
	if (!consistent)
		log_debug("PCRs kept changing while quoting; returning the last quote as it is.");
	q.pcr_mask = pcr_mask;
	*ret = q;
	q = (Tpm2Quote){};
	r = 0;
out:
	tpm2_quote_done(&q);
	tpm2_flush(c, &h);
	return r;
}
