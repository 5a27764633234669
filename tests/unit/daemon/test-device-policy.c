/* SPDX-License-Identifier: Apache-2.0 */
/* The device policy's rules on the device: the version rule (never back), the heartbeat in force
 * (the signed policy over the server's hint, clamped), the offline lease's deadline and the stored
 * document's loader. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent-state.h"
#include "agent.h"
#include "basic/fileio.h"
#include "basic/macro.h"
#include "executor-command.h"
#include "proto/command.h"

static void test_version_rule(void **state)
{
	/* none applied (0): any valid version (>= 1) is newer */
	assert_true(exec_policy_version_newer(0, 1));
	assert_true(exec_policy_version_newer(1, 2));
	assert_true(exec_policy_version_newer(41, (uint64_t)INT64_MAX));
	/* equal: a replay of the applied policy; older: a rollback */
	assert_false(exec_policy_version_newer(2, 2));
	assert_false(exec_policy_version_newer(2, 1));
	assert_false(exec_policy_version_newer((uint64_t)INT64_MAX, 1));
	assert_false(exec_policy_version_newer(1, 0));
}

static void test_heartbeat_interval(void **state)
{
	/* the policy wins over the server's hint */
	assert_int_equal(agent_heartbeat_interval(60, 300), 60);
	assert_int_equal(agent_heartbeat_interval(600, 30), 600);
	/* no policy: the server's; neither: the default */
	assert_int_equal(agent_heartbeat_interval(0, 120), 120);
	assert_int_equal(agent_heartbeat_interval(0, 0), AGENT_HEARTBEAT_DEFAULT_SEC);
	/* clamped both ways: a 1 s heartbeat would make a fleet hammer its server */
	assert_int_equal(agent_heartbeat_interval(1, 300), AGENT_HEARTBEAT_MIN_SEC);
	assert_int_equal(agent_heartbeat_interval(UINT32_MAX, 300), AGENT_HEARTBEAT_MAX_SEC);
	assert_int_equal(agent_heartbeat_interval(0, UINT32_MAX), AGENT_HEARTBEAT_MAX_SEC);
}

static void test_lease_deadline(void **state)
{
	const uint64_t S = 1000000, never = UINT64_MAX - 1;

	assert_int_equal(agent_lease_deadline(0, 5), 5 * S);
	assert_int_equal(agent_lease_deadline(123 * S + 7, 72 * 3600), (123 + 72 * 3600) * S + 7);
	/* the largest lease a policy can carry (2^63-1 s) saturates instead of wrapping into the
	 * past (which would lock the device at once) or landing on sd-event's "infinity" */
	assert_int_equal(agent_lease_deadline(1000 * S, (uint64_t)INT64_MAX), never);
	assert_int_equal(agent_lease_deadline(never - 5 * S, 5), never);
	assert_int_equal(agent_lease_deadline(never - 5 * S - 1, 5), never - 1);
	assert_int_equal(agent_lease_deadline(UINT64_MAX, 1), never);
	assert_int_equal(agent_lease_deadline(42, 0), 42);
}

static void test_lease_elapsed(void **state)
{
	/* a restart 100 s after the last check-in: 100 s of the lease are used */
	assert_int_equal(agent_lease_elapsed(1000100, 1000000), 100);
	assert_int_equal(agent_lease_elapsed(1000000, 1000000), 0);
	/* no check-in recorded: a fresh lease */
	assert_int_equal(agent_lease_elapsed(1000000, 0), 0);
	/* the clock set back before the check-in: nothing gained over a fresh lease, no wrap to a
	 * huge "used" either */
	assert_int_equal(agent_lease_elapsed(999999, 1000000), 0);
	assert_int_equal(agent_lease_elapsed(UINT64_MAX, 1), UINT64_MAX - 1);
}

static void test_load(void **state)
{
	char d[] = "/tmp/test-device-policy.XXXXXX";
	DevicePolicy p = {.version = 7,
			  .heartbeat = 60,
			  .offline_lease = 259200,
			  .usb_storage = false,
			  .screen_lock = 300},
		     got;
	char *json = NULL;
	_cleanup_free_ char *path = NULL;
	static const char bad[] = "{\"version\":0,\"heartbeat\":60,\"offline_lease\":0,\"usb_storage\":"
				  "true,\"screen_lock\":0}";

	assert_non_null(mkdtemp(d));
	assert_int_equal(exec_device_policy_load(d, &got), -ENOENT);
	assert_int_equal(device_policy_format_json(&p, &json), 0);
	assert_int_equal(state_write(d, STATE_DEVICE_POLICY, json, strlen(json)), 0);
	free(json);
	assert_int_equal(exec_device_policy_load(d, &got), 0);
	assert_memory_equal(&got, &p, sizeof(p));
	/* a file the strict parser refuses is an error, never "no policy" (which would let any
	 * version through) */
	assert_int_equal(state_write(d, STATE_DEVICE_POLICY, bad, strlen(bad)), 0);
	assert_int_equal(exec_device_policy_load(d, &got), -EBADMSG);
	assert_int_equal(state_path(d, STATE_DEVICE_POLICY, &path), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_version_rule),   cmocka_unit_test(test_heartbeat_interval),
	    cmocka_unit_test(test_lease_deadline), cmocka_unit_test(test_lease_elapsed),
	    cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
