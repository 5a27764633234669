/* SPDX-License-Identifier: Apache-2.0 */
/* Attestation against a real TPM (swtpm, started by tests/integration/test-tpm2-attest.sh;
 * TRUSTPC_TPM2_DEVICE points at it, SWTPM_EK_CERT_P256 is the DER certificate the fixture wrote to
 * NV). The proof that the software server side is right: the TPM activates what tpm2_make_credential
 * made, and tpm2_quote_verify accepts what the TPM signed.
 *
 * The swtpm is fresh: PCRs 7 and 11 start at zero and every extend of this program is logged in
 * the fixture, so the event log built from that list must replay to what the TPM quotes.
 *
 * With TRUSTPC_ATTEST_DUMP_DIR set, the first quote (qualifying data 32 × 0xa5, PCRs 7 and 11, both
 * zero), the AK's public area and point and a built event log are written there: the seeds of
 * tests/fuzz/corpus/{tpm2-attest,eventlog}. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-attest.h"

#define PCR_MASK ((UINT32_C(1) << 7) | (UINT32_C(1) << 11))
#define MAX_LOGGED 16

typedef struct Fixture {
	Tpm2Context *tpm;
	uint8_t ek_point[65];
	Tpm2Ak ak, other_ak;
	uint8_t ak_name[TPM2_NAME_SIZE], ak_point[65];
	uint8_t other_name[TPM2_NAME_SIZE];
	Tpm2Event logged[MAX_LOGGED];
	size_t n_logged;
} Fixture;

static void ek_point_get(Tpm2Context *tpm, uint8_t ret[65])
{
	_cleanup_free_ uint8_t *spki = NULL;
	_cleanup_ec_key_ EcKey *k = NULL;
	size_t n;

	assert_int_equal(tpm2_ek_public_spki(tpm, &spki, &n), 0);
	assert_int_equal(ec_key_from_spki_der(spki, n, &k), 0);
	assert_int_equal(ec_key_get_point(k, ret), 0);
}

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(*f));
	const char *reason = NULL;

	assert_non_null(f);
	assert_int_equal(tpm2_context_new(NULL, &f->tpm), 0);
	ek_point_get(f->tpm, f->ek_point);
	assert_int_equal(tpm2_ak_create(f->tpm, &f->ak), 0);
	assert_int_equal(tpm2_ak_create(f->tpm, &f->other_ak), 0);
	assert_int_equal(tpm2_ak_public_check(f->ak.public, f->ak.public_size, f->ak_name, f->ak_point, &reason), 0);
	assert_int_equal(tpm2_ak_public_check(f->other_ak.public, f->other_ak.public_size, f->other_name, NULL,
					      &reason),
			 0);
	assert_memory_not_equal(f->ak_name, f->other_name, TPM2_NAME_SIZE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;
	tpm2_ak_done(&f->ak);
	tpm2_ak_done(&f->other_ak);
	tpm2_context_free(f->tpm);
	free(f);
	return 0;
}

/* Extends a PCR on the TPM and records the event for the event log test. */
static void extend_logged(Fixture *f, unsigned pcr, const char *what)
{
	Tpm2Event *e;

	assert_true(f->n_logged < MAX_LOGGED);
	e = &f->logged[f->n_logged++];
	*e = (Tpm2Event){.pcr = pcr, .type = 0x0d /* EV_IPL */, .data = what};
	assert_int_equal(sha256(what, strlen(what), e->digest), 0);
	assert_int_equal(tpm2_pcr_extend(f->tpm, pcr, e->digest), 0);
}

static void dump(const char *dir, const char *name, const void *a, size_t an, const void *b, size_t bn)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "we");
	assert_non_null(fp);
	assert_int_equal(fwrite(a, 1, an, fp), an);
	if (bn)
		assert_int_equal(fwrite(b, 1, bn, fp), bn);
	assert_int_equal(fclose(fp), 0);
}

static void test_ek_cert(void **state)
{
	Fixture *f = *state;
	const char *path = getenv("SWTPM_EK_CERT_P256");
	_cleanup_free_ uint8_t *cert = NULL;
	_cleanup_free_ char *file = NULL;
	size_t n = 0, file_size = 0;
	FILE *fp;

	assert_non_null(path);
	assert_int_equal(tpm2_ek_cert_read(f->tpm, &cert, &n), 0);
	fp = fopen(path, "re");
	assert_non_null(fp);
	file = malloc(64 * 1024);
	assert_non_null(file);
	file_size = fread(file, 1, 64 * 1024, fp);
	fclose(fp);
	assert_int_equal(n, file_size);
	assert_memory_equal(cert, file, n);
	/* The certificate certifies the EK this TPM derives from template L-2 (its point is in it). */
	assert_non_null(memmem(cert, n, f->ek_point, sizeof(f->ek_point)));
}

static void test_ak_state(void **state)
{
	Fixture *f = *state;
	_cleanup_free_ uint8_t *buf = NULL, *buf2 = NULL;
	size_t n, n2;
	Tpm2Ak copy = {}, bad = {};

	assert_int_equal(tpm2_ak_serialize(&f->ak, &buf, &n), 0);
	assert_int_equal(tpm2_ak_deserialize(buf, n, &copy), 0);
	assert_int_equal(tpm2_ak_serialize(&copy, &buf2, &n2), 0);
	assert_int_equal(n, n2);
	assert_memory_equal(buf, buf2, n);
	/* Truncated, extended and altered state files are refused and leave *ret alone. */
	assert_int_equal(tpm2_ak_deserialize(buf, n - 1, &bad), -EINVAL);
	buf[n - 1] ^= 0x01; /* last byte of the registered public: no longer equal to the blob's */
	assert_int_equal(tpm2_ak_deserialize(buf, n, &bad), -EINVAL);
	buf[n - 1] ^= 0x01;
	buf[0] = 'X';
	assert_int_equal(tpm2_ak_deserialize(buf, n, &bad), -EINVAL);
	assert_null(bad.public);

	/* The deserialised AK works: it quotes with the same key. */
	{
		Tpm2Quote q = {};
		const char *reason = NULL;
		uint8_t nonce[32] = {1};
		assert_int_equal(tpm2_quote(f->tpm, &copy, nonce, sizeof(nonce), PCR_MASK, &q), 0);
		assert_int_equal(tpm2_quote_verify(f->ak_point, q.attest, q.attest_size, q.signature, nonce,
						   sizeof(nonce), PCR_MASK, q.pcr_values, &reason),
				 0);
		tpm2_quote_done(&q);
	}
	tpm2_ak_done(&copy);
}

static int activate(Fixture *f, const Tpm2Ak *ak, const uint8_t *ek_point, const uint8_t *name,
		    const uint8_t *secret, size_t secret_size)
{
	_cleanup_free_ uint8_t *id = NULL, *enc = NULL;
	uint8_t *out = NULL;
	size_t id_size, enc_size, out_size = 0;
	int r;

	assert_int_equal(tpm2_make_credential(ek_point, name, secret, secret_size, &id, &id_size, &enc, &enc_size), 0);
	r = tpm2_activate_credential(f->tpm, ak, id, id_size, enc, enc_size, &out, &out_size);
	if (r == 0) {
		if (out_size != secret_size || memcmp(out, secret, secret_size) != 0)
			r = 1; /* activated, but to something else */
		secure_free(out);
	}
	return r;
}

static void test_activate(void **state)
{
	Fixture *f = *state;
	uint8_t secret[32], short_secret[5] = {1, 2, 3, 4, 5};

	assert_int_equal(crypto_random_bytes(secret, sizeof(secret)), 0);
	assert_int_equal(activate(f, &f->ak, f->ek_point, f->ak_name, secret, sizeof(secret)), 0);
	assert_int_equal(activate(f, &f->ak, f->ek_point, f->ak_name, short_secret, sizeof(short_secret)), 0);
	/* Several times in a row: every object and session is flushed (swtpm has three slots). */
	for (int i = 0; i < 4; i++)
		assert_int_equal(activate(f, &f->other_ak, f->ek_point, f->other_name, secret, sizeof(secret)), 0);
}

static void test_activate_rejects(void **state)
{
	Fixture *f = *state;
	_cleanup_ec_key_ EcKey *k = NULL;
	_cleanup_free_ uint8_t *id = NULL, *enc = NULL;
	uint8_t secret[32], other_ek[65], *out = NULL;
	size_t id_size, enc_size, out_size = 0;

	assert_int_equal(crypto_random_bytes(secret, sizeof(secret)), 0);
	/* Made for the other AK's name, activated with our AK: the outer HMAC covers the name. */
	assert_int_equal(activate(f, &f->ak, f->ek_point, f->other_name, secret, sizeof(secret)), -EBADMSG);
	/* Made for our AK's name, but presented with the other AK loaded. */
	assert_int_equal(activate(f, &f->other_ak, f->ek_point, f->ak_name, secret, sizeof(secret)), -EBADMSG);
	/* Encrypted to another EK: this TPM derives another seed. */
	assert_int_equal(ec_key_generate(&k), 0);
	assert_int_equal(ec_key_get_point(k, other_ek), 0);
	assert_int_equal(activate(f, &f->ak, other_ek, f->ak_name, secret, sizeof(secret)), -EBADMSG);

	/* A flipped bit in the encrypted identity: integrity check. */
	assert_int_equal(tpm2_make_credential(f->ek_point, f->ak_name, secret, sizeof(secret), &id, &id_size, &enc,
					      &enc_size),
			 0);
	id[id_size - 1] ^= 0x80;
	assert_int_equal(tpm2_activate_credential(f->tpm, &f->ak, id, id_size, enc, enc_size, &out, &out_size),
			 -EBADMSG);
	id[id_size - 1] ^= 0x80;
	/* Malformed TPM2Bs never reach the TPM. */
	assert_int_equal(tpm2_activate_credential(f->tpm, &f->ak, id, id_size - 1, enc, enc_size, &out, &out_size),
			 -EINVAL);
	assert_int_equal(tpm2_activate_credential(f->tpm, &f->ak, id, id_size, enc, enc_size + 0, &out, &out_size), 0);
	secure_free(out);
	out = NULL;
	assert_int_equal(tpm2_activate_credential(f->tpm, &f->ak, id, id_size, enc, enc_size - 1, &out, &out_size),
			 -EINVAL);
	assert_null(out);
}

static void test_quote(void **state)
{
	Fixture *f = *state;
	const char *dump_dir = getenv("TRUSTPC_ATTEST_DUMP_DIR");
	uint8_t nonce[32], other[32], old_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	Tpm2Quote q = {}, q2 = {};
	const char *reason = NULL;

	memset(nonce, 0xa5, sizeof(nonce));
	assert_int_equal(tpm2_quote(f->tpm, &f->ak, nonce, sizeof(nonce), PCR_MASK, &q), 0);
	assert_int_equal(q.pcr_mask, PCR_MASK);
	assert_int_equal(tpm2_quote_verify(f->ak_point, q.attest, q.attest_size, q.signature, nonce, sizeof(nonce),
					   PCR_MASK, q.pcr_values, &reason),
			 0);
	if (dump_dir) {
		dump(dump_dir, "quote-swtpm.bin", q.signature, 64, q.attest, q.attest_size);
		dump(dump_dir, "ak-public.bin", f->ak.public, f->ak.public_size, NULL, 0);
		dump(dump_dir, "ak-point.bin", f->ak_point, 65, NULL, 0);
	}

	/* Another nonce (a replayed quote, or one made for another TLS session). */
	memcpy(other, nonce, sizeof(other));
	other[31] ^= 1;
	assert_int_equal(tpm2_quote_verify(f->ak_point, q.attest, q.attest_size, q.signature, other, sizeof(other),
					   PCR_MASK, q.pcr_values, &reason),
			 -ESTALE);
	/* Verified with the other AK's key. */
	{
		uint8_t other_point[65];
		assert_int_equal(tpm2_ak_public_check(f->other_ak.public, f->other_ak.public_size, NULL, other_point,
						      &reason),
				 0);
		assert_int_equal(tpm2_quote_verify(other_point, q.attest, q.attest_size, q.signature, nonce,
						   sizeof(nonce), PCR_MASK, q.pcr_values, &reason),
				 -EBADMSG);
	}

	/* After an extend, the old values no longer match a fresh quote; the new values do. */
	memcpy(old_values, q.pcr_values, sizeof(old_values));
	extend_logged(f, 7, "quote test: PCR 7 changes");
	assert_int_equal(tpm2_quote(f->tpm, &f->ak, nonce, sizeof(nonce), PCR_MASK, &q2), 0);
	assert_memory_not_equal(q2.pcr_values[7], old_values[7], 32);
	assert_int_equal(tpm2_quote_verify(f->ak_point, q2.attest, q2.attest_size, q2.signature, nonce, sizeof(nonce),
					   PCR_MASK, old_values, &reason),
			 -EPERM);
	assert_int_equal(tpm2_quote_verify(f->ak_point, q2.attest, q2.attest_size, q2.signature, nonce, sizeof(nonce),
					   PCR_MASK, q2.pcr_values, &reason),
			 0);
	/* The old quote with the new values: also a mismatch. */
	assert_int_equal(tpm2_quote_verify(f->ak_point, q.attest, q.attest_size, q.signature, nonce, sizeof(nonce),
					   PCR_MASK, q2.pcr_values, &reason),
			 -EPERM);
	/* Asking for other PCRs than were quoted. */
	assert_int_equal(tpm2_quote_verify(f->ak_point, q2.attest, q2.attest_size, q2.signature, nonce, sizeof(nonce),
					   PCR_MASK | 1u, q2.pcr_values, &reason),
			 -EBADMSG);
	tpm2_quote_done(&q);
	tpm2_quote_done(&q2);
}

static void test_eventlog(void **state)
{
	Fixture *f = *state;
	const char *dump_dir = getenv("TRUSTPC_ATTEST_DUMP_DIR");
	uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE], nonce[32];
	_cleanup_free_ uint8_t *log = NULL, *log_short = NULL;
	size_t n, n_short;
	uint32_t mask = 0;
	const char *reason = NULL;
	Tpm2Quote q = {};

	extend_logged(f, 11, "eventlog test: kernel");
	extend_logged(f, 7, "eventlog test: secure boot db");
	extend_logged(f, 11, "eventlog test: initrd");
	assert_int_equal(crypto_random_bytes(nonce, sizeof(nonce)), 0);
	assert_int_equal(tpm2_quote(f->tpm, &f->ak, nonce, sizeof(nonce), PCR_MASK, &q), 0);

	assert_int_equal(tpm2_eventlog_build(f->logged, f->n_logged, &log, &n), 0);
	assert_int_equal(tpm2_eventlog_replay(log, n, values, &mask, &reason), 0);
	assert_int_equal(mask, PCR_MASK);
	/* The replayed values are what the TPM quoted: the quote verifies with them. */
	assert_int_equal(tpm2_quote_verify(f->ak_point, q.attest, q.attest_size, q.signature, nonce, sizeof(nonce),
					   PCR_MASK, values, &reason),
			 0);
	assert_memory_equal(values[7], q.pcr_values[7], 32);
	assert_memory_equal(values[11], q.pcr_values[11], 32);

	/* A log that leaves out the last event replays to other values: the quote refuses them. */
	assert_int_equal(tpm2_eventlog_build(f->logged, f->n_logged - 1, &log_short, &n_short), 0);
	assert_int_equal(tpm2_eventlog_replay(log_short, n_short, values, &mask, &reason), 0);
	assert_int_equal(tpm2_quote_verify(f->ak_point, q.attest, q.attest_size, q.signature, nonce, sizeof(nonce),
					   PCR_MASK, values, &reason),
			 -EPERM);
	if (dump_dir)
		dump(dump_dir, "eventlog-swtpm.bin", log, n, NULL, 0);
	tpm2_quote_done(&q);
}

/* "nv" mode, after the wrapper script replaced NV 0x01c0000a: TRUSTPC_NV_EXPECT is the file the
 * index now holds (larger than one NV_Read), or "absent" (undefined, or defined but never written). */
static void test_ek_cert_nv(void **state)
{
	const char *expect = getenv("TRUSTPC_NV_EXPECT");
	_cleanup_free_ uint8_t *cert = NULL;
	_cleanup_free_ char *file = NULL;
	Tpm2Context *tpm = NULL;
	size_t n = 0, file_size;
	FILE *fp;
	int r;

	(void)state;
	assert_non_null(expect);
	assert_int_equal(tpm2_context_new(NULL, &tpm), 0);
	r = tpm2_ek_cert_read(tpm, &cert, &n);
	tpm2_context_free(tpm);
	if (streq(expect, "absent")) {
		assert_int_equal(r, -ENOENT);
		assert_null(cert);
		return;
	}
	assert_int_equal(r, 0);
	fp = fopen(expect, "re");
	assert_non_null(fp);
	file = malloc(64 * 1024);
	assert_non_null(file);
	file_size = fread(file, 1, 64 * 1024, fp);
	fclose(fp);
	assert_int_equal(n, file_size);
	assert_memory_equal(cert, file, n);
}

int main(int argc, char *argv[])
{
	const struct CMUnitTest nv_tests[] = {
		cmocka_unit_test(test_ek_cert_nv),
	};
	if (argc > 1 && streq(argv[1], "nv"))
		return cmocka_run_group_tests(nv_tests, NULL, NULL);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ek_cert),
		cmocka_unit_test(test_ak_state),
		cmocka_unit_test(test_activate),
		cmocka_unit_test(test_activate_rejects),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_eventlog),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
