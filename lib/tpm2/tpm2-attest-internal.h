/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Private to the attestation part of lib/tpm2 (tpm2-ak.c, tpm2-activate.c, tpm2-quote.c,
 * tpm2-attest-verify.c). */

#include "tpm2/tpm2-attest.h"
#include "tpm2/tpm2-internal.h"

/* Loads the AK under the SRK pinned in its blob (-EREMCHG for another SRK) and flushes the SRK
 * again, so that only the AK occupies a transient slot (swtpm without a resource manager holds
 * three objects). With ret_session, a session salted with that SRK is started first (HMAC type,
 * attributes as given) for a command whose response must be encrypted. */
int tpm2_ak_load(Tpm2Context *c, const Tpm2Ak *ak, ESYS_TR *ret, ESYS_TR *ret_session, TPMA_SESSION session_attrs);

/* The pcrSelect bits of one TPMS_PCR_SELECTION as a mask; -EBADMSG when a bit above PCR 23 is set. */
int tpm2_pcr_select_mask(const TPMS_PCR_SELECTION *s, uint32_t *ret);

/* SHA-256 over the values of the PCRs in mask, in ascending PCR order (the quote's pcrDigest). */
int tpm2_pcr_values_digest(uint32_t mask, const uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE],
			   uint8_t ret[TPM2_SHA256_SIZE]);

/* The server side parses network bytes with the tss2 MU library without ever opening a TPM
 * context; tpm2-tss would log every malformed structure as an ERROR on stderr. Sets TSS2_LOG the
 * way tpm2_context_new does (unless the user set it). */
void tpm2_tss_log_setup(void);
