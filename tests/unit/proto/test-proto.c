/* SPDX-License-Identifier: Apache-2.0 */
/* lib/proto messages: round trip of every type with all fields, hand-checked encodings, framing,
 * encoder refusals. The decoder's rejections are in test-proto-reject.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/macro.h"
#include "proto/proto.h"
#include "cbor-build.h"

/* ---- helpers ---- */

static uint8_t blob_a[PROTO_BLOB_MAX], blob_b[PROTO_BLOB_MAX], event_log[PROTO_EVENT_LOG_MAX];

static ProtoBytes bytes_of(const uint8_t *p, size_t n)
{
	return (ProtoBytes){.data = p, .size = n};
}

static void fill_pcrs(ProtoPcrs *p, uint32_t mask)
{
	p->mask = mask;
	for (unsigned i = 0; i < PROTO_PCRS_MAX; i++)
		memset(p->values[i], (mask & (1u << i)) ? 0x10 + i : 0, 32);
}

static ProtoPosture full_posture(void)
{
	return (ProtoPosture){
		.image_version = "trustpc-image 2024.3",
		.agent_version = "0.1.0",
		.epoch = 7,
		.has_epoch = true,
		.locked = true,
		.disk_encrypted = true,
		.uptime = UINT64_C(1) << 40,
		.policy_version = 3,
	};
}

/* Encode, find the frame with proto_frame_size, decode, compare. */
static void round_trip(const ProtoMessage *in, ProtoMessage *out)
{
	_cleanup_free_ uint8_t *frame = NULL;
	const char *reason = NULL;
	size_t size = 0, payload = 0;

	assert_int_equal(proto_encode(in, &frame, &size), 0);
	assert_true(size > 4);
	assert_int_equal(proto_frame_size(frame, size, &payload), (int)(size - 4));
	assert_int_equal(payload, size - 4);
	assert_int_equal(proto_decode(frame + 4, payload, out, &reason), 0);
	assert_null(reason);
	assert_int_equal(out->type, in->type);
	assert_true(proto_message_equal(in, out));
	/* the decoded message owns its bytes: nothing points into the frame we free now */
	assert_non_null(out->_storage);
}

static void expect_accept(const uint8_t *buf, size_t n, ProtoMessage *m)
{
	const char *reason = NULL;
	int r = proto_decode(buf, n, m, &reason);
	if (r != 0)
		fail_msg("decode failed: %d %s", r, strna(reason));
}

/* ---- round trips ---- */

static void test_round_trip_all_types(void **state)
{
	char long_text[PROTO_TEXT_MAX + 1];
	ProtoMessage in[_PROTO_TYPE_MAX] = {};
	ProtoPcrs pcrs;

	for (size_t i = 0; i < sizeof(blob_a); i++) {
		blob_a[i] = (uint8_t)(i * 7 + 1);
		blob_b[i] = (uint8_t)(i * 13 + 5);
	}
	memset(long_text, 'x', PROTO_TEXT_MAX);
	long_text[PROTO_TEXT_MAX] = 0;
	fill_pcrs(&pcrs, (1u << 0) | (1u << 7) | (1u << 11) | (1u << 23));

	in[PROTO_ERROR] = (ProtoMessage){.type = PROTO_ERROR, .error = {"bad-token", "token expired at 12:00 — ask the helpdesk"}};
	in[PROTO_ENROLL] = (ProtoMessage){.type = PROTO_ENROLL,
					  .enroll = {
						  .token = "tok-3f9a1c",
						  .ek_cert = bytes_of(blob_a, 812),
						  .ak_public = bytes_of(blob_b, 90),
						  .tls_public = bytes_of(blob_a + 5, 91),
						  .hostname = "laptop-0042.corp.example",
						  .pcrs = pcrs,
						  .epoch = UINT64_MAX,
					  }};
	in[PROTO_CREDENTIAL] = (ProtoMessage){.type = PROTO_CREDENTIAL,
					      .credential = {bytes_of(blob_a, 70), bytes_of(blob_b, 68)}};
	in[PROTO_ACTIVATE] = (ProtoMessage){.type = PROTO_ACTIVATE, .activate = {bytes_of(blob_a, 32)}};
	in[PROTO_ENROLLED] = (ProtoMessage){.type = PROTO_ENROLLED,
					    .enrolled = {
						    .device_id = "0123456789abcdef0123456789abcdef",
						    .device_cert = bytes_of(blob_a, PROTO_BLOB_MAX),
						    .ca_cert = bytes_of(blob_b, 500),
						    .policy_key = bytes_of(blob_a + 1, 91),
						    .escrow_key = bytes_of(blob_b + 1, 91),
						    .policy = "{\"v\":1,\"pcrs\":{\"7\":\"00\"}}",
					    }};
	in[PROTO_CHALLENGE].type = PROTO_CHALLENGE;
	memset(in[PROTO_CHALLENGE].challenge.nonce, 0x5c, PROTO_NONCE_SIZE);
	in[PROTO_CHALLENGE].challenge.pcr_mask = (1u << 7) | (1u << 11) | (1u << 14) | (1u << 23) | 1u;
	in[PROTO_ATTEST] = (ProtoMessage){.type = PROTO_ATTEST,
					  .attest = {
						  .quote = bytes_of(blob_a, 145),
						  .signature = bytes_of(blob_b, 64),
						  .pcrs = pcrs,
						  .event_log = bytes_of(event_log, 30000),
						  .posture = full_posture(),
					  }};
	in[PROTO_ATTEST_RESULT] = (ProtoMessage){.type = PROTO_ATTEST_RESULT,
						 .attest_result = {"quarantined", long_text, UINT32_MAX}};
	in[PROTO_HEARTBEAT] = (ProtoMessage){.type = PROTO_HEARTBEAT, .heartbeat = {full_posture()}};
	in[PROTO_ACK].type = PROTO_ACK;
	in[PROTO_ESCROW] = (ProtoMessage){.type = PROTO_ESCROW,
					  .escrow = {"6f1c1b4e-2d3a-4b5c-8d9e-0f1a2b3c4d5e", "{\"v\":1,\"alg\":\"x\"}"}};
	in[PROTO_COMMAND] = (ProtoMessage){.type = PROTO_COMMAND, .command = {bytes_of(blob_a, 200)}};
	in[PROTO_RESULT] = (ProtoMessage){.type = PROTO_RESULT, .result = {bytes_of(blob_b, PROTO_BLOB_MAX)}};

	for (ProtoType t = PROTO_ERROR; t < _PROTO_TYPE_MAX; t++) {
		ProtoMessage out = {};

		assert_non_null(proto_type_name(t));
		round_trip(&in[t], &out);
		/* a comparison that cannot fail proves nothing: perturb one thing */
		if (t != PROTO_ACK) {
			ProtoMessage other = out;
			other.type = t == PROTO_ERROR ? PROTO_ACK : PROTO_ERROR;
			assert_false(proto_message_equal(&in[t], &other));
		}
		proto_message_done(&out);
		assert_null(out._storage);
		proto_message_done(&out); /* twice is harmless */
	}

	/* spot checks beyond proto_message_equal */
	{
		ProtoMessage out = {};
		round_trip(&in[PROTO_ENROLL], &out);
		assert_string_equal(out.enroll.hostname, "laptop-0042.corp.example");
		assert_int_equal(out.enroll.ek_cert.size, 812);
		assert_memory_equal(out.enroll.ek_cert.data, blob_a, 812);
		assert_int_equal(out.enroll.pcrs.mask, pcrs.mask);
		assert_memory_equal(out.enroll.pcrs.values[23], pcrs.values[23], 32);
		assert_true(out.enroll.epoch == UINT64_MAX);
		/* perturbing one PCR byte makes them differ */
		out.enroll.pcrs.values[11][31] ^= 1;
		assert_false(proto_message_equal(&in[PROTO_ENROLL], &out));
		proto_message_done(&out);

		round_trip(&in[PROTO_ATTEST], &out);
		assert_int_equal(out.attest.posture.uptime, UINT64_C(1) << 40);
		assert_true(out.attest.posture.has_epoch);
		assert_string_equal(out.attest.posture.agent_version, "0.1.0");
		proto_message_done(&out);

		round_trip(&in[PROTO_CHALLENGE], &out);
		assert_int_equal(out.challenge.pcr_mask, in[PROTO_CHALLENGE].challenge.pcr_mask);
		assert_memory_equal(out.challenge.nonce, in[PROTO_CHALLENGE].challenge.nonce, 32);
		proto_message_done(&out);
	}
}

/* Optional things absent: posture without versions and epoch, policy null, empty event log and
 * PCR map, empty strings. */
static void test_round_trip_minimal(void **state)
{
	ProtoMessage in = {.type = PROTO_ATTEST,
			   .attest = {.quote = bytes_of(blob_a, 1), .signature = bytes_of(blob_b, 64)}};
	ProtoMessage out = {};

	round_trip(&in, &out);
	assert_null(out.attest.posture.image_version);
	assert_null(out.attest.posture.agent_version);
	assert_false(out.attest.posture.has_epoch);
	assert_int_equal(out.attest.event_log.size, 0);
	assert_int_equal(out.attest.pcrs.mask, 0);
	proto_message_done(&out);

	in = (ProtoMessage){.type = PROTO_ENROLLED, .enrolled = {.device_id = "", .policy = NULL}};
	round_trip(&in, &out);
	assert_null(out.enrolled.policy);
	assert_string_equal(out.enrolled.device_id, "");
	proto_message_done(&out);

	in = (ProtoMessage){.type = PROTO_HEARTBEAT};
	round_trip(&in, &out);
	proto_message_done(&out);
}

/* The encoder's bytes, checked against encodings written by hand from RFC 8949. */
static void test_encoding_by_hand(void **state)
{
	static const uint8_t ack[] = {0x00, 0x00, 0x00, 0x07, 0xa1, 0x61, 't', 0x63, 'a', 'c', 'k'};
	_cleanup_free_ uint8_t *frame = NULL, *frame2 = NULL;
	ProtoMessage m = {.type = PROTO_ACK};
	size_t n;
	CborBuild *c = cb_new();

	assert_int_equal(proto_encode(&m, &frame, &n), 0);
	assert_int_equal(n, sizeof(ack));
	assert_memory_equal(frame, ack, sizeof(ack));

	/* {"t":"challenge","nonce":h'00…',"pcrs":[0,7,23]} */
	m = (ProtoMessage){.type = PROTO_CHALLENGE, .challenge = {.pcr_mask = 1u | 1u << 7 | 1u << 23}};
	memset(m.challenge.nonce, 0xab, 32);
	cb_map(c, 3);
	cb_t(c, "challenge");
	cb_text(c, "nonce");
	cb_bytes(c, m.challenge.nonce, 32);
	cb_text(c, "pcrs");
	cb_array(c, 3);
	cb_uint(c, 0);
	cb_uint(c, 7);
	cb_uint(c, 23);
	assert_int_equal(proto_encode(&m, &frame2, &n), 0);
	assert_int_equal(n, c->n + 4);
	assert_memory_equal(frame2 + 4, c->b, c->n);
	/* 23 is the last one-byte uint, 0x17 */
	assert_int_equal(frame2[n - 1], 0x17);
	free(c);
}

/* A hand-built message with keys in another order than ours, "t" last, decodes. */
static void test_decode_other_order(void **state)
{
	CborBuild *c = cb_new();
	ProtoMessage m = {};

	cb_map(c, 4);
	cb_text(c, "heartbeat");
	cb_uint(c, 300);
	cb_text(c, "reason");
	cb_text(c, "");
	cb_text(c, "state");
	cb_text(c, "trusted");
	cb_t(c, "attest-result");
	expect_accept(c->b, c->n, &m);
	assert_int_equal(m.type, PROTO_ATTEST_RESULT);
	assert_string_equal(m.attest_result.state, "trusted");
	assert_int_equal(m.attest_result.heartbeat, 300);
	proto_message_done(&m);
	free(c);
}

/* ---- framing ---- */

static void test_frame_size(void **state)
{
	uint8_t h[5] = {0x00, 0x00, 0x01, 0x00, 0xa0};
	size_t p = 12345;

	/* incomplete header: 0, output untouched */
	for (size_t n = 0; n < 4; n++) {
		assert_int_equal(proto_frame_size(h, n, &p), 0);
		assert_int_equal(p, 12345);
	}
	assert_int_equal(proto_frame_size(NULL, 0, &p), 0);
	assert_int_equal(proto_frame_size(h, 4, &p), 256);
	assert_int_equal(p, 256);
	assert_int_equal(proto_frame_size(h, 5, NULL), 256);

	memcpy(h, (uint8_t[]){0, 0, 0, 0}, 4);
	p = 1;
	assert_int_equal(proto_frame_size(h, 4, &p), -EMSGSIZE);
	assert_int_equal(p, 1);
	memcpy(h, (uint8_t[]){0, 1, 0, 0}, 4); /* 65536: the largest */
	assert_int_equal(proto_frame_size(h, 4, &p), PROTO_FRAME_MAX);
	memcpy(h, (uint8_t[]){0, 1, 0, 1}, 4);
	p = 1;
	assert_int_equal(proto_frame_size(h, 4, &p), -EMSGSIZE);
	assert_int_equal(p, 1);
	memcpy(h, (uint8_t[]){0xff, 0xff, 0xff, 0xff}, 4);
	assert_int_equal(proto_frame_size(h, 4, &p), -EMSGSIZE);
	memcpy(h, (uint8_t[]){0x00, 0x00, 0x00, 0x01}, 4);
	assert_int_equal(proto_frame_size(h, 4, &p), 1);
}

/* ---- encoder refusals ---- */

static void test_encode_refuses(void **state)
{
	static char too_long[PROTO_TEXT_MAX + 2];
	uint8_t *frame = NULL;
	size_t n = 0;
	ProtoMessage m;

	memset(too_long, 'a', PROTO_TEXT_MAX + 1);

#define REFUSE(err, ...)                                                                             \
	do {                                                                                         \
		m = (ProtoMessage){__VA_ARGS__};                                                     \
		assert_int_equal(proto_encode(&m, &frame, &n), err);                                 \
		assert_null(frame);                                                                  \
	} while (0)

	REFUSE(-EINVAL, .type = 0);
	REFUSE(-EINVAL, .type = _PROTO_TYPE_MAX);
	REFUSE(-EINVAL, .type = PROTO_ERROR, .error = {NULL, "m"});
	REFUSE(-EINVAL, .type = PROTO_ERROR, .error = {"c", too_long});
	REFUSE(-EINVAL, .type = PROTO_ERROR, .error = {"\xc0\xaf", "m"});
	REFUSE(-EINVAL, .type = PROTO_ATTEST, .attest = {.signature = bytes_of(blob_a, 63)});
	REFUSE(-EINVAL, .type = PROTO_ATTEST, .attest = {.signature = {NULL, 64}});
	REFUSE(-EINVAL, .type = PROTO_ATTEST,
	       .attest = {.signature = bytes_of(blob_a, 64), .pcrs = {.mask = 1u << 24}});
	REFUSE(-EINVAL, .type = PROTO_CHALLENGE, .challenge = {.pcr_mask = 1u << 31});
	REFUSE(-EINVAL, .type = PROTO_ATTEST_RESULT, .attest_result = {"fine", "", 1});
	REFUSE(-EINVAL, .type = PROTO_ACTIVATE, .activate = {bytes_of(blob_a, PROTO_ACTIVATE_SECRET_MAX + 1)});
	REFUSE(-EINVAL, .type = PROTO_COMMAND, .command = {bytes_of(blob_a, 0)});
	/* every field within its bound, the whole beyond PROTO_FRAME_MAX */
	REFUSE(-EMSGSIZE, .type = PROTO_ATTEST,
	       .attest = {.quote = bytes_of(blob_a, PROTO_BLOB_MAX), .signature = bytes_of(blob_b, 64),
			  .event_log = bytes_of(event_log, PROTO_EVENT_LOG_MAX)});
#undef REFUSE

	/* and what fits exactly is fine */
	m = (ProtoMessage){.type = PROTO_ATTEST,
			   .attest = {.quote = bytes_of(blob_a, PROTO_BLOB_MAX - 200),
				      .signature = bytes_of(blob_b, 64),
				      .event_log = bytes_of(event_log, PROTO_EVENT_LOG_MAX)}};
	assert_int_equal(proto_encode(&m, &frame, &n), 0);
	assert_true(n - 4 <= PROTO_FRAME_MAX);
	free(frame);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_all_types),
		cmocka_unit_test(test_round_trip_minimal),
		cmocka_unit_test(test_encoding_by_hand),
		cmocka_unit_test(test_decode_other_order),
		cmocka_unit_test(test_frame_size),
		cmocka_unit_test(test_encode_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
