/* SPDX-License-Identifier: Apache-2.0 */
/* EXECUTE (daemon/executor-command.c) without a TPM: the gate's exact size bounds, the command
 * state and intent files, the lock idempotency rule, and the real executor loop on a socketpair
 * (a thread) with commands signed here: verification against the executor's own key and last_seq,
 * redelivery, and every rejection leaving the state file byte for byte as it was. The TPM actions
 * (lock, unlock, wipe, crashes) are in tests/integration/test-trustpcd-commands.sh. */
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
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent-state.h"
#include "basic/fileio.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "executor-command.h"
#include "privsep-executor.h"
#include "privsep-proto.h"
#include "proto/command.h"
#include "proto/proto.h"

#define ID "0123456789abcdef0123456789abcdef"
#define OTHER_ID "fedcba9876543210fedcba9876543210"

/* ---- the gate ---- */

static int gate(bool enroll, uint32_t declared, size_t actual)
{
	_cleanup_free_ uint8_t *buf =
	    calloc(1, sizeof(PrivsepHeader) + sizeof(PrivsepExecuteRequest) + actual);
	PrivsepHeader h = {.type = PRIVSEP_EXECUTE,
			   .size = (uint32_t)(sizeof(PrivsepExecuteRequest) + actual)};
	PrivsepExecuteRequest x = {.size = declared};
	PrivsepType t = 0;
	const char *why = NULL;
	int r;

	assert_non_null(buf);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &x, sizeof(x));
	r = privsep_request_check(buf, sizeof(h) + sizeof(x) + actual, enroll, &t, &why);
	if (r < 0)
		assert_non_null(why);
	else
		assert_int_equal(t, PRIVSEP_EXECUTE);
	return r;
}

static void test_gate_sizes(void **state)
{
	assert_int_equal(gate(false, 1, 1), 0);
	assert_int_equal(gate(false, PRIVSEP_COSE_MAX, PRIVSEP_COSE_MAX), 0);
	assert_int_equal(gate(false, 200, 200), 0);
	/* empty, one over the maximum, a size that would wrap when added */
	assert_int_equal(gate(false, 0, 0), -EPROTO);
	assert_int_equal(gate(false, PRIVSEP_COSE_MAX + 1, PRIVSEP_COSE_MAX + 1), -EPROTO);
	assert_int_equal(gate(false, UINT32_MAX, 10), -EPROTO);
	assert_int_equal(gate(false, UINT32_MAX - 3, 0), -EPROTO);
	/* the declared size must be the bytes that follow, exactly */
	assert_int_equal(gate(false, 100, 99), -EPROTO);
	assert_int_equal(gate(false, 100, 101), -EPROTO);
	/* not while enrolling */
	assert_int_equal(gate(true, 100, 100), -EPROTO);

	/* shorter than the fixed part */
	PrivsepHeader h = {.type = PRIVSEP_EXECUTE, .size = 2};
	uint8_t buf[sizeof(h) + 2] = {0};
	PrivsepType t;
	const char *why = NULL;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(privsep_request_check(buf, sizeof(buf), false, &t, &why), -EPROTO);
	assert_string_equal(why, "EXECUTE shorter than its fixed part");
	assert_string_equal(privsep_type_name(PRIVSEP_EXECUTE), "EXECUTE");
}

/* ---- the files ---- */

static char *tmpdir(void)
{
	char *d = strdup("/tmp/test-exec-cmd.XXXXXX");
	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static void rmdir_r(char *d)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d);
	assert_int_equal(system(cmd), 0);
	free(d);
}

static void test_state_round_trip(void **state)
{
	char *d = tmpdir();
	ExecState s = {.last_seq = 41,
		       .last_type = COMMAND_LOCK,
		       .last_status = RESULT_DONE,
		       .has_epoch = true,
		       .epoch = 7,
		       .locked = true};
	ExecState got;
	ExecIntent i = {.seq = 42, .type = COMMAND_WIPE, .has_epoch_before = true, .epoch_before = 7}, gi;

	/* no file: the zero state */
	assert_int_equal(exec_state_load(d, &got), 0);
	assert_int_equal(got.last_seq, 0);
	assert_false(got.locked);
	assert_int_equal(exec_intent_load(d, &gi), -ENOENT);

	strcpy(s.last_id, ID);
	strcpy(s.last_reason, "locked at epoch 7");
	assert_int_equal(exec_state_save(d, &s), 0);
	assert_int_equal(exec_state_load(d, &got), 0);
	assert_memory_equal(&got, &s, sizeof(s));

	strcpy(i.id, OTHER_ID);
	assert_int_equal(exec_intent_save(d, &i), 0);
	assert_int_equal(exec_intent_load(d, &gi), 0);
	assert_memory_equal(&gi, &i, sizeof(i));
	assert_int_equal(exec_intent_remove(d), 0);
	assert_int_equal(exec_intent_load(d, &gi), -ENOENT);
	assert_int_equal(exec_intent_remove(d), 0); /* idempotent */

	/* files that are not ours are refused, never taken for "no command yet" */
	assert_int_equal(state_write(d, STATE_COMMANDS, "[]", 2), 0);
	assert_int_equal(exec_state_load(d, &got), -EBADMSG);
	const char *bad_id = "{\"last_seq\":1,\"last_id\":\"XYZ\",\"last_type\":1,\"last_status\":1,"
			     "\"last_reason\":\"\",\"locked\":false}";
	assert_int_equal(state_write(d, STATE_COMMANDS, bad_id, strlen(bad_id)), 0);
	assert_int_equal(exec_state_load(d, &got), -EBADMSG);
	const char *neg = "{\"last_seq\":-1,\"last_id\":\"\",\"last_type\":1,\"last_status\":1,"
			  "\"last_reason\":\"\",\"locked\":false}";
	assert_int_equal(state_write(d, STATE_COMMANDS, neg, strlen(neg)), 0);
	assert_int_equal(exec_state_load(d, &got), -EBADMSG);
	assert_int_equal(state_write(d, STATE_INTENT, "{\"id\":\"" ID "\",\"seq\":1,\"type\":9}", 37), 0);
	assert_int_equal(exec_intent_load(d, &gi), -EBADMSG);
	rmdir_r(d);
}

static void test_lock_idempotency(void **state)
{
	ExecIntent i = {.seq = 3, .type = COMMAND_LOCK, .has_epoch_before = true, .epoch_before = 5};

	assert_true(exec_lock_needs_increment(NULL, 5)); /* first delivery */
	assert_true(exec_lock_needs_increment(&i, 5));	 /* crashed after the intent, before the increment */
	assert_false(exec_lock_needs_increment(&i, 6));	 /* crashed after the increment */
	assert_false(exec_lock_needs_increment(&i, 9));	 /* moved on in any way: never again */
	i.has_epoch_before = false;
	assert_true(exec_lock_needs_increment(&i, 6)); /* no counter when the intent was written */
}

/* ---- the executor loop with signed commands (no TPM: the policy type, lock fails cleanly) ---- */

typedef struct Harness {
	int fd;
	pthread_t thread;
	Executor e;
	int result;
	char *dir;
	EcKey *key, *other;
} Harness;

static void *executor_thread(void *p)
{
	Harness *h = p;
	h->result = executor_run(&h->e);
	close(h->e.fd);
	return NULL;
}

static void harness_start(Harness *h)
{
	_cleanup_free_ char *pem = NULL;
	int sv[2];

	memset(h, 0, sizeof(*h));
	h->dir = tmpdir();
	assert_int_equal(ec_key_generate(&h->key), 0);
	assert_int_equal(ec_key_generate(&h->other), 0);
	assert_int_equal(ec_key_public_pem(h->key, &pem), 0);
	assert_int_equal(state_write(h->dir, STATE_COMMAND_KEY, pem, strlen(pem)), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	h->fd = sv[1];
	h->e.fd = sv[0];
	h->e.state_dir = h->dir;
	h->e.enrolled = true;
	strcpy(h->e.device_id, ID);
	assert_int_equal(pthread_create(&h->thread, NULL, executor_thread, h), 0);
}

static void harness_stop(Harness *h)
{
	close(h->fd);
	assert_int_equal(pthread_join(h->thread, NULL), 0);
	assert_int_equal(h->result, 0);
	ec_key_free(h->key);
	ec_key_free(h->other);
	rmdir_r(h->dir);
}

static void execute(Harness *h, const EcKey *key, const char *device, uint64_t seq, CommandType type,
		    const char *id, int64_t exp_delta, PrivsepExecuteReply *rep)
{
	_cleanup_free_ uint8_t *cose = NULL;
	Command c = {.seq = seq, .type = type, .iat = (uint64_t)time(NULL), .issuer = (char *)"test"};
	size_t n;

	c.exp = (uint64_t)((int64_t)time(NULL) + exp_delta);
	if (exp_delta < 0)
		c.iat = c.exp - 60; /* issued, valid for a minute, over */
	snprintf(c.device_id, sizeof(c.device_id), "%s", device);
	if (id)
		snprintf(c.id, sizeof(c.id), "%s", id);
	if (type == COMMAND_POLICY)
		c.args.policy = (DevicePolicy){.version = seq, .heartbeat = 60, .screen_lock = 300};
	else if (type == COMMAND_LOCK)
		c.args.lock.reason = (char *)"stolen";
	assert_int_equal(command_sign(key, &c, &cose, &n), 0);
	assert_int_equal(privsep_execute(h->fd, cose, n, rep), 0);
}

static const char *strempty_or(const char *s)
{
	return s ?: "";
}

static char *state_bytes(Harness *h)
{
	char *t = NULL;
	int r = state_read(h->dir, STATE_COMMANDS, false, &t, NULL);
	assert_true(r == 0 || r == -ENOENT);
	return t;
}

static void expect_rejected(Harness *h, const EcKey *key, const char *device, uint64_t seq,
			    int64_t exp_delta, const char *id, const char *reason_part)
{
	_cleanup_free_ char *before = state_bytes(h), *after = NULL;
	PrivsepExecuteReply rep;

	execute(h, key, device, seq, COMMAND_POLICY, id, exp_delta, &rep);
	assert_int_equal(rep.status, RESULT_REJECTED);
	assert_false(rep.redelivered);
	if (!strstr(rep.reason, reason_part))
		fail_msg("reason '%s' does not mention '%s'", rep.reason, reason_part);
	after = state_bytes(h);
	/* nothing changed: same state file, no intent left behind */
	assert_string_equal(strempty_or(before), strempty_or(after));
	ExecIntent i;
	assert_int_equal(exec_intent_load(h->dir, &i), -ENOENT);
}

static void test_execute_signed(void **state)
{
	Harness h;
	PrivsepExecuteReply rep, again;
	ExecState s;

	harness_start(&h);
	execute(&h, h.key, ID, 1, COMMAND_POLICY, OTHER_ID, 600, &rep);
	assert_int_equal(rep.status, RESULT_DONE);
	assert_string_equal(rep.id, OTHER_ID);
	assert_int_equal(rep.seq, 1);
	assert_int_equal(rep.type, COMMAND_POLICY);
	assert_false(rep.redelivered);
	assert_int_equal(exec_state_load(h.dir, &s), 0);
	assert_int_equal(s.last_seq, 1);
	assert_string_equal(s.last_id, OTHER_ID);

	/* the same command again: the stored result, flagged, nothing run again */
	execute(&h, h.key, ID, 1, COMMAND_POLICY, OTHER_ID, 600, &again);
	assert_true(again.redelivered);
	assert_int_equal(again.status, RESULT_DONE);
	assert_string_equal(again.reason, rep.reason);

	/* seq 1 with another id: not a redelivery */
	expect_rejected(&h, h.key, ID, 1, 600, "00000000000000000000000000000001", "sequence not above");
	execute(&h, h.key, ID, 5, COMMAND_POLICY, NULL, 600, &rep);
	assert_int_equal(rep.status, RESULT_DONE);
	assert_int_equal(rep.seq, 5);
	expect_rejected(&h, h.key, ID, 4, 600, NULL, ""); /* older seq */
	expect_rejected(&h, h.key, "ffffffffffffffffffffffffffffffff", 6, 600, NULL,
			""); /* another device */

	expect_rejected(&h, h.key, ID, 6, -10, NULL, ""); /* expired */

	/* a lock without a TPM fails cleanly and is recorded as failed */
	execute(&h, h.key, ID, 6, COMMAND_LOCK, NULL, 600, &rep);
	assert_int_equal(rep.status, RESULT_FAILED);
	assert_non_null(strstr(rep.reason, "no TPM"));
	assert_false(rep.locked);

	/* the state file unreadable: everything refused (an old command could be replayed otherwise) */
	assert_int_equal(state_write(h.dir, STATE_COMMANDS, "garbage", 7), 0);
	execute(&h, h.key, ID, 7, COMMAND_POLICY, NULL, 600, &rep);
	assert_int_equal(rep.status, RESULT_REJECTED);
	harness_stop(&h);
}

/* trustpcd.conf: volumes and volume.CLASS (what a wipe erases). */
static int config(const char *dir, const char *text, AgentConfig *ret, unsigned *line)
{
	assert_int_equal(state_write(dir, STATE_CONFIG, text, strlen(text)), 0);
	return agent_config_load(dir, ret, line);
}

static void test_config_volumes(void **state)
{
	char *d = tmpdir();
	AgentConfig c = {0};
	unsigned line = 0;

	assert_int_equal(
	    config(d, "server = h:1\nvolumes = /a\n# c\nvolume.corporate = /b  /c\nvolume.personal=/d\n", &c,
		   &line),
	    0);
	assert_true(c.disk_encrypted);
	assert_int_equal(c.n_volumes, 4);
	assert_null(c.volumes[0].class_name);
	assert_string_equal(c.volumes[0].path, "/a");
	assert_string_equal(c.volumes[1].class_name, "corporate");
	assert_string_equal(c.volumes[2].path, "/c");
	assert_string_equal(c.volumes[3].class_name, "personal");
	assert_string_equal(c.volumes[3].path, "/d");
	agent_config_done(&c);

	/* refused, with the line: "all" is the wipe-everything word, relative paths, odd class names */
	assert_int_equal(config(d, "volume.all = /a\n", &c, &line), -EINVAL);
	assert_int_equal(line, 1);
	assert_int_equal(config(d, "volumes = /a\nvolume.corp = rel/path\n", &c, &line), -EINVAL);
	assert_int_equal(line, 2);
	assert_int_equal(config(d, "volume.Corp = /a\n", &c, &line), -EINVAL);
	assert_int_equal(config(d, "volume. = /a\n", &c, &line), -EINVAL);
	assert_int_equal(config(d, "volume.a/b = /a\n", &c, &line), -EINVAL);

	/* at most AGENT_VOLUMES_MAX */
	char big[AGENT_VOLUMES_MAX * 4 + 32] = "volumes =";
	for (int i = 0; i <= AGENT_VOLUMES_MAX; i++)
		strcat(big, " /v");
	assert_int_equal(config(d, big, &c, &line), -EINVAL);
	rmdir_r(d);
}

/* The optional command_key of `enrolled` (what trustpcd enroll stores as command-key.pem). */
static void test_enrolled_command_key(void **state)
{
	static const uint8_t der[] = {0x30, 0x59, 0x30, 0x13};
	ProtoMessage m = {.type = PROTO_ENROLLED}, d = {0};
	_cleanup_free_ uint8_t *frame = NULL;
	const char *why = NULL;
	size_t n;

	m.enrolled.device_id = ID;
	m.enrolled.device_cert = m.enrolled.ca_cert = m.enrolled.policy_key = m.enrolled.escrow_key =
	    (ProtoBytes){der, sizeof(der)};
	/* without: absent after the round trip */
	assert_int_equal(proto_encode(&m, &frame, &n), 0);
	assert_int_equal(proto_decode(frame + 4, n - 4, &d, &why), 0);
	assert_false(d.enrolled.has_command_key);
	proto_message_done(&d);
	free(frame);
	/* with: the same bytes */
	m.enrolled.has_command_key = true;
	m.enrolled.command_key = (ProtoBytes){der, sizeof(der)};
	assert_int_equal(proto_encode(&m, &frame, &n), 0);
	assert_int_equal(proto_decode(frame + 4, n - 4, &d, &why), 0);
	assert_true(d.enrolled.has_command_key);
	assert_int_equal(d.enrolled.command_key.size, sizeof(der));
	assert_memory_equal(d.enrolled.command_key.data, der, sizeof(der));
	assert_true(proto_message_equal(&m, &d));
	proto_message_done(&d);
}

/* The device policy's version rule through the executor: applied and stored; an older or equal
 * version under a valid signature and a new seq is refused with the reason, the stored policy
 * untouched. */
static void execute_policy(Harness *h, uint64_t seq, uint64_t version, PrivsepExecuteReply *rep)
{
	_cleanup_free_ uint8_t *cose = NULL;
	Command c = {.seq = seq, .type = COMMAND_POLICY, .iat = (uint64_t)time(NULL), .issuer = (char *)"t"};
	size_t n;

	c.exp = c.iat + 600;
	snprintf(c.device_id, sizeof(c.device_id), "%s", ID);
	c.args.policy = (DevicePolicy){.version = version, .heartbeat = 30, .offline_lease = 5};
	assert_int_equal(command_sign(h->key, &c, &cose, &n), 0);
	assert_int_equal(privsep_execute(h->fd, cose, n, rep), 0);
}

static void test_policy_version(void **state)
{
	_cleanup_free_ char *stored = NULL, *after = NULL;
	PrivsepExecuteReply rep;
	DevicePolicy p;
	Harness h;

	harness_start(&h);
	execute_policy(&h, 1, 10, &rep);
	assert_int_equal(rep.status, RESULT_DONE);
	assert_non_null(strstr(rep.reason, "version 10 applied"));
	assert_int_equal(exec_device_policy_load(h.dir, &p), 0);
	assert_int_equal(p.version, 10);
	assert_int_equal(p.offline_lease, 5);
	assert_int_equal(state_read(h.dir, STATE_DEVICE_POLICY, false, &stored, NULL), 0);
	/* a policy with a lease is a check-in: the lease runs from now, not from an older record */
	uint64_t ck = 0;
	assert_int_equal(state_write(h.dir, STATE_CHECKIN, "{\"last_checkin\":1}", 18), 0);
	execute_policy(&h, 2, 11, &rep);
	assert_int_equal(rep.status, RESULT_DONE);
	assert_int_equal(exec_checkin_load(h.dir, &ck), 0);
	assert_true(ck + 60 >= (uint64_t)time(NULL));
	assert_int_equal(state_write(h.dir, STATE_CHECKIN, "{\"last_checkin\":1}", 18), 0);
	assert_int_equal(privsep_checkin(h.fd), 0);
	assert_int_equal(exec_checkin_load(h.dir, &ck), 0);
	assert_true(ck + 60 >= (uint64_t)time(NULL));
	free(stored);
	stored = NULL;
	assert_int_equal(state_read(h.dir, STATE_DEVICE_POLICY, false, &stored, NULL), 0);

	execute_policy(&h, 3, 11, &rep); /* equal */
	assert_int_equal(rep.status, RESULT_REJECTED);
	assert_non_null(strstr(rep.reason, "not newer than the applied version 11"));
	execute_policy(&h, 4, 9, &rep); /* older */
	assert_int_equal(rep.status, RESULT_REJECTED);
	assert_non_null(strstr(rep.reason, "policy version 9 is not newer"));
	assert_int_equal(state_read(h.dir, STATE_DEVICE_POLICY, false, &after, NULL), 0);
	assert_string_equal(stored, after);

	execute_policy(&h, 5, 12, &rep);
	assert_int_equal(rep.status, RESULT_DONE);
	assert_int_equal(exec_device_policy_load(h.dir, &p), 0);
	assert_int_equal(p.version, 12);

	/* the lease lock: without a TPM it cannot lock (the swtpm case is
	 * tests/integration/test-device-policy.sh); without a lease in force it is refused, nothing
	 * recorded */
	{
		_cleanup_free_ char *json = NULL, *cmds = NULL, *cmds_after = NULL;

		execute_policy(&h, 6, 13, &rep); /* offline_lease 5 */
		assert_int_equal(rep.status, RESULT_DONE);
		assert_int_equal(privsep_lease_lock(h.fd, &rep), -ENODEV);
		assert_int_equal(exec_device_policy_load(h.dir, &p), 0);
		p.version = 14;
		p.offline_lease = 0;
		assert_int_equal(device_policy_format_json(&p, &json), 0);
		assert_int_equal(state_write(h.dir, STATE_DEVICE_POLICY, json, strlen(json)), 0);
		assert_int_equal(state_read(h.dir, STATE_COMMANDS, false, &cmds, NULL), 0);
		assert_int_equal(privsep_lease_lock(h.fd, &rep), -EPERM);
		assert_int_equal(state_read(h.dir, STATE_COMMANDS, false, &cmds_after, NULL), 0);
		assert_string_equal(cmds, cmds_after);
	}

	/* a damaged stored policy: nothing overwritten blindly */
	assert_int_equal(state_write(h.dir, STATE_DEVICE_POLICY, "{}", 2), 0);
	execute_policy(&h, 7, 15, &rep);
	assert_int_equal(rep.status, RESULT_FAILED);
	assert_non_null(strstr(rep.reason, "unreadable"));
	harness_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gate_sizes),		 cmocka_unit_test(test_state_round_trip),
	    cmocka_unit_test(test_lock_idempotency),	 cmocka_unit_test(test_execute_signed),
	    cmocka_unit_test(test_enrolled_command_key), cmocka_unit_test(test_config_volumes),
	    cmocka_unit_test(test_policy_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
