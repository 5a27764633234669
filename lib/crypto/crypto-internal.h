/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Private to lib/crypto: the EcKey layout, the one mbedTLS-to-errno converter, and the strict DER
 * reader shared by the SubjectPublicKeyInfo and ECDSA-Sig-Value parsers. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>

#include "crypto/crypto.h"

/* An EcKey never holds a group: every operation loads a fresh P-256 group on the stack
 * (p256_group_load). mbedTLS caches precomputed tables inside the group during scalar
 * multiplication, so a shared group would make "const EcKey *" operations mutate state and race
 * between threads. */
struct EcKey {
	mbedtls_ecp_point Q; /* always set, validated on P-256, normalized (Z = 1) */
	mbedtls_mpi d;	     /* the private scalar when has_private, else 0 */
	bool has_private;
};

/* Converts an mbedTLS error code (high- and low-level parts may be combined) to a negative errno
 * and logs the original code at debug level. what names the failed operation. */
int crypto_error(int mbedtls_code, const char *what);

int p256_group_load(mbedtls_ecp_group *grp);
/* This thread's P-256 group, loaded once. Multiplications by the base point G (signing, the
 * u1*G half of verification, key generation) reuse the comb table mbedTLS caches in it instead
 * of rebuilding it per operation; the table depends only on G, never on a key. Thread-local, so
 * "const EcKey *" operations stay race-free; freed when its thread ends. */
int p256_group_shared(mbedtls_ecp_group **ret);

/* Allocates an empty key (Q = 0, no private part). */
EcKey *ec_key_new(void);

/* A key from a private scalar, checked to lie in [1, n-1]; the public point is derived from it. */
int ec_key_from_private_mpi(const mbedtls_mpi *d, EcKey **ret);

/* The fixed 26-byte prefix of a P-256 SubjectPublicKeyInfo, up to and including the BIT STRING's
 * "unused bits" byte; the 65-byte uncompressed point follows. RFC 5480 section 2. */
#define P256_SPKI_PREFIX_SIZE 26
#define P256_SPKI_SIZE (P256_SPKI_PREFIX_SIZE + EC_P256_POINT_SIZE)
extern const uint8_t p256_spki_prefix[P256_SPKI_PREFIX_SIZE];

/* DER, strictly (X.690 section 10): definite minimal lengths only. */
typedef struct DerCursor {
	const uint8_t *p;
	size_t n;
} DerCursor;

#define DER_TAG_INTEGER 0x02
#define DER_TAG_BIT_STRING 0x03
#define DER_TAG_OCTET_STRING 0x04
#define DER_TAG_OID 0x06
#define DER_TAG_SEQUENCE 0x30

/* Reads one TLV with the given tag from c into *ret_content and advances c past it.
 * -EBADMSG for another tag, an indefinite or non-minimal length, or a length beyond the input. */
int der_read_tlv(DerCursor *c, uint8_t tag, DerCursor *ret_content);
/* Peeks at the next tag; -EBADMSG at the end of input. */
int der_peek_tag(const DerCursor *c);
