/* SPDX-License-Identifier: Apache-2.0 */
/* COSE_Sign1 with ES256 (RFC 9052 §4.2, §4.4; RFC 9053 §2.1), the one profile we need:
 *
 *   COSE_Sign1 = 18([ protected: bstr .cbor {1: -7, 4: kid}, unprotected: {}, payload: bstr,
 *                     signature: bstr(64) ])
 *   signature  = ECDSA-P256(SHA-256(["Signature1", protected, external_aad, payload])), raw r||s
 *
 * Profile decisions (docs/PROTOCOL.md "Signed envelopes"):
 *  - kid (SHA-256 of the signer's SubjectPublicKeyInfo DER) is in the protected header: it is then
 *    covered by the signature, and a verifier can say "wrong key" (-ENOKEY) before it spends a
 *    signature verification.
 *  - the unprotected header must be empty: nothing unauthenticated may steer verification (the
 *    classic COSE/JOSE mistake is taking alg or kid from an unprotected bucket).
 *  - in the protected header only alg (1) and kid (4) are allowed, each exactly once; crit (2)
 *    and every other label are refused, so no extension can be silently ignored.
 *  - no detached payload (payload nil) and no other tag than 18 (untagged is accepted, as §4.2
 *    allows when the context says what it is).
 * The Sig_structure is built with definite lengths and shortest heads (RFC 9052 §9, RFC 8949
 * §4.2.1), with the protected bstr exactly as it was received. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "proto/cose.h"
#include "proto/proto-internal.h"

#define COSE_TAG_SIGN1 18
#define COSE_HEADER_ALG 1
#define COSE_HEADER_CRIT 2
#define COSE_HEADER_KID 4
#define COSE_ALG_ES256_NEG 6 /* -7 as a CBOR negative integer: -1 - 6 */

/* The digest that ES256 signs: SHA-256 of Sig_structure (RFC 9052 §4.4). */
static int sig_structure_hash(const uint8_t *prot, size_t prot_len, const void *aad, size_t aad_len,
			      const uint8_t *payload, size_t payload_len, uint8_t out[SHA256_SIZE])
{
	ProtoCborWriter w = {.max = SIZE_MAX};
	int r;

	proto_cbor_put_array(&w, 4);
	proto_cbor_put_text(&w, "Signature1", strlen("Signature1"));
	proto_cbor_put_bytes(&w, prot, prot_len);
	proto_cbor_put_bytes(&w, aad, aad_len);
	proto_cbor_put_bytes(&w, payload, payload_len);
	r = w.error < 0 ? w.error : sha256(w.buf, w.size, out);
	proto_cbor_writer_done(&w);
	return r;
}

int cose_sign1_sign(const EcKey *key, const void *external_aad, size_t aad_len, const uint8_t *payload,
		    size_t payload_len, uint8_t **ret, size_t *ret_size)
{
	ProtoCborWriter prot = {.max = 64}, w = {.max = COSE_MAX_SIZE};
	uint8_t kid[SHA256_SIZE], hash[SHA256_SIZE], sig[ECDSA_P256_RAW_SIG_SIZE];
	int r;

	assert(key);
	assert(ret);
	assert(ret_size);
	if ((!external_aad && aad_len > 0) || (!payload && payload_len > 0))
		return -EINVAL;
	if (payload_len > COSE_MAX_SIZE)
		return -EFBIG;

	r = ec_key_fingerprint(key, kid);
	if (r < 0)
		return r;

	proto_cbor_put_map(&prot, 2);
	proto_cbor_put_uint(&prot, COSE_HEADER_ALG);
	proto_cbor_put_negint(&prot, COSE_ALG_ES256_NEG);
	proto_cbor_put_uint(&prot, COSE_HEADER_KID);
	proto_cbor_put_bytes(&prot, kid, sizeof(kid));
	if (prot.error < 0) {
		r = prot.error;
		goto out;
	}

	r = sig_structure_hash(prot.buf, prot.size, external_aad, aad_len, payload, payload_len, hash);
	if (r < 0)
		goto out;
	r = ecdsa_sign_raw(key, hash, sizeof(hash), sig);
	if (r < 0)
		goto out;

	proto_cbor_put_tag(&w, COSE_TAG_SIGN1);
	proto_cbor_put_array(&w, 4);
	proto_cbor_put_bytes(&w, prot.buf, prot.size);
	proto_cbor_put_map(&w, 0);
	proto_cbor_put_bytes(&w, payload, payload_len);
	proto_cbor_put_bytes(&w, sig, sizeof(sig));
	if (w.error < 0) {
		/* larger than any verifier would take */
		r = w.error == -EMSGSIZE ? -EFBIG : w.error;
		goto out;
	}

	*ret_size = w.size;
	*ret = TAKE_PTR(w.buf);
	r = 0;
out:
	proto_cbor_writer_done(&prot);
	proto_cbor_writer_done(&w);
	return r;
}

static const char *status_reason(ProtoCborStatus s)
{
	switch (s) {
	case PROTO_CBOR_TRUNCATED:
		return "COSE: truncated";
	case PROTO_CBOR_INDEFINITE:
		return "COSE: indefinite length";
	default:
		return "COSE: malformed CBOR";
	}
}

/* Reads the next item; on failure *reason says why. */
static bool read_item(ProtoCborReader *r, ProtoCborItem *ret, const char **reason)
{
	ProtoCborStatus s = proto_cbor_read(r, ret);

	if (s != PROTO_CBOR_OK) {
		*reason = status_reason(s);
		return false;
	}
	return true;
}

/* The protected header: exactly {1: -7, 4: bstr(32)} in any order (RFC 9052 §3.1). */
static int parse_protected(const uint8_t *p, size_t n, const uint8_t **ret_kid, const char **reason)
{
	ProtoCborReader r = {.buf = p, .size = n};
	ProtoCborItem map, label, v;
	const uint8_t *kid = NULL;
	bool have_alg = false;

	if (n == 0) {
		*reason = "COSE: protected header empty (alg missing)";
		return -EBADMSG;
	}
	if (!read_item(&r, &map, reason))
		return -EBADMSG;
	if (map.kind != PROTO_CBOR_MAP) {
		*reason = "COSE: protected header not a map";
		return -EBADMSG;
	}
	for (uint64_t i = 0; i < map.value; i++) {
		if (!read_item(&r, &label, reason))
			return -EBADMSG;
		if (label.kind == PROTO_CBOR_UINT && label.value == COSE_HEADER_CRIT) {
			/* A critical extension we do not implement: the signer says we must not
			 * accept the message (RFC 9052 §3.1). We implement none. */
			*reason = "COSE: crit header not supported";
			return -EBADMSG;
		}
		if (label.kind != PROTO_CBOR_UINT || (label.value != COSE_HEADER_ALG && label.value != COSE_HEADER_KID)) {
			*reason = "COSE: unknown protected header";
			return -EBADMSG;
		}
		if ((label.value == COSE_HEADER_ALG && have_alg) || (label.value == COSE_HEADER_KID && kid)) {
			*reason = "COSE: duplicate protected header";
			return -EBADMSG;
		}
		if (!read_item(&r, &v, reason))
			return -EBADMSG;
		if (label.value == COSE_HEADER_ALG) {
			/* ES256 only: an attacker must not pick the algorithm (RFC 9052 §3.1 alg is
			 * protected for this reason; we also refuse every other value). */
			if (v.kind != PROTO_CBOR_NEGINT || v.value != COSE_ALG_ES256_NEG) {
				*reason = "COSE: alg is not ES256 (-7)";
				return -EBADMSG;
			}
			have_alg = true;
		} else {
			if (v.kind != PROTO_CBOR_BYTES || v.len != SHA256_SIZE) {
				*reason = "COSE: kid not a 32-byte string";
				return -EBADMSG;
			}
			kid = v.data;
		}
	}
	if (r.pos != n) {
		*reason = "COSE: trailing bytes in protected header";
		return -EBADMSG;
	}
	if (!have_alg) {
		*reason = "COSE: alg missing";
		return -EBADMSG;
	}
	if (!kid) {
		*reason = "COSE: kid missing";
		return -EBADMSG;
	}
	*ret_kid = kid;
	return 0;
}

typedef struct CoseSign1 {
	ProtoCborItem protected, payload, signature;
	const uint8_t *kid;
} CoseSign1;

static int parse_sign1(const uint8_t *cose, size_t n, CoseSign1 *ret, const char **reason)
{
	ProtoCborReader r = {.buf = cose, .size = n};
	ProtoCborItem it, unprotected;
	CoseSign1 s = {};
	int k;

	if (!read_item(&r, &it, reason))
		return -EBADMSG;
	if (it.kind == PROTO_CBOR_TAG) {
		if (it.value != COSE_TAG_SIGN1) {
			*reason = "COSE: tag is not 18 (COSE_Sign1)";
			return -EBADMSG;
		}
		if (!read_item(&r, &it, reason))
			return -EBADMSG;
	}
	if (it.kind != PROTO_CBOR_ARRAY || it.value != 4) {
		*reason = "COSE: not a COSE_Sign1 array of 4";
		return -EBADMSG;
	}

	if (!read_item(&r, &s.protected, reason))
		return -EBADMSG;
	if (s.protected.kind != PROTO_CBOR_BYTES) {
		*reason = "COSE: protected header not a byte string";
		return -EBADMSG;
	}
	k = parse_protected(s.protected.data, s.protected.len, &s.kid, reason);
	if (k < 0)
		return k;

	if (!read_item(&r, &unprotected, reason))
		return -EBADMSG;
	if (unprotected.kind != PROTO_CBOR_MAP) {
		*reason = "COSE: unprotected header not a map";
		return -EBADMSG;
	}
	if (unprotected.value != 0) {
		*reason = "COSE: unprotected header not empty";
		return -EBADMSG;
	}

	if (!read_item(&r, &s.payload, reason))
		return -EBADMSG;
	if (s.payload.kind == PROTO_CBOR_NULL) {
		*reason = "COSE: detached payload not supported";
		return -EBADMSG;
	}
	if (s.payload.kind != PROTO_CBOR_BYTES) {
		*reason = "COSE: payload not a byte string";
		return -EBADMSG;
	}

	if (!read_item(&r, &s.signature, reason))
		return -EBADMSG;
	if (s.signature.kind != PROTO_CBOR_BYTES || s.signature.len != ECDSA_P256_RAW_SIG_SIZE) {
		*reason = "COSE: signature not a 64-byte string";
		return -EBADMSG;
	}
	if (r.pos != n) {
		*reason = "COSE: trailing bytes";
		return -EBADMSG;
	}
	*ret = s;
	return 0;
}

int cose_sign1_verify(const EcKey *key, const void *external_aad, size_t aad_len, const uint8_t *cose,
		      size_t cose_len, uint8_t **ret_payload, size_t *ret_payload_size, const char **ret_reason)
{
	uint8_t fp[SHA256_SIZE], hash[SHA256_SIZE];
	const char *reason = NULL;
	CoseSign1 s;
	uint8_t *copy;
	int r;

	assert(key);
	assert(cose || cose_len == 0);
	if (!external_aad && aad_len > 0)
		return -EINVAL;

	/* Bounded before anything is read: the envelope rides in one frame field. */
	if (cose_len > COSE_MAX_SIZE) {
		reason = "COSE: larger than COSE_MAX_SIZE";
		r = -EFBIG;
		goto fail;
	}

	r = parse_sign1(cose, cose_len, &s, &reason);
	if (r < 0)
		goto fail;

	r = ec_key_fingerprint(key, fp);
	if (r < 0)
		return r;
	if (memcmp(fp, s.kid, sizeof(fp)) != 0) {
		reason = "COSE: kid names another key";
		r = -ENOKEY;
		goto fail;
	}

	r = sig_structure_hash(s.protected.data, s.protected.len, external_aad, aad_len, s.payload.data,
			       s.payload.len, hash);
	if (r < 0)
		return r;
	r = ecdsa_verify_raw(key, hash, sizeof(hash), s.signature.data, s.signature.len);
	if (r == -EBADMSG) {
		reason = "COSE: signature does not verify";
		goto fail;
	}
	if (r < 0)
		return r;

	if (ret_payload) {
		copy = malloc(MAX(s.payload.len, (size_t)1));
		if (!copy)
			return -ENOMEM;
		if (s.payload.len > 0)
			memcpy(copy, s.payload.data, s.payload.len);
		*ret_payload = copy;
	}
	if (ret_payload_size)
		*ret_payload_size = s.payload.len;
	return 0;

fail:
	log_debug("Refusing COSE_Sign1: %s", reason);
	if (ret_reason)
		*ret_reason = reason;
	return r;
}
