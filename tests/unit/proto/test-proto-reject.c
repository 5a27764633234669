/* SPDX-License-Identifier: Apache-2.0 */
/* lib/proto decoding rules (docs/PROTOCOL.md "Decoding rules"): one rejection per rule, each with
 * its reason naming the field, and *ret left untouched; a positive control next to each. Inputs are
 * built with tests/unit/proto/cbor-build.h, independently of the encoder under test. */
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

static void expect_reject(const uint8_t *buf, size_t n, const char *expected)
{
	ProtoMessage m, saved;
	const char *reason = NULL;

	memset(&m, 0xa5, sizeof(m));
	saved = m;
	assert_int_equal(proto_decode(buf, n, &m, &reason), -EBADMSG);
	assert_non_null(reason);
	if (!streq(reason, expected))
		fail_msg("reason \"%s\", expected \"%s\"", reason, expected);
	/* nothing changed */
	assert_memory_equal(&m, &saved, sizeof(m));
}

static void expect_accept(const uint8_t *buf, size_t n, ProtoMessage *m)
{
	const char *reason = NULL;
	int r = proto_decode(buf, n, m, &reason);
	if (r != 0)
		fail_msg("decode failed: %d %s", r, strna(reason));
}

/* ---- rejections ---- */

/* {"t":"activate","secret":h'11…'(32)} plus `extra` pairs written by the caller. */
static CborBuild *activate(size_t pairs)
{
	CborBuild *c = cb_new();
	cb_map(c, 2 + pairs);
	cb_t(c, "activate");
	cb_text(c, "secret");
	cb_bytes_fill(c, 0x11, 32);
	return c;
}

static void test_reject_structure(void **state)
{
	CborBuild *c;
	ProtoMessage m = {};

	expect_reject((const uint8_t *)"", 0, "message: empty");

	/* control: the base message decodes */
	c = activate(0);
	expect_accept(c->b, c->n, &m);
	assert_int_equal(m.activate.secret.size, 32);
	proto_message_done(&m);

	/* trailing bytes after the map */
	cb_byte(c, 0x00);
	expect_reject(c->b, c->n, "message: trailing bytes");
	/* truncated: the last byte of the secret missing */
	expect_reject(c->b, c->n - 2, "activate.secret: truncated");
	free(c);

	/* unknown key */
	c = activate(1);
	cb_text(c, "extra");
	cb_uint(c, 1);
	expect_reject(c->b, c->n, "activate: unknown key");
	free(c);

	/* duplicate key */
	c = activate(1);
	cb_text(c, "secret");
	cb_bytes_fill(c, 0x22, 32);
	expect_reject(c->b, c->n, "activate.secret: duplicate key");
	free(c);

	/* duplicate "t", even with the same value */
	c = activate(1);
	cb_t(c, "activate");
	expect_reject(c->b, c->n, "t: duplicate key");
	free(c);

	/* missing key */
	c = cb_new();
	cb_map(c, 1);
	cb_t(c, "activate");
	expect_reject(c->b, c->n, "activate.secret: missing");
	free(c);

	/* "t" missing, of the wrong type, unknown */
	c = cb_new();
	cb_map(c, 1);
	cb_text(c, "secret");
	cb_bytes_fill(c, 0x11, 32);
	expect_reject(c->b, c->n, "t: missing");
	free(c);
	c = cb_new();
	cb_map(c, 1);
	cb_text(c, "t");
	cb_uint(c, 2);
	expect_reject(c->b, c->n, "t: wrong type");
	free(c);
	c = cb_new();
	cb_map(c, 1);
	cb_t(c, "reboot");
	expect_reject(c->b, c->n, "t: unknown message type");
	free(c);
	c = cb_new();
	cb_map(c, 1);
	cb_t(c, "ACK"); /* case matters */
	expect_reject(c->b, c->n, "t: unknown message type");
	free(c);

	/* non-map top level */
	c = cb_new();
	cb_array(c, 2);
	cb_t(c, "ack");
	expect_reject(c->b, c->n, "message: not a map");
	free(c);
	expect_reject((const uint8_t *)"\x63" "ack", 4, "message: not a map");

	/* a non-text key, before and after "t" */
	c = cb_new();
	cb_map(c, 2);
	cb_uint(c, 1);
	cb_uint(c, 2);
	cb_t(c, "ack");
	expect_reject(c->b, c->n, "message: key not a text string");
	free(c);
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "ack");
	cb_uint(c, 1);
	cb_uint(c, 2);
	expect_reject(c->b, c->n, "ack: key not a text string");
	free(c);

	/* ack takes nothing but "t" */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "ack");
	cb_text(c, "x");
	cb_null(c);
	expect_reject(c->b, c->n, "ack: unknown key");
	free(c);

	/* malformed CBOR: reserved additional info 28, unassigned simple value, stray break */
	expect_reject((const uint8_t *)"\xbc", 1, "message: malformed CBOR");
	expect_reject((const uint8_t *)"\xf8\x20", 2, "message: malformed CBOR");
	expect_reject((const uint8_t *)"\xff", 1, "message: indefinite length");
	/* a map announcing more pairs than there are bytes */
	expect_reject((const uint8_t *)"\xbb\xff\xff\xff\xff\xff\xff\xff\xff", 9, "message: truncated");
}

static void test_reject_indefinite(void **state)
{
	CborBuild *c;

	/* indefinite top-level map */
	c = cb_new();
	cb_byte(c, 0xbf);
	cb_t(c, "ack");
	cb_byte(c, 0xff);
	expect_reject(c->b, c->n, "message: indefinite length");
	free(c);

	/* indefinite byte string in a field: (_ h'11', h'22') */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "activate");
	cb_text(c, "secret");
	cb_byte(c, 0x5f);
	cb_bytes_fill(c, 0x11, 1);
	cb_bytes_fill(c, 0x22, 1);
	cb_byte(c, 0xff);
	expect_reject(c->b, c->n, "activate.secret: indefinite length");
	free(c);

	/* indefinite text string */
	c = cb_new();
	cb_map(c, 3);
	cb_t(c, "error");
	cb_text(c, "code");
	cb_byte(c, 0x7f);
	cb_text(c, "bad");
	cb_byte(c, 0xff);
	cb_text(c, "message");
	cb_text(c, "");
	expect_reject(c->b, c->n, "error.code: indefinite length");
	free(c);

	/* indefinite array of PCRs */
	c = cb_new();
	cb_map(c, 3);
	cb_t(c, "challenge");
	cb_text(c, "nonce");
	cb_bytes_fill(c, 0, 32);
	cb_text(c, "pcrs");
	cb_byte(c, 0x9f);
	cb_uint(c, 7);
	cb_byte(c, 0xff);
	expect_reject(c->b, c->n, "challenge.pcrs: indefinite length");
	free(c);

	/* indefinite item before "t": found while looking for the type */
	c = cb_new();
	cb_map(c, 2);
	cb_text(c, "x");
	cb_byte(c, 0x9f);
	cb_byte(c, 0xff);
	cb_t(c, "ack");
	expect_reject(c->b, c->n, "message: indefinite length");
	free(c);
}

static void test_reject_nesting(void **state)
{
	CborBuild *c = cb_new();

	/* {"x": [[[[[]]]]], "t": "ack"}: too deep for the skipper that looks for "t" */
	cb_map(c, 2);
	cb_text(c, "x");
	for (int i = 0; i < 5; i++)
		cb_array(c, 1);
	cb_array(c, 0);
	cb_t(c, "ack");
	expect_reject(c->b, c->n, "message: nesting too deep");
	free(c);

	/* 60000 nested arrays: bounded, no recursion to speak of */
	c = cb_new();
	cb_map(c, 2);
	cb_text(c, "x");
	for (int i = 0; i < 60000; i++)
		cb_array(c, 1);
	cb_uint(c, 0);
	cb_t(c, "ack");
	expect_reject(c->b, c->n, "message: nesting too deep");
	free(c);

	/* nesting within a field: the field says it is the wrong type at once */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "heartbeat");
	cb_text(c, "posture");
	cb_map(c, 1);
	cb_text(c, "uptime");
	cb_array(c, 1);
	cb_array(c, 0);
	expect_reject(c->b, c->n, "posture.uptime: wrong type");
	free(c);
}

static void test_reject_types(void **state)
{
	CborBuild *c;

	/* bytes where text is expected, and the other way round */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "activate");
	cb_text(c, "secret");
	cb_text(c, "11111111111111111111111111111111");
	expect_reject(c->b, c->n, "activate.secret: wrong type");
	free(c);

	c = cb_new();
	cb_map(c, 3);
	cb_t(c, "error");
	cb_text(c, "code");
	cb_bytes(c, "bad", 3);
	cb_text(c, "message");
	cb_text(c, "m");
	expect_reject(c->b, c->n, "error.code: wrong type");
	free(c);

	/* a tagged byte string is not a byte string */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "activate");
	cb_text(c, "secret");
	cb_tag(c, 24);
	cb_bytes_fill(c, 0x11, 32);
	expect_reject(c->b, c->n, "activate.secret: wrong type");
	free(c);

	/* negative, float, bool, undefined and null for a uint */
	static const struct {
		const char *b;
		size_t n;
	} bad_uints[] = {{"\x20", 1}, {"\xf9\x3c\x00", 3}, {"\xf5", 1}, {"\xf7", 1}, {"\xf6", 1}};
	for (size_t i = 0; i < ELEMENTSOF(bad_uints); i++) {
		c = cb_new();
		cb_map(c, 2);
		cb_t(c, "heartbeat");
		cb_text(c, "posture");
		cb_map(c, 1);
		cb_text(c, "epoch");
		cb_raw(c, bad_uints[i].b, bad_uints[i].n);
		expect_reject(c->b, c->n, "posture.epoch: wrong type");
		free(c);
	}

	/* uint where a bool is expected */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "heartbeat");
	cb_text(c, "posture");
	cb_map(c, 1);
	cb_text(c, "locked");
	cb_uint(c, 1);
	expect_reject(c->b, c->n, "posture.locked: wrong type");
	free(c);

	/* posture: unknown and duplicate keys, not a map */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "heartbeat");
	cb_text(c, "posture");
	cb_map(c, 1);
	cb_text(c, "battery");
	cb_uint(c, 80);
	expect_reject(c->b, c->n, "posture: unknown key");
	free(c);
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "heartbeat");
	cb_text(c, "posture");
	cb_map(c, 2);
	cb_text(c, "uptime");
	cb_uint(c, 1);
	cb_text(c, "uptime");
	cb_uint(c, 2);
	expect_reject(c->b, c->n, "posture.uptime: duplicate key");
	free(c);
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "heartbeat");
	cb_text(c, "posture");
	cb_array(c, 0);
	expect_reject(c->b, c->n, "heartbeat.posture: wrong type");
	free(c);

	/* policy: text or null, nothing else */
	c = cb_new();
	cb_map(c, 7);
	cb_t(c, "enrolled");
	cb_text(c, "device_id");
	cb_text(c, "d");
	cb_text(c, "device_cert");
	cb_bytes(c, "", 0);
	cb_text(c, "ca_cert");
	cb_bytes(c, "", 0);
	cb_text(c, "policy_key");
	cb_bytes(c, "", 0);
	cb_text(c, "escrow_key");
	cb_bytes(c, "", 0);
	cb_text(c, "policy");
	cb_bool(c, 0);
	expect_reject(c->b, c->n, "enrolled.policy: wrong type");
	c->n--;
	cb_null(c);
	{
		ProtoMessage m = {};
		expect_accept(c->b, c->n, &m);
		assert_null(m.enrolled.policy);
		proto_message_done(&m);
	}
	free(c);

	/* attest-result: state outside its two values; heartbeat beyond uint32 */
	c = cb_new();
	cb_map(c, 4);
	cb_t(c, "attest-result");
	cb_text(c, "state");
	cb_text(c, "maybe");
	cb_text(c, "reason");
	cb_text(c, "");
	cb_text(c, "heartbeat");
	cb_uint(c, 60);
	expect_reject(c->b, c->n, "attest-result.state: bad value");
	free(c);
	c = cb_new();
	cb_map(c, 4);
	cb_t(c, "attest-result");
	cb_text(c, "state");
	cb_text(c, "trusted");
	cb_text(c, "reason");
	cb_text(c, "");
	cb_text(c, "heartbeat");
	cb_uint(c, UINT64_C(1) << 32);
	expect_reject(c->b, c->n, "attest-result.heartbeat: bad value");
	free(c);
}

/* attest with the given sizes; pcr_key/pcr_len for its one PCR entry */
static CborBuild *attest(size_t sig_len, uint64_t pcr_key, size_t pcr_len, size_t log_len, size_t quote_len)
{
	CborBuild *c = cb_new();
	cb_map(c, 6);
	cb_t(c, "attest");
	cb_text(c, "quote");
	cb_bytes_fill(c, 0x51, quote_len);
	cb_text(c, "signature");
	cb_bytes_fill(c, 0x52, sig_len);
	cb_text(c, "pcrs");
	cb_map(c, 1);
	cb_uint(c, pcr_key);
	cb_bytes_fill(c, 0x53, pcr_len);
	cb_text(c, "event_log");
	cb_bytes_fill(c, 0x54, log_len);
	cb_text(c, "posture");
	cb_map(c, 0);
	return c;
}

static void test_reject_sizes(void **state)
{
	CborBuild *c;
	ProtoMessage m = {};

	/* control */
	c = attest(64, 23, 32, 10, 100);
	expect_accept(c->b, c->n, &m);
	assert_int_equal(m.attest.pcrs.mask, 1u << 23);
	proto_message_done(&m);
	free(c);

	c = attest(63, 7, 32, 10, 100);
	expect_reject(c->b, c->n, "attest.signature: wrong size");
	free(c);
	c = attest(65, 7, 32, 10, 100);
	expect_reject(c->b, c->n, "attest.signature: wrong size");
	free(c);
	c = attest(64, 7, 31, 10, 100);
	expect_reject(c->b, c->n, "attest.pcrs: wrong size");
	free(c);
	c = attest(64, 7, 33, 10, 100);
	expect_reject(c->b, c->n, "attest.pcrs: wrong size");
	free(c);
	/* PCR number 24 */
	c = attest(64, 24, 32, 10, 100);
	expect_reject(c->b, c->n, "attest.pcrs: PCR number not 0-23");
	free(c);
	c = attest(64, UINT64_MAX, 32, 10, 100);
	expect_reject(c->b, c->n, "attest.pcrs: PCR number not 0-23");
	free(c);

	/* event log at and beyond its bound, blob beyond its bound */
	c = attest(64, 7, 32, PROTO_EVENT_LOG_MAX, 100);
	expect_accept(c->b, c->n, &m);
	assert_int_equal(m.attest.event_log.size, PROTO_EVENT_LOG_MAX);
	proto_message_done(&m);
	free(c);
	c = attest(64, 7, 32, PROTO_EVENT_LOG_MAX + 1, 100);
	expect_reject(c->b, c->n, "attest.event_log: wrong size");
	free(c);
	c = attest(64, 7, 32, 0, PROTO_BLOB_MAX);
	expect_accept(c->b, c->n, &m);
	proto_message_done(&m);
	free(c);
	c = attest(64, 7, 32, 0, PROTO_BLOB_MAX + 1);
	expect_reject(c->b, c->n, "attest.quote: wrong size");
	free(c);

	/* whole payload beyond PROTO_FRAME_MAX, though each field is within its own bound */
	c = attest(64, 7, 32, PROTO_EVENT_LOG_MAX, PROTO_BLOB_MAX);
	assert_true(c->n > PROTO_FRAME_MAX);
	expect_reject(c->b, c->n, "message: larger than PROTO_FRAME_MAX");
	free(c);

	/* nonce of 31 and 33 bytes */
	for (size_t len = 31; len <= 33; len += 2) {
		c = cb_new();
		cb_map(c, 3);
		cb_t(c, "challenge");
		cb_text(c, "nonce");
		cb_bytes_fill(c, 0, len);
		cb_text(c, "pcrs");
		cb_array(c, 0);
		expect_reject(c->b, c->n, "challenge.nonce: wrong size");
		free(c);
	}

	/* challenge PCR list: 24, duplicates, more than 24 entries */
	static const uint64_t lists[][3] = {{7, 24, 0}, {7, 7, 0}, {0, 23, 0}};
	static const char *const reasons[] = {"challenge.pcrs: PCR number not 0-23",
					      "challenge.pcrs: duplicate PCR", NULL};
	for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
		c = cb_new();
		cb_map(c, 3);
		cb_t(c, "challenge");
		cb_text(c, "nonce");
		cb_bytes_fill(c, 0, 32);
		cb_text(c, "pcrs");
		cb_array(c, 2);
		cb_uint(c, lists[i][0]);
		cb_uint(c, lists[i][1]);
		if (reasons[i])
			expect_reject(c->b, c->n, reasons[i]);
		else {
			expect_accept(c->b, c->n, &m);
			assert_int_equal(m.challenge.pcr_mask, 1u | 1u << 23);
			proto_message_done(&m);
		}
		free(c);
	}
	c = cb_new();
	cb_map(c, 3);
	cb_t(c, "challenge");
	cb_text(c, "nonce");
	cb_bytes_fill(c, 0, 32);
	cb_text(c, "pcrs");
	cb_array(c, 25);
	for (int i = 0; i < 25; i++)
		cb_uint(c, i);
	expect_reject(c->b, c->n, "challenge.pcrs: wrong size");
	free(c);

	/* enroll PCR map with a duplicate PCR */
	c = cb_new();
	cb_map(c, 8);
	cb_t(c, "enroll");
	cb_text(c, "token");
	cb_text(c, "t");
	cb_text(c, "ek_cert");
	cb_bytes(c, "", 0);
	cb_text(c, "ak_public");
	cb_bytes(c, "", 0);
	cb_text(c, "tls_public");
	cb_bytes(c, "", 0);
	cb_text(c, "hostname");
	cb_text(c, "h");
	cb_text(c, "epoch");
	cb_uint(c, 0);
	cb_text(c, "pcrs");
	cb_map(c, 2);
	cb_uint(c, 7);
	cb_bytes_fill(c, 1, 32);
	cb_uint(c, 7);
	cb_bytes_fill(c, 2, 32);
	expect_reject(c->b, c->n, "enroll.pcrs: duplicate PCR");
	free(c);

	/* activate.secret: at most a TPM2B_DIGEST */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "activate");
	cb_text(c, "secret");
	cb_bytes_fill(c, 1, PROTO_ACTIVATE_SECRET_MAX + 1);
	expect_reject(c->b, c->n, "activate.secret: wrong size");
	free(c);

	/* command.cose: not empty */
	c = cb_new();
	cb_map(c, 2);
	cb_t(c, "command");
	cb_text(c, "cose");
	cb_bytes(c, "", 0);
	expect_reject(c->b, c->n, "command.cose: wrong size");
	free(c);
}

/* {"t":"error","code":<code bytes>,"message":"m"} */
static CborBuild *error_with_code(const char *code, size_t n)
{
	CborBuild *c = cb_new();
	cb_map(c, 3);
	cb_t(c, "error");
	cb_text(c, "code");
	cb_textn(c, code, n);
	cb_text(c, "message");
	cb_text(c, "m");
	return c;
}

static void test_reject_text(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		const char *reason;
	} cases[] = {
		{"a\0b", 3, "error.code: contains NUL"},
		{"\0", 1, "error.code: contains NUL"},
		{"\xc0\xaf", 2, "error.code: invalid UTF-8"},         /* overlong '/' */
		{"\xe0\x80\xaf", 3, "error.code: invalid UTF-8"},     /* overlong, 3 bytes */
		{"\xed\xa0\x80", 3, "error.code: invalid UTF-8"},     /* surrogate U+D800 */
		{"\xf4\x90\x80\x80", 4, "error.code: invalid UTF-8"}, /* U+110000 */
		{"\xe2\x82", 2, "error.code: invalid UTF-8"},         /* truncated sequence */
		{"\x80", 1, "error.code: invalid UTF-8"},             /* lone continuation */
		{"\xff", 1, "error.code: invalid UTF-8"},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92", 14, NULL}, /* valid: é € 🔒 */
	};
	CborBuild *c;
	ProtoMessage m = {};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		c = error_with_code(cases[i].s, cases[i].n);
		if (cases[i].reason)
			expect_reject(c->b, c->n, cases[i].reason);
		else {
			expect_accept(c->b, c->n, &m);
			assert_int_equal(strlen(m.error.code), cases[i].n);
			proto_message_done(&m);
		}
		free(c);
	}

	/* PROTO_TEXT_MAX is accepted, one more byte is not */
	c = cb_new();
	cb_map(c, 3);
	cb_t(c, "error");
	cb_text(c, "code");
	cb_text(c, "c");
	cb_text(c, "message");
	cb_text_fill(c, 'm', PROTO_TEXT_MAX);
	expect_accept(c->b, c->n, &m);
	assert_int_equal(strlen(m.error.message), PROTO_TEXT_MAX);
	proto_message_done(&m);
	free(c);
	c = cb_new();
	cb_map(c, 3);
	cb_t(c, "error");
	cb_text(c, "code");
	cb_text(c, "c");
	cb_text(c, "message");
	cb_text_fill(c, 'm', PROTO_TEXT_MAX + 1);
	expect_reject(c->b, c->n, "error.message: wrong size");
	free(c);

	/* escrow.blob is bounded like a blob, not like a label */
	c = cb_new();
	cb_map(c, 3);
	cb_t(c, "escrow");
	cb_text(c, "luks_uuid");
	cb_text(c, "u");
	cb_text(c, "blob");
	cb_text_fill(c, 'b', PROTO_BLOB_MAX);
	expect_accept(c->b, c->n, &m);
	proto_message_done(&m);
	c->n -= PROTO_BLOB_MAX + 3;
	cb_text_fill(c, 'b', PROTO_BLOB_MAX + 1);
	expect_reject(c->b, c->n, "escrow.blob: wrong size");
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reject_structure),
		cmocka_unit_test(test_reject_indefinite),
		cmocka_unit_test(test_reject_nesting),
		cmocka_unit_test(test_reject_types),
		cmocka_unit_test(test_reject_sizes),
		cmocka_unit_test(test_reject_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
