/* SPDX-License-Identifier: Apache-2.0 */
/* Signed commands and results (lib/proto/command.h) on arbitrary bytes. The first byte picks
 * what the rest is:
 *   0  a command envelope, verified with the fixed command key for the fixed device
 *   1  a result envelope, verified with the fixed device key
 *   2  a command payload: signed here with the command key, then verified (so that the fuzzer
 *      explores the payload decoder, which an unsigned input never reaches)
 *   3  a result payload, likewise
 * The seeds in tests/fuzz/corpus/command/ are signed by these keys (command key: the scalar
 * 01..20 of fuzz-cose; device key: c0ffee00…bb01 of test-cose). Whatever verifies must sign
 * again and verify to the same values. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "proto/command.h"
#include "proto/cose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_DEVICE "00112233445566778899aabbccddeeff"
#define FUZZ_LAST_SEQ 5
#define FUZZ_NOW UINT64_C(1800000000)

static const uint8_t command_scalar[32] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
};
static const char device_scalar_hex[] = "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabb01";

static bool command_valid(const Command *c)
{
	if (strlen(c->id) != 32 || strspn(c->id, "0123456789abcdef") != 32 || !c->issuer || c->exp <= c->iat)
		return false;
	switch (c->type) {
	case COMMAND_LOCK:
		return c->args.lock.reason != NULL;
	case COMMAND_UNLOCK:
		return c->args.unlock.policy != NULL;
	case COMMAND_WIPE:
		return c->args.wipe.class_name != NULL;
	case COMMAND_POLICY:
		return c->args.policy.version > 0 && c->args.policy.heartbeat > 0;
	}
	return false;
}

static bool command_same(const Command *a, const Command *b)
{
	if (!streq(a->id, b->id) || !streq(a->device_id, b->device_id) || a->seq != b->seq ||
	    a->iat != b->iat || a->exp != b->exp || a->type != b->type || !streq(a->issuer, b->issuer))
		return false;
	switch (a->type) {
	case COMMAND_LOCK:
		return streq(a->args.lock.reason, b->args.lock.reason) &&
		       a->args.lock.poweroff == b->args.lock.poweroff;
	case COMMAND_UNLOCK:
		return streq(a->args.unlock.policy, b->args.unlock.policy);
	case COMMAND_WIPE:
		return streq(a->args.wipe.class_name, b->args.wipe.class_name);
	case COMMAND_POLICY: {
		const DevicePolicy *p = &a->args.policy, *q = &b->args.policy;
		return p->version == q->version && p->heartbeat == q->heartbeat &&
		       p->offline_lease == q->offline_lease && p->usb_storage == q->usb_storage &&
		       p->screen_lock == q->screen_lock;
	}
	}
	return false;
}

static void check_command(const EcKey *key, const uint8_t *cose, size_t n)
{
	Command c = {}, again = {};
	const char *reason = NULL;
	uint8_t *resigned = NULL;
	size_t m;
	int r;

	r = command_verify(key, FUZZ_DEVICE, FUZZ_LAST_SEQ, FUZZ_NOW, cose, n, &c, &reason);
	if (r == -ESTALE) {
		/* filled so that a redelivery can be answered */
		if (!reason || c.seq > FUZZ_LAST_SEQ || c.seq == 0 || !streq(c.device_id, FUZZ_DEVICE))
			abort();
		command_done(&c);
		return;
	}
	if (r < 0) {
		if (!reason || (r != -EBADMSG && r != -ENOKEY && r != -EFBIG && r != -EXDEV && r != -ETIME &&
				r != -EOPNOTSUPP))
			abort();
		return;
	}
	if (!command_valid(&c) || c.seq <= FUZZ_LAST_SEQ || !streq(c.device_id, FUZZ_DEVICE) ||
	    FUZZ_NOW > c.exp)
		abort();
	/* what we accept, the server's signer writes the same way */
	if (command_sign(key, &c, &resigned, &m) < 0 ||
	    command_verify(key, FUZZ_DEVICE, FUZZ_LAST_SEQ, FUZZ_NOW, resigned, m, &again, NULL) < 0 ||
	    !command_same(&c, &again))
		abort();
	free(resigned);
	command_done(&again);
	command_done(&c);
}

static void check_result(const EcKey *key, const uint8_t *cose, size_t n)
{
	CommandResult res = {}, again = {};
	const char *reason = NULL;
	uint8_t *resigned = NULL;
	size_t m;
	int r;

	r = command_result_verify(key, cose, n, &res, &reason);
	if (r < 0) {
		if (!reason || (r != -EBADMSG && r != -ENOKEY && r != -EFBIG))
			abort();
		return;
	}
	if (!res.reason || !result_status_name(res.status) ||
	    (res.type != 0 && !command_type_name(res.type)))
		abort();
	if (command_result_sign(key, &res, &resigned, &m) < 0 ||
	    command_result_verify(key, resigned, m, &again, NULL) < 0 || !streq(res.id, again.id) ||
	    !streq(res.device_id, again.device_id) || res.seq != again.seq || res.type != again.type ||
	    res.status != again.status || !streq(res.reason, again.reason) || res.time != again.time ||
	    res.has_epoch != again.has_epoch || res.epoch != again.epoch)
		abort();
	free(resigned);
	command_result_done(&again);
	command_result_done(&res);
}

static void sign_and_check(const EcKey *key, const char *aad, bool result, const uint8_t *payload, size_t n)
{
	uint8_t *cose = NULL;
	size_t m;
	int r;

	r = cose_sign1_sign(key, aad, strlen(aad), payload, n, &cose, &m);
	if (r == -EFBIG)
		return;
	if (r < 0)
		abort();
	if (result)
		check_result(key, cose, m);
	else
		check_command(key, cose, m);
	free(cose);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EcKey *command_key, *device_key;

	if (!command_key) {
		uint8_t scalar[32];

		if (ec_key_from_private_scalar(command_scalar, sizeof(command_scalar), &command_key) < 0 ||
		    hex_decode_exact(device_scalar_hex, scalar, sizeof(scalar)) < 0 ||
		    ec_key_from_private_scalar(scalar, sizeof(scalar), &device_key) < 0)
			abort();
	}
	if (size == 0)
		return 0;

	switch (data[0] & 3) {
	case 0:
		check_command(command_key, data + 1, size - 1);
		break;
	case 1:
		check_result(device_key, data + 1, size - 1);
		break;
	case 2:
		sign_and_check(command_key, "trustpc-command", false, data + 1, size - 1);
		break;
	default:
		sign_and_check(device_key, "trustpc-result", true, data + 1, size - 1);
	}
	return 0;
}
