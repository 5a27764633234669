/* SPDX-License-Identifier: Apache-2.0 */
/* Policy digests computed in software, exactly as the TPM computes them (TPM 2.0 Library Part 3:
 * PolicyPCR 23.7, PolicyNV 23.9, PolicyAuthValue 23.17, PolicyAuthorize 23.16). The server signs
 * these without a TPM; the device's TPM recomputes them while it executes the policy. */
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-internal.h"

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* policyDigest' = H(policyDigest || commandCode || extra) */
static int policy_update(uint8_t digest[32], uint32_t cc, const void *extra, size_t extra_len)
{
	uint8_t ccb[4];
	be32(ccb, cc);
	return sha256_many(digest, digest, (size_t)32, ccb, (size_t)4, extra ?: "", extra_len, NULL);
}

void tpm2_pcr_selection(uint32_t mask, TPML_PCR_SELECTION *ret)
{
	*ret = (TPML_PCR_SELECTION){
		.count = 1,
		.pcrSelections[0] = {
			.hash = TPM2_ALG_SHA256,
			.sizeofSelect = 3,
			.pcrSelect = {mask & 0xff, (mask >> 8) & 0xff, (mask >> 16) & 0xff},
		},
	};
}

int tpm2_policy_pcr_digest(const Tpm2PolicyParams *p, uint8_t ret[32])
{
	uint8_t buf[TPM2_PCRS_MAX * 32];
	size_t n = 0;

	/* pcrDigest = H(values of the selected PCRs in ascending order) */
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
		if (p->pcr_mask & (UINT32_C(1) << i)) {
			memcpy(buf + n, p->pcr_values[i], 32);
			n += 32;
		}
	return sha256(buf, n, ret);
}

int tpm2_policy_approved_digest(const Tpm2PolicyParams *p, uint8_t ret[TPM2_SHA256_SIZE])
{
	uint8_t d[32] = {}, sel[sizeof(TPML_PCR_SELECTION)], extra[sizeof(sel) + 32], args[12], args_hash[32],
		name[TPM2_NAME_SIZE], nv_extra[32 + TPM2_NAME_SIZE];
	TPML_PCR_SELECTION s;
	size_t off = 0;
	int r;

	if (p->pcr_mask == 0 || p->pcr_mask >= (UINT32_C(1) << TPM2_PCRS_MAX) ||
	    !(p->pcr_mask & (UINT32_C(1) << TPM2_PCR_ONE_BOOT)))
		return -EINVAL;

	/* PolicyPCR: extra = TPML_PCR_SELECTION || pcrDigest */
	tpm2_pcr_selection(p->pcr_mask, &s);
	if (Tss2_MU_TPML_PCR_SELECTION_Marshal(&s, sel, sizeof(sel), &off) != TSS2_RC_SUCCESS)
		return -EINVAL;
	memcpy(extra, sel, off);
	r = tpm2_policy_pcr_digest(p, extra + off);
	if (r < 0)
		return r;
	r = policy_update(d, TPM2_CC_PolicyPCR, extra, off + 32);
	if (r < 0)
		return r;

	/* PolicyNV: args = H(operandB || offset || operation); extra = args || nvIndexName */
	be64(args, p->epoch);
	be16(args + 8, 0);
	be16(args + 10, TPM2_EO_EQ);
	r = sha256(args, sizeof(args), args_hash);
	if (r < 0)
		return r;
	r = tpm2_counter_name(p->nv_index, name);
	if (r < 0)
		return r;
	memcpy(nv_extra, args_hash, 32);
	memcpy(nv_extra + 32, name, sizeof(name));
	r = policy_update(d, TPM2_CC_PolicyNV, nv_extra, sizeof(nv_extra));
	if (r < 0)
		return r;
	memcpy(ret, d, 32);
	return 0;
}

int tpm2_policy_authorize_digest(const uint8_t key_name[TPM2_NAME_SIZE], const void *policy_ref,
				 size_t ref_len, bool pin, uint8_t ret[TPM2_SHA256_SIZE])
{
	uint8_t d[32] = {};
	int r;

	/* PolicyAuthorize resets the digest, then: H(0 || CC || keyName), then H(· || policyRef) */
	r = policy_update(d, TPM2_CC_PolicyAuthorize, key_name, TPM2_NAME_SIZE);
	if (r < 0)
		return r;
	r = sha256_many(d, d, (size_t)32, policy_ref, ref_len, NULL);
	if (r < 0)
		return r;
	if (pin) {
		r = policy_update(d, TPM2_CC_PolicyAuthValue, NULL, 0);
		if (r < 0)
			return r;
	}
	memcpy(ret, d, 32);
	return 0;
}

int tpm2_policy_signing_hash(const uint8_t approved[TPM2_SHA256_SIZE], const void *policy_ref, size_t ref_len,
			     uint8_t ret[TPM2_SHA256_SIZE])
{
	return sha256_many(ret, approved, (size_t)32, policy_ref, ref_len, NULL);
}

void tpm2_ecc_public_template(const uint8_t point[65], TPM2B_PUBLIC *ret)
{
	*ret = (TPM2B_PUBLIC){
		.publicArea = {
			.type = TPM2_ALG_ECC,
			.nameAlg = TPM2_ALG_SHA256,
			.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH,
			.parameters.eccDetail = {
				.symmetric.algorithm = TPM2_ALG_NULL,
				.scheme.scheme = TPM2_ALG_NULL,
				.curveID = TPM2_ECC_NIST_P256,
				.kdf.scheme = TPM2_ALG_NULL,
			},
			.unique.ecc = {.x.size = 32, .y.size = 32},
		},
	};
	memcpy(ret->publicArea.unique.ecc.x.buffer, point + 1, 32);
	memcpy(ret->publicArea.unique.ecc.y.buffer, point + 33, 32);
}

static int name_of(const uint8_t *marshalled, size_t n, uint8_t ret[TPM2_NAME_SIZE])
{
	be16(ret, TPM2_ALG_SHA256);
	return sha256(marshalled, n, ret + 2);
}

int tpm2_ecc_key_name(const uint8_t point[65], uint8_t ret[TPM2_NAME_SIZE])
{
	uint8_t buf[sizeof(TPMT_PUBLIC)];
	TPM2B_PUBLIC pub;
	size_t off = 0;

	if (point[0] != 0x04)
		return -EINVAL;
	tpm2_ecc_public_template(point, &pub);
	if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub.publicArea, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
		return -EINVAL;
	return name_of(buf, off, ret);
}

void tpm2_counter_public(uint32_t nv_index, bool written, TPM2B_NV_PUBLIC *ret)
{
	*ret = (TPM2B_NV_PUBLIC){
		.nvPublic = {
			.nvIndex = nv_index,
			.nameAlg = TPM2_ALG_SHA256,
			.attributes = (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_AUTHWRITE |
				      TPMA_NV_AUTHREAD | TPMA_NV_NO_DA | (written ? TPMA_NV_WRITTEN : 0),
			.dataSize = 8,
		},
	};
}

int tpm2_counter_name(uint32_t nv_index, uint8_t ret[TPM2_NAME_SIZE])
{
	uint8_t buf[sizeof(TPMS_NV_PUBLIC)];
	TPM2B_NV_PUBLIC pub;
	size_t off = 0;

	if ((nv_index >> 24) != TPM2_HT_NV_INDEX)
		return -EINVAL;
	tpm2_counter_public(nv_index, true, &pub);
	if (Tss2_MU_TPMS_NV_PUBLIC_Marshal(&pub.nvPublic, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
		return -EINVAL;
	return name_of(buf, off, ret);
}

int pcr_mask_parse(const char *s, uint32_t *ret)
{
	uint32_t mask = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		unsigned v = 0;
		int digits = 0;
		while (*p >= '0' && *p <= '9' && digits < 3) {
			v = v * 10 + (unsigned)(*p++ - '0');
			digits++;
		}
		if (digits == 0 || v >= TPM2_PCRS_MAX || v == TPM2_PCR_ONE_BOOT)
			return -EINVAL;
		mask |= UINT32_C(1) << v;
		if (*p == ',') {
			if (!*++p)
				return -EINVAL;
		} else if (*p)
			return -EINVAL;
	}
	*ret = mask;
	return 0;
}
