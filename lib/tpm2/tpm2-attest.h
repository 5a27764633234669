/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Attestation: the device side (EK certificate, AK, credential activation, quotes) needs a TPM;
 * the server side (MakeCredential, quote verification, event log replay) is software only.
 * Errors as in tpm2.h. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm2/tpm2.h"

#define TPM2_EK_CERT_NV_ECC_P256 UINT32_C(0x01c0000a)

/* ---- device side (TPM) ---- */

/* The EK certificate (DER) from NV 0x01c0000a. -ENOENT when the TPM has none. */
int tpm2_ek_cert_read(Tpm2Context *c, uint8_t **ret, size_t *ret_size);

/* The attestation key: ECC P-256, restricted signing (ECDSA-SHA256), fixedTPM, created under
 * the SRK. The blob is kept by the agent (its state dir) and loaded for each quote.
 * ak_public: marshalled TPM2B_PUBLIC (what the server registers). */
typedef struct Tpm2Ak {
	Tpm2Blob blob;            /* srk_public pinned + private||public */
	uint8_t *public;          /* marshalled TPM2B_PUBLIC */
	size_t public_size;
} Tpm2Ak;
void tpm2_ak_done(Tpm2Ak *ak);
int tpm2_ak_create(Tpm2Context *c, Tpm2Ak *ret);
/* Serialise/parse the AK for the agent's state file (opaque bytes). Parsing is strict: -EINVAL for
 * any malformed, truncated or extended input, or an AK that tpm2_ak_public_check refuses. */
int tpm2_ak_serialize(const Tpm2Ak *ak, uint8_t **ret, size_t *ret_size);
int tpm2_ak_deserialize(const uint8_t *buf, size_t n, Tpm2Ak *ret);

/* TPM2_ActivateCredential with the (ECC P-256, template L-2) EK and the AK: returns the
 * credential the server encrypted to that EK for that AK name. *ret is secure memory.
 * -EBADMSG: the TPM refused the credential (made for another AK name or EK, or damaged);
 * -EINVAL: id_object/encrypted_secret are not exactly one TPM2B each; -EREMCHG: another SRK
 * than the AK blob was created under. The response is encrypted (session salted with the SRK). */
int tpm2_activate_credential(Tpm2Context *c, const Tpm2Ak *ak, const uint8_t *id_object, size_t id_object_size,
			     const uint8_t *encrypted_secret, size_t encrypted_secret_size, uint8_t **ret,
			     size_t *ret_size);

/* TPM2_Quote by the AK over the PCRs in mask (SHA-256 bank) with qualifying data. Returns the
 * marshalled TPMS_ATTEST (the bytes that were signed), the signature as raw r||s, and the PCR
 * values read right after the quote (for the server to compare with the quoted digest). */
typedef struct Tpm2Quote {
	uint8_t *attest;          /* TPMS_ATTEST as the TPM marshalled it */
	size_t attest_size;
	uint8_t signature[64];
	uint32_t pcr_mask;
	uint8_t pcr_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
} Tpm2Quote;
void tpm2_quote_done(Tpm2Quote *q);
int tpm2_quote(Tpm2Context *c, const Tpm2Ak *ak, const uint8_t *qualifying, size_t qualifying_size,
	       uint32_t pcr_mask, Tpm2Quote *ret);

/* ---- server side (software) ---- */

/* The AK's TPM name and its public key point, from the marshalled TPM2B_PUBLIC the device
 * sent; checks that it is a restricted ECC P-256 ECDSA-SHA256 signing key with fixedTPM and
 * fixedParent (-EBADMSG otherwise, *ret_reason says which attribute). */
int tpm2_ak_public_check(const uint8_t *ak_public, size_t n, uint8_t ret_name[TPM2_NAME_SIZE],
			 uint8_t ret_point[65], const char **ret_reason);

/* TPM2_MakeCredential in software (TPM 2.0 Part 1, 24 "Credential Protection"; ECC EK: the seed
 * is from ECDH with an ephemeral key and KDFe, then KDFa for the AES-128-CFB and HMAC keys).
 * ek_point: the EK's P-256 public point (from its certificate); credential: up to 32 bytes. */
int tpm2_make_credential(const uint8_t ek_point[65], const uint8_t ak_name[TPM2_NAME_SIZE],
			 const uint8_t *credential, size_t credential_size, uint8_t **ret_id_object,
			 size_t *ret_id_object_size, uint8_t **ret_encrypted_secret,
			 size_t *ret_encrypted_secret_size);

/* Verifies a quote (CVE-2024-29040/29038 class: everything, not only the signature):
 * TPMS_ATTEST magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE, extraData == qualifying,
 * one SHA-256 PCR selection equal to expected_mask, pcrDigest == SHA-256 of the given PCR
 * values in ascending order, and the ECDSA signature by the AK over SHA-256(attest).
 * Errors: -EBADMSG malformed/bad signature, -ESTALE qualifying data differs (stale nonce or
 * another TLS session), -EPERM PCR values do not match the quoted digest. *ret_reason set.
 * The signature is checked right after parsing: -ESTALE and -EPERM are only reported for
 * structures the AK really signed. A PCR selection other than expected_mask is -EBADMSG. */
int tpm2_quote_verify(const uint8_t ak_point[65], const uint8_t *attest, size_t attest_size,
		      const uint8_t signature[64], const uint8_t *qualifying, size_t qualifying_size,
		      uint32_t expected_mask, const uint8_t pcr_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE],
		      const char **ret_reason);

/* TCG PC Client Platform Firmware Profile event log, crypto-agile format (first event
 * TCG_PCR_EVENT with the Spec ID event, then TCG_PCR_EVENT2 records). Replays the SHA-256
 * digests of every event into PCR values (starting from zero; PCR 0's locality event handled),
 * for PCRs 0–23. -EBADMSG (*ret_reason) on any malformed or oversized record; at most
 * 4096 events. ret_mask: PCRs that had at least one event. */
int tpm2_eventlog_replay(const uint8_t *log, size_t n, uint8_t ret_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE],
			 uint32_t *ret_mask, const char **ret_reason);

/* Builds a crypto-agile event log (SHA-256 only) from (pcr, digest, description) events: used
 * by tests and by the agent to log its own measurements. */
typedef struct Tpm2Event {
	uint32_t pcr;
	uint32_t type;             /* e.g. EV_IPL = 0x0d, EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001 */
	uint8_t digest[32];
	const char *data;          /* event data (a description); may be NULL */
} Tpm2Event;
int tpm2_eventlog_build(const Tpm2Event *events, size_t n, uint8_t **ret, size_t *ret_size);
