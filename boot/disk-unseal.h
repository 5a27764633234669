/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The unlock path shared by trustpc-disk and the libcryptsetup token plugin. */

#include <stddef.h>
#include <stdint.h>

#include "disk-token.h"
#include "luks/luks.h"
#include "tpm2/tpm2.h"

#define DISK_SECRET_SIZE 32
#define REASON_MAX 512

/* Reads and parses our token from the volume. -ENOENT: no trustpc-tpm2 token. */
int disk_token_load(LuksVolume *v, int *ret_token_id, DiskToken *ret, char *reason, size_t reason_size);
/* Writes the token back (replacing token_id, or a new one when token_id < 0); returns its id. */
int disk_token_store(LuksVolume *v, int token_id, const DiskToken *t);

/* Seals a fresh random secret to PolicyAuthorize(policy key, policyRef = t->device_id), followed
 * by PolicyAuthValue when pin is given (then t->pin is set and t->pin_salt renewed). The epoch and
 * PCRs live only in the signed policies, so locks and image updates never need a re-seal; the PIN
 * lives in the object's own policy, so no signer can waive it. t->sealed is not touched: the new
 * blob is returned in *ret_sealed, for the caller to swap in once the keyslot exists. */
int disk_seal_new(Tpm2Context *tpm, const EcKey *policy_key, DiskToken *t, const char *pin,
		  uint8_t secret[DISK_SECRET_SIZE], Tpm2Blob *ret_sealed);

/* The sealed object's authValue: HMAC-SHA256(key = per-token salt, PIN). */
int disk_pin_auth(const DiskToken *t, const char *pin, uint8_t out[32]);

/* Checks the policy against the disk and the TPM (for an error that says what is wrong), then
 * unseals. policy NULL: the one stored in the token. pin NULL when the token has none.
 * Errors: -ENOMSG no policy; -EXDEV policy for another device; -ENOKEY signed by another key;
 * -EBADMSG bad signature/edited; -EALREADY PCR 15 extended (unlocked in this boot); -EPERM a PCR
 * differs; -ESTALE locked (counter is not the policy's epoch); -EACCES wrong PIN; -EAGAIN DA
 * lockout; -EREMCHG other TPM; -ENODEV no TPM; -ENOENT counter missing; -EINVAL inconsistent.
 * reason says it in words. *ret is secure memory. */
int disk_unseal(Tpm2Context *c, const DiskToken *t, const SignedPolicy *policy, const char *pin, uint8_t **ret,
		size_t *ret_size, char *reason, size_t reason_size);

/* One unseal per boot: extends PCR 15 with HMAC-SHA256(volume key, "trustpc:" || LUKS UUID), so
 * that PolicyPCR(15 = 0) fails for the rest of this boot. */
int disk_measure_volume_key(Tpm2Context *c, LuksVolume *v, const uint8_t *vk, size_t vk_len);

static inline void disk_volume_closep(LuksVolume **v)
{
	luks_close(*v);
}
