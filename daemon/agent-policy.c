/* SPDX-License-Identifier: Apache-2.0 */
/* The device policy's arithmetic, shared by the network process and the unit tests: which
 * heartbeat interval is in force, when the offline lease runs out (agent.h). */
#include "agent.h"
#include "basic/macro.h"

uint32_t agent_heartbeat_interval(uint32_t policy_heartbeat, uint32_t server_heartbeat)
{
	/* The device policy is signed by the fleet command key and versioned; the attest-result's
	 * heartbeat is a per-connection hint: the policy wins when one is applied. */
	uint32_t hb = policy_heartbeat ?: server_heartbeat ?: AGENT_HEARTBEAT_DEFAULT_SEC;

	return MIN(MAX(hb, AGENT_HEARTBEAT_MIN_SEC), AGENT_HEARTBEAT_MAX_SEC);
}

uint64_t agent_lease_deadline(uint64_t now_usec, uint64_t lease_sec)
{
	const uint64_t max = UINT64_MAX - 1; /* UINT64_MAX is sd-event's "never" */

	if (lease_sec > (max - MIN(now_usec, max)) / 1000000)
		return max;
	return now_usec + lease_sec * 1000000;
}

uint64_t agent_lease_elapsed(uint64_t now_sec, uint64_t last_checkin_sec)
{
	if (last_checkin_sec == 0 || now_sec < last_checkin_sec)
		return 0;
	return now_sec - last_checkin_sec;
}
