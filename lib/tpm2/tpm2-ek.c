/* SPDX-License-Identifier: Apache-2.0 */
/* Device identity. The id is derived from the endorsement key, never chosen by the client
 * (Keylime CVE-2025-13609: an agent could claim another device's UUID). */
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-internal.h"

/* The key that swtpm_setup and manufacturers certify at NV index 0x01c0000a. */
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

int tpm2_ek_public_spki(Tpm2Context *c, uint8_t **ret, size_t *ret_size)
{
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR h = ESYS_TR_NONE;
	_cleanup_ec_key_ EcKey *k = NULL;
	int r;

	r = tpm2_ek_primary_load(c, &h, &pub);
	if (r < 0)
		return r;
	tpm2_flush(c, &h);

	if (pub->publicArea.unique.ecc.x.size != 32 || pub->publicArea.unique.ecc.y.size != 32) {
		free(pub);
		return -EIO;
	}
	r = ec_key_from_xy(pub->publicArea.unique.ecc.x.buffer, pub->publicArea.unique.ecc.y.buffer, &k);
	free(pub);
	if (r < 0)
		return r;
	return ec_key_public_spki_der(k, ret, ret_size);
}

int device_id_from_spki(const void *der, size_t n, char ret[DEVICE_ID_STRING_SIZE])
{
	uint8_t h[32];
	_cleanup_free_ char *s = NULL;
	int r;

	r = sha256(der, n, h);
	if (r < 0)
		return r;
	s = hex_encode(h, DEVICE_ID_SIZE);
	if (!s)
		return -ENOMEM;
	memcpy(ret, s, DEVICE_ID_STRING_SIZE);
	return 0;
}

int tpm2_device_id(Tpm2Context *c, char ret[DEVICE_ID_STRING_SIZE])
{
	_cleanup_free_ uint8_t *der = NULL;
	size_t n;
	int r;

	r = tpm2_ek_public_spki(c, &der, &n);
	if (r < 0)
		return r;
	return device_id_from_spki(der, n, ret);
}

int device_id_parse(const char *s, uint8_t ret[DEVICE_ID_SIZE])
{
	uint8_t b[DEVICE_ID_SIZE];

	if (!s || hex_decode_exact(s, b, sizeof(b)) < 0)
		return -EINVAL;
	/* Canonical form only (lower-case), so one device has one id string. */
	for (const char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			return -EINVAL;
	memcpy(ret, b, sizeof(b));
	return 0;
}
