/* SPDX-License-Identifier: Apache-2.0 */
/* Audit records of the server (docs/PROTOCOL.md "Audit log"): every enrollment, attestation
 * result and rejection, with the details as one compact JSON object. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "server.h"

int audit_record(Store *store, const char *actor, const char *action, const char *subject, json_t *details)
{
	_cleanup_free_ char *text = NULL;
	int r;

	if (details) {
		text = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(details);
		if (!text)
			return log_oom();
	}
	r = store_audit_append(store, actor, action, subject, text);
	if (r < 0)
		return log_error_errno(r, "Cannot append the audit record '%s' for '%s': %m.", action,
				       strna(subject));
	return 0;
}

int server_audit_local(Store *store, const char *action, const char *subject, json_t *details)
{
	return audit_record(store, "trustpc-server (local)", action, subject, details);
}

int server_audit(Server *s, const char *action, const char *subject, json_t *details)
{
	return audit_record(s->store, SERVER_ACTOR, action, subject, details);
}

void server_audit_rate_limited(Server *s, const char *action, const char *subject, json_t *details)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec;
	if (now - s->audit_window_start >= 60) {
		if (s->audit_suppressed > 0) {
			log_warning("%u rejected handshakes in the last minute were not audited (limit %d a "
				    "minute).",
				    s->audit_suppressed, SERVER_AUDIT_BURST);
			if (details)
				json_object_set_new(details, "suppressed_before",
						    json_integer(s->audit_suppressed));
		}
		s->audit_window_start = now;
		s->audit_window_count = 0;
		s->audit_suppressed = 0;
	}
	if (s->audit_window_count >= SERVER_AUDIT_BURST) {
		s->audit_suppressed++;
		json_decref(details);
		return;
	}
	s->audit_window_count++;
	(void)server_audit(s, action, subject, details);
}
