/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The signed policy: what the fleet's policy key authorises one device to unseal with.
 * File format (JSON, docs/TPM_POLICY.md):
 *   {"trustpc_policy":1, "device_id":"<32 hex>", "epoch":N, "pcr_bank":"sha256",
 *    "pcrs":{"7":"<64 hex>","11":"<64 hex>","15":"00…00"}, "nv_index":"0x01807c50",
 *    "policy_digest":"<64 hex>", "key_id":"<64 hex>", "signature":"<base64 r||s>"}
 * policy_digest is the TPM approvedPolicy for those fields; signature is ES256 (raw r||s) by the
 * key with SHA-256(SPKI) = key_id over SHA-256(policy_digest || device id bytes). Parsing is
 * strict: unknown fields, wrong types, sizes or ranges are refused with a reason naming the
 * field. */

#include <jansson.h>

#include "crypto/crypto.h"
#include "tpm2/tpm2.h"

#define SIGNED_POLICY_MAX_SIZE 16384

typedef struct SignedPolicy {
	char device_id[DEVICE_ID_STRING_SIZE];
	Tpm2PolicyParams params;
	uint8_t policy_digest[32];
	uint8_t key_id[32];
	uint8_t signature[64];
} SignedPolicy;

/* -EBADMSG with *ret_reason (static string) on any malformed input; -EFBIG when too large. */
int signed_policy_parse(const char *text, size_t n, SignedPolicy *ret, const char **ret_reason);
int signed_policy_from_json(const json_t *o, SignedPolicy *ret, const char **ret_reason);
int signed_policy_to_json(const SignedPolicy *p, json_t **ret);
int signed_policy_format(const SignedPolicy *p, char **ret_text); /* one line + '\n' */

/* Computes policy_digest and key_id from the key and fields, and signs. */
int signed_policy_sign(SignedPolicy *p, const EcKey *key);
/* Software check before the TPM sees it (for clear errors; the TPM enforces it again):
 *   -EBADMSG  policy_digest does not match the fields, or the signature does not verify
 *   -ENOKEY   key_id names another key than pub */
int signed_policy_verify(const SignedPolicy *p, const EcKey *pub, const char **ret_reason);
