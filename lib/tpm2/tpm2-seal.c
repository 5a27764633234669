/* SPDX-License-Identifier: Apache-2.0 */
/* Sealing the disk secret and unsealing it with the signed, device-bound policy.
 *
 * Every command that carries a secret runs in a session salted with the SRK (pinned in the
 * token) with parameter encryption: Create's inSensitive (secret + authValue) is encrypted on
 * the way in, Unseal's outData on the way out. The PIN itself never crosses the bus: with
 * PolicyAuthValue it only keys the session HMAC. */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-internal.h"

void tpm2_blob_done(Tpm2Blob *b)
{
	if (!b)
		return;
	free(b->srk_public);
	free(b->blob);
	*b = (Tpm2Blob){};
}

static int marshal_public(const TPM2B_PUBLIC *p, uint8_t **ret, size_t *ret_size)
{
	uint8_t *buf = malloc(sizeof(TPM2B_PUBLIC));
	size_t off = 0;

	if (!buf)
		return -ENOMEM;
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf, sizeof(TPM2B_PUBLIC), &off) != TSS2_RC_SUCCESS) {
		free(buf);
		return -EINVAL;
	}
	*ret = buf;
	*ret_size = off;
	return 0;
}

static int unmarshal_public(const uint8_t *buf, size_t n, TPM2B_PUBLIC *ret)
{
	size_t off = 0;
	*ret = (TPM2B_PUBLIC){}; /* the unmarshaller refuses a destination with a size set */
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, n, &off, ret) != TSS2_RC_SUCCESS || off != n)
		return -EINVAL;
	return 0;
}

static int unmarshal_blob(const Tpm2Blob *b, TPM2B_PRIVATE *priv, TPM2B_PUBLIC *pub)
{
	size_t off = 0;

	*priv = (TPM2B_PRIVATE){};
	*pub = (TPM2B_PUBLIC){};
	if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(b->blob, b->blob_size, &off, priv) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(b->blob, b->blob_size, &off, pub) != TSS2_RC_SUCCESS ||
	    off != b->blob_size)
		return -EINVAL;
	/* The object must be a sealed data object that only a policy can use. */
	if (pub->publicArea.type != TPM2_ALG_KEYEDHASH || pub->publicArea.nameAlg != TPM2_ALG_SHA256 ||
	    (pub->publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH) ||
	    pub->publicArea.authPolicy.size != 32)
		return -EINVAL;
	return 0;
}

int tpm2_seal(Tpm2Context *c, const uint8_t auth_policy[TPM2_SHA256_SIZE], const void *secret, size_t n,
	      const void *auth, size_t auth_len, Tpm2Blob *ret)
{
	TPM2B_SENSITIVE_CREATE sensitive = {};
	TPM2B_PUBLIC tmpl = {
		.publicArea = {
			.type = TPM2_ALG_KEYEDHASH,
			.nameAlg = TPM2_ALG_SHA256,
			/* No USERWITHAUTH: the policy is the only way to use it. DA protection only
			 * matters with a PIN. */
			.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
					    (auth_len ? 0 : TPMA_OBJECT_NODA),
			.authPolicy = {.size = 32},
			.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
		},
	};
	TPML_PCR_SELECTION no_pcrs = {};
	TPM2B_DATA no_data = {};
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL, *srk_pub = NULL;
	ESYS_TR srk = ESYS_TR_NONE, session = ESYS_TR_NONE;
	Tpm2Blob b = {};
	bool transient = false;
	size_t off = 0;
	TSS2_RC rc;
	int r;

	if (n == 0 || n > sizeof(sensitive.sensitive.data.buffer) || auth_len > 32)
		return -EINVAL;
	memcpy(tmpl.publicArea.authPolicy.buffer, auth_policy, 32);

	r = tpm2_srk_load(c, NULL, &srk, &srk_pub, &transient);
	if (r < 0)
		return r;
	r = tpm2_session_start(c, srk, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT | TPMA_SESSION_CONTINUESESSION,
			       &session);
	if (r < 0)
		goto out;

	sensitive.sensitive.data.size = (UINT16)n;
	memcpy(sensitive.sensitive.data.buffer, secret, n);
	if (auth_len) {
		sensitive.sensitive.userAuth.size = (UINT16)auth_len;
		memcpy(sensitive.sensitive.userAuth.buffer, auth, auth_len);
	}
	rc = Esys_Create(c->esys, srk, session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl, &no_data,
			 &no_pcrs, &priv, &pub, NULL, NULL, NULL);
	memory_erase(&sensitive, sizeof(sensitive));
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "Create(sealed object)");
		goto out;
	}

	r = marshal_public(srk_pub, &b.srk_public, &b.srk_public_size);
	if (r < 0)
		goto out;
	b.blob = malloc(sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC));
	if (!b.blob) {
		r = -ENOMEM;
		goto out;
	}
	if (Tss2_MU_TPM2B_PRIVATE_Marshal(priv, b.blob, sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC), &off) !=
		    TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PUBLIC_Marshal(pub, b.blob, sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC), &off) !=
		    TSS2_RC_SUCCESS) {
		r = -EINVAL;
		goto out;
	}
	b.blob_size = off;
	*ret = b;
	b = (Tpm2Blob){};
	r = 0;
out:
	tpm2_blob_done(&b);
	free(priv);
	free(pub);
	free(srk_pub);
	tpm2_flush(c, &session);
	if (transient)
		tpm2_flush(c, &srk);
	else if (srk != ESYS_TR_NONE)
		(void)Esys_TR_Close(c->esys, &srk);
	return r;
}

/* Runs the policy assertions in the order tpm2_policy_approved_digest() hashes them. */
static int policy_assert(Tpm2Context *c, ESYS_TR session, const Tpm2UnsealRequest *req, TPM2B_DIGEST *approved)
{
	const Tpm2PolicyParams *p = req->policy;
	TPML_PCR_SELECTION sel;
	TPM2B_DIGEST pcr_digest = {.size = 32};
	TPM2B_OPERAND epoch = {.size = 8};
	TPM2B_DIGEST *current = NULL;
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc;
	int r;

	tpm2_pcr_selection(p->pcr_mask, &sel);
	r = tpm2_policy_pcr_digest(p, pcr_digest.buffer);
	if (r < 0)
		return r;
	/* With the expected pcrDigest given, the TPM itself refuses (TPM_RC_VALUE) when the PCRs
	 * differ, instead of silently computing a digest that fails later. */
	rc = Esys_PolicyPCR(c->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pcr_digest, &sel);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "PolicyPCR");

	rc = Esys_TR_FromTPMPublic(c->esys, p->nv_index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "TR_FromTPMPublic(lock counter)");
		return r == -ENODEV ? r : -ENOENT;
	}
	for (int i = 7; i >= 0; i--)
		epoch.buffer[7 - i] = (uint8_t)(p->epoch >> (8 * i));
	rc = Esys_PolicyNV(c->esys, nv, nv, session, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &epoch, 0,
			   TPM2_EO_EQ);
	(void)Esys_TR_Close(c->esys, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "PolicyNV");
		/* TPM_RC_POLICY is the comparison failing; anything about the index is "locked" too
		 * from the user's view, but keep the distinction for the log. */
		return r;
	}

	rc = Esys_PolicyGetDigest(c->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "PolicyGetDigest");
	/* The TPM's digest must be the one we expect: if not, our software model and the TPM
	 * disagree (e.g. the counter's name differs) and PolicyAuthorize would fail anyway. */
	if (current->size != 32 || memcmp(current->buffer, approved->buffer, 32) != 0) {
		log_debug("The TPM computed another policy digest than the signed one.");
		free(current);
		return -EPERM;
	}
	free(current);
	return 0;
}

static int policy_authorize(Tpm2Context *c, ESYS_TR session, const Tpm2UnsealRequest *req,
			    const TPM2B_DIGEST *approved)
{
	TPM2B_PUBLIC key_pub;
	TPM2B_NAME *key_name = NULL;
	TPM2B_DIGEST ahash = {.size = 32};
	TPM2B_NONCE ref = {.size = DEVICE_ID_SIZE};
	TPMT_SIGNATURE sig = {
		.sigAlg = TPM2_ALG_ECDSA,
		.signature.ecdsa = {.hash = TPM2_ALG_SHA256, .signatureR.size = 32, .signatureS.size = 32},
	};
	TPMT_TK_VERIFIED *ticket = NULL;
	ESYS_TR key = ESYS_TR_NONE;
	TSS2_RC rc;
	int r;

	memcpy(ref.buffer, req->policy_ref, DEVICE_ID_SIZE);
	r = tpm2_policy_signing_hash(approved->buffer, ref.buffer, ref.size, ahash.buffer);
	if (r < 0)
		return r;
	memcpy(sig.signature.ecdsa.signatureR.buffer, req->signature, 32);
	memcpy(sig.signature.ecdsa.signatureS.buffer, req->signature + 32, 32);

	tpm2_ecc_public_template(req->policy_key_point, &key_pub);
	/* Owner hierarchy: a key loaded in the NULL hierarchy would only get a NULL ticket. */
	rc = Esys_LoadExternal(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, &key_pub,
			       ESYS_TR_RH_OWNER, &key);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "LoadExternal(policy key)");
	rc = Esys_TR_GetName(c->esys, key, &key_name);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "TR_GetName");
		goto out;
	}
	rc = Esys_VerifySignature(c->esys, key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &ahash, &sig, &ticket);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "VerifySignature");
		if (r == -EPERM) /* TPM_RC_VALUE: r or s out of range — still a bad signature */
			r = -EBADMSG;
		goto out;
	}
	tpm2_flush(c, &key); /* swtpm without a resource manager holds only three objects */
	rc = Esys_PolicyAuthorize(c->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, approved, &ref,
				  key_name, ticket);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "PolicyAuthorize");
		goto out;
	}
	/* The PIN: part of the sealed object's own policy, after PolicyAuthorize. */
	if (req->auth_len) {
		rc = Esys_PolicyAuthValue(c->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
		if (rc != TSS2_RC_SUCCESS) {
			r = tpm2_rc_errno(rc, "PolicyAuthValue");
			goto out;
		}
	}
	r = 0;
out:
	tpm2_flush(c, &key);
	free(key_name);
	free(ticket);
	return r;
}

int tpm2_unseal(Tpm2Context *c, const Tpm2UnsealRequest *req, uint8_t **ret, size_t *ret_size)
{
	TPM2B_PUBLIC pinned, obj_pub, *srk_pub = NULL;
	TPM2B_PRIVATE obj_priv;
	TPM2B_DIGEST approved = {.size = 32};
	TPM2B_AUTH auth = {};
	TPM2B_SENSITIVE_DATA *out = NULL;
	ESYS_TR srk = ESYS_TR_NONE, session = ESYS_TR_NONE, obj = ESYS_TR_NONE;
	bool transient = false;
	TSS2_RC rc;
	int r;

	if (!req->blob || !req->policy || !req->policy_key_point || !req->policy_ref || !req->signature ||
	    req->auth_len > 32)
		return -EINVAL;
	r = unmarshal_public(req->blob->srk_public, req->blob->srk_public_size, &pinned);
	if (r < 0)
		return r;
	r = unmarshal_blob(req->blob, &obj_priv, &obj_pub);
	if (r < 0)
		return r;
	r = tpm2_policy_approved_digest(req->policy, approved.buffer);
	if (r < 0)
		return r;

	r = tpm2_srk_load(c, &pinned, &srk, &srk_pub, &transient);
	if (r < 0)
		return r;

	/* ENCRYPT only: Unseal has no command parameter to encrypt, its response is the secret. */
	r = tpm2_session_start(c, srk, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION,
			       &session);
	if (r < 0)
		goto out;
	r = policy_assert(c, session, req, &approved);
	if (r < 0)
		goto out;
	r = policy_authorize(c, session, req, &approved);
	if (r < 0)
		goto out;

	rc = Esys_Load(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &obj_priv, &obj_pub, &obj);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "Load(sealed object)");
		/* A blob that does not load under the pinned SRK is corrupt or from another TPM. */
		if (r == -EPERM || r == -EIO)
			r = -EINVAL;
		goto out;
	}
	if (req->auth_len) {
		auth.size = (UINT16)req->auth_len;
		memcpy(auth.buffer, req->auth, req->auth_len);
		rc = Esys_TR_SetAuth(c->esys, obj, &auth);
		memory_erase(&auth, sizeof(auth));
		if (rc != TSS2_RC_SUCCESS) {
			r = tpm2_rc_errno(rc, "TR_SetAuth");
			goto out;
		}
	}
	rc = Esys_Unseal(c->esys, obj, session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "Unseal");
		/* The policy digest matched, so a policy failure here can only be the object's
		 * authPolicy: the blob was sealed for another policy key or device. */
		if (r == -EPERM)
			r = -EKEYREJECTED;
		goto out;
	}
	*ret = secure_memdup(out->buffer, out->size);
	*ret_size = out->size;
	memory_erase(out, sizeof(*out));
	free(out);
	r = *ret ? 0 : -ENOMEM;
out:
	tpm2_flush(c, &obj);
	tpm2_flush(c, &session);
	if (transient)
		tpm2_flush(c, &srk);
	else if (srk != ESYS_TR_NONE)
		(void)Esys_TR_Close(c->esys, &srk);
	free(srk_pub);
	return r;
}
