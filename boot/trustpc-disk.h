/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "crypto/crypto.h"
#include "tpm2/tpm2-policy-file.h"
#include "tpm2/tpm2.h"

/* Exit codes (documented in trustpc-disk(8)). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_LOCKED = 3,       /* lock counter moved past the policy's epoch */
	EXIT_BOOT_STATE = 4,   /* PCRs differ from the signed policy */
	EXIT_POLICY = 5,       /* policy missing, for another device, other key, bad signature */
	EXIT_AUTH = 6,         /* wrong PIN or TPM lockout; wrong recovery key */
	EXIT_NO_TPM = 7,       /* no TPM, or not the TPM the disk was sealed with */
	EXIT_BAD_INPUT = 8,    /* malformed token, header, key or policy file */
	EXIT_ALREADY = 9,      /* already unlocked in this boot (PCR 15 extended) */
};

typedef struct DiskArgs {
	const char *tpm2_device;
	bool json;
	bool test;
	bool pin;
	bool show_recovery_key;
	bool no_recovery_key;
	const char *policy_key;   /* --policy-key PUB.pem */
	const char *policy;       /* --policy FILE */
	const char *escrow_key;   /* --escrow-key PUB.pem */
	const char *escrow_out;   /* --escrow-out FILE */
	const char *key;          /* --key KEY.pem (sign-policy, escrow-open) */
	const char *device_id;    /* --device-id */
	const char *unlock_key_file;
	const char *recovery_key_file;
	const char *output;       /* -o FILE */
	uint32_t pcr_mask;        /* --pcrs */
	bool pcr_mask_set;
	uint32_t pcr_values_set;  /* --pcr N=HEX given for these */
	uint8_t pcr_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	uint64_t epoch;
	bool epoch_set;
	uint32_t nv_index;
	char **argv;              /* positional arguments after the verb */
	int argc;
} DiskArgs;

int verb_enroll(DiskArgs *a);
int verb_sign_policy(DiskArgs *a);
int verb_unlock(DiskArgs *a);
int verb_recovery(DiskArgs *a);
int verb_lock(DiskArgs *a);
int verb_status(DiskArgs *a);
int verb_device_id(DiskArgs *a);
int verb_tpm_status(DiskArgs *a);
int verb_escrow_open(DiskArgs *a);

/* errno from the lower layers → exit code above. */
int exit_code_from_errno(int r);
/* Opens the TPM named by --tpm2-device / TRUSTPC_TPM2_DEVICE, logging a clear error. */
int disk_tpm_open(const DiskArgs *a, Tpm2Context **ret);
/* Loads a P-256 PEM key file, logging an error that names the file and the option. */
int disk_load_key(const char *path, const char *option, bool need_private, EcKey **ret);
/* Loads a signed policy file. */
int disk_load_policy(const char *path, SignedPolicy *ret);
/* Writes text to path atomically (or stdout for NULL/"-"). */
int disk_write_output(const char *path, const char *text, unsigned mode);

/* Recovery keys: 32 random bytes as 8 groups of 8 "modhex" characters (cbdefghijklnrtuv), so
 * that they survive keyboards and phone calls. The keyslot passphrase is that string. */
#define RECOVERY_KEY_STRING_SIZE (8 * 8 + 7 + 1)
int recovery_key_generate(char ret[RECOVERY_KEY_STRING_SIZE]);
/* Normalises user input (case, spaces, missing dashes); -EINVAL if it cannot be a recovery key. */
int recovery_key_normalize(const char *in, char ret[RECOVERY_KEY_STRING_SIZE]);
