/* SPDX-License-Identifier: Apache-2.0 */
/* TPM2_ActivateCredential (TPM 2.0 Part 3, 12.5) with the ECC P-256 EK and the AK: the enrollment
 * proof that the AK lives in the TPM whose EK certificate the device presented. */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "tpm2/tpm2-attest-internal.h"

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
