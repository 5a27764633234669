/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* COSE_Sign1 (RFC 9052 §4.2) with ES256 (alg -7) only: the envelope of remote commands and
 * their results. Protected header: {1: -7} plus kid (4) = SHA-256 of the signer's SPKI. The
 * signature is raw r||s over Sig_structure = ["Signature1", protected, external_aad, payload].
 * Untagged or tagged (18) input is accepted; anything else is refused. The unprotected header must
 * be empty (kid lives in the protected one, under the signature); crit and any other protected
 * label are refused. Profile and reasons: docs/PROTOCOL.md "Signed envelopes". */

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

#define COSE_MAX_SIZE 16384

/* payload: the CBOR bytes to sign. external_aad may be NULL/0. Output is tagged (18), malloc'ed.
 *   -EINVAL  key without a private part, NULL buffer with a non-zero length
 *   -EFBIG   the envelope would exceed COSE_MAX_SIZE (payload > COSE_MAX_SIZE - 112 bytes) */
int cose_sign1_sign(const EcKey *key, const void *external_aad, size_t aad_len, const uint8_t *payload,
		    size_t payload_len, uint8_t **ret, size_t *ret_size);

/* Verifies with key; on success *ret_payload (malloc'ed copy) is the signed payload.
 *   -EBADMSG  malformed COSE, alg not ES256, or the signature does not verify
 *   -ENOKEY   kid names another key
 *   -EFBIG    larger than COSE_MAX_SIZE
 *   -EINVAL   external_aad NULL with aad_len > 0;  -ENOMEM
 * *ret_reason (static, "COSE: …") says which; it is set only on -EBADMSG/-ENOKEY/-EFBIG, and
 * the payload and its size only on success. Each of the three may be NULL. */
int cose_sign1_verify(const EcKey *key, const void *external_aad, size_t aad_len, const uint8_t *cose,
		      size_t cose_len, uint8_t **ret_payload, size_t *ret_payload_size, const char **ret_reason);
