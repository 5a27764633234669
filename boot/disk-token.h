/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The LUKS2 token of type "trustpc-tpm2" (schema: docs/TPM_POLICY.md). A token is untrusted input
 * (LUKS2 header checksums catch crashes, not attackers — CVE-2021-4122): parsing is strict and
 * bounded, and every failure names the field. */

#include <stdbool.h>
#include <stdint.h>

#include "tpm2/tpm2-policy-file.h"
#include "tpm2/tpm2.h"

#define DISK_TOKEN_TYPE "trustpc-tpm2"
#define DISK_TOKEN_MAX_SIZE 32768
#define DISK_PIN_SALT_SIZE 16

typedef struct DiskToken {
	int keyslot;          /* the keyslot the sealed secret opens */
	int recovery_keyslot; /* -1: none */
	char device_id[DEVICE_ID_STRING_SIZE];
	Tpm2Blob sealed;
	uint32_t pcr_mask; /* PCRs bound (PCR 15 is always added to the policy) */
	uint32_t nv_index;
	uint8_t *policy_key_spki; /* the fleet policy public key (SubjectPublicKeyInfo DER) */
	size_t policy_key_spki_size;
	bool pin;
	uint8_t pin_salt[DISK_PIN_SALT_SIZE];
	bool has_policy;
	SignedPolicy policy; /* the current signed policy, if one was stored */
} DiskToken;

/* -EBADMSG with *ret_reason naming the field; -EFBIG when larger than DISK_TOKEN_MAX_SIZE. */
int disk_token_parse(const char *json, size_t n, DiskToken *ret, const char **ret_reason);
int disk_token_format(const DiskToken *t, char **ret_json);
void disk_token_done(DiskToken *t);
