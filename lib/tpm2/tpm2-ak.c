/* SPDX-License-Identifier: Apache-2.0 */
/* The device's attestation identity: the EK certificate from NV and the attestation key (AK), a
 * restricted ECC P-256 signing key under the SRK. Restricted means the TPM signs with it only
 * digests it computed itself or that carry no TPM_GENERATED_VALUE, so a signature over a
 * TPMS_ATTEST with that magic is evidence from this TPM (TPM 2.0 Part 1, 25.2.4 "Restricted
 * Signing Keys"). */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-attest-internal.h"

#define EK_CERT_MAX (16 * 1024) /* a certificate with a long chain of extensions is ~1.5 KiB */
#define AK_STATE_MAGIC "TPAK"
#define AK_STATE_VERSION 1
#define AK_STATE_FIELD_MAX (16 * 1024)

/* NV_Read returns at most TPM2_PT_NV_BUFFER_MAX bytes per call: 2048 in the headers, but often 1024
 * or 768 on real TPMs (a larger request fails with TPM_RC_VALUE). */
static int nv_buffer_max(Tpm2Context *c, uint16_t *ret)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TSS2_RC rc;
	uint32_t v = 0;

	rc = Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
				TPM2_PT_NV_BUFFER_MAX, 1, NULL, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "GetCapability(NV_BUFFER_MAX)");
	if (cap->capability == TPM2_CAP_TPM_PROPERTIES && cap->data.tpmProperties.count >= 1 &&
	    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX)
		v = cap->data.tpmProperties.tpmProperty[0].value;
	free(cap);
	if (v == 0)
		return -EIO;
	*ret = (uint16_t)MIN(v, (uint32_t)TPM2_MAX_NV_BUFFER_SIZE);
	return 0;
}

int tpm2_ek_cert_read(Tpm2Context *c, uint8_t **ret, size_t *ret_size)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	ESYS_TR nv = ESYS_TR_NONE, auth;
	_cleanup_free_ uint8_t *buf = NULL;
	uint16_t size, done = 0, chunk_max = 0;
	TSS2_RC rc;
	int r;

	if (!c || !ret || !ret_size)
		return -EINVAL;
	rc = Esys_TR_FromTPMPublic(c->esys, TPM2_EK_CERT_NV_ECC_P256, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   &nv);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "TR_FromTPMPublic(EK certificate)");
		return r == -ENODEV ? r : -ENOENT;
	}
	rc = Esys_NV_ReadPublic(c->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "NV_ReadPublic(EK certificate)");
		goto out;
	}
	/* An index that was defined but never written holds no certificate. */
	if (!(pub->nvPublic.attributes & TPMA_NV_WRITTEN) || pub->nvPublic.dataSize == 0) {
		r = -ENOENT;
		goto out;
	}
	if (pub->nvPublic.dataSize > EK_CERT_MAX) {
		r = -EIO;
		goto out;
	}
	/* TCG EK Credential Profile: the index is readable with its own (empty) auth or by the owner. */
	if (pub->nvPublic.attributes & TPMA_NV_AUTHREAD)
		auth = nv;
	else if (pub->nvPublic.attributes & TPMA_NV_OWNERREAD)
		auth = ESYS_TR_RH_OWNER;
	else {
		r = -EACCES;
		goto out;
	}
	r = nv_buffer_max(c, &chunk_max);
	if (r < 0)
		goto out;
	size = pub->nvPublic.dataSize;
	buf = malloc(size);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (done < size) {
		TPM2B_MAX_NV_BUFFER *data = NULL;
		uint16_t chunk = MIN((uint16_t)(size - done), chunk_max);

		rc = Esys_NV_Read(c->esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, chunk, done,
				  &data);
		if (rc != TSS2_RC_SUCCESS) {
			r = tpm2_rc_errno(rc, "NV_Read(EK certificate)");
			goto out;
		}
		if (data->size != chunk) {
			free(data);
			r = -EIO;
			goto out;
		}
		memcpy(buf + done, data->buffer, chunk);
		done += chunk;
		free(data);
	}
	*ret = TAKE_PTR(buf);
	*ret_size = size;
	r = 0;
out:
	free(pub);
	(void)Esys_TR_Close(c->esys, &nv);
	return r;
}

void tpm2_ak_done(Tpm2Ak *ak)
{
	if (!ak)
		return;
	tpm2_blob_done(&ak->blob);
	free(ak->public);
	*ak = (Tpm2Ak){};
}

static int marshal_public(const TPM2B_PUBLIC *p, uint8_t **ret, size_t *ret_size)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)], *b;
	size_t off = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
		return -EINVAL;
	b = malloc(off);
	if (!b)
		return -ENOMEM;
	memcpy(b, buf, off);
	*ret = b;
	*ret_size = off;
	return 0;
}

/* The AK template: Part 1 25.2.4 restricted signing key, fixed to this TPM and to the SRK, its
 * private part generated inside the TPM (sensitiveDataOrigin), used with an empty authValue. */
static const TPM2B_PUBLIC ak_template = {
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
				    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
				    TPMA_OBJECT_USERWITHAUTH,
		.parameters.eccDetail = {
			.symmetric.algorithm = TPM2_ALG_NULL,
			.scheme = {.scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256},
			.curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL,
		},
	},
};

int tpm2_ak_create(Tpm2Context *c, Tpm2Ak *ret)
{
	TPM2B_SENSITIVE_CREATE sensitive = {};
	TPML_PCR_SELECTION no_pcrs = {};
	TPM2B_DATA no_data = {};
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL, *srk_pub = NULL;
	ESYS_TR srk = ESYS_TR_NONE;
	uint8_t blob[sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC)];
	Tpm2Ak ak = {};
	bool transient = false;
	size_t off = 0;
	TSS2_RC rc;
	int r;

	if (!c || !ret)
		return -EINVAL;
	r = tpm2_srk_load(c, NULL, &srk, &srk_pub, &transient);
	if (r < 0)
		return r;
	/* Nothing secret goes in or out (the private part leaves the TPM wrapped by the SRK), so the
	 * SRK's empty auth is given as a plain password. */
	rc = Esys_Create(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &ak_template,
			 &no_data, &no_pcrs, &priv, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "Create(AK)");
		goto out;
	}
	if (Tss2_MU_TPM2B_PRIVATE_Marshal(priv, blob, sizeof(blob), &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PUBLIC_Marshal(pub, blob, sizeof(blob), &off) != TSS2_RC_SUCCESS) {
		r = -EINVAL;
		goto out;
	}
	ak.blob.blob = malloc(off);
	if (!ak.blob.blob) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(ak.blob.blob, blob, off);
	ak.blob.blob_size = off;
	r = marshal_public(srk_pub, &ak.blob.srk_public, &ak.blob.srk_public_size);
	if (r < 0)
		goto out;
	r = marshal_public(pub, &ak.public, &ak.public_size);
	if (r < 0)
		goto out;
	*ret = ak;
	ak = (Tpm2Ak){};
	r = 0;
out:
	tpm2_ak_done(&ak);
	free(priv);
	free(pub);
	free(srk_pub);
	if (transient)
		tpm2_flush(c, &srk);
	else if (srk != ESYS_TR_NONE)
		(void)Esys_TR_Close(c->esys, &srk);
	return r;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* State file: "TPAK" || version (1 byte) || three fields, each a 32-bit big-endian length and its
 * bytes: the SRK's TPM2B_PUBLIC (the pin), TPM2B_PRIVATE || TPM2B_PUBLIC of the AK, and the AK's
 * TPM2B_PUBLIC once more (what the server registered; checked to equal the blob's). */
int tpm2_ak_serialize(const Tpm2Ak *ak, uint8_t **ret, size_t *ret_size)
{
	const uint8_t *fields[3];
	size_t sizes[3], n = 5, off = 5;
	uint8_t *buf;

	if (!ak || !ak->blob.srk_public || !ak->blob.blob || !ak->public || !ret || !ret_size)
		return -EINVAL;
	fields[0] = ak->blob.srk_public, sizes[0] = ak->blob.srk_public_size;
	fields[1] = ak->blob.blob, sizes[1] = ak->blob.blob_size;
	fields[2] = ak->public, sizes[2] = ak->public_size;
	for (size_t i = 0; i < 3; i++) {
		if (sizes[i] == 0 || sizes[i] > AK_STATE_FIELD_MAX)
			return -EINVAL;
		n += 4 + sizes[i];
	}
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, AK_STATE_MAGIC, 4);
	buf[4] = AK_STATE_VERSION;
	for (size_t i = 0; i < 3; i++) {
		put_be32(buf + off, (uint32_t)sizes[i]);
		memcpy(buf + off + 4, fields[i], sizes[i]);
		off += 4 + sizes[i];
	}
	*ret = buf;
	*ret_size = n;
	return 0;
}

static int unmarshal_ak_blob(const uint8_t *blob, size_t n, TPM2B_PRIVATE *ret_priv, TPM2B_PUBLIC *ret_pub,
			     size_t *ret_public_offset)
{
	size_t off = 0, pub_off;

	*ret_priv = (TPM2B_PRIVATE){};
	*ret_pub = (TPM2B_PUBLIC){};
	if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, n, &off, ret_priv) != TSS2_RC_SUCCESS)
		return -EINVAL;
	pub_off = off;
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, n, &off, ret_pub) != TSS2_RC_SUCCESS || off != n)
		return -EINVAL;
	if (ret_public_offset)
		*ret_public_offset = pub_off;
	return 0;
}

int tpm2_ak_deserialize(const uint8_t *buf, size_t n, Tpm2Ak *ret)
{
	uint8_t *copies[3] = {};
	size_t sizes[3], off = 5, pub_off;
	TPM2B_PRIVATE priv;
	TPM2B_PUBLIC pub, srk_pub = {};
	uint8_t name[TPM2_NAME_SIZE], point[65];
	const char *reason;
	size_t srk_off = 0;
	int r;

	if (!buf || !ret)
		return -EINVAL;
	tpm2_tss_log_setup();
	if (n < 5 || memcmp(buf, AK_STATE_MAGIC, 4) != 0 || buf[4] != AK_STATE_VERSION)
		return -EINVAL;
	for (size_t i = 0; i < 3; i++) {
		if (n - off < 4)
			goto fail;
		sizes[i] = get_be32(buf + off);
		off += 4;
		if (sizes[i] == 0 || sizes[i] > AK_STATE_FIELD_MAX || sizes[i] > n - off)
			goto fail;
		copies[i] = malloc(sizes[i]);
		if (!copies[i]) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(copies[i], buf + off, sizes[i]);
		off += sizes[i];
	}
	if (off != n)
		goto fail;

	/* Each part parses exactly, the registered public equals the blob's, and it is an AK. */
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(copies[0], sizes[0], &srk_off, &srk_pub) != TSS2_RC_SUCCESS ||
	    srk_off != sizes[0])
		goto fail;
	if (unmarshal_ak_blob(copies[1], sizes[1], &priv, &pub, &pub_off) < 0)
		goto fail;
	if (sizes[1] - pub_off != sizes[2] || memcmp(copies[1] + pub_off, copies[2], sizes[2]) != 0)
		goto fail;
	if (tpm2_ak_public_check(copies[2], sizes[2], name, point, &reason) < 0) {
		log_debug("The AK in the state file is not acceptable: %s", reason);
		goto fail;
	}

	*ret = (Tpm2Ak){
		.blob = {.srk_public = copies[0], .srk_public_size = sizes[0],
			 .blob = copies[1], .blob_size = sizes[1]},
		.public = copies[2],
		.public_size = sizes[2],
	};
	return 0;
fail:
	r = -EINVAL;
out:
	for (size_t i = 0; i < 3; i++)
		free(copies[i]);
	return r;
}

int tpm2_ak_load(Tpm2Context *c, const Tpm2Ak *ak, ESYS_TR *ret, ESYS_TR *ret_session, TPMA_SESSION session_attrs)
{
	TPM2B_PUBLIC pinned = {}, pub, *srk_pub = NULL;
	TPM2B_PRIVATE priv;
	ESYS_TR srk = ESYS_TR_NONE, session = ESYS_TR_NONE, h = ESYS_TR_NONE;
	bool transient = false;
	size_t off = 0;
	TSS2_RC rc;
	int r;

	if (!c || !ak || !ak->blob.srk_public || !ak->blob.blob || !ret)
		return -EINVAL;
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(ak->blob.srk_public, ak->blob.srk_public_size, &off, &pinned) !=
		    TSS2_RC_SUCCESS ||
	    off != ak->blob.srk_public_size)
		return -EINVAL;
	r = unmarshal_ak_blob(ak->blob.blob, ak->blob.blob_size, &priv, &pub, NULL);
	if (r < 0)
		return r;

	r = tpm2_srk_load(c, &pinned, &srk, &srk_pub, &transient);
	if (r < 0)
		return r;
	if (ret_session) {
		r = tpm2_session_start(c, srk, TPM2_SE_HMAC, session_attrs, &session);
		if (r < 0)
			goto out;
	}
	rc = Esys_Load(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &h);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_rc_errno(rc, "Load(AK)");
		/* A blob that does not load under the pinned SRK is corrupt or from another TPM. */
		if (r == -EPERM || r == -EIO)
			r = -EINVAL;
		goto out;
	}
	*ret = h;
	if (ret_session) {
		*ret_session = session;
		session = ESYS_TR_NONE;
	}
	r = 0;
out:
	tpm2_flush(c, &session);
	if (transient)
		tpm2_flush(c, &srk);
	else if (srk != ESYS_TR_NONE)
		(void)Esys_TR_Close(c->esys, &srk);
	free(srk_pub);
	return r;
}
