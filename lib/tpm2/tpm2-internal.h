/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "tpm2/tpm2.h"

struct Tpm2Context {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
};

/* Maps a TSS2_RC to a negative errno (see tpm2.h) and logs the TPM code at debug level. `what`
 * names the TPM command for the log. */
int tpm2_rc_errno(TSS2_RC rc, const char *what);

/* The TPM base error without handle/session/parameter number bits. */
TSS2_RC tpm2_rc_base(TSS2_RC rc);

/* Loads the storage root key: the persistent SRK at 0x81000001 when it is ECC P-256 and (if
 * pinned is given) equal to it, else a transient primary from our ECC P-256 SRK template.
 * With pinned, a key that differs from it is refused with -EREMCHG. *ret_transient tells the
 * caller to flush it. */
int tpm2_srk_load(Tpm2Context *c, const TPM2B_PUBLIC *pinned, ESYS_TR *ret, TPM2B_PUBLIC **ret_public,
		  bool *ret_transient);

/* Starts a session salted with the SRK: AES-128-CFB parameter encryption, SHA-256. */
int tpm2_session_start(Tpm2Context *c, ESYS_TR srk, TPM2_SE type, TPMA_SESSION attrs, ESYS_TR *ret);

void tpm2_flush(Tpm2Context *c, ESYS_TR *handle);

/* The TPMT_PUBLIC we use for an external ECC P-256 verification key. */
void tpm2_ecc_public_template(const uint8_t point[65], TPM2B_PUBLIC *ret);

/* Marshalled TPM2B_PUBLIC compare. */
bool tpm2_public_equal(const TPM2B_PUBLIC *a, const TPM2B_PUBLIC *b);

void tpm2_pcr_selection(uint32_t mask, TPML_PCR_SELECTION *ret);
int tpm2_policy_pcr_digest(const Tpm2PolicyParams *p, uint8_t ret[32]);
void tpm2_counter_public(uint32_t nv_index, bool written, TPM2B_NV_PUBLIC *ret);

/* Loads the ECC P-256 endorsement key (TCG EK template L-2) as a transient primary. */
int tpm2_ek_primary_load(Tpm2Context *c, ESYS_TR *ret, TPM2B_PUBLIC **ret_public);
