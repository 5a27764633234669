/* SPDX-License-Identifier: Apache-2.0 */
/* The device policy document (lib/proto/command.h device_policy_parse_json): trustpcd reads it
 * from policy.d at start. What parses must format and parse again to the same policy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	DevicePolicy p = {}, q = {};
	const char *why = NULL;
	char *text = NULL;

	if (device_policy_parse_json((const char *)data, size, &p, &why) < 0) {
		if (!why) /* every rejection says why */
			abort();
		return 0;
	}
	if (p.version == 0 || p.heartbeat == 0)
		abort();
	if (device_policy_format_json(&p, &text) < 0 ||
	    device_policy_parse_json(text, strlen(text), &q, &why) < 0 || p.version != q.version ||
	    p.heartbeat != q.heartbeat || p.offline_lease != q.offline_lease ||
	    p.usb_storage != q.usb_storage || p.screen_lock != q.screen_lock)
		abort();
	free(text);
	return 0;
}
