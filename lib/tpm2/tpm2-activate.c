/* SPDX-License-Identifier: Apache-2.0 */
/* TPM2_ActivateCredential (TPM 2.0 Part 3, 12.5) with the ECC P-256 EK and the AK: the enrollment
 * proof that the AK lives in the TPM whose EK certificate the device presented. */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "tpm2/tpm2-attest-internal.h"

/* TCG EK Credential Profile 2.x, template L-2. Its authPolicy is PolicySecret(TPM_RH_ENDORSEMENT)
 * with an empty policyRef: using the EK needs the endorsement hierarchy's authorisation. */
static const uint8_t ek_policy[32] = {
	0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
	0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
};

int tpm2_ek_primary_load(Tpm2Context *c, ESYS_TR *ret, TPM2B_PUBLIC **ret_public)
{
	TPM2B_SENSITIVE_CREATE sensitive = {};
	TPML_PCR_SELECTION no_pcrs = {};
	TPM2B_DATA no_data = {};
	TPM2B_PUBLIC tmpl = {
		.publicArea = {
			.type = TPM2_ALG_ECC,
			.nameAlg = TPM2_ALG_SHA256,
			.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
					    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
					    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
			.authPolicy = {.size = 32},
			.parameters.eccDetail = {
				.symmetric = {.algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB},
				.scheme.scheme = TPM2_ALG_NULL,
				.curveID = TPM2_ECC_NIST_P256,
				.kdf.scheme = TPM2_ALG_NULL,
			},
			/* L-2: unique x and y are 32 zero bytes each. */
			.unique.ecc = {.x.size = 32, .y.size = 32},
		},
	};
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR h = ESYS_TR_NONE;
	TSS2_RC rc;

	memcpy(tmpl.publicArea.authPolicy.buffer, ek_policy, sizeof(ek_policy));
	rc = Esys_CreatePrimary(c->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				&sensitive, &tmpl, &no_data, &no_pcrs, &h, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "CreatePrimary(EK)");
	if (ret_public)
		*ret_public = pub;
	else
		free(pub);
	*ret = h;
	return 0;
}

/* A policy session satisfying the EK's authPolicy: PolicySecret(TPM_RH_ENDORSEMENT). */
static int ek_policy_session(Tpm2Context *c, ESYS_TR *ret)
{
	const TPMT_SYM_DEF no_sym = {.algorithm = TPM2_ALG_NULL};
	ESYS_TR s = ESYS_TR_NONE;
	TSS2_RC rc;

	rc = Esys_StartAuthSession(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   NULL, TPM2_SE_POLICY, &no_sym, TPM2_ALG_SHA256, &s);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "StartAuthSession(EK policy)");
	rc = Esys_PolicySecret(c->esys, ESYS_TR_RH_ENDORSEMENT, s, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			       NULL, NULL, NULL, 0, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		tpm2_flush(c, &s);
		return tpm2_rc_errno(rc, "PolicySecret(endorsement)");
	}
	*ret = s;
	return 0;
}

int tpm2_activate_credential(Tpm2Context *c, const Tpm2Ak *ak, const uint8_t *id_object, size_t id_object_size,
			     const uint8_t *encrypted_secret, size_t encrypted_secret_size, uint8_t **ret,
			     size_t *ret_size)
{
	TPM2B_ID_OBJECT id = {};
	TPM2B_ENCRYPTED_SECRET secret = {};
	TPM2B_DIGEST *cert_info = NULL;
	ESYS_TR ak_h = ESYS_TR_NONE, ek = ESYS_TR_NONE, ak_session = ESYS_TR_NONE, ek_session = ESYS_TR_NONE;
	size_t off;
	TSS2_RC rc;
	int r;

	if (!c || !ak || !id_object || !encrypted_secret || !ret || !ret_size)
		return -EINVAL;
	/* Both are server-made TPM2Bs: exactly one structure each, nothing after it. */
	off = 0;
	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(id_object, id_object_size, &off, &id) != TSS2_RC_SUCCESS ||
	    off != id_object_size || id.size == 0)
		return -EINVAL;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(encrypted_secret, encrypted_secret_size, &off, &secret) !=
		    TSS2_RC_SUCCESS ||
	    off != encrypted_secret_size || secret.size == 0)
		return -EINVAL;

	/* The AK's session is salted with the pinned SRK and encrypts the response: the activated
	 * credential crosses the bus only encrypted (a sniffer could replay it to the server). */
	r = tpm2_ak_load(c, ak, &ak_h, &ak_session, TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION);
	if (r < 0)
		return r;
	r = tpm2_ek_primary_load(c, &ek, NULL);
	if (r < 0)
		goto out;
	r = ek_policy_session(c, &ek_session);
	if (r < 0)
		goto out;

	/* activateHandle (AK, ADMIN role: its authValue, as adminWithPolicy is clear) and keyHandle
	 * (EK, USER role: the policy session). */
	rc = Esys_ActivateCredential(c->esys, ak_h, ek, ak_session, ek_session, ESYS_TR_NONE, &id, &secret,
				     &cert_info);
	if (rc != TSS2_RC_SUCCESS) {
		TSS2_RC base = tpm2_rc_base(rc);

		r = tpm2_rc_errno(rc, "ActivateCredential");
		/* The credential was made for another AK name or another EK, or was damaged: the
		 * outer HMAC fails (INTEGRITY), the seed does not decrypt (VALUE, ECC_POINT, NO_RESULT)
		 * or the sizes are off (SIZE, INSUFFICIENT). Part 3 12.5.1. */
		if (base == TPM2_RC_INTEGRITY || base == TPM2_RC_VALUE || base == TPM2_RC_ECC_POINT ||
		    base == TPM2_RC_NO_RESULT || base == TPM2_RC_SIZE || base == TPM2_RC_INSUFFICIENT)
			r = -EBADMSG;
		goto out;
	}
	*ret = secure_memdup(cert_info->buffer, cert_info->size);
	if (!*ret) {
		r = -ENOMEM;
		goto out;
	}
	*ret_size = cert_info->size;
	r = 0;
out:
	if (cert_info) {
		memory_erase(cert_info, sizeof(*cert_info));
		free(cert_info);
	}
	/* swtpm without a resource manager holds three transient objects and three sessions. */
	tpm2_flush(c, &ek_session);
	tpm2_flush(c, &ak_session);
	tpm2_flush(c, &ek);
	tpm2_flush(c, &ak_h);
	return r;
}
