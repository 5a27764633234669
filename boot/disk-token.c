/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/macro.h"
#include "disk-token.h"

#define FAIL(reason)                                                                                 \
	do {                                                                                         \
		*ret_reason = (reason);                                                              \
		r = -EBADMSG;                                                                        \
		goto fail;                                                                           \
	} while (0)

#define BLOB_MAX 4096

void disk_token_done(DiskToken *t)
{
	if (!t)
		return;
	tpm2_blob_done(&t->sealed);
	free(t->policy_key_spki);
	*t = (DiskToken){};
}

static int get_b64(const json_t *o, const char *key, size_t max, uint8_t **ret, size_t *ret_size)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v) || json_string_length(v) > (max + 2) / 3 * 4)
		return -EBADMSG;
	if (base64_decode(json_string_value(v), json_string_length(v), ret, ret_size) < 0)
		return -EBADMSG;
	if (*ret_size == 0) {
		free(*ret);
		*ret = NULL;
		return -EBADMSG;
	}
	return 0;
}

static int keyslot_from_string(const json_t *v)
{
	uint64_t u;
	if (!json_is_string(v) || strspn(json_string_value(v), "0123456789") != json_string_length(v) ||
	    parse_uint64(json_string_value(v), 31, &u) < 0)
		return -EBADMSG;
	return (int)u;
}

int disk_token_parse(const char *json, size_t n, DiskToken *ret, const char **ret_reason)
{
	static const char *const known[] = {"type", "keyslots", "trustpc_token", "device_id", "tpm2_srk",
					    "tpm2_blob", "tpm2_pcrs", "tpm2_pcr_bank", "tpm2_nv_index",
					    "tpm2_policy_key", "tpm2_pin", "tpm2_pin_salt", "recovery_keyslot",
					    "policy"};
	DiskToken t = {.recovery_keyslot = -1};
	_cleanup_free_ uint8_t *salt = NULL;
	size_t salt_len;
	json_error_t err;
	json_t *o = NULL;
	const json_t *v, *e;
	const char *k, *dummy;
	uint8_t dev[DEVICE_ID_SIZE];
	uint64_t u;
	size_t i;
	int r;

	if (!ret_reason)
		ret_reason = &dummy;
	if (n > DISK_TOKEN_MAX_SIZE) {
		*ret_reason = "the token is larger than 32 KiB";
		return -EFBIG;
	}
	o = json_loadb(json, n, JSON_REJECT_DUPLICATES, &err);
	if (!o || !json_is_object(o))
		FAIL("the token is not a JSON object");
	json_object_foreach(o, k, v) {
		bool ok = false;
		for (i = 0; i < ELEMENTSOF(known); i++)
			ok = ok || streq(k, known[i]);
		if (!ok)
			FAIL("the token has an unknown field");
	}
	v = json_object_get(o, "type");
	if (!json_is_string(v) || !streq(json_string_value(v), DISK_TOKEN_TYPE))
		FAIL("field 'type' must be \"" DISK_TOKEN_TYPE "\"");
	v = json_object_get(o, "trustpc_token");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		FAIL("field 'trustpc_token' must be 1 (format version)");

	v = json_object_get(o, "keyslots");
	if (!json_is_array(v) || json_array_size(v) != 1 || (t.keyslot = keyslot_from_string(json_array_get(v, 0))) < 0)
		FAIL("field 'keyslots' must name exactly one keyslot");

	v = json_object_get(o, "device_id");
	if (!json_is_string(v) || device_id_parse(json_string_value(v), dev) < 0)
		FAIL("field 'device_id' must be 32 lower-case hex digits");
	memcpy(t.device_id, json_string_value(v), DEVICE_ID_STRING_SIZE);

	if (get_b64(o, "tpm2_srk", BLOB_MAX, &t.sealed.srk_public, &t.sealed.srk_public_size) < 0)
		FAIL("field 'tpm2_srk' must be base64 of the pinned storage root key");
	if (get_b64(o, "tpm2_blob", BLOB_MAX, &t.sealed.blob, &t.sealed.blob_size) < 0)
		FAIL("field 'tpm2_blob' must be base64 of the sealed object");
	if (get_b64(o, "tpm2_policy_key", BLOB_MAX, &t.policy_key_spki, &t.policy_key_spki_size) < 0)
		FAIL("field 'tpm2_policy_key' must be base64 of the policy public key");

	v = json_object_get(o, "tpm2_pcrs");
	if (!json_is_array(v) || json_array_size(v) > TPM2_PCRS_MAX)
		FAIL("field 'tpm2_pcrs' must be an array of PCR numbers");
	json_array_foreach(v, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= TPM2_PCRS_MAX ||
		    json_integer_value(e) == TPM2_PCR_ONE_BOOT)
			FAIL("field 'tpm2_pcrs' has an entry that is not a PCR number 0-23 (15 is implied)");
		t.pcr_mask |= UINT32_C(1) << json_integer_value(e);
	}
	v = json_object_get(o, "tpm2_pcr_bank");
	if (!json_is_string(v) || !streq(json_string_value(v), "sha256"))
		FAIL("field 'tpm2_pcr_bank' must be \"sha256\"");
	v = json_object_get(o, "tpm2_nv_index");
	if (!json_is_string(v) || parse_uint64(json_string_value(v), UINT32_MAX, &u) < 0 || (u >> 24) != 0x01)
		FAIL("field 'tpm2_nv_index' must be an NV index like \"0x01807c50\"");
	t.nv_index = (uint32_t)u;

	v = json_object_get(o, "tpm2_pin");
	if (!json_is_boolean(v))
		FAIL("field 'tpm2_pin' must be true or false");
	t.pin = json_is_true(v);
	if (t.pin) {
		if (get_b64(o, "tpm2_pin_salt", 64, &salt, &salt_len) < 0 || salt_len != DISK_PIN_SALT_SIZE)
			FAIL("field 'tpm2_pin_salt' must be base64 of 16 bytes when a PIN is set");
		memcpy(t.pin_salt, salt, DISK_PIN_SALT_SIZE);
	} else if (json_object_get(o, "tpm2_pin_salt"))
		FAIL("field 'tpm2_pin_salt' is present but no PIN is set");

	v = json_object_get(o, "recovery_keyslot");
	if (v) {
		if ((t.recovery_keyslot = keyslot_from_string(v)) < 0 || t.recovery_keyslot == t.keyslot)
			FAIL("field 'recovery_keyslot' must name a keyslot other than the TPM one");
	}

	v = json_object_get(o, "policy");
	if (v && !json_is_null(v)) {
		const char *why = NULL;
		if (signed_policy_from_json(v, &t.policy, &why) < 0) {
			static __thread char buf[160];
			snprintf(buf, sizeof(buf), "field 'policy': %s", why);
			FAIL(buf);
		}
		t.has_policy = true;
	}

	json_decref(o);
	*ret = t;
	return 0;
fail:
	json_decref(o);
	disk_token_done(&t);
	return r;
}

int disk_token_format(const DiskToken *t, char **ret_json)
{
	_cleanup_free_ char *srk = base64_encode(t->sealed.srk_public, t->sealed.srk_public_size),
			    *blob = base64_encode(t->sealed.blob, t->sealed.blob_size),
			    *key = base64_encode(t->policy_key_spki, t->policy_key_spki_size);
	char slot[12], nv[16];
	json_t *o, *pcrs;
	int r = -ENOMEM;

	if (!srk || !blob || !key)
		return -ENOMEM;
	pcrs = json_array();
	if (!pcrs)
		return -ENOMEM;
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
		if ((t->pcr_mask & (UINT32_C(1) << i)) && i != TPM2_PCR_ONE_BOOT)
			json_array_append_new(pcrs, json_integer(i));
	snprintf(slot, sizeof(slot), "%d", t->keyslot);
	snprintf(nv, sizeof(nv), "0x%08x", t->nv_index);
	o = json_pack("{s:s, s:[s], s:i, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:b}", "type", DISK_TOKEN_TYPE,
		      "keyslots", slot, "trustpc_token", 1, "device_id", t->device_id, "tpm2_srk", srk,
		      "tpm2_blob", blob, "tpm2_pcrs", pcrs, "tpm2_pcr_bank", "sha256", "tpm2_nv_index", nv,
		      "tpm2_policy_key", key, "tpm2_pin", (int)t->pin);
	if (!o)
		return -ENOMEM;
	if (t->pin) {
		_cleanup_free_ char *salt = base64_encode(t->pin_salt, DISK_PIN_SALT_SIZE);
		if (!salt || json_object_set_new(o, "tpm2_pin_salt", json_string(salt)) < 0)
			goto out;
	}
	if (t->recovery_keyslot >= 0) {
		char rs[12];
		snprintf(rs, sizeof(rs), "%d", t->recovery_keyslot);
		if (json_object_set_new(o, "recovery_keyslot", json_string(rs)) < 0)
			goto out;
	}
	if (t->has_policy) {
		json_t *p;
		r = signed_policy_to_json(&t->policy, &p);
		if (r < 0)
			goto out;
		if (json_object_set_new(o, "policy", p) < 0) {
			r = -ENOMEM;
			goto out;
		}
	}
	*ret_json = json_dumps(o, JSON_COMPACT);
	r = *ret_json ? 0 : -ENOMEM;
out:
	json_decref(o);
	return r;
}
