/* SPDX-License-Identifier: Apache-2.0 */
/* lib/crypto escrow (ECIES to a P-256 key as one JSON object): round trip, wrong key, tampering of
 * every member, malformed JSON. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "basic/encoding.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"

#define CONTEXT "recovery-key:device-1234:0b5c7f4e-1d2a-4c3b-9e8f-123456789abc"
static const char SECRET[] = "correct horse battery staple";

typedef struct Fixture {
	EcKey *recipient, *other;
	char *blob;
} Fixture;

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(Fixture));
	assert_non_null(f);
	assert_int_equal(ec_key_generate(&f->recipient), 0);
	assert_int_equal(ec_key_generate(&f->other), 0);
	assert_int_equal(escrow_seal(f->recipient, CONTEXT, SECRET, strlen(SECRET), &f->blob), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;
	ec_key_free(f->recipient);
	ec_key_free(f->other);
	free(f->blob);
	free(f);
	return 0;
}

/* Opens s and returns the error; on success checks the plaintext. */
static int open_blob(const EcKey *k, const char *ctx, const char *s, size_t n)
{
	uint8_t *pt = (uint8_t *)0x1;
	size_t pt_n = 12345;
	int r = escrow_open(k, ctx, s, n, &pt, &pt_n);

	if (r < 0) {
		/* ret_* untouched on failure */
		assert_ptr_equal(pt, (uint8_t *)0x1);
		assert_int_equal(pt_n, 12345);
		return r;
	}
	assert_int_equal(pt_n, strlen(SECRET));
	assert_memory_equal(pt, SECRET, pt_n);
	assert_int_equal(pt[pt_n], 0);
	secure_free(pt);
	return 0;
}

static int open_str(const EcKey *k, const char *ctx, const char *s)
{
	return open_blob(k, ctx, s, strlen(s));
}

static void test_round_trip(void **state)
{
	Fixture *f = *state;
	_cleanup_free_ char *blob2 = NULL;
	_cleanup_free_ char *kid = NULL;
	uint8_t fp[SHA256_SIZE];
	json_t *o;

	assert_int_equal(open_str(f->recipient, CONTEXT, f->blob), 0);
	assert_int_equal(open_str(f->recipient, NULL, f->blob), 0);
	/* A trailing newline (the blob is "a line of text") is fine. */
	{
		_cleanup_free_ char *line = NULL;
		assert_true(asprintf(&line, "%s\n", f->blob) > 0);
		assert_int_equal(open_str(f->recipient, CONTEXT, line), 0);
	}

	/* The format as documented. */
	o = json_loads(f->blob, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "v")), 1);
	assert_string_equal(json_string_value(json_object_get(o, "alg")),
			    "ECDH-ES-P256+HKDF-SHA256+A256GCM");
	assert_string_equal(json_string_value(json_object_get(o, "context")), CONTEXT);
	assert_int_equal(ec_key_fingerprint(f->recipient, fp), 0);
	kid = hex_encode(fp, sizeof(fp));
	assert_string_equal(json_string_value(json_object_get(o, "kid")), kid);
	assert_int_equal(strlen(json_string_value(json_object_get(o, "epk"))), 88); /* base64 of 65 */
	assert_int_equal(json_object_size(o), 6);
	assert_null(strchr(f->blob, '\n'));
	json_decref(o);

	/* Sealing twice gives different blobs (fresh ephemeral key). */
	assert_int_equal(escrow_seal(f->recipient, CONTEXT, SECRET, strlen(SECRET), &blob2), 0);
	assert_string_not_equal(blob2, f->blob);
	assert_int_equal(open_str(f->recipient, CONTEXT, blob2), 0);

	/* A public-only recipient can seal but not open. */
	{
		_cleanup_ec_key_ EcKey *pub = NULL;
		_cleanup_free_ char *blob3 = NULL;
		uint8_t p[EC_P256_POINT_SIZE];
		assert_int_equal(ec_key_get_point(f->recipient, p), 0);
		assert_int_equal(ec_key_from_point(p, sizeof(p), &pub), 0);
		assert_int_equal(escrow_seal(pub, CONTEXT, SECRET, strlen(SECRET), &blob3), 0);
		assert_int_equal(open_str(f->recipient, CONTEXT, blob3), 0);
		assert_int_equal(open_str(pub, CONTEXT, blob3), -EINVAL);
	}
}

static void test_seal_arguments(void **state)
{
	Fixture *f = *state;
	char *blob = NULL;
	char big_context[ESCROW_CONTEXT_MAX + 2];
	static const char bad_utf8[] = "ctx\xff";

	assert_int_equal(escrow_seal(f->recipient, CONTEXT, SECRET, 0, &blob), -EINVAL);
	assert_int_equal(escrow_seal(f->recipient, CONTEXT, SECRET, ESCROW_SECRET_MAX + 1, &blob), -EINVAL);
	assert_int_equal(escrow_seal(f->recipient, NULL, SECRET, 1, &blob), -EINVAL);
	assert_int_equal(escrow_seal(NULL, CONTEXT, SECRET, 1, &blob), -EINVAL);
	assert_int_equal(escrow_seal(f->recipient, bad_utf8, SECRET, 1, &blob), -EINVAL);
	memset(big_context, 'a', sizeof(big_context) - 1);
	big_context[sizeof(big_context) - 1] = 0;
	assert_int_equal(escrow_seal(f->recipient, big_context, SECRET, 1, &blob), -EINVAL);
	assert_null(blob);

	/* Empty context and a maximal secret are fine. */
	{
		_cleanup_free_ uint8_t *big = calloc(1, ESCROW_SECRET_MAX);
		uint8_t *pt = NULL;
		size_t n;
		assert_non_null(big);
		big[0] = 1;
		assert_int_equal(escrow_seal(f->recipient, "", big, ESCROW_SECRET_MAX, &blob), 0);
		assert_int_equal(escrow_open(f->recipient, "", blob, strlen(blob), &pt, &n), 0);
		assert_int_equal(n, ESCROW_SECRET_MAX);
		assert_memory_equal(pt, big, n);
		secure_free(pt);
		free(blob);
	}
}

static void test_wrong_key(void **state)
{
	Fixture *f = *state;
	assert_int_equal(open_str(f->other, CONTEXT, f->blob), -ENOKEY);
}

/* Replaces member key of the blob with a string value and returns the new JSON. */
static char *with_member(const char *blob, const char *key, json_t *value)
{
	json_t *o = json_loads(blob, 0, NULL);
	char *s;
	assert_non_null(o);
	if (value)
		assert_int_equal(json_object_set_new(o, key, value), 0);
	else
		assert_int_equal(json_object_del(o, key), 0);
	s = json_dumps(o, JSON_COMPACT);
	assert_non_null(s);
	json_decref(o);
	return s;
}

/* Flips one bit of the decoded base64 member key at byte i. */
static char *flip_b64(const char *blob, const char *key, size_t i)
{
	json_t *o = json_loads(blob, 0, NULL);
	const char *v = json_string_value(json_object_get(o, key));
	_cleanup_free_ uint8_t *b = NULL;
	_cleanup_free_ char *e = NULL;
	size_t n;
	char *s;

	assert_int_equal(base64_decode(v, strlen(v), &b, &n), 0);
	assert_true(i < n);
	b[i] ^= 0x01;
	e = base64_encode(b, n);
	s = with_member(blob, key, json_string(e));
	json_decref(o);
	return s;
}

static void test_tampering(void **state)
{
	Fixture *f = *state;
	json_t *o = json_loads(f->blob, 0, NULL);
	const char *ct = json_string_value(json_object_get(o, "ct"));
	size_t ct_n = (strlen(ct) / 4) * 3 - (ct[strlen(ct) - 1] == '=') - (ct[strlen(ct) - 2] == '=');
	char *s;

	/* Every byte of ct (ciphertext and tag). */
	for (size_t i = 0; i < ct_n; i++) {
		s = flip_b64(f->blob, "ct", i);
		assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
		free(s);
	}
	/* epk: flipping bits of X or Y leaves the curve (-EBADMSG before any ECDH); the prefix byte
	 * makes it a non-uncompressed point. */
	for (size_t i = 0; i < EC_P256_POINT_SIZE; i += 7) {
		s = flip_b64(f->blob, "epk", i);
		assert_int_equal(open_str(f->recipient, NULL, s), -EBADMSG);
		free(s);
	}
	/* epk replaced by another valid point. */
	{
		_cleanup_ec_key_ EcKey *e = NULL;
		_cleanup_free_ char *b64 = NULL;
		uint8_t p[EC_P256_POINT_SIZE];
		assert_int_equal(ec_key_generate(&e), 0);
		assert_int_equal(ec_key_get_point(e, p), 0);
		b64 = base64_encode(p, sizeof(p));
		s = with_member(f->blob, "epk", json_string(b64));
		assert_int_equal(open_str(f->recipient, NULL, s), -EBADMSG);
		free(s);
	}
	/* context: changed in the blob (AAD and HKDF info), or expected differently. */
	s = with_member(f->blob, "context", json_string(CONTEXT "x"));
	assert_int_equal(open_str(f->recipient, NULL, s), -EBADMSG);
	assert_int_equal(open_str(f->recipient, CONTEXT "x", s), -EBADMSG);
	free(s);
	assert_int_equal(open_str(f->recipient, "recovery-key:other", f->blob), -EBADMSG);
	/* kid: one hex digit changed. The blob still decrypts under our key, so the kid was altered. */
	{
		const char *kid = json_string_value(json_object_get(o, "kid"));
		char *k2 = strdup(kid);
		k2[10] = k2[10] == '0' ? '1' : '0';
		s = with_member(f->blob, "kid", json_string(k2));
		assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
		/* …and for another key it is simply not theirs. */
		assert_int_equal(open_str(f->other, CONTEXT, s), -ENOKEY);
		free(s);
		k2[10] = 'g';
		s = with_member(f->blob, "kid", json_string(k2));
		assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
		free(s);
		k2[10] = 0;
		s = with_member(f->blob, "kid", json_string(k2));
		assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
		free(s);
		free(k2);
	}
	/* v and alg. */
	s = with_member(f->blob, "v", json_integer(2));
	assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
	free(s);
	s = with_member(f->blob, "v", json_string("1"));
	assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
	free(s);
	s = with_member(f->blob, "alg", json_string("ECDH-ES-P256+HKDF-SHA256+A128GCM"));
	assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
	free(s);
	/* Missing, extra and wrongly typed members. */
	static const char *const members[] = {"v", "alg", "kid", "context", "epk", "ct"};
	for (size_t i = 0; i < ELEMENTSOF(members); i++) {
		s = with_member(f->blob, members[i], NULL);
		assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
		free(s);
		s = with_member(f->blob, members[i], json_array());
		assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
		free(s);
	}
	s = with_member(f->blob, "extra", json_true());
	assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
	free(s);
	/* ct shorter than a tag, or just a tag (empty secret). */
	s = with_member(f->blob, "ct", json_string("AAAA"));
	assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
	free(s);
	s = with_member(f->blob, "ct", json_string("AAAAAAAAAAAAAAAAAAAAAA=="));
	assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
	free(s);
	/* base64 with whitespace or bad padding. */
	s = with_member(f->blob, "epk", json_string("AAAA AAAA"));
	assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
	free(s);
	json_decref(o);
}

static void test_malformed_json(void **state)
{
	Fixture *f = *state;
	static const char *const bad[] = {
	    "",
	    "{",
	    "}",
	    "[]",
	    "null",
	    "1",
	    "\"x\"",
	    "{}",
	    "{\"v\":1}",
	    "not json at all",
	    "{\"v\":1,\"v\":1}",
	    "\xff\xfe",
	    "{\"v\":1e400}",
	};
	size_t n = strlen(f->blob);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(open_str(f->recipient, CONTEXT, bad[i]), -EBADMSG);

	/* Every truncation of a valid blob. */
	for (size_t l = 0; l < n; l++)
		assert_int_equal(open_blob(f->recipient, CONTEXT, f->blob, l), -EBADMSG);

	/* Trailing garbage, embedded NUL, duplicate members. */
	{
		_cleanup_free_ char *s = NULL, *dup = NULL;
		assert_true(asprintf(&s, "%s{}", f->blob) > 0);
		assert_int_equal(open_str(f->recipient, CONTEXT, s), -EBADMSG);
		assert_int_equal(open_blob(f->recipient, CONTEXT, f->blob, n + 1), -EBADMSG);
		assert_true(asprintf(&dup, "{\"v\":1,%s", f->blob + 1) > 0);
		assert_int_equal(open_str(f->recipient, CONTEXT, dup), -EBADMSG);
	}
	/* Oversized input is refused before parsing. */
	{
		size_t big = 300 * 1024;
		_cleanup_free_ char *s = malloc(big);
		assert_non_null(s);
		memset(s, ' ', big);
		memcpy(s, f->blob, n);
		assert_int_equal(open_blob(f->recipient, CONTEXT, s, big), -EBADMSG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seal_arguments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tampering, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_json, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
