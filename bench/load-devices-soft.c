/* SPDX-License-Identifier: Apache-2.0 */
/* The software "TPM" of load-devices: the structures a TPM would produce, built and signed with
 * lib/crypto keys. bench/ may use tss2-mu directly (tools/check-layering): these are test fixtures,
 * not a wrapper the programs rely on. */
#include <string.h>

#include <tss2/tss2_mu.h>

#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "load-devices.h"
#include "tpm2/tpm2-kdf-internal.h"

int soft_ak_public(const EcKey *ak, uint8_t buf[SOFT_AK_PUBLIC_MAX], size_t *ret_size,
		   uint8_t ret_name[TPM2_NAME_SIZE])
{
	TPM2B_PUBLIC p = {
	    .publicArea =
		{
		    .type = TPM2_ALG_ECC,
		    .nameAlg = TPM2_ALG_SHA256,
		    /* What tpm2_ak_create asks the TPM for (and the server requires). */
		    .objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
					TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
					TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH,
		    .parameters.eccDetail =
			{
			    .symmetric.algorithm = TPM2_ALG_NULL,
			    .scheme = {.scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256},
			    .curveID = TPM2_ECC_NIST_P256,
			    .kdf.scheme = TPM2_ALG_NULL,
			},
		    .unique.ecc = {.x.size = 32, .y.size = 32},
		},
	};
	uint8_t point[EC_P256_POINT_SIZE], area[sizeof(TPMT_PUBLIC)];
	size_t off = 0, area_size = 0;
	int r;

	r = ec_key_get_point(ak, point);
	if (r < 0)
		return r;
	memcpy(p.publicArea.unique.ecc.x.buffer, point + 1, 32);
	memcpy(p.publicArea.unique.ecc.y.buffer, point + 33, 32);
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&p, buf, SOFT_AK_PUBLIC_MAX, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPMT_PUBLIC_Marshal(&p.publicArea, area, sizeof(area), &area_size) != TSS2_RC_SUCCESS)
		return -EINVAL;
	/* Part 1, 16: name = nameAlg || H(TPMT_PUBLIC). */
	ret_name[0] = 0x00, ret_name[1] = 0x0b;
	r = sha256(area, area_size, ret_name + 2);
	if (r < 0)
		return r;
	*ret_size = off;
	return 0;
}

int soft_activate_credential(const EcKey *ek, const uint8_t ak_name[TPM2_NAME_SIZE],
			     const uint8_t *id_object, size_t id_object_size,
			     const uint8_t *encrypted_secret, size_t encrypted_secret_size, uint8_t ret[64],
			     size_t *ret_size)
{
	static const uint8_t zero_iv[16] = {};
	TPM2B_ID_OBJECT ido = {};
	TPM2B_ENCRYPTED_SECRET es = {};
	TPMS_ECC_POINT eph_point = {};
	_cleanup_ec_key_ EcKey *eph = NULL;
	uint8_t ek_point[EC_P256_POINT_SIZE], z[32], seed[32], sym[16], hkey[32], mac[32],
	    buf[sizeof(ido.credential) + TPM2_NAME_SIZE], plain[sizeof(ido.credential)];
	size_t off = 0, enc_size, n;
	int r = -EBADMSG;

	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(id_object, id_object_size, &off, &ido) != TSS2_RC_SUCCESS ||
	    off != id_object_size)
		return -EBADMSG;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(encrypted_secret, encrypted_secret_size, &off, &es) !=
		TSS2_RC_SUCCESS ||
	    off != encrypted_secret_size)
		return -EBADMSG;
	off = 0;
	if (Tss2_MU_TPMS_ECC_POINT_Unmarshal(es.secret, es.size, &off, &eph_point) != TSS2_RC_SUCCESS ||
	    off != es.size || eph_point.x.size != 32 || eph_point.y.size != 32)
		return -EBADMSG;
	/* ec_key_from_xy refuses a point off the curve: an invalid-curve point would leak Z. */
	if (ec_key_from_xy(eph_point.x.buffer, eph_point.y.buffer, &eph) < 0)
		return -EBADMSG;
	if (ec_key_get_point(ek, ek_point) < 0 || ecdh_p256(ek, eph, z) < 0)
		return -EBADMSG;
	/* 24.6 (ECC): seed = KDFe(Z, "IDENTITY", PartyUInfo = ephemeral x, PartyVInfo = EK x). */
	if (tpm2_kdfe_sha256(&(Tpm2KdfParams){.key = z,
					      .key_len = 32,
					      .label = "IDENTITY",
					      .u = eph_point.x.buffer,
					      .u_len = 32,
					      .v = ek_point + 1,
					      .v_len = 32},
			     seed, sizeof(seed)) < 0)
		goto out;
	/* credentialBlob = TPM2B_DIGEST integrityHMAC || encIdentity (24.4). */
	if (ido.size < 2 + 32 + 2 || ido.credential[0] != 0 || ido.credential[1] != 32)
		goto out;
	enc_size = ido.size - 34u;
	/* 24.5: outerHMAC = HMAC(KDFa(seed, "INTEGRITY"), encIdentity || name) — checked first, as the
	 * TPM does: only the AK with exactly this name in the TPM holding the EK gets the secret. */
	if (tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = seed, .key_len = 32, .label = "INTEGRITY"}, hkey, 32) <
	    0)
		goto out;
	memcpy(buf, ido.credential + 34, enc_size);
	memcpy(buf + enc_size, ak_name, TPM2_NAME_SIZE);
	if (hmac_sha256(hkey, 32, buf, enc_size + TPM2_NAME_SIZE, mac) < 0 ||
	    memcmp_const(mac, ido.credential + 2, 32) != 0)
		goto out;
	/* 24.4: symKey = KDFa(seed, "STORAGE", name, NULL, 128), AES-CFB with a zero IV. */
	if (tpm2_kdfa_sha256(
		&(Tpm2KdfParams){
		    .key = seed, .key_len = 32, .label = "STORAGE", .u = ak_name, .u_len = TPM2_NAME_SIZE},
		sym, sizeof(sym)) < 0 ||
	    aes_cfb128_decrypt(sym, sizeof(sym), zero_iv, ido.credential + 34, enc_size, plain) < 0)
		goto out;
	/* The plaintext is a TPM2B_DIGEST: the credential. */
	n = (size_t)plain[0] << 8 | plain[1];
	if (enc_size < 2 || n + 2 != enc_size || n > 64)
		goto out;
	memcpy(ret, plain + 2, n);
	*ret_size = n;
	r = 0;
out:
	memory_erase(z, sizeof(z));
	memory_erase(seed, sizeof(seed));
	memory_erase(sym, sizeof(sym));
	memory_erase(hkey, sizeof(hkey));
	memory_erase(plain, sizeof(plain));
	return r;
}

int soft_quote(const SoftQuoteParams *p, uint8_t attest[SOFT_ATTEST_MAX], size_t *ret_size, uint8_t sig[64])
{
	TPMS_ATTEST a = {
	    .magic = TPM2_GENERATED_VALUE,
	    .type = TPM2_ST_ATTEST_QUOTE,
	    .qualifiedSigner = {.size = TPM2_NAME_SIZE},
	    .extraData = {.size = 32},
	    .clockInfo = {.clock = p->clock, .resetCount = 1, .restartCount = 0, .safe = 1},
	    .firmwareVersion = 0x20240125,
	    .attested.quote.pcrSelect = {.count = 1,
					 .pcrSelections[0] = {.hash = TPM2_ALG_SHA256,
							      .sizeofSelect = 3,
							      .pcrSelect = {p->mask & 0xff,
									    (p->mask >> 8) & 0xff,
									    (p->mask >> 16) & 0xff}}},
	    .attested.quote.pcrDigest = {.size = 32},
	};
	uint8_t concat[TPM2_PCRS_MAX * TPM2_SHA256_SIZE], h[32];
	size_t n = 0, off = 0;
	int r;

	memcpy(a.qualifiedSigner.name, p->ak_name, TPM2_NAME_SIZE);
	memcpy(a.extraData.buffer, p->qualifying, 32);
	/* Part 3, 18.4: pcrDigest = H(the selected PCR values in ascending order). */
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
		if (p->mask & (UINT32_C(1) << i)) {
			memcpy(concat + n, p->values[i], TPM2_SHA256_SIZE);
			n += TPM2_SHA256_SIZE;
		}
	r = sha256(concat, n, a.attested.quote.pcrDigest.buffer);
	if (r < 0)
		return r;
	if (Tss2_MU_TPMS_ATTEST_Marshal(&a, attest, SOFT_ATTEST_MAX, &off) != TSS2_RC_SUCCESS)
		return -EINVAL;
	r = sha256(attest, off, h);
	if (r >= 0)
		r = ecdsa_sign_raw(p->ak, h, sizeof(h), sig);
	if (r < 0)
		return r;
	*ret_size = off;
	return 0;
}
