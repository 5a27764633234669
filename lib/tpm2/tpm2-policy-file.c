/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "tpm2/tpm2-policy-file.h"

#define FAIL(reason)                                                                                 \
	do {                                                                                         \
		*ret_reason = (reason);                                                              \
		return -EBADMSG;                                                                     \
	} while (0)

static int get_hex(const json_t *o, const char *key, void *buf, size_t n)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v) || json_string_length(v) != 2 * n)
		return -EBADMSG;
	return hex_decode_exact(json_string_value(v), buf, n) < 0 ? -EBADMSG : 0;
}

int signed_policy_from_json(const json_t *o, SignedPolicy *ret, const char **ret_reason)
{
	static const char *const known[] = {"trustpc_policy", "device_id", "epoch", "pcr_bank", "pcrs",
					    "nv_index", "policy_digest", "key_id", "signature"};
	SignedPolicy p = {};
	const json_t *v, *pv;
	const char *k;
	uint64_t u;
	uint8_t dev[DEVICE_ID_SIZE];
	_cleanup_free_ uint8_t *sig = NULL;
	size_t sig_len;
	const char *dummy;

	if (!ret_reason)
		ret_reason = &dummy;
	if (!json_is_object(o))
		FAIL("the policy is not a JSON object");
	json_object_foreach((json_t *)o, k, v) {
		bool ok = false;
		for (size_t i = 0; i < ELEMENTSOF(known); i++)
			ok = ok || streq(k, known[i]);
		if (!ok)
			FAIL("the policy has an unknown field");
	}

	v = json_object_get(o, "trustpc_policy");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		FAIL("field 'trustpc_policy' must be 1 (format version)");

	v = json_object_get(o, "device_id");
	if (!json_is_string(v) || device_id_parse(json_string_value(v), dev) < 0)
		FAIL("field 'device_id' must be 32 lower-case hex digits");
	memcpy(p.device_id, json_string_value(v), DEVICE_ID_STRING_SIZE);

	v = json_object_get(o, "epoch");
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		FAIL("field 'epoch' must be a non-negative integer");
	p.params.epoch = (uint64_t)json_integer_value(v);

	v = json_object_get(o, "pcr_bank");
	if (!json_is_string(v) || !streq(json_string_value(v), "sha256"))
		FAIL("field 'pcr_bank' must be \"sha256\"");

	v = json_object_get(o, "pcrs");
	if (!json_is_object(v) || json_object_size(v) == 0 || json_object_size(v) > TPM2_PCRS_MAX)
		FAIL("field 'pcrs' must be an object of PCR number to hex digest");
	json_object_foreach((json_t *)v, k, pv) {
		/* canonical decimal only ("7", not "07" or "0x7"): one PCR, one key */
		if (strspn(k, "0123456789") != strlen(k) || (k[0] == '0' && k[1] != 0) ||
		    parse_uint64(k, TPM2_PCRS_MAX - 1, &u) < 0)
			FAIL("field 'pcrs' has a key that is not a PCR number 0-23");
		if (!json_is_string(pv) || hex_decode_exact(json_string_value(pv), p.params.pcr_values[u], 32) < 0)
			FAIL("field 'pcrs' has a value that is not 64 hex digits");
		p.params.pcr_mask |= UINT32_C(1) << u;
	}
	/* PCR 15 = 0 is what makes an unseal possible only once per boot: a policy without it is
	 * refused rather than silently weaker. */
	if (!(p.params.pcr_mask & (UINT32_C(1) << TPM2_PCR_ONE_BOOT)))
		FAIL("field 'pcrs' must include PCR 15");
	for (size_t i = 0; i < 32; i++)
		if (p.params.pcr_values[TPM2_PCR_ONE_BOOT][i] != 0)
			FAIL("field 'pcrs': PCR 15 must be all zero");

	v = json_object_get(o, "nv_index");
	if (!json_is_string(v) || parse_uint64(json_string_value(v), UINT32_MAX, &u) < 0 ||
	    (u >> 24) != 0x01)
		FAIL("field 'nv_index' must be an NV index like \"0x01807c50\"");
	p.params.nv_index = (uint32_t)u;

	if (get_hex(o, "policy_digest", p.policy_digest, 32) < 0)
		FAIL("field 'policy_digest' must be 64 hex digits");
	if (get_hex(o, "key_id", p.key_id, 32) < 0)
		FAIL("field 'key_id' must be 64 hex digits");

	v = json_object_get(o, "signature");
	if (!json_is_string(v) ||
	    base64_decode(json_string_value(v), json_string_length(v), &sig, &sig_len) < 0 || sig_len != 64)
		FAIL("field 'signature' must be base64 of a 64-byte ES256 signature");
	memcpy(p.signature, sig, 64);

	*ret = p;
	return 0;
}

int signed_policy_parse(const char *text, size_t n, SignedPolicy *ret, const char **ret_reason)
{
	json_error_t err;
	json_t *o;
	int r;
	const char *dummy;

	if (!ret_reason)
		ret_reason = &dummy;
	if (n > SIGNED_POLICY_MAX_SIZE) {
		*ret_reason = "the policy file is larger than 16 KiB";
		return -EFBIG;
	}
	o = json_loadb(text, n, JSON_REJECT_DUPLICATES, &err);
	if (!o) {
		*ret_reason = "the policy is not valid JSON";
		return -EBADMSG;
	}
	r = signed_policy_from_json(o, ret, ret_reason);
	json_decref(o);
	return r;
}

int signed_policy_to_json(const SignedPolicy *p, json_t **ret)
{
	_cleanup_free_ char *digest = hex_encode(p->policy_digest, 32), *kid = hex_encode(p->key_id, 32),
			    *sig = base64_encode(p->signature, 64);
	char nv[16];
	json_t *o, *pcrs;

	if (!digest || !kid || !sig)
		return -ENOMEM;
	pcrs = json_object();
	if (!pcrs)
		return -ENOMEM;
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
		char key[4];
		_cleanup_free_ char *h = NULL;
		if (!(p->params.pcr_mask & (UINT32_C(1) << i)))
			continue;
		h = hex_encode(p->params.pcr_values[i], 32);
		snprintf(key, sizeof(key), "%u", i);
		if (!h || json_object_set_new(pcrs, key, json_string(h)) < 0) {
			json_decref(pcrs);
			return -ENOMEM;
		}
	}
	snprintf(nv, sizeof(nv), "0x%08x", p->params.nv_index);
	o = json_pack("{s:i, s:s, s:I, s:s, s:o, s:s, s:s, s:s, s:s}", "trustpc_policy", 1, "device_id",
		      p->device_id, "epoch", (json_int_t)p->params.epoch, "pcr_bank", "sha256", "pcrs", pcrs,
		      "nv_index", nv, "policy_digest", digest, "key_id", kid, "signature", sig);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

int signed_policy_format(const SignedPolicy *p, char **ret_text)
{
	json_t *o;
	char *s;
	int r;

	r = signed_policy_to_json(p, &o);
	if (r < 0)
		return r;
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	*ret_text = realloc(s, strlen(s) + 2) ?: s;
	strcat(*ret_text, "\n");
	return 0;
}

int signed_policy_sign(SignedPolicy *p, const EcKey *key)
{
	uint8_t ref[DEVICE_ID_SIZE], hash[32];
	int r;

	r = device_id_parse(p->device_id, ref);
	if (r < 0)
		return r;
	r = tpm2_policy_approved_digest(&p->params, p->policy_digest);
	if (r < 0)
		return r;
	r = ec_key_fingerprint(key, p->key_id);
	if (r < 0)
		return r;
	r = tpm2_policy_signing_hash(p->policy_digest, ref, sizeof(ref), hash);
	if (r < 0)
		return r;
	return ecdsa_sign_raw(key, hash, sizeof(hash), p->signature);
}

int signed_policy_verify(const SignedPolicy *p, const EcKey *pub, const char **ret_reason)
{
	uint8_t ref[DEVICE_ID_SIZE], digest[32], kid[32], hash[32];
	const char *dummy;
	int r;

	if (!ret_reason)
		ret_reason = &dummy;
	r = ec_key_fingerprint(pub, kid);
	if (r < 0)
		return r;
	if (memcmp(kid, p->key_id, 32) != 0) {
		*ret_reason = "the policy was signed by another key than the policy key this disk trusts";
		return -ENOKEY;
	}
	r = tpm2_policy_approved_digest(&p->params, digest);
	if (r < 0)
		return r;
	if (memcmp(digest, p->policy_digest, 32) != 0) {
		*ret_reason = "the policy's 'policy_digest' does not match its fields (edited after signing?)";
		return -EBADMSG;
	}
	r = device_id_parse(p->device_id, ref);
	if (r < 0)
		return r;
	r = tpm2_policy_signing_hash(digest, ref, sizeof(ref), hash);
	if (r < 0)
		return r;
	r = ecdsa_verify_raw(pub, hash, sizeof(hash), p->signature, 64);
	if (r < 0) {
		*ret_reason = "the policy signature does not verify";
		return -EBADMSG;
	}
	return 0;
}
