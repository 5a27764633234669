/* SPDX-License-Identifier: Apache-2.0 */
/* TPM2_MakeCredential in software, for an ECC P-256 EK with SHA-256 name algorithm and AES-128-CFB
 * (the TCG EK template L-2). TPM 2.0 Library Part 1, 24 "Credential Protection", with the ECC
 * secret sharing of Annex C.6.1, and Part 2 TPM2B_ID_OBJECT / TPM2B_ENCRYPTED_SECRET.
 *
 * Only a TPM that holds the EK's private key can recover the seed, and the TPM releases the
 * credential only if the object named in the HMAC (the AK) is loaded in that same TPM: this is what
 * ties the AK to the EK certificate at enrollment. */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-attest.h"
#include "tpm2/tpm2-internal.h"
#include "tpm2/tpm2-kdf-internal.h"

#define EK_SYM_KEY_SIZE 16 /* template L-2: AES-128 */

/* seed = KDFe(SHA-256, Z, "IDENTITY", ephemeral.x, ek.x, 256): Part 1 C.6.1, the seed is as long
 * as the EK's nameAlg digest. */
static int seed_derive(const uint8_t ek_point[65], uint8_t seed[SHA256_SIZE], TPMS_ECC_POINT *ret_ephemeral)
{
	_cleanup_ec_key_ EcKey *eph = NULL, *ek = NULL;
	uint8_t eph_point[65], z[32];
	TPMS_ECC_POINT p = {.x.size = 32, .y.size = 32};
	int r;

	ERASE_ON_EXIT(z);
	r = ec_key_from_point(ek_point, 65, &ek);
	if (r < 0)
		return r;
	r = ec_key_generate(&eph);
	if (r < 0)
		return r;
	r = ec_key_get_point(eph, eph_point);
	if (r < 0)
		return r;
	r = ecdh_p256(eph, ek, z);
	if (r < 0)
		return r;
	r = tpm2_kdfe_sha256(&(Tpm2KdfParams){.key = z, .key_len = 32, .label = "IDENTITY",
					       .u = eph_point + 1, .u_len = 32,
					       .v = ek_point + 1, .v_len = 32},
			     seed, SHA256_SIZE);
	if (r < 0)
		return r;
	memcpy(p.x.buffer, eph_point + 1, 32);
	memcpy(p.y.buffer, eph_point + 33, 32);
	*ret_ephemeral = p;
	return 0;
}

static int tpm2b_marshal_dup(const uint8_t *buf, size_t n, uint8_t **ret, size_t *ret_size)
{
	uint8_t *b = malloc(n);

	if (!b)
		return -ENOMEM;
	memcpy(b, buf, n);
	*ret = b;
	*ret_size = n;
	return 0;
}

int tpm2_make_credential(const uint8_t ek_point[65], const uint8_t ak_name[TPM2_NAME_SIZE],
			 const uint8_t *credential, size_t credential_size, uint8_t **ret_id_object,
			 size_t *ret_id_object_size, uint8_t **ret_encrypted_secret,
			 size_t *ret_encrypted_secret_size)
{
	static const uint8_t zero_iv[16] = {};
	uint8_t seed[SHA256_SIZE], sym_key[EK_SYM_KEY_SIZE], hmac_key[SHA256_SIZE];
	uint8_t plain[2 + 32], enc[2 + 32], hmac_in[sizeof(enc) + TPM2_NAME_SIZE];
	TPMS_ECC_POINT eph;
	TPM2B_ENCRYPTED_SECRET secret = {};
	TPM2B_ID_OBJECT id = {};
	uint8_t id_buf[sizeof(TPM2B_ID_OBJECT)], secret_buf[sizeof(TPM2B_ENCRYPTED_SECRET)];
	_cleanup_free_ uint8_t *id_out = NULL;
	size_t off, id_size = 0, secret_size = 0, enc_size = 2 + credential_size, id_out_size;
	int r;

	ERASE_ON_EXIT(seed);
	ERASE_ON_EXIT(sym_key);
	ERASE_ON_EXIT(hmac_key);
	ERASE_ON_EXIT(plain);

	if (!ek_point || !ak_name || !credential || !ret_id_object || !ret_id_object_size ||
	    !ret_encrypted_secret || !ret_encrypted_secret_size)
		return -EINVAL;
	/* The credential travels as a TPM2B_DIGEST: at most the EK nameAlg's digest size. */
	if (credential_size == 0 || credential_size > 32)
		return -EINVAL;
	/* The name of an object with a SHA-256 nameAlg; a handle-style name would need other
	 * lengths, and nothing but our AK is ever named here. */
	if (ak_name[0] != 0x00 || ak_name[1] != 0x0b)
		return -EINVAL;

	r = seed_derive(ek_point, seed, &eph);
	if (r < 0)
		return r;

	/* Part 1 24.4: symKey = KDFa(ekNameAlg, seed, "STORAGE", name, NULL, symKeyBits). */
	r = tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = seed, .key_len = sizeof(seed), .label = "STORAGE",
					       .u = ak_name, .u_len = TPM2_NAME_SIZE},
			     sym_key, sizeof(sym_key));
	if (r < 0)
		return r;
	/* encIdentity = CFB(symKey, IV 0, TPM2B_DIGEST credential): the size prefix is encrypted too. */
	plain[0] = (uint8_t)(credential_size >> 8);
	plain[1] = (uint8_t)credential_size;
	memcpy(plain + 2, credential, credential_size);
	r = aes_cfb128_encrypt(sym_key, sizeof(sym_key), zero_iv, plain, enc_size, enc);
	if (r < 0)
		return r;

	/* Part 1 24.5: HMACkey = KDFa(ekNameAlg, seed, "INTEGRITY", NULL, NULL, digest bits);
	 * outerHMAC = HMAC(HMACkey, encIdentity || name). The name in the HMAC is what makes the TPM
	 * refuse to activate for any other object than this AK. */
	r = tpm2_kdfa_sha256(&(Tpm2KdfParams){.key = seed, .key_len = sizeof(seed), .label = "INTEGRITY"},
			     hmac_key, sizeof(hmac_key));
	if (r < 0)
		return r;
	memcpy(hmac_in, enc, enc_size);
	memcpy(hmac_in + enc_size, ak_name, TPM2_NAME_SIZE);

	/* TPM2B_ID_OBJECT.credential = TPM2B_DIGEST(outerHMAC) || encIdentity */
	id.size = (UINT16)(2 + SHA256_SIZE + enc_size);
	id.credential[0] = 0;
	id.credential[1] = SHA256_SIZE;
	r = hmac_sha256(hmac_key, sizeof(hmac_key), hmac_in, enc_size + TPM2_NAME_SIZE, id.credential + 2);
	if (r < 0)
		return r;
	memcpy(id.credential + 2 + SHA256_SIZE, enc, enc_size);

	/* TPM2B_ENCRYPTED_SECRET = the ephemeral public point as a marshalled TPMS_ECC_POINT. */
	off = 0;
	if (Tss2_MU_TPMS_ECC_POINT_Marshal(&eph, secret.secret, sizeof(secret.secret), &off) != TSS2_RC_SUCCESS)
		return -EINVAL;
	secret.size = (UINT16)off;

	if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(&id, id_buf, sizeof(id_buf), &id_size) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&secret, secret_buf, sizeof(secret_buf), &secret_size) !=
		    TSS2_RC_SUCCESS)
		return -EINVAL;

	r = tpm2b_marshal_dup(id_buf, id_size, &id_out, &id_out_size);
	if (r < 0)
		return r;
	r = tpm2b_marshal_dup(secret_buf, secret_size, ret_encrypted_secret, ret_encrypted_secret_size);
	if (r < 0)
		return r;
	*ret_id_object = TAKE_PTR(id_out);
	*ret_id_object_size = id_out_size;
	return 0;
}
