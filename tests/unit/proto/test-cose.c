/* SPDX-License-Identifier: Apache-2.0 */
/* lib/proto COSE_Sign1 ES256: sign/verify, the bytes checked against a hand-written encoding,
 * every refusal with its errno and reason. Keys are fixed scalars; their SubjectPublicKeyInfo
 * and kid below were computed with openssl (`openssl ec -pubout -outform DER | sha256sum`), not
 * with lib/crypto. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/encoding.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "proto/cose.h"
#include "cbor-build.h"

static const uint8_t scalar_a[32] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
				     0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
				     0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20};
static const char spki_a_hex[] =
	"3059301306072a8648ce3d020106082a8648ce3d03010703420004515c3d6eb9e396b904d3feca7f54fdcd0cc1e997"
	"bf375dca515ad0a6c3b4035f4536be3a50f318fbf9a5475902a221502bef0d57e08c53b2cc0a56f17d9f9354";
static const char kid_a_hex[] = "f1d59449b727165de732bf283338122b99628a615918fedc67d878fffcf47da7";
static const char scalar_b_hex[] = "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabb01";
static const char kid_b_hex[] = "8fc57dea2cc533c8d8345d7694ab82fb930ab7f4d6f8790af365f6c8d8a150cf";

static EcKey *key_a, *pub_a, *key_b;
static uint8_t kid_a[32], kid_b[32];

static int setup(void **state)
{
	_cleanup_free_ uint8_t *spki = NULL, *sb = NULL;
	size_t n;

	if (ec_key_from_private_scalar(scalar_a, sizeof(scalar_a), &key_a) < 0 ||
	    hex_decode(spki_a_hex, strlen(spki_a_hex), &spki, &n) < 0 || ec_key_from_spki_der(spki, n, &pub_a) < 0 ||
	    hex_decode(scalar_b_hex, strlen(scalar_b_hex), &sb, &n) < 0 ||
	    ec_key_from_private_scalar(sb, n, &key_b) < 0 || hex_decode_exact(kid_a_hex, kid_a, 32) < 0 ||
	    hex_decode_exact(kid_b_hex, kid_b, 32) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	key_a = ec_key_free(key_a);
	pub_a = ec_key_free(pub_a);
	key_b = ec_key_free(key_b);
	return 0;
}

static uint8_t *unhex(const char *s, size_t *n)
{
	uint8_t *b = NULL;
	assert_int_equal(hex_decode(s, strlen(s), &b, n), 0);
	return b;
}

static void expect_refused(const EcKey *k, const void *aad, size_t aad_len, const uint8_t *cose, size_t n,
			   int err, const char *reason_expected)
{
	uint8_t *payload = (uint8_t *)0x1;
	size_t size = 777;
	const char *reason = NULL;

	assert_int_equal(cose_sign1_verify(k, aad, aad_len, cose, n, &payload, &size, &reason), err);
	if (!reason || !streq(reason, reason_expected))
		fail_msg("reason \"%s\", expected \"%s\"", strna(reason), reason_expected);
	/* outputs untouched */
	assert_ptr_equal(payload, (uint8_t *)0x1);
	assert_int_equal(size, 777);
}

static void expect_verified(const EcKey *k, const void *aad, size_t aad_len, const uint8_t *cose, size_t n,
			    const void *payload_expected, size_t payload_len)
{
	_cleanup_free_ uint8_t *payload = NULL;
	const char *reason = NULL;
	size_t size = 0;
	int r;

	r = cose_sign1_verify(k, aad, aad_len, cose, n, &payload, &size, &reason);
	if (r != 0)
		fail_msg("verify: %d %s", r, strna(reason));
	assert_int_equal(size, payload_len);
	assert_non_null(payload);
	if (payload_len > 0)
		assert_memory_equal(payload, payload_expected, payload_len);
}

/* A COSE_Sign1 assembled by the test: protected bytes as given, the signature computed over a
 * Sig_structure the test writes itself (RFC 9052 §4.4). tag < 0: untagged. unprot: raw CBOR of
 * the unprotected header ("\xa0" for {}). */
static CborBuild *hand_sign1(const EcKey *k, long tag, const uint8_t *prot, size_t prot_len,
			     const char *unprot, size_t unprot_len, const void *payload, size_t payload_len)
{
	CborBuild *sig_structure = cb_new(), *c = cb_new();
	uint8_t hash[32], sig[64];

	cb_array(sig_structure, 4);
	cb_text(sig_structure, "Signature1");
	cb_bytes(sig_structure, prot, prot_len);
	cb_bytes(sig_structure, "", 0);
	cb_bytes(sig_structure, payload, payload_len);
	assert_int_equal(sha256(sig_structure->b, sig_structure->n, hash), 0);
	assert_int_equal(ecdsa_sign_raw(k, hash, sizeof(hash), sig), 0);
	free(sig_structure);

	if (tag >= 0)
		cb_tag(c, (uint64_t)tag);
	cb_array(c, 4);
	cb_bytes(c, prot, prot_len);
	cb_raw(c, unprot, unprot_len);
	cb_bytes(c, payload, payload_len);
	cb_bytes(c, sig, sizeof(sig));
	return c;
}

/* protected header {1: alg, 4: kid} */
static size_t protected_header(uint8_t *out, int64_t alg, const uint8_t kid[32])
{
	CborBuild *c = cb_new();
	size_t n;

	cb_map(c, 2);
	cb_uint(c, 1);
	if (alg < 0)
		cb_nint(c, alg);
	else
		cb_uint(c, (uint64_t)alg);
	cb_uint(c, 4);
	cb_bytes(c, kid, 32);
	memcpy(out, c->b, c->n);
	n = c->n;
	free(c);
	return n;
}

static void test_kid_is_spki_hash(void **state)
{
	uint8_t fp[32];

	assert_int_equal(ec_key_fingerprint(key_a, fp), 0);
	assert_memory_equal(fp, kid_a, 32);
	assert_int_equal(ec_key_fingerprint(pub_a, fp), 0);
	assert_memory_equal(fp, kid_a, 32);
	assert_int_equal(ec_key_fingerprint(key_b, fp), 0);
	assert_memory_equal(fp, kid_b, 32);
}

static void test_round_trip(void **state)
{
	static const char payload[] = "\xa2\x62id\x01\x64type\x64lock";
	_cleanup_free_ uint8_t *cose = NULL, *empty = NULL, *big = NULL, *big_payload = NULL;
	size_t n, en, bn;

	assert_int_equal(cose_sign1_sign(key_a, "device-1", 8, (const uint8_t *)payload, sizeof(payload) - 1,
					 &cose, &n),
			 0);
	expect_verified(pub_a, "device-1", 8, cose, n, payload, sizeof(payload) - 1);
	expect_verified(key_a, "device-1", 8, cose, n, payload, sizeof(payload) - 1);
	/* signing is deterministic (RFC 6979): the same input gives the same bytes */
	{
		_cleanup_free_ uint8_t *again = NULL;
		size_t an;
		assert_int_equal(cose_sign1_sign(key_a, "device-1", 8, (const uint8_t *)payload,
						 sizeof(payload) - 1, &again, &an),
				 0);
		assert_int_equal(an, n);
		assert_memory_equal(again, cose, n);
	}

	/* empty payload, no aad; NULL outputs are allowed */
	assert_int_equal(cose_sign1_sign(key_a, NULL, 0, NULL, 0, &empty, &en), 0);
	expect_verified(pub_a, NULL, 0, empty, en, "", 0);
	assert_int_equal(cose_sign1_verify(pub_a, NULL, 0, empty, en, NULL, NULL, NULL), 0);

	/* the largest payload that fits COSE_MAX_SIZE: 112 bytes of envelope around it */
	big_payload = calloc(1, COSE_MAX_SIZE + 1);
	assert_non_null(big_payload);
	assert_int_equal(cose_sign1_sign(key_a, NULL, 0, big_payload, COSE_MAX_SIZE - 112, &big, &bn), 0);
	assert_int_equal(bn, COSE_MAX_SIZE);
	expect_verified(pub_a, NULL, 0, big, bn, big_payload, COSE_MAX_SIZE - 112);
	free(big);
	big = NULL;
	assert_int_equal(cose_sign1_sign(key_a, NULL, 0, big_payload, COSE_MAX_SIZE - 111, &big, &bn), -EFBIG);
	assert_int_equal(cose_sign1_sign(key_a, NULL, 0, big_payload, COSE_MAX_SIZE + 1, &big, &bn), -EFBIG);
	assert_null(big);

	/* a public key cannot sign */
	assert_int_equal(cose_sign1_sign(pub_a, NULL, 0, big_payload, 1, &big, &bn), -EINVAL);
}

/* The encoder checked against bytes written by hand from RFC 9052 and RFC 8949 for the payload
 * {"a": 1} = a1 61 61 01, and the signature checked over a hand-written Sig_structure: if our
 * Sig_structure were not exactly this (canonical) encoding, an independent verifier would fail. */
static void test_by_hand(void **state)
{
	static const uint8_t payload[] = {0xa1, 0x61, 0x61, 0x01};
	char hex[512];
	_cleanup_free_ uint8_t *cose = NULL, *expected = NULL, *sigs = NULL, *sigs_aad = NULL, *cose_aad = NULL;
	size_t n, en, sn, sna, na;
	uint8_t hash[32];

	assert_int_equal(cose_sign1_sign(key_a, NULL, 0, payload, sizeof(payload), &cose, &n), 0);

	/* 18([h'a2 01 26 04 58 20 <kid>', {}, h'a1616101', h'<64>']) */
	snprintf(hex, sizeof(hex),
		 "d2"           /* tag 18 */
		 "84"           /* array(4) */
		 "5826"         /* bstr(38): the protected header */
		 "a2"           /* map(2) */
		 "0126"         /* 1 (alg): -7 (ES256) */
		 "045820%s"     /* 4 (kid): bstr(32) */
		 "a0"           /* unprotected: {} */
		 "44a1616101"   /* payload: bstr(4) */
		 "5840",        /* signature: bstr(64) */
		 kid_a_hex);
	expected = unhex(hex, &en);
	assert_int_equal(n, en + 64);
	assert_memory_equal(cose, expected, en);

	/* Sig_structure = ["Signature1", protected, h'', payload] */
	snprintf(hex, sizeof(hex),
		 "84"                     /* array(4) */
		 "6a5369676e617475726531" /* "Signature1" */
		 "5826a20126045820%s"     /* protected, as a bstr */
		 "40"                     /* external_aad: h'' */
		 "44a1616101",            /* payload */
		 kid_a_hex);
	sigs = unhex(hex, &sn);
	assert_int_equal(sha256(sigs, sn, hash), 0);
	assert_int_equal(ecdsa_verify_raw(pub_a, hash, sizeof(hash), cose + en, 64), 0);
	/* and a positive control for that check: another aad does not verify against this hash */
	assert_int_equal(cose_sign1_sign(key_a, "aad", 3, payload, sizeof(payload), &cose_aad, &na), 0);
	assert_int_equal(ecdsa_verify_raw(pub_a, hash, sizeof(hash), cose_aad + en, 64), -EBADMSG);

	/* the same with external_aad = "aad": bstr(3) 61 61 64 */
	snprintf(hex, sizeof(hex), "846a5369676e61747572653158" "26a20126045820%s" "43616164" "44a1616101",
		 kid_a_hex);
	sigs_aad = unhex(hex, &sna);
	assert_int_equal(sha256(sigs_aad, sna, hash), 0);
	assert_int_equal(ecdsa_verify_raw(pub_a, hash, sizeof(hash), cose_aad + en, 64), 0);
}

static void test_wrong_key(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	size_t n;

	assert_int_equal(cose_sign1_sign(key_a, NULL, 0, (const uint8_t *)"x", 1, &cose, &n), 0);
	expect_refused(key_b, NULL, 0, cose, n, -ENOKEY, "COSE: kid names another key");
	expect_verified(pub_a, NULL, 0, cose, n, "x", 1);
}

/* Signed by B, kid rewritten to A's: the kid matches A, the signature does not. */
static void test_forged_kid(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	size_t n;

	assert_int_equal(cose_sign1_sign(key_b, NULL, 0, (const uint8_t *)"lock", 4, &cose, &n), 0);
	/* d2 84 58 26 a2 01 26 04 58 20 <kid at offset 10> */
	assert_memory_equal(cose + 10, kid_b, 32);
	memcpy(cose + 10, kid_a, 32);
	expect_refused(pub_a, NULL, 0, cose, n, -EBADMSG, "COSE: signature does not verify");
	expect_refused(key_b, NULL, 0, cose, n, -ENOKEY, "COSE: kid names another key");
}

static void test_tampering(void **state)
{
	static const char aad[] = "device-0123";
	_cleanup_free_ uint8_t *cose = NULL;
	size_t n, payload_at;

	assert_int_equal(cose_sign1_sign(key_a, aad, strlen(aad), (const uint8_t *)"unlock-epoch-5", 14, &cose, &n),
			 0);
	expect_verified(pub_a, aad, strlen(aad), cose, n, "unlock-epoch-5", 14);

	/* flipped payload byte (payload: 4e <14 bytes>, after the 1 + 1 + 40 + 1 bytes before it) */
	payload_at = 1 + 1 + 40 + 1 + 1;
	assert_int_equal(cose[payload_at - 1], 0x4e);
	cose[payload_at + 13] ^= 0x01;
	expect_refused(pub_a, aad, strlen(aad), cose, n, -EBADMSG, "COSE: signature does not verify");
	cose[payload_at + 13] ^= 0x01;

	/* flipped signature bits: first byte of r, last byte of s */
	cose[n - 64] ^= 0x80;
	expect_refused(pub_a, aad, strlen(aad), cose, n, -EBADMSG, "COSE: signature does not verify");
	cose[n - 64] ^= 0x80;
	cose[n - 1] ^= 0x01;
	expect_refused(pub_a, aad, strlen(aad), cose, n, -EBADMSG, "COSE: signature does not verify");
	cose[n - 1] ^= 0x01;

	/* external_aad mismatch: another device, none at all */
	expect_refused(pub_a, "device-0124", strlen(aad), cose, n, -EBADMSG, "COSE: signature does not verify");
	expect_refused(pub_a, NULL, 0, cose, n, -EBADMSG, "COSE: signature does not verify");

	/* restored: verifies again (the flips above were the only cause) */
	expect_verified(pub_a, aad, strlen(aad), cose, n, "unlock-epoch-5", 14);
}

static void test_tags(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	uint8_t *alt;
	size_t n;

	assert_int_equal(cose_sign1_sign(key_a, NULL, 0, (const uint8_t *)"p", 1, &cose, &n), 0);
	assert_int_equal(cose[0], 0xd2);

	/* untagged */
	expect_verified(pub_a, NULL, 0, cose + 1, n - 1, "p", 1);

	/* tag 18 in a two-byte head (d8 12) is still tag 18 */
	alt = malloc(n + 1);
	assert_non_null(alt);
	alt[0] = 0xd8;
	alt[1] = 0x12;
	memcpy(alt + 2, cose + 1, n - 1);
	expect_verified(pub_a, NULL, 0, alt, n + 1, "p", 1);

	/* other tags: 17 (COSE_Mac0), 98 (COSE_Sign), 61 (CWT) */
	cose[0] = 0xd1;
	expect_refused(pub_a, NULL, 0, cose, n, -EBADMSG, "COSE: tag is not 18 (COSE_Sign1)");
	alt[1] = 98;
	expect_refused(pub_a, NULL, 0, alt, n + 1, -EBADMSG, "COSE: tag is not 18 (COSE_Sign1)");
	alt[1] = 61;
	expect_refused(pub_a, NULL, 0, alt, n + 1, -EBADMSG, "COSE: tag is not 18 (COSE_Sign1)");
	/* 18(18([...])): one tag only */
	alt[0] = 0xd2;
	alt[1] = 0xd2;
	expect_refused(pub_a, NULL, 0, alt, n + 1, -EBADMSG, "COSE: not a COSE_Sign1 array of 4");
	free(alt);
}

static void test_truncated_and_trailing(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	uint8_t *longer;
	size_t n;

	assert_int_equal(cose_sign1_sign(key_a, NULL, 0, (const uint8_t *)"payload", 7, &cose, &n), 0);
	for (size_t k = 0; k < n; k++) {
		const char *reason = NULL;
		uint8_t *p = NULL;
		size_t s;
		assert_int_equal(cose_sign1_verify(pub_a, NULL, 0, cose, k, &p, &s, &reason), -EBADMSG);
		assert_non_null(reason);
		assert_null(p);
	}
	expect_refused(pub_a, NULL, 0, cose, n - 1, -EBADMSG, "COSE: truncated");

	longer = malloc(n + 1);
	assert_non_null(longer);
	memcpy(longer, cose, n);
	longer[n] = 0x00;
	expect_refused(pub_a, NULL, 0, longer, n + 1, -EBADMSG, "COSE: trailing bytes");
	free(longer);
}

static void test_oversize(void **state)
{
	uint8_t *big = calloc(1, COSE_MAX_SIZE + 1);

	assert_non_null(big);
	expect_refused(pub_a, NULL, 0, big, COSE_MAX_SIZE + 1, -EFBIG, "COSE: larger than COSE_MAX_SIZE");
	/* the same size minus one is parsed (and refused for what it is: 0x00 is no array) */
	expect_refused(pub_a, NULL, 0, big, COSE_MAX_SIZE, -EBADMSG, "COSE: not a COSE_Sign1 array of 4");
	free(big);
}

static void test_headers(void **state)
{
	uint8_t prot[128];
	size_t pn;
	CborBuild *c;

	/* control: the hand-built envelope verifies */
	pn = protected_header(prot, -7, kid_a);
	c = hand_sign1(key_a, 18, prot, pn, "\xa0", 1, "x", 1);
	expect_verified(pub_a, NULL, 0, c->b, c->n, "x", 1);
	free(c);
	c = hand_sign1(key_a, -1, prot, pn, "\xa0", 1, "x", 1);
	expect_verified(pub_a, NULL, 0, c->b, c->n, "x", 1);
	free(c);

	/* other algorithms, validly signed otherwise: -35 (ES384), -8 (EdDSA), 7, text */
	static const int64_t algs[] = {-35, -8, -36, 7, -6};
	for (size_t i = 0; i < ELEMENTSOF(algs); i++) {
		pn = protected_header(prot, algs[i], kid_a);
		c = hand_sign1(key_a, 18, prot, pn, "\xa0", 1, "x", 1);
		expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: alg is not ES256 (-7)");
		free(c);
	}

	/* crit: {1: -7, 2: [4], 4: kid} */
	c = cb_new();
	cb_map(c, 3);
	cb_uint(c, 1);
	cb_nint(c, -7);
	cb_uint(c, 2);
	cb_array(c, 1);
	cb_uint(c, 4);
	cb_uint(c, 4);
	cb_bytes(c, kid_a, 32);
	memcpy(prot, c->b, c->n);
	pn = c->n;
	free(c);
	c = hand_sign1(key_a, 18, prot, pn, "\xa0", 1, "x", 1);
	expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: crit header not supported");
	free(c);

	/* content type (3), a text label, a duplicate alg, a short kid, no kid, no alg, empty */
	static const struct {
		const char *hex;
		const char *reason;
	} bad[] = {
		{"a301260300045820", "COSE: unknown protected header"}, /* kid bytes appended below */
		{"a3012663666f6f01045820", "COSE: unknown protected header"},
		{"a30126012604" "5820", "COSE: duplicate protected header"},
		{"a2012604581f", "COSE: kid not a 32-byte string"},
		{"a10126", "COSE: kid missing"},
		{"a1045820", "COSE: alg missing"},
		{"a0", "COSE: alg missing"},
		{"", "COSE: protected header empty (alg missing)"},
		{"80", "COSE: protected header not a map"},
		{"a20126045820", "COSE: trailing bytes in protected header"}, /* + kid + 00 */
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ uint8_t *h = NULL;
		size_t hn = 0;

		if (bad[i].hex[0])
			h = unhex(bad[i].hex, &hn);
		if (hn > 0)
			memcpy(prot, h, hn);
		pn = hn;
		if (hn > 0 && (h[hn - 1] == 0x20 || h[hn - 1] == 0x1f)) { /* a kid follows */
			memcpy(prot + pn, kid_a, h[hn - 1]);
			pn += h[hn - 1];
		}
		if (i == ELEMENTSOF(bad) - 1)
			prot[pn++] = 0x00;
		c = hand_sign1(key_a, 18, prot, pn, "\xa0", 1, "x", 1);
		expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, bad[i].reason);
		free(c);
	}

	/* unprotected header: must be an empty map; a kid there is refused too */
	pn = protected_header(prot, -7, kid_a);
	c = cb_new();
	cb_map(c, 1);
	cb_uint(c, 4);
	cb_bytes(c, kid_a, 32);
	{
		CborBuild *d = hand_sign1(key_a, 18, prot, pn, (const char *)c->b, c->n, "x", 1);
		expect_refused(pub_a, NULL, 0, d->b, d->n, -EBADMSG, "COSE: unprotected header not empty");
		free(d);
	}
	free(c);
	c = hand_sign1(key_a, 18, prot, pn, "\x80", 1, "x", 1);
	expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: unprotected header not a map");
	free(c);
	/* indefinite unprotected map */
	c = hand_sign1(key_a, 18, prot, pn, "\xbf\xff", 2, "x", 1);
	expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: indefinite length");
	free(c);
}

static void test_structure(void **state)
{
	uint8_t prot[128], sig[72] = {};
	size_t pn = protected_header(prot, -7, kid_a);
	CborBuild *c;

	/* detached payload (nil) */
	c = cb_new();
	cb_array(c, 4);
	cb_bytes(c, prot, pn);
	cb_map(c, 0);
	cb_null(c);
	cb_bytes(c, sig, 64);
	expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: detached payload not supported");
	free(c);

	/* payload as text */
	c = cb_new();
	cb_array(c, 4);
	cb_bytes(c, prot, pn);
	cb_map(c, 0);
	cb_text(c, "x");
	cb_bytes(c, sig, 64);
	expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: payload not a byte string");
	free(c);

	/* signature of 63 and 72 (DER-sized) bytes */
	for (size_t len = 63; len <= 72; len += 9) {
		c = cb_new();
		cb_array(c, 4);
		cb_bytes(c, prot, pn);
		cb_map(c, 0);
		cb_bytes(c, "x", 1);
		cb_bytes(c, sig, len);
		expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: signature not a 64-byte string");
		free(c);
	}

	/* protected header as a map, not wrapped in a bstr */
	c = cb_new();
	cb_array(c, 4);
	cb_raw(c, prot, pn);
	cb_map(c, 0);
	cb_bytes(c, "x", 1);
	cb_bytes(c, sig, 64);
	expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: protected header not a byte string");
	free(c);

	/* an all-zero signature, well-formed otherwise */
	c = cb_new();
	cb_array(c, 4);
	cb_bytes(c, prot, pn);
	cb_map(c, 0);
	cb_bytes(c, "x", 1);
	cb_bytes(c, sig, 64);
	expect_refused(pub_a, NULL, 0, c->b, c->n, -EBADMSG, "COSE: signature does not verify");
	free(c);

	/* arrays of 3 and 5, a map, an indefinite array */
	expect_refused(pub_a, NULL, 0, (const uint8_t *)"\x83\x40\xa0\x40", 4, -EBADMSG,
		       "COSE: not a COSE_Sign1 array of 4");
	expect_refused(pub_a, NULL, 0, (const uint8_t *)"\xa0", 1, -EBADMSG, "COSE: not a COSE_Sign1 array of 4");
	expect_refused(pub_a, NULL, 0, (const uint8_t *)"\x9f\xff", 2, -EBADMSG, "COSE: indefinite length");
	expect_refused(pub_a, NULL, 0, (const uint8_t *)"\xd2\x9f\xff", 3, -EBADMSG, "COSE: indefinite length");
	expect_refused(pub_a, NULL, 0, (const uint8_t *)"\xdc", 1, -EBADMSG, "COSE: malformed CBOR");
	expect_refused(pub_a, NULL, 0, (const uint8_t *)"", 0, -EBADMSG, "COSE: truncated");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kid_is_spki_hash),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_by_hand),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_forged_kid),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_truncated_and_trailing),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_structure),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
