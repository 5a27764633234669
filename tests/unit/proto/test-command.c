/* SPDX-License-Identifier: Apache-2.0 */
/* lib/proto signed commands and results (command.h): sign → verify for every type, every
 * rejection with its errno and reason (and the output untouched), the verification order, the
 * device policy document, and the result message's optional quote fields (proto.h). Hand-built
 * payloads come from cbor-build.h (written from RFC 8949, not from lib/proto), signed with
 * cose_sign1_sign, so that each test changes one thing of an otherwise valid command. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic/macro.h"
#include "crypto/crypto.h"
#include "proto/command.h"
#include "proto/cose.h"
#include "proto/proto.h"
#include "cbor-build.h"

#define DEV "00112233445566778899aabbccddeeff"
#define DEV2 "ffeeddccbbaa99887766554433221100"
#define CID "0123456789abcdef0123456789abcdef"
#define NOW UINT64_C(1800000000)

static EcKey *cmd_key, *cmd_pub, *dev_key, *other_key;

static int setup(void **state)
{
	_cleanup_free_ uint8_t *spki = NULL;
	size_t n;

	if (ec_key_generate(&cmd_key) < 0 || ec_key_generate(&dev_key) < 0 ||
	    ec_key_generate(&other_key) < 0 || ec_key_public_spki_der(cmd_key, &spki, &n) < 0 ||
	    ec_key_from_spki_der(spki, n, &cmd_pub) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	cmd_key = ec_key_free(cmd_key);
	cmd_pub = ec_key_free(cmd_pub);
	dev_key = ec_key_free(dev_key);
	other_key = ec_key_free(other_key);
	return 0;
}

static Command lock_command(void)
{
	return (Command){
	    .id = CID,
	    .device_id = DEV,
	    .seq = 7,
	    .iat = NOW - 10,
	    .exp = NOW + 600,
	    .type = COMMAND_LOCK,
	    .issuer = (char *)"alice",
	    .args.lock = {.reason = (char *)"laptop stolen", .poweroff = true},
	};
}

static void sign_ok(const EcKey *k, Command *c, uint8_t **cose, size_t *n)
{
	int r = command_sign(k, c, cose, n);
	if (r != 0)
		fail_msg("command_sign: %d", r);
}

/* Verifies and expects err with reason; the output must be untouched (a sentinel) except on
 * -ESTALE. */
static void expect_refused(const EcKey *k, const char *dev, uint64_t last, uint64_t now, const uint8_t *cose,
			   size_t n, int err, const char *reason_expected)
{
	Command out;
	const char *reason = NULL;
	int r;

	memset(&out, 'X', sizeof(out));
	r = command_verify(k, dev, last, now, cose, n, &out, &reason);
	if (r != err)
		fail_msg("command_verify: %d (%s), expected %d (%s)", r, strna(reason), err,
			 reason_expected);
	if (!reason || !streq(reason, reason_expected))
		fail_msg("reason \"%s\", expected \"%s\"", strna(reason), reason_expected);
	assert_int_equal(out.id[0], 'X');
	assert_int_equal(out.seq, 0x5858585858585858ULL);
}

/* ---- round trips ---- */

/* member by member: the padding of a struct is not part of its value */
static void assert_policy_equal(const DevicePolicy *a, const DevicePolicy *b)
{
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->heartbeat, b->heartbeat);
	assert_int_equal(a->offline_lease, b->offline_lease);
	assert_int_equal(a->usb_storage, b->usb_storage);
	assert_int_equal(a->screen_lock, b->screen_lock);
}

static void roundtrip(Command *c)
{
	_cleanup_free_ uint8_t *cose = NULL;
	_cleanup_(command_done) Command v = {};
	const char *reason = NULL;
	size_t n;
	int r;

	sign_ok(cmd_key, c, &cose, &n);
	assert_true(n <= COSE_MAX_SIZE);
	/* the device holds only the public key */
	r = command_verify(cmd_pub, DEV, c->seq - 1, NOW, cose, n, &v, &reason);
	if (r != 0)
		fail_msg("verify %s: %d %s", command_type_name(c->type), r, strna(reason));
	assert_string_equal(v.id, c->id);
	assert_string_equal(v.device_id, c->device_id);
	assert_int_equal(v.seq, c->seq);
	assert_int_equal(v.iat, c->iat);
	assert_int_equal(v.exp, c->exp);
	assert_int_equal(v.type, c->type);
	assert_string_equal(v.issuer, c->issuer);
	switch (c->type) {
	case COMMAND_LOCK:
		assert_string_equal(v.args.lock.reason, c->args.lock.reason);
		assert_int_equal(v.args.lock.poweroff, c->args.lock.poweroff);
		break;
	case COMMAND_UNLOCK:
		assert_string_equal(v.args.unlock.policy, c->args.unlock.policy);
		break;
	case COMMAND_WIPE:
		assert_string_equal(v.args.wipe.class_name, c->args.wipe.class_name);
		break;
	case COMMAND_POLICY:
		assert_policy_equal(&v.args.policy, &c->args.policy);
		break;
	}
}

static void test_roundtrip(void **state)
{
	Command c = lock_command();
	char big[PROTO_TEXT_MAX + 1];

	roundtrip(&c);
	c.args.lock.poweroff = false;
	memset(big, 'r', PROTO_TEXT_MAX);
	big[PROTO_TEXT_MAX] = 0;
	c.args.lock.reason = big; /* the bound itself */
	roundtrip(&c);
	c.args.lock.reason = (char *)""; /* a lock needs no reason */
	roundtrip(&c);

	c = lock_command();
	c.type = COMMAND_UNLOCK;
	c.args.unlock.policy = (char *)"{\"v\":1,\"epoch\":3,\"sig\":\"…\"}";
	roundtrip(&c);

	c = lock_command();
	c.type = COMMAND_WIPE;
	c.args.wipe.class_name = (char *)"corporate";
	roundtrip(&c);
	c.args.wipe.class_name = (char *)"all";
	roundtrip(&c);

	c = lock_command();
	c.type = COMMAND_POLICY;
	c.args.policy = (DevicePolicy){.version = 3,
				       .heartbeat = 60,
				       .offline_lease = 72 * 3600,
				       .usb_storage = true,
				       .screen_lock = 300};
	roundtrip(&c);
	c.args.policy = (DevicePolicy){
	    .version = INT64_MAX, .heartbeat = UINT32_MAX, .offline_lease = 0, .screen_lock = UINT32_MAX};
	roundtrip(&c);

	c = lock_command();
	c.seq = UINT64_MAX;
	c.exp = UINT64_MAX;
	roundtrip(&c);
}

static void test_random_id(void **state)
{
	_cleanup_free_ uint8_t *cose1 = NULL, *cose2 = NULL;
	Command a = lock_command(), b = lock_command();
	size_t n1, n2;

	a.id[0] = 0;
	b.id[0] = 0;
	sign_ok(cmd_key, &a, &cose1, &n1);
	sign_ok(cmd_key, &b, &cose2, &n2);
	assert_int_equal(strlen(a.id), 32);
	assert_int_equal(strspn(a.id, "0123456789abcdef"), 32);
	assert_string_not_equal(a.id, b.id);
}

static void test_sign_refuses(void **state)
{
	static char policy_big[PROTO_BLOB_MAX + 2];
	uint8_t *cose = (uint8_t *)0x1;
	size_t n = 777;
	Command c;

#define REFUSE(mutate, err)                                                                                 \
	do {                                                                                                \
		c = lock_command();                                                                         \
		mutate;                                                                                     \
		assert_int_equal(command_sign(cmd_key, &c, &cose, &n), err);                                \
		assert_ptr_equal(cose, (uint8_t *)0x1);                                                     \
		assert_int_equal(n, 777);                                                                   \
	} while (0)

	REFUSE(strcpy(c.device_id, "00112233445566778899AABBCCDDEEFF"), -EINVAL);
	REFUSE(strcpy(c.device_id, "0011"), -EINVAL);
	REFUSE(strcpy(c.id, "0123456789ABCDEF0123456789ABCDEF"), -EINVAL);
	REFUSE(c.seq = 0, -EINVAL);
	REFUSE(c.exp = c.iat, -EINVAL);
	REFUSE(c.type = 0, -EINVAL);
	REFUSE(c.type = 9, -EINVAL);
	REFUSE(c.issuer = NULL, -EINVAL);
	REFUSE(c.issuer = (char *)"", -EINVAL);
	REFUSE(c.issuer = (char *)"\xff", -EINVAL);
	REFUSE(c.args.lock.reason = NULL, -EINVAL);
	REFUSE((c.type = COMMAND_WIPE, c.args.wipe.class_name = (char *)"../etc"), -EINVAL);
	REFUSE((c.type = COMMAND_WIPE, c.args.wipe.class_name = (char *)""), -EINVAL);
	REFUSE((c.type = COMMAND_WIPE, c.args.wipe.class_name = (char *)"a/b"), -EINVAL);
	REFUSE((c.type = COMMAND_POLICY, c.args.policy = (DevicePolicy){.version = 1}),
	       -EINVAL); /* heartbeat 0 */
	REFUSE((c.type = COMMAND_POLICY, c.args.policy = (DevicePolicy){.heartbeat = 1}),
	       -EINVAL); /* version 0 */
	memset(policy_big, 'p', PROTO_BLOB_MAX + 1);
	REFUSE((c.type = COMMAND_UNLOCK, c.args.unlock.policy = policy_big), -EINVAL);
	/* within its own bound but the envelope would be larger than any verifier takes */
	policy_big[PROTO_BLOB_MAX] = 0;
	REFUSE((c.type = COMMAND_UNLOCK, c.args.unlock.policy = policy_big), -EFBIG);
	/* a public key cannot sign */
	c = lock_command();
	assert_int_equal(command_sign(cmd_pub, &c, &cose, &n), -EINVAL);
#undef REFUSE
}

/* ---- signature-level rejections ---- */

static void test_wrong_key(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	Command c = lock_command();
	size_t n;

	sign_ok(other_key, &c, &cose, &n);
	expect_refused(cmd_pub, DEV, 0, NOW, cose, n, -ENOKEY, "COSE: kid names another key");
}

static void test_forged_kid(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	uint8_t kid_cmd[32], kid_other[32], *p;
	Command c = lock_command();
	size_t n;

	/* signed by another key, its kid rewritten to name the command key */
	sign_ok(other_key, &c, &cose, &n);
	assert_int_equal(ec_key_fingerprint(cmd_key, kid_cmd), 0);
	assert_int_equal(ec_key_fingerprint(other_key, kid_other), 0);
	p = memmem(cose, n, kid_other, 32);
	assert_non_null(p);
	memcpy(p, kid_cmd, 32);
	expect_refused(cmd_pub, DEV, 0, NOW, cose, n, -EBADMSG, "COSE: signature does not verify");
}

static void test_flipped_bytes(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	Command c = lock_command();
	size_t n;

	sign_ok(cmd_key, &c, &cose, &n);
	/* every single-bit change anywhere is refused, never executed */
	for (size_t i = 0; i < n; i++)
		for (unsigned bit = 0; bit < 8; bit += 3) {
			_cleanup_(command_done) Command out = {};
			const char *reason = NULL;
			int r;

			cose[i] ^= (uint8_t)(1u << bit);
			r = command_verify(cmd_pub, DEV, 0, NOW, cose, n, &out, &reason);
			cose[i] ^= (uint8_t)(1u << bit);
			if (r != -EBADMSG && r != -ENOKEY)
				fail_msg("byte %zu bit %u: %d (%s)", i, bit, r, strna(reason));
			assert_non_null(reason);
		}
}

static void test_result_as_command(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	CommandResult res = {.id = CID,
			     .device_id = DEV,
			     .seq = 7,
			     .type = COMMAND_LOCK,
			     .status = RESULT_DONE,
			     .reason = (char *)"",
			     .time = NOW};
	Command c = lock_command();
	size_t n;

	/* even when the same key signs both kinds, the external_aad keeps them apart */
	assert_int_equal(command_result_sign(cmd_key, &res, &cose, &n), 0);
	expect_refused(cmd_pub, DEV, 0, NOW, cose, n, -EBADMSG, "COSE: signature does not verify");
	free(cose);
	cose = NULL;

	sign_ok(cmd_key, &c, &cose, &n);
	{
		CommandResult out = {.seq = 4242};
		const char *reason = NULL;

		assert_int_equal(command_result_verify(cmd_pub, cose, n, &out, &reason), -EBADMSG);
		assert_string_equal(reason, "COSE: signature does not verify");
		assert_int_equal(out.seq, 4242);
	}
}

static void test_oversize(void **state)
{
	_cleanup_free_ uint8_t *big = calloc(1, COSE_MAX_SIZE + 1);
	CommandResult out = {.seq = 4242};
	const char *reason = NULL;

	assert_non_null(big);
	expect_refused(cmd_pub, DEV, 0, NOW, big, COSE_MAX_SIZE + 1, -EFBIG,
		       "command: larger than COSE_MAX_SIZE");
	assert_int_equal(command_result_verify(dev_key, big, COSE_MAX_SIZE + 1, &out, &reason), -EFBIG);
	assert_string_equal(reason, "result: larger than COSE_MAX_SIZE");
	assert_int_equal(out.seq, 4242);
	/* garbage of an acceptable size is malformed, not oversized */
	expect_refused(cmd_pub, DEV, 0, NOW, big, COSE_MAX_SIZE, -EBADMSG,
		       "COSE: not a COSE_Sign1 array of 4");
	expect_refused(cmd_pub, DEV, 0, NOW, big, 0, -EBADMSG, "COSE: truncated");
}

/* ---- device, sequence, time, type ---- */

static void test_other_device(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	Command c = lock_command();
	size_t n;

	sign_ok(cmd_key, &c, &cose, &n);
	expect_refused(cmd_pub, DEV2, 0, NOW, cose, n, -EXDEV, "command: for another device");
	/* device comes before sequence and time in the order */
	expect_refused(cmd_pub, DEV2, 100, NOW + 100000, cose, n, -EXDEV, "command: for another device");
}

static void test_stale(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	Command c = lock_command();
	size_t n;

	sign_ok(cmd_key, &c, &cose, &n);
	for (uint64_t last = 7; last <= 8; last++) {
		_cleanup_(command_done) Command out = {};
		const char *reason = NULL;

		/* seq == last: a redelivery; seq < last: an old command, replayed or re-sent */
		assert_int_equal(command_verify(cmd_pub, DEV, last, NOW, cose, n, &out, &reason), -ESTALE);
		assert_string_equal(reason,
				    "command: sequence not above the last executed one (replayed or old)");
		/* filled, so that the redelivery of the last one gets its stored result */
		assert_string_equal(out.id, CID);
		assert_int_equal(out.seq, 7);
		assert_int_equal(out.type, COMMAND_LOCK);
		assert_string_equal(out.args.lock.reason, "laptop stolen");
	}
	/* sequence comes before time: an old, expired command is still recognised as a redelivery */
	{
		_cleanup_(command_done) Command out = {};
		assert_int_equal(command_verify(cmd_pub, DEV, 7, c.exp + 1, cose, n, &out, NULL), -ESTALE);
		assert_string_equal(out.id, CID);
	}
	/* last + 1 runs */
	{
		_cleanup_(command_done) Command out = {};
		assert_int_equal(command_verify(cmd_pub, DEV, 6, NOW, cose, n, &out, NULL), 0);
	}
}

static void test_time(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	Command c = lock_command();
	size_t n;

	sign_ok(cmd_key, &c, &cose, &n);
	expect_refused(cmd_pub, DEV, 0, c.exp + 1, cose, n, -ETIME, "command: expired");
	{
		_cleanup_(command_done) Command out = {};
		/* the last second is still valid; so is a clock the skew behind */
		assert_int_equal(command_verify(cmd_pub, DEV, 0, c.exp, cose, n, &out, NULL), 0);
		command_done(&out);
		assert_int_equal(
		    command_verify(cmd_pub, DEV, 0, c.iat - COMMAND_CLOCK_SKEW, cose, n, &out, NULL), 0);
	}
	expect_refused(cmd_pub, DEV, 0, c.iat - COMMAND_CLOCK_SKEW - 1, cose, n, -ETIME,
		       "command: issued in the future");
}

/* ---- payloads built by hand ---- */

/* Signs payload with the command key as a command (external_aad "trustpc-command"). */
static void sign_payload(const CborBuild *p, uint8_t **cose, size_t *n)
{
	assert_int_equal(
	    cose_sign1_sign(cmd_key, "trustpc-command", strlen("trustpc-command"), p->b, p->n, cose, n), 0);
}

/* The common pairs of a valid command, except the key named in skip (NULL: none). */
static void put_common(CborBuild *c, const char *skip)
{
	if (!skip || !streq(skip, "id")) {
		cb_text(c, "id");
		cb_text(c, CID);
	}
	if (!skip || !streq(skip, "device")) {
		cb_text(c, "device");
		cb_text(c, DEV);
	}
	if (!skip || !streq(skip, "seq")) {
		cb_text(c, "seq");
		cb_uint(c, 7);
	}
	if (!skip || !streq(skip, "iat")) {
		cb_text(c, "iat");
		cb_uint(c, NOW);
	}
	if (!skip || !streq(skip, "exp")) {
		cb_text(c, "exp");
		cb_uint(c, NOW + 60);
	}
	if (!skip || !streq(skip, "issuer")) {
		cb_text(c, "issuer");
		cb_text(c, "alice");
	}
}

static void put_lock(CborBuild *c)
{
	cb_text(c, "type");
	cb_text(c, "lock");
	cb_text(c, "args");
	cb_map(c, 2);
	cb_text(c, "reason");
	cb_text(c, "r");
	cb_text(c, "poweroff");
	cb_bool(c, 0);
}

static void expect_payload(const CborBuild *p, int err, const char *reason)
{
	_cleanup_free_ uint8_t *cose = NULL;
	size_t n;

	sign_payload(p, &cose, &n);
	if (err == 0) {
		_cleanup_(command_done) Command out = {};
		const char *why = NULL;
		int r = command_verify(cmd_pub, DEV, 0, NOW, cose, n, &out, &why);
		if (r != 0)
			fail_msg("expected success: %d %s", r, strna(why));
		return;
	}
	expect_refused(cmd_pub, DEV, 0, NOW, cose, n, err, reason);
}

static void test_hand_built_valid(void **state)
{
	CborBuild *c = cb_new();

	/* keys in any order: args before type, issuer first */
	cb_map(c, 8);
	cb_text(c, "args");
	cb_map(c, 1);
	cb_text(c, "class");
	cb_text(c, "corporate");
	cb_text(c, "issuer");
	cb_text(c, "bob");
	cb_text(c, "type");
	cb_text(c, "wipe");
	put_common(c, "issuer");
	expect_payload(c, 0, NULL);
	free(c);
}

static void test_unknown_type(void **state)
{
	_cleanup_free_ uint8_t *cose = NULL;
	CborBuild *c = cb_new();
	size_t n;

	/* a type from a newer server, with args we do not know either */
	cb_map(c, 8);
	put_common(c, NULL);
	cb_text(c, "type");
	cb_text(c, "reboot");
	cb_text(c, "args");
	cb_map(c, 1);
	cb_text(c, "delay");
	cb_array(c, 1);
	cb_uint(c, 5);
	sign_payload(c, &cose, &n);
	expect_refused(cmd_pub, DEV, 0, NOW, cose, n, -EOPNOTSUPP, "command: unknown type");
	/* the earlier checks come first */
	expect_refused(cmd_pub, DEV2, 0, NOW, cose, n, -EXDEV, "command: for another device");
	expect_refused(cmd_pub, DEV, 0, NOW + 61, cose, n, -ETIME, "command: expired");
	{
		_cleanup_(command_done) Command out = {};
		assert_int_equal(command_verify(cmd_pub, DEV, 7, NOW, cose, n, &out, NULL), -ESTALE);
		assert_int_equal(out.type, 0);
		assert_string_equal(out.id, CID);
	}
	free(c);

	/* "Lock" is not "lock" */
	c = cb_new();
	cb_map(c, 8);
	put_common(c, NULL);
	cb_text(c, "type");
	cb_text(c, "Lock");
	cb_text(c, "args");
	cb_map(c, 0);
	expect_payload(c, -EOPNOTSUPP, "command: unknown type");
	free(c);
}

/* One top-level field replaced: key name, CBOR value writer. */
typedef void (*PutValue)(CborBuild *c);

static void expect_field(const char *key, PutValue put, const char *reason)
{
	CborBuild *c = cb_new();

	cb_map(c, 8);
	put_common(c, key);
	if (!streq(key, "type") && !streq(key, "args"))
		put_lock(c);
	else if (streq(key, "type")) {
		cb_text(c, "args");
		cb_map(c, 2);
		cb_text(c, "reason");
		cb_text(c, "r");
		cb_text(c, "poweroff");
		cb_bool(c, 0);
	} else {
		cb_text(c, "type");
		cb_text(c, "lock");
	}
	cb_text(c, key);
	put(c);
	expect_payload(c, -EBADMSG, reason);
	free(c);
}

static void v_uint5(CborBuild *c)
{
	cb_uint(c, 5);
}
static void v_text5(CborBuild *c)
{
	cb_text(c, "5");
}
static void v_zero(CborBuild *c)
{
	cb_uint(c, 0);
}
static void v_nint(CborBuild *c)
{
	cb_nint(c, -1);
}
static void v_bytes_id(CborBuild *c)
{
	cb_bytes(c, CID, 32);
}
static void v_upper_id(CborBuild *c)
{
	cb_text(c, "0123456789ABCDEF0123456789ABCDEF");
}
static void v_short_id(CborBuild *c)
{
	cb_text(c, "0123456789abcdef0123456789abcde");
}
static void v_nonhex_id(CborBuild *c)
{
	cb_text(c, "0123456789abcdef0123456789abcdeg");
}
static void v_empty(CborBuild *c)
{
	cb_text(c, "");
}
static void v_long_text(CborBuild *c)
{
	cb_text_fill(c, 'a', PROTO_TEXT_MAX + 1);
}
static void v_nul_text(CborBuild *c)
{
	cb_textn(c, "al\0ce", 5);
}
static void v_bad_utf8(CborBuild *c)
{
	cb_textn(c,
		 "al\xc0\xaf"
		 "ce",
		 6);
}
static void v_null(CborBuild *c)
{
	cb_null(c);
}
static void v_array(CborBuild *c)
{
	cb_array(c, 0);
}
static void v_iat_after(CborBuild *c)
{
	cb_uint(c, NOW + 60);
} /* as iat: == exp */
static void v_tagged_uint(CborBuild *c)
{
	cb_tag(c, 1);
	cb_uint(c, NOW);
}

static void test_fields(void **state)
{
	expect_field("id", v_bytes_id, "command.id: wrong type");
	expect_field("id", v_upper_id, "command.id: bad value");
	expect_field("id", v_short_id, "command.id: bad value");
	expect_field("id", v_nonhex_id, "command.id: bad value");
	expect_field("device", v_upper_id, "command.device: bad value");
	expect_field("device", v_empty, "command.device: bad value");
	expect_field("seq", v_text5, "command.seq: wrong type");
	expect_field("seq", v_zero, "command.seq: bad value");
	expect_field("seq", v_nint, "command.seq: wrong type");
	expect_field("iat", v_iat_after, "command.exp: not after iat");
	expect_field("iat", v_tagged_uint, "command.iat: wrong type");
	expect_field("exp", v_null, "command.exp: wrong type");
	expect_field("type", v_uint5, "command.type: wrong type");
	expect_field("type", v_empty, "command.type: wrong size");
	expect_field("args", v_array, "command.args: wrong type");
	expect_field("args", v_null, "command.args: wrong type");
	expect_field("issuer", v_empty, "command.issuer: wrong size");
	expect_field("issuer", v_long_text, "command.issuer: wrong size");
	expect_field("issuer", v_nul_text, "command.issuer: bad value");
	expect_field("issuer", v_bad_utf8, "command.issuer: bad value");
	expect_field("issuer", v_uint5, "command.issuer: wrong type");
}

static void test_structure(void **state)
{
	CborBuild *c;

	/* missing each top-level key */
	static const char *const keys[] = {"id", "device", "seq", "iat", "exp", "issuer"};
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		char reason[64];

		c = cb_new();
		cb_map(c, 7);
		put_common(c, keys[i]);
		put_lock(c);
		snprintf(reason, sizeof(reason), "command.%s: missing", keys[i]);
		{
			_cleanup_free_ uint8_t *cose = NULL;
			Command out;
			const char *why = NULL;
			size_t n;

			sign_payload(c, &cose, &n);
			memset(&out, 'X', sizeof(out));
			assert_int_equal(command_verify(cmd_pub, DEV, 0, NOW, cose, n, &out, &why),
					 -EBADMSG);
			assert_string_equal(why, reason);
			assert_int_equal(out.id[0], 'X');
		}
		free(c);
	}

	c = cb_new();
	cb_map(c, 7);
	put_common(c, NULL);
	cb_text(c, "type");
	cb_text(c, "lock");
	expect_payload(c, -EBADMSG, "command.args: missing");
	free(c);

	/* duplicate key (the second "seq" would win in a last-value-wins reader) */
	c = cb_new();
	cb_map(c, 9);
	put_common(c, NULL);
	put_lock(c);
	cb_text(c, "seq");
	cb_uint(c, 8);
	expect_payload(c, -EBADMSG, "command.seq: duplicate key");
	free(c);

	/* unknown key */
	c = cb_new();
	cb_map(c, 9);
	put_common(c, NULL);
	put_lock(c);
	cb_text(c, "priority");
	cb_uint(c, 1);
	expect_payload(c, -EBADMSG, "command: unknown key");
	free(c);

	/* non-text key */
	c = cb_new();
	cb_map(c, 9);
	cb_uint(c, 1);
	cb_uint(c, 1);
	put_common(c, NULL);
	put_lock(c);
	expect_payload(c, -EBADMSG, "command: key not a text string");
	free(c);

	/* trailing bytes after the map, inside the signed payload */
	c = cb_new();
	cb_map(c, 8);
	put_common(c, NULL);
	put_lock(c);
	cb_uint(c, 0);
	expect_payload(c, -EBADMSG, "command: trailing bytes");
	free(c);

	/* not a map; truncated; indefinite-length map */
	c = cb_new();
	cb_array(c, 0);
	expect_payload(c, -EBADMSG, "command: payload not a map");
	free(c);
	c = cb_new();
	cb_map(c, 8);
	put_common(c, NULL);
	expect_payload(c, -EBADMSG, "command: truncated");
	free(c);
	c = cb_new();
	cb_byte(c, 0xbf);
	put_common(c, NULL);
	put_lock(c);
	cb_byte(c, 0xff);
	expect_payload(c, -EBADMSG, "command: indefinite length");
	free(c);
	/* empty payload */
	c = cb_new();
	expect_payload(c, -EBADMSG, "command: truncated");
	free(c);
}

/* Args of a type, as a raw map written by put. */
static void expect_args(const char *type, PutValue put, int err, const char *reason)
{
	CborBuild *c = cb_new();

	cb_map(c, 8);
	put_common(c, NULL);
	cb_text(c, "type");
	cb_text(c, type);
	cb_text(c, "args");
	put(c);
	expect_payload(c, err, reason);
	free(c);
}

static void a_lock_extra(CborBuild *c)
{
	cb_map(c, 3);
	cb_text(c, "reason");
	cb_text(c, "r");
	cb_text(c, "poweroff");
	cb_bool(c, 1);
	cb_text(c, "delay");
	cb_uint(c, 1);
}
static void a_lock_missing(CborBuild *c)
{
	cb_map(c, 1);
	cb_text(c, "reason");
	cb_text(c, "r");
}
static void a_lock_poweroff_uint(CborBuild *c)
{
	cb_map(c, 2);
	cb_text(c, "reason");
	cb_text(c, "r");
	cb_text(c, "poweroff");
	cb_uint(c, 1);
}
static void a_lock_dup(CborBuild *c)
{
	cb_map(c, 3);
	cb_text(c, "reason");
	cb_text(c, "r");
	cb_text(c, "poweroff");
	cb_bool(c, 0);
	cb_text(c, "reason");
	cb_text(c, "s");
}
static void a_lock_reason_long(CborBuild *c)
{
	cb_map(c, 2);
	cb_text(c, "reason");
	cb_text_fill(c, 'x', PROTO_TEXT_MAX + 1);
	cb_text(c, "poweroff");
	cb_bool(c, 0);
}
static void a_lock_of_wipe(CborBuild *c) /* wipe's args under lock */
{
	cb_map(c, 1);
	cb_text(c, "class");
	cb_text(c, "all");
}
static void a_unlock_empty(CborBuild *c)
{
	cb_map(c, 1);
	cb_text(c, "policy");
	cb_text(c, "");
}
static void a_unlock_bytes(CborBuild *c)
{
	cb_map(c, 1);
	cb_text(c, "policy");
	cb_bytes(c, "{}", 2);
}
static void a_wipe_dotdot(CborBuild *c)
{
	cb_map(c, 1);
	cb_text(c, "class");
	cb_text(c, "../x");
}
static void a_wipe_long(CborBuild *c)
{
	cb_map(c, 1);
	cb_text(c, "class");
	cb_text_fill(c, 'c', 65);
}
static void policy_pairs(CborBuild *c, const char *skip, uint64_t heartbeat)
{
	cb_map(c, skip ? 4 : 5);
	if (!skip || !streq(skip, "version")) {
		cb_text(c, "version");
		cb_uint(c, 2);
	}
	cb_text(c, "heartbeat");
	cb_uint(c, heartbeat);
	cb_text(c, "offline_lease");
	cb_uint(c, 0);
	cb_text(c, "usb_storage");
	cb_bool(c, 0);
	cb_text(c, "screen_lock");
	cb_uint(c, 600);
}
static void a_policy_ok(CborBuild *c)
{
	policy_pairs(c, NULL, 30);
}
static void a_policy_no_version(CborBuild *c)
{
	policy_pairs(c, "version", 30);
}
static void a_policy_hb_big(CborBuild *c)
{
	policy_pairs(c, NULL, UINT64_C(1) << 32);
}
static void a_policy_hb_zero(CborBuild *c)
{
	policy_pairs(c, NULL, 0);
}
static void a_policy_usb_text(CborBuild *c)
{
	cb_map(c, 5);
	cb_text(c, "version");
	cb_uint(c, 2);
	cb_text(c, "heartbeat");
	cb_uint(c, 30);
	cb_text(c, "offline_lease");
	cb_uint(c, 0);
	cb_text(c, "usb_storage");
	cb_text(c, "no");
	cb_text(c, "screen_lock");
	cb_uint(c, 600);
}
static void a_nested_deep(CborBuild *c)
{
	cb_map(c, 1);
	cb_text(c, "reason");
	cb_array(c, 1);
	cb_array(c, 1);
	cb_array(c, 1);
	cb_uint(c, 0);
}

static void test_args(void **state)
{
	expect_args("policy", a_policy_ok, 0, NULL);
	expect_args("lock", a_lock_extra, -EBADMSG, "command.args: unknown key");
	expect_args("lock", a_lock_missing, -EBADMSG, "command.args.poweroff: missing");
	expect_args("lock", a_lock_poweroff_uint, -EBADMSG, "command.args.poweroff: wrong type");
	expect_args("lock", a_lock_dup, -EBADMSG, "command.args.reason: duplicate key");
	expect_args("lock", a_lock_reason_long, -EBADMSG, "command.args.reason: wrong size");
	expect_args("lock", a_lock_of_wipe, -EBADMSG, "command.args: unknown key");
	expect_args("unlock", a_unlock_empty, -EBADMSG, "command.args.policy: wrong size");
	expect_args("unlock", a_unlock_bytes, -EBADMSG, "command.args.policy: wrong type");
	expect_args("wipe", a_wipe_dotdot, -EBADMSG, "command.args.class: bad value");
	expect_args("wipe", a_wipe_long, -EBADMSG, "command.args.class: wrong size");
	expect_args("policy", a_policy_no_version, -EBADMSG, "command.args.version: missing");
	expect_args("policy", a_policy_hb_big, -EBADMSG, "command.args.heartbeat: bad value");
	expect_args("policy", a_policy_hb_zero, -EBADMSG, "command.args.heartbeat: bad value");
	expect_args("policy", a_policy_usb_text, -EBADMSG, "command.args.usb_storage: wrong type");
	expect_args("lock", a_nested_deep, -EBADMSG,
		    "command.args: malformed, truncated or nested too deep");
}

/* ---- results ---- */

static void result_roundtrip(const CommandResult *res)
{
	_cleanup_free_ uint8_t *cose = NULL;
	_cleanup_(command_result_done) CommandResult out = {};
	const char *reason = NULL;
	size_t n;
	int r;

	assert_int_equal(command_result_sign(dev_key, res, &cose, &n), 0);
	r = command_result_verify(dev_key, cose, n, &out, &reason);
	if (r != 0)
		fail_msg("result verify: %d %s", r, strna(reason));
	assert_string_equal(out.id, res->id);
	assert_string_equal(out.device_id, res->device_id);
	assert_int_equal(out.seq, res->seq);
	assert_int_equal(out.type, res->type);
	assert_int_equal(out.status, res->status);
	assert_string_equal(out.reason, res->reason);
	assert_int_equal(out.time, res->time);
	assert_int_equal(out.has_epoch, res->has_epoch);
	assert_int_equal(out.epoch, res->has_epoch ? res->epoch : 0);
}

static void test_results(void **state)
{
	CommandResult res = {.id = CID,
			     .device_id = DEV,
			     .seq = 7,
			     .type = COMMAND_LOCK,
			     .status = RESULT_DONE,
			     .reason = (char *)"locked",
			     .time = NOW,
			     .has_epoch = true,
			     .epoch = 4};
	_cleanup_free_ uint8_t *cose = NULL;
	uint8_t *none = (uint8_t *)0x1;
	size_t n;

	result_roundtrip(&res);
	res.has_epoch = false;
	res.status = RESULT_FAILED;
	result_roundtrip(&res);
	/* the rejection of something that could not be parsed: no id, no seq, no type */
	res = (CommandResult){
	    .device_id = DEV, .status = RESULT_REJECTED, .reason = (char *)"COSE: truncated"};
	result_roundtrip(&res);
	for (CommandType t = COMMAND_LOCK; t <= COMMAND_POLICY; t++) {
		res.type = t;
		result_roundtrip(&res);
	}

	/* refused by the signer */
	res = (CommandResult){.id = CID, .device_id = DEV, .status = RESULT_DONE, .reason = (char *)""};
	res.status = 0;
	assert_int_equal(command_result_sign(dev_key, &res, &none, &n), -EINVAL);
	res.status = RESULT_DONE;
	res.reason = NULL;
	assert_int_equal(command_result_sign(dev_key, &res, &none, &n), -EINVAL);
	res.reason = (char *)"";
	strcpy(res.device_id, "");
	assert_int_equal(command_result_sign(dev_key, &res, &none, &n), -EINVAL);
	strcpy(res.device_id, DEV);
	res.type = 5;
	assert_int_equal(command_result_sign(dev_key, &res, &none, &n), -EINVAL);
	assert_ptr_equal(none, (uint8_t *)0x1);

	/* signed by another key */
	res.type = COMMAND_WIPE;
	assert_int_equal(command_result_sign(other_key, &res, &cose, &n), 0);
	{
		CommandResult out = {.seq = 4242};
		const char *reason = NULL;

		assert_int_equal(command_result_verify(dev_key, cose, n, &out, &reason), -ENOKEY);
		assert_string_equal(reason, "COSE: kid names another key");
		assert_int_equal(out.seq, 4242);
	}
}

static void expect_result_payload(const CborBuild *p, const char *reason_expected)
{
	_cleanup_free_ uint8_t *cose = NULL;
	CommandResult out = {.seq = 4242};
	const char *reason = NULL;
	size_t n;

	assert_int_equal(
	    cose_sign1_sign(dev_key, "trustpc-result", strlen("trustpc-result"), p->b, p->n, &cose, &n), 0);
	assert_int_equal(command_result_verify(dev_key, cose, n, &out, &reason), -EBADMSG);
	if (!reason || !streq(reason, reason_expected))
		fail_msg("reason \"%s\", expected \"%s\"", strna(reason), reason_expected);
	assert_int_equal(out.seq, 4242);
}

static void put_result(CborBuild *c, const char *skip, const char *status, int type_kind)
{
	cb_map(c, skip ? 6 : 7);
	cb_text(c, "id");
	cb_text(c, CID);
	cb_text(c, "device");
	cb_text(c, DEV);
	cb_text(c, "seq");
	cb_uint(c, 7);
	cb_text(c, "type");
	if (type_kind == 0)
		cb_text(c, "lock");
	else if (type_kind == 1)
		cb_text(c, "reboot");
	else
		cb_uint(c, 1);
	if (!skip || !streq(skip, "status")) {
		cb_text(c, "status");
		cb_text(c, status);
	}
	cb_text(c, "reason");
	cb_text(c, "");
	cb_text(c, "time");
	cb_uint(c, NOW);
}

static void test_result_rejects(void **state)
{
	CborBuild *c = cb_new();

	put_result(c, NULL, "ok", 0);
	expect_result_payload(c, "result.status: bad value");
	c->n = 0;
	put_result(c, "status", "done", 0);
	expect_result_payload(c, "result.status: missing");
	c->n = 0;
	put_result(c, NULL, "done", 1);
	expect_result_payload(c, "result.type: bad value");
	c->n = 0;
	put_result(c, NULL, "done", 2);
	expect_result_payload(c, "result.type: wrong type");
	c->n = 0;
	put_result(c, NULL, "done", 0);
	c->b[0]++; /* one more pair: */
	cb_text(c, "quote");
	cb_bytes(c, "q", 1);
	expect_result_payload(c, "result: unknown key");
	c->n = 0;
	put_result(c, NULL, "done", 0);
	c->b[0]++;
	cb_text(c, "epoch");
	cb_text(c, "4");
	expect_result_payload(c, "result.epoch: wrong type");
	free(c);
}

/* ---- the device policy document ---- */

static void test_policy_json(void **state)
{
	DevicePolicy p = {.version = 9,
			  .heartbeat = 60,
			  .offline_lease = 259200,
			  .usb_storage = false,
			  .screen_lock = 300},
		     q = {};
	_cleanup_free_ char *s = NULL, *s2 = NULL;
	const char *reason = NULL;

	assert_int_equal(device_policy_format_json(&p, &s), 0);
	assert_string_equal(s,
			    "{\"version\":9,\"heartbeat\":60,\"offline_lease\":259200,\"usb_storage\":false,"
			    "\"screen_lock\":300}");
	assert_int_equal(device_policy_parse_json(s, strlen(s), &q, &reason), 0);
	assert_policy_equal(&p, &q);
	p = (DevicePolicy){.version = INT64_MAX,
			   .heartbeat = UINT32_MAX,
			   .offline_lease = INT64_MAX,
			   .usb_storage = true,
			   .screen_lock = UINT32_MAX};
	assert_int_equal(device_policy_format_json(&p, &s2), 0);
	assert_int_equal(device_policy_parse_json(s2, strlen(s2), &q, &reason), 0);
	assert_policy_equal(&p, &q);
	/* whitespace and key order do not matter */
	{
		static const char spaced[] =
		    "{ \"screen_lock\": 0, \"usb_storage\": true, \"offline_lease\": 0, "
		    "\"heartbeat\": 1, \"version\": 1 }\n";
		assert_int_equal(device_policy_parse_json(spaced, strlen(spaced), &q, &reason), 0);
	}
	assert_int_equal(q.heartbeat, 1);
	assert_true(q.usb_storage);

	/* the formatter refuses what the parser would */
	p.heartbeat = 0;
	assert_int_equal(device_policy_format_json(&p, &s), -EINVAL);
	p.heartbeat = 1;
	p.offline_lease = (uint64_t)INT64_MAX + 1;
	assert_int_equal(device_policy_format_json(&p, &s), -EINVAL);
}

static void expect_policy_refused(const char *json, const char *reason_expected)
{
	DevicePolicy q = {.version = 4242};
	const char *reason = NULL;

	assert_int_equal(device_policy_parse_json(json, strlen(json), &q, &reason), -EBADMSG);
	if (!reason || !streq(reason, reason_expected))
		fail_msg("%s: reason \"%s\", expected \"%s\"", json, strna(reason), reason_expected);
	assert_int_equal(q.version, 4242);
}

#define POLICY_TAIL "\"offline_lease\":0,\"usb_storage\":false,\"screen_lock\":300}"

static void test_policy_json_rejects(void **state)
{
	static char big[5000];

	expect_policy_refused("", "policy: not valid JSON (or a duplicate key)");
	expect_policy_refused("[1]", "policy: not a JSON object");
	expect_policy_refused("{\"version\":1,\"heartbeat\":60," POLICY_TAIL " x",
			      "policy: not valid JSON (or a duplicate key)");
	expect_policy_refused("{\"version\":1,\"version\":2,\"heartbeat\":60," POLICY_TAIL,
			      "policy: not valid JSON (or a duplicate key)");
	expect_policy_refused("{\"version\":1,\"heartbeat\":60,\"extra\":1," POLICY_TAIL,
			      "policy: unknown key");
	expect_policy_refused("{\"heartbeat\":60," POLICY_TAIL, "policy.version: missing");
	expect_policy_refused("{\"version\":1," POLICY_TAIL, "policy.heartbeat: missing");
	expect_policy_refused("{\"version\":1.0,\"heartbeat\":60," POLICY_TAIL,
			      "policy.version: wrong type");
	expect_policy_refused("{\"version\":\"1\",\"heartbeat\":60," POLICY_TAIL,
			      "policy.version: wrong type");
	expect_policy_refused("{\"version\":-1,\"heartbeat\":60," POLICY_TAIL, "policy.version: bad value");
	expect_policy_refused("{\"version\":0,\"heartbeat\":60," POLICY_TAIL, "policy.version: bad value");
	expect_policy_refused("{\"version\":1,\"heartbeat\":0," POLICY_TAIL, "policy.heartbeat: bad value");
	expect_policy_refused("{\"version\":1,\"heartbeat\":4294967296," POLICY_TAIL,
			      "policy.heartbeat: bad value");
	expect_policy_refused(
	    "{\"version\":1,\"heartbeat\":60,\"offline_lease\":0,\"usb_storage\":0,\"screen_lock\":300}",
	    "policy.usb_storage: wrong type");
	expect_policy_refused("{\"version\":1,\"heartbeat\":60,\"offline_lease\":0,\"usb_storage\":false,"
			      "\"screen_lock\":null}",
			      "policy.screen_lock: wrong type");
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	expect_policy_refused(big, "policy: larger than 4096 bytes");
}

/* ---- the result message's optional proof fields (proto.h) ---- */

static void test_result_message_quote(void **state)
{
	static const uint8_t cose[] = {0x84, 0x40, 0xa0, 0x40, 0x40};
	static const uint8_t quote[] = {0xff, 0x54, 0x43, 0x47, 0x80, 0x18};
	uint8_t sig[64];
	ProtoMessage m = {.type = PROTO_RESULT}, d = {};
	_cleanup_free_ uint8_t *frame = NULL, *frame2 = NULL;
	const char *reason = NULL;
	size_t n, n2;

	memset(sig, 0x5a, sizeof(sig));
	/* without a quote: the encoding of before (one key besides "t") */
	m.result.cose = (ProtoBytes){cose, sizeof(cose)};
	assert_int_equal(proto_encode(&m, &frame, &n), 0);
	assert_int_equal(frame[4], 0xa2);
	assert_int_equal(proto_decode(frame + 4, n - 4, &d, &reason), 0);
	assert_false(d.result.has_quote);
	assert_true(proto_message_equal(&m, &d));
	proto_message_done(&d);

	m.result.has_quote = true;
	m.result.quote = (ProtoBytes){quote, sizeof(quote)};
	m.result.quote_signature = (ProtoBytes){sig, sizeof(sig)};
	m.result.pcrs.mask = 1u << 7;
	memset(m.result.pcrs.values[7], 0x77, 32);
	assert_int_equal(proto_encode(&m, &frame2, &n2), 0);
	assert_int_equal(frame2[4], 0xa5);
	assert_int_equal(proto_decode(frame2 + 4, n2 - 4, &d, &reason), 0);
	assert_true(d.result.has_quote);
	assert_true(proto_message_equal(&m, &d));
	assert_memory_equal(d.result.quote.data, quote, sizeof(quote));
	proto_message_done(&d);

	/* the encoder refuses a signature of the wrong size */
	m.result.quote_signature.size = 63;
	free(frame);
	frame = NULL;
	assert_int_equal(proto_encode(&m, &frame, &n), -EINVAL);

	/* the decoder: all three or none */
	{
		CborBuild *c = cb_new();

		cb_map(c, 3);
		cb_t(c, "result");
		cb_text(c, "cose");
		cb_bytes(c, cose, sizeof(cose));
		cb_text(c, "quote");
		cb_bytes(c, quote, sizeof(quote));
		assert_int_equal(proto_decode(c->b, c->n, &d, &reason), -EBADMSG);
		assert_string_equal(reason, "result.quote_signature: missing");

		c->n = 0;
		cb_map(c, 5);
		cb_t(c, "result");
		cb_text(c, "cose");
		cb_bytes(c, cose, sizeof(cose));
		cb_text(c, "quote");
		cb_bytes(c, quote, sizeof(quote));
		cb_text(c, "quote_signature");
		cb_bytes(c, sig, 63);
		cb_text(c, "pcrs");
		cb_map(c, 0);
		assert_int_equal(proto_decode(c->b, c->n, &d, &reason), -EBADMSG);
		assert_string_equal(reason, "result.quote_signature: wrong size");

		c->n = 0;
		cb_map(c, 3);
		cb_t(c, "result");
		cb_text(c, "cose");
		cb_bytes(c, cose, sizeof(cose));
		cb_text(c, "pcrs");
		cb_map(c, 0);
		assert_int_equal(proto_decode(c->b, c->n, &d, &reason), -EBADMSG);
		assert_string_equal(reason, "result.quote: missing");

		c->n = 0;
		cb_map(c, 3);
		cb_t(c, "result");
		cb_text(c, "cose");
		cb_bytes(c, cose, sizeof(cose));
		cb_text(c, "quote");
		cb_bytes(c, "", 0);
		assert_int_equal(proto_decode(c->b, c->n, &d, &reason), -EBADMSG);
		assert_string_equal(reason, "result.quote: wrong size");
		free(c);
	}
}

static void test_names(void **state)
{
	CommandType t = 0;

	assert_string_equal(command_type_name(COMMAND_POLICY), "policy");
	assert_null(command_type_name(0));
	assert_null(command_type_name(5));
	assert_int_equal(command_type_from_name("wipe", &t), 0);
	assert_int_equal(t, COMMAND_WIPE);
	assert_int_equal(command_type_from_name("wipe ", &t), -EINVAL);
	assert_int_equal(command_type_from_name("", &t), -EINVAL);
	assert_int_equal(t, COMMAND_WIPE);
	assert_string_equal(result_status_name(RESULT_REJECTED), "rejected");
	assert_null(result_status_name(4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_random_id),
	    cmocka_unit_test(test_sign_refuses),
	    cmocka_unit_test(test_wrong_key),
	    cmocka_unit_test(test_forged_kid),
	    cmocka_unit_test(test_flipped_bytes),
	    cmocka_unit_test(test_result_as_command),
	    cmocka_unit_test(test_oversize),
	    cmocka_unit_test(test_other_device),
	    cmocka_unit_test(test_stale),
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_hand_built_valid),
	    cmocka_unit_test(test_unknown_type),
	    cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_structure),
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_results),
	    cmocka_unit_test(test_result_rejects),
	    cmocka_unit_test(test_policy_json),
	    cmocka_unit_test(test_policy_json_rejects),
	    cmocka_unit_test(test_result_message_quote),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
