/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* lib/tpm2: the only code that includes tss2 headers. Callers see plain bytes and errnos.
 *
 * TPM selection (every program): a device path ("/dev/tpmrm0") or a tpm2-tss TCTI string
 * ("swtpm:host=127.0.0.1,port=2321", "device:/dev/tpm0", "mssim:…"); NULL means the environment
 * variable TRUSTPC_TPM2_DEVICE, else /dev/tpmrm0.
 *
 * Errors (negative errno), the same meaning in every function of this module:
 *   -ENODEV        no TPM reachable at that device/TCTI
 *   -EREMCHG       the TPM's storage root key is not the one pinned at enrollment
 *                  (another TPM, a cleared TPM, or a TPM impersonator on the bus)
 *   -EPERM         a policy assertion failed in the TPM (PCR values differ from the policy)
 *   -ESTALE        PolicyNV failed: the lock counter is not at the policy's epoch (locked)
 *   -EBADMSG       the policy signature does not verify for this key and device
 *   -EKEYREJECTED  the signature ticket is for another key than the object's policy names
 *   -EACCES        authorization failed (wrong PIN); the TPM counts it against DA lockout
 *   -EAGAIN        the TPM is in dictionary-attack lockout; try again later
 *   -ENOENT        the NV index (lock counter) is not defined
 *   -ENOTUNIQ      the NV index exists but is not our lock counter (other attributes)
 *   -EINVAL        malformed blob or argument
 *   -EIO           any other TPM or TSS failure (the TPM code is logged at debug level)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TPM2_PCRS_MAX 24
#define TPM2_SHA256_SIZE 32
#define TPM2_NAME_SIZE 34            /* nameAlg (2) || SHA-256 */
#define DEVICE_ID_SIZE 16            /* bytes: also the PolicyAuthorize policyRef */
#define DEVICE_ID_STRING_SIZE (DEVICE_ID_SIZE * 2 + 1)
#define TPM2_LOCK_COUNTER_NV_INDEX UINT32_C(0x01807c50) /* owner range 0x01800000–0x01bfffff */
#define TPM2_PCR_ONE_BOOT 15         /* must be zero at unlock; extended with the volume key after */

typedef struct Tpm2Context Tpm2Context;

int tpm2_context_new(const char *device, Tpm2Context **ret);
Tpm2Context *tpm2_context_free(Tpm2Context *c);

/* ---- identity ---- */
/* The ECC P-256 endorsement key (TCG EK template L-2) as SubjectPublicKeyInfo DER. */
int tpm2_ek_public_spki(Tpm2Context *c, uint8_t **ret, size_t *ret_size);
/* device id = first 16 bytes of SHA-256(EK SubjectPublicKeyInfo DER), as lower-case hex. The
 * server derives the same id from the EK certificate; the client never chooses it. */
int device_id_from_spki(const void *der, size_t n, char ret[DEVICE_ID_STRING_SIZE]);
int tpm2_device_id(Tpm2Context *c, char ret[DEVICE_ID_STRING_SIZE]);
int device_id_parse(const char *s, uint8_t ret[DEVICE_ID_SIZE]); /* -EINVAL unless 32 hex digits */

/* ---- PCRs (SHA-256 bank) ---- */
int tpm2_pcr_read(Tpm2Context *c, uint32_t mask, uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]);
int tpm2_pcr_extend(Tpm2Context *c, unsigned pcr, const uint8_t digest[TPM2_SHA256_SIZE]);
/* "7,11" → bit mask; -EINVAL for anything else, PCR numbers above 23 or 15 (reserved). */
int pcr_mask_parse(const char *s, uint32_t *ret);

/* ---- lock counter (NV counter) ----
 * Our template: TPM_NT_COUNTER, 8 bytes, AUTHREAD|AUTHWRITE|NO_DA, empty auth, SHA-256 name.
 * Anyone may increment it (that is a lock, never an unlock); nobody can decrement it. */
int tpm2_counter_read(Tpm2Context *c, uint32_t nv_index, uint64_t *ret);
/* Defines and initialises the counter when missing (needs owner auth: empty on most systems);
 * returns its value and whether it was created now. */
int tpm2_counter_ensure(Tpm2Context *c, uint32_t nv_index, uint64_t *ret, bool *ret_created);
int tpm2_counter_increment(Tpm2Context *c, uint32_t nv_index, uint64_t *ret_new);
/* The TPM name of our counter once written (what PolicyNV binds to), computed in software. */
int tpm2_counter_name(uint32_t nv_index, uint8_t ret[TPM2_NAME_SIZE]);

/* ---- policies, computed in software (no TPM; the server uses these) ---- */
typedef struct Tpm2PolicyParams {
	uint32_t pcr_mask;                                    /* includes bit 15 */
	uint8_t pcr_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];  /* expected values, SHA-256 bank */
	uint32_t nv_index;
	uint64_t epoch;
} Tpm2PolicyParams;

/* approvedPolicy = PolicyPCR(mask, values) · PolicyNV(counter == epoch). */
int tpm2_policy_approved_digest(const Tpm2PolicyParams *p, uint8_t ret[TPM2_SHA256_SIZE]);
/* The sealed object's authPolicy: PolicyAuthorize(keyName, policyRef) [· PolicyAuthValue].
 * With pin, PolicyAuthValue is part of the object's own policy — fixed at seal time, so no
 * signed policy, whoever signs it, can release the secret without the PIN. */
int tpm2_policy_authorize_digest(const uint8_t key_name[TPM2_NAME_SIZE], const void *policy_ref,
				 size_t ref_len, bool pin, uint8_t ret[TPM2_SHA256_SIZE]);
/* aHash = SHA-256(approvedPolicy || policyRef): what the fleet policy key signs. */
int tpm2_policy_signing_hash(const uint8_t approved[TPM2_SHA256_SIZE], const void *policy_ref,
			     size_t ref_len, uint8_t ret[TPM2_SHA256_SIZE]);
/* The TPM name of an ECC P-256 public key (as loaded with LoadExternal for PolicyAuthorize). */
int tpm2_ecc_key_name(const uint8_t point[65], uint8_t ret[TPM2_NAME_SIZE]);

/* ---- seal / unseal ---- */
typedef struct Tpm2Blob {
	uint8_t *srk_public; /* marshalled TPM2B_PUBLIC of the SRK the blob was sealed under (pinned) */
	size_t srk_public_size;
	uint8_t *blob; /* marshalled TPM2B_PRIVATE || TPM2B_PUBLIC of the sealed object */
	size_t blob_size;
} Tpm2Blob;
void tpm2_blob_done(Tpm2Blob *b);

/* Seals secret under the SRK with authPolicy auth_policy; auth (may be NULL) is the object's
 * authValue (derived from the PIN, at most 32 bytes). The secret and auth travel to the TPM
 * only inside a salted, parameter-encrypted session. */
int tpm2_seal(Tpm2Context *c, const uint8_t auth_policy[TPM2_SHA256_SIZE], const void *secret, size_t n,
	      const void *auth, size_t auth_len, Tpm2Blob *ret);

typedef struct Tpm2UnsealRequest {
	const Tpm2Blob *blob;
	const Tpm2PolicyParams *policy;
	const uint8_t *policy_key_point;  /* 65 bytes, the fleet policy public key */
	const uint8_t *policy_ref;        /* the device id, DEVICE_ID_SIZE bytes */
	const uint8_t *signature;         /* 64 bytes r||s over tpm2_policy_signing_hash() */
	const void *auth;                 /* PIN-derived authValue or NULL */
	size_t auth_len;
} Tpm2UnsealRequest;

/* Salted policy session bound to the pinned SRK; PolicyPCR, PolicyNV, VerifySignature +
 * PolicyAuthorize, [PolicyAuthValue when auth is given]; Unseal with response encryption.
 * *ret is secure memory. */
int tpm2_unseal(Tpm2Context *c, const Tpm2UnsealRequest *req, uint8_t **ret, size_t *ret_size);

static inline void tpm2_context_freep(Tpm2Context **c)
{
	tpm2_context_free(*c);
}
#define _cleanup_tpm2_ __attribute__((cleanup(tpm2_context_freep)))
