/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The TPM 2.0 key derivation functions with SHA-256 (TPM 2.0 Library Part 1, 11.4.10), in software:
 * the server side of credential protection needs them, and the unit tests check them against
 * independently computed values. No tss2 types, so tests and tools may include this header. */

#include <stddef.h>
#include <stdint.h>

typedef struct Tpm2KdfParams {
	const void *key;    /* KDFa: the HMAC key; KDFe: Z, the ECDH x coordinate */
	size_t key_len;
	const char *label;  /* KDFa: Label; KDFe: Use. Hashed with its terminating NUL, as the spec says */
	const void *u;      /* KDFa: contextU; KDFe: PartyUInfo (the buffers, without TPM2B size) */
	size_t u_len;
	const void *v;      /* KDFa: contextV; KDFe: PartyVInfo */
	size_t v_len;
} Tpm2KdfParams;

/* 11.4.10.2, SP 800-108 counter mode with HMAC-SHA-256:
 *   K(i) = HMAC(key, [i]32 || Label || 0x00 || contextU || contextV || [bits]32), i = 1, 2, …
 * out_size bytes (bits = 8 * out_size), 1..8192 (-EINVAL otherwise). */
int tpm2_kdfa_sha256(const Tpm2KdfParams *p, void *out, size_t out_size);

/* 11.4.10.3, SP 800-56A concatenation KDF with SHA-256:
 *   K(i) = SHA-256([i]32 || Z || Use || 0x00 || PartyUInfo || PartyVInfo), i = 1, 2, …
 * out_size bytes, 1..8192 (-EINVAL otherwise). */
int tpm2_kdfe_sha256(const Tpm2KdfParams *p, void *out, size_t out_size);
