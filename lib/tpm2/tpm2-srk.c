/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "tpm2/tpm2-internal.h"

#define SRK_PERSISTENT_HANDLE UINT32_C(0x81000001)

/* ECC P-256 storage key, following the TCG Provisioning Guidance SRK template: restricted
 * decryption key, AES-128-CFB for its children, no DA (it has no secret auth). */
static const TPM2B_PUBLIC srk_template = {
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
				    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
				    TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
		.parameters.eccDetail = {
			.symmetric = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB},
			.scheme.scheme = TPM2_ALG_NULL,
			.curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL,
		},
	},
};

static bool srk_acceptable(const TPM2B_PUBLIC *p)
{
	const TPMT_PUBLIC *a = &p->publicArea;
	return a->type == TPM2_ALG_ECC && a->nameAlg == TPM2_ALG_SHA256 &&
	       a->parameters.eccDetail.curveID == TPM2_ECC_NIST_P256 &&
	       (a->objectAttributes & (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM)) ==
		       (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM);
}

static int srk_persistent(Tpm2Context *c, ESYS_TR *ret, TPM2B_PUBLIC **ret_public)
{
	ESYS_TR h = ESYS_TR_NONE;
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;

	rc = Esys_TR_FromTPMPublic(c->esys, SRK_PERSISTENT_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h);
	if (rc != TSS2_RC_SUCCESS)
		return -ENOENT;
	rc = Esys_ReadPublic(c->esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS || !srk_acceptable(pub)) {
		free(pub);
		(void)Esys_TR_Close(c->esys, &h);
		return -ENOENT;
	}
	*ret = h;
	*ret_public = pub;
	return 0;
}

int tpm2_srk_load(Tpm2Context *c, const TPM2B_PUBLIC *pinned, ESYS_TR *ret, TPM2B_PUBLIC **ret_public,
		  bool *ret_transient)
{
	TPM2B_SENSITIVE_CREATE sensitive = {};
	TPML_PCR_SELECTION no_pcrs = {};
	TPM2B_DATA no_data = {};
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR h = ESYS_TR_NONE;
	TSS2_RC rc;

	/* A persistent SRK (real TPMs: creating a primary costs 50–230 ms) is preferred, but only
	 * if it is the one we are pinned to. */
	if (srk_persistent(c, &h, &pub) >= 0) {
		if (!pinned || tpm2_public_equal(pinned, pub)) {
			*ret = h;
			*ret_public = pub;
			*ret_transient = false;
			return 0;
		}
		free(pub);
		(void)Esys_TR_Close(c->esys, &h);
	}

	rc = Esys_CreatePrimary(c->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				&sensitive, &srk_template, &no_data, &no_pcrs, &h, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "CreatePrimary(SRK)");

	/* The pin: the salt of every session is encrypted to this public key. A TPM (or an
	 * interposer) that answers with another key gets nothing it could decrypt. */
	if (pinned && !tpm2_public_equal(pinned, pub)) {
		log_debug("The TPM's storage root key differs from the one pinned in the token.");
		free(pub);
		tpm2_flush(c, &h);
		return -EREMCHG;
	}
	/* When sealing something new (nothing pinned yet) and no persistent SRK exists, make ours
	 * persistent: a primary is deterministic for the owner seed, so the persistent copy has the
	 * same public area, and every later unseal skips CreatePrimary (50–230 ms on real TPMs).
	 * Best effort: without owner authorization we keep using transient primaries. */
	if (!pinned) {
		ESYS_TR persistent = ESYS_TR_NONE;
		rc = Esys_EvictControl(c->esys, ESYS_TR_RH_OWNER, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				       SRK_PERSISTENT_HANDLE, &persistent);
		if (rc == TSS2_RC_SUCCESS) {
			tpm2_flush(c, &h);
			*ret = persistent;
			*ret_public = pub;
			*ret_transient = false;
			return 0;
		}
		log_debug("Cannot make the SRK persistent at 0x%08x: 0x%x %s", SRK_PERSISTENT_HANDLE, rc,
			  Tss2_RC_Decode(rc));
	}
	*ret = h;
	*ret_public = pub;
	*ret_transient = true;
	return 0;
}

int tpm2_session_start(Tpm2Context *c, ESYS_TR srk, TPM2_SE type, TPMA_SESSION attrs, ESYS_TR *ret)
{
	const TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB};
	ESYS_TR s = ESYS_TR_NONE;
	TSS2_RC rc;

	/* Salted with the SRK: the session key derives from a secret only the real TPM can decrypt,
	 * so parameter encryption protects against a bus sniffer and an interposer alike. */
	rc = Esys_StartAuthSession(c->esys, srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
				   type, &sym, TPM2_ALG_SHA256, &s);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "StartAuthSession");
	rc = Esys_TRSess_SetAttributes(c->esys, s, attrs, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		tpm2_flush(c, &s);
		return tpm2_rc_errno(rc, "TRSess_SetAttributes");
	}
	*ret = s;
	return 0;
}
