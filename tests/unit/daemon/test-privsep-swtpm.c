/* SPDX-License-Identifier: Apache-2.0 */
/* The executor against a real swtpm (TRUSTPC_TPM2_DEVICE, set by
 * tests/integration/test-trustpcd-privsep.sh): a QUOTE it answers verifies with tpm2_quote_verify
 * (and fails with another qualifying value, PCR value or signature); STATUS reports the TPM's
 * counter and device id; ACTIVATE recovers a credential made for this EK and AK and nothing else;
 * STORE refuses another device's enrollment and writes this one's. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent-state.h"
#include "basic/fileio.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "privsep-executor.h"
#include "privsep-proto.h"
#include "tpm2/tpm2-attest.h"

static Tpm2Context *tpm;
static Tpm2Ak ak;
static uint8_t ak_name[TPM2_NAME_SIZE], ak_point[65], ek_point[65];
static char device_id[DEVICE_ID_STRING_SIZE];
static uint64_t epoch;

typedef struct Harness {
	int fd;
	pthread_t thread;
	Executor e;
	int result;
	char dir[64];
} Harness;

static void *executor_thread(void *p)
{
	Harness *h = p;
	h->result = executor_run(&h->e);
	close(h->e.fd);
	return NULL;
}

static void harness_start(Harness *h, bool enroll)
{
	int sv[2];

	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/test-privsep-swtpm.XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	h->fd = sv[1];
	h->e = (Executor){.fd = sv[0], .enroll = enroll, .tpm = tpm, .ak = &ak, .state_dir = h->dir};
	assert_int_equal(pthread_create(&h->thread, NULL, executor_thread, h), 0);
}

static int harness_stop(Harness *h)
{
	close(h->fd);
	assert_int_equal(pthread_join(h->thread, NULL), 0);
	return h->result;
}

static int setup(void **state)
{
	_cleanup_free_ uint8_t *spki = NULL;
	_cleanup_ec_key_ EcKey *ek = NULL;
	const char *why = NULL;
	size_t n;
	bool created;

	assert_int_equal(tpm2_context_new(NULL, &tpm), 0);
	assert_int_equal(tpm2_ak_create(tpm, &ak), 0);
	assert_int_equal(tpm2_ak_public_check(ak.public, ak.public_size, ak_name, ak_point, &why), 0);
	assert_int_equal(tpm2_ek_public_spki(tpm, &spki, &n), 0);
	assert_int_equal(ec_key_from_spki_der(spki, n, &ek), 0);
	assert_int_equal(ec_key_get_point(ek, ek_point), 0);
	assert_int_equal(tpm2_device_id(tpm, device_id), 0);
	assert_int_equal(tpm2_counter_ensure(tpm, TPM2_LOCK_COUNTER_NV_INDEX, &epoch, &created), 0);
	return 0;
}

static int teardown(void **state)
{
	tpm2_ak_done(&ak);
	tpm = tpm2_context_free(tpm);
	return 0;
}

static void test_quote_verifies(void **state)
{
	PrivsepQuoteReply *q = malloc(sizeof(*q));
	uint8_t qual[32], other[32];
	const char *why = NULL;
	uint32_t mask = (1u << 0) | (1u << 7) | (1u << 11);
	Harness h;

	assert_non_null(q);
	assert_int_equal(crypto_random_bytes(qual, sizeof(qual)), 0);
	memcpy(other, qual, sizeof(other));
	other[31] ^= 1;
	harness_start(&h, false);
	assert_int_equal(privsep_quote(h.fd, qual, mask, q), 0);
	assert_int_equal(q->pcr_mask, mask);
	assert_int_equal(tpm2_quote_verify(ak_point, q->attest, q->attest_size, q->signature, qual, 32, mask,
					   q->pcr_values, &why),
			 0);
	/* negative controls: each must fail, or the check above proves nothing */
	assert_int_equal(tpm2_quote_verify(ak_point, q->attest, q->attest_size, q->signature, other, 32, mask,
					   q->pcr_values, &why),
			 -ESTALE);
	q->pcr_values[7][0] ^= 1;
	assert_int_equal(tpm2_quote_verify(ak_point, q->attest, q->attest_size, q->signature, qual, 32, mask,
					   q->pcr_values, &why),
			 -EPERM);
	q->pcr_values[7][0] ^= 1;
	q->signature[10] ^= 1;
	assert_int_equal(tpm2_quote_verify(ak_point, q->attest, q->attest_size, q->signature, qual, 32, mask,
					   q->pcr_values, &why),
			 -EBADMSG);
	/* Two quotes over the same qualifying data differ only where the TPM's clock does: the
	 * executor does not cache. */
	assert_int_equal(privsep_quote(h.fd, other, mask, q), 0);
	assert_int_equal(tpm2_quote_verify(ak_point, q->attest, q->attest_size, q->signature, other, 32, mask,
					   q->pcr_values, &why),
			 0);
	assert_int_equal(harness_stop(&h), 0);
	free(q);
}

static void test_status_from_tpm(void **state)
{
	PrivsepStatusReply st;
	Harness h;

	harness_start(&h, false);
	h.e.has_policy = true;
	h.e.policy_epoch = epoch;
	assert_int_equal(privsep_status(h.fd, &st), 0);
	assert_int_equal(st.have_epoch, 1);
	assert_int_equal(st.epoch, epoch);
	assert_int_equal(st.locked, 0);
	assert_string_equal(st.device_id, device_id);
	/* the stored policy is for an older epoch: a lock happened */
	h.e.policy_epoch = epoch - 1;
	assert_int_equal(privsep_status(h.fd, &st), 0);
	assert_int_equal(st.locked, 1);
	assert_int_equal(harness_stop(&h), 0);
}

static void test_activate(void **state)
{
	_cleanup_free_ uint8_t *id = NULL, *enc = NULL, *id2 = NULL, *enc2 = NULL;
	_cleanup_secure_ uint8_t *got = NULL;
	uint8_t cred[32], wrong_name[TPM2_NAME_SIZE];
	size_t id_n, enc_n, id2_n, enc2_n, got_n = 0;
	Harness h;

	assert_int_equal(crypto_random_bytes(cred, sizeof(cred)), 0);
	assert_int_equal(tpm2_make_credential(ek_point, ak_name, cred, sizeof(cred), &id, &id_n, &enc, &enc_n), 0);
	memcpy(wrong_name, ak_name, sizeof(wrong_name));
	wrong_name[5] ^= 1;
	assert_int_equal(tpm2_make_credential(ek_point, wrong_name, cred, sizeof(cred), &id2, &id2_n, &enc2, &enc2_n),
			 0);

	harness_start(&h, true);
	assert_int_equal(privsep_activate(h.fd, id, id_n, enc, enc_n, &got, &got_n), 0);
	assert_int_equal(got_n, sizeof(cred));
	assert_memory_equal(got, cred, sizeof(cred));
	/* made for another AK name: the TPM refuses; an error answer, not the end of the loop */
	assert_true(privsep_activate(h.fd, id2, id2_n, enc2, enc2_n, &got, &got_n) < 0);
	assert_int_equal(harness_stop(&h), 0);
}

static void test_store(void **state)
{
	_cleanup_free_ char *text = NULL;
	PrivsepStoreBlobs b = {0};
	char other[DEVICE_ID_STRING_SIZE];
	static const uint8_t blob[] = "AK";
	struct stat sb;
	Harness h;

	for (int i = 0; i < _STORE_BLOB_MAX - 1; i++) {
		b.data[i] = "-----BEGIN X-----\n";
		b.size[i] = 18;
	}
	memcpy(other, device_id, sizeof(other));
	other[0] = other[0] == 'a' ? 'b' : 'a';

	harness_start(&h, true);
	h.e.tls_key_pem = "KEY";
	h.e.ak_blob = blob;
	h.e.ak_blob_size = 2;
	/* another device's enrollment: nothing written */
	b.device_id = other;
	assert_int_equal(privsep_store(h.fd, &b), -EREMCHG);
	assert_int_equal(state_read(h.dir, STATE_DEVICE_ID, false, &text, NULL), -ENOENT);
	assert_int_equal(state_read(h.dir, STATE_AK, false, &text, NULL), -ENOENT);
	/* ours */
	b.device_id = device_id;
	assert_int_equal(privsep_store(h.fd, &b), 0);
	assert_int_equal(harness_stop(&h), 0);
	assert_true(h.e.stored);
	assert_int_equal(state_read(h.dir, STATE_DEVICE_ID, false, &text, NULL), 0);
	assert_int_equal(strncmp(text, device_id, 32), 0);
	free(text);
	assert_int_equal(state_read(h.dir, STATE_TLS_KEY, false, &text, NULL), 0);
	assert_string_equal(text, "KEY");
	char *p;
	assert_int_equal(state_path(h.dir, STATE_TLS_KEY, &p), 0);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	free(p);
	assert_int_equal(state_path(h.dir, STATE_POLICY, &p), 0);
	assert_int_equal(stat(p, &sb), -1); /* size 0: the server sent no policy, no file */
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_verifies),
		cmocka_unit_test(test_status_from_tpm),
		cmocka_unit_test(test_activate),
		cmocka_unit_test(test_store),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
