/* SPDX-License-Identifier: Apache-2.0 */
/* What the device reports about itself (docs/PROTOCOL.md "posture"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "privsep-proto.h"
#include "proto/proto.h"

static char *os_release_value(char *text, const char *key)
{
	size_t kl = strlen(key);
	char *save = NULL;

	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *v, *e;
		if (strncmp(l, key, kl) != 0 || l[kl] != '=')
			continue;
		v = l + kl + 1;
		e = v + strlen(v);
		if (e - v >= 2 && (*v == '"' || *v == '\'') && e[-1] == *v) {
			v++;
			e[-1] = 0;
		}
		return *v && strlen(v) < PROTO_TEXT_MAX ? strdup(v) : NULL;
	}
	return NULL;
}

int agent_read_image_version(char **ret)
{
	static const char *const paths[] = {"/etc/os-release", "/usr/lib/os-release"};
	static const char *const keys[] = {"IMAGE_VERSION", "VERSION_ID"};

	for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
		_cleanup_free_ char *text = NULL;
		if (read_full_file(paths[i], 64 * 1024, false, &text, NULL) < 0)
			continue;
		for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
			/* strtok_r writes into the buffer: give each key its own copy. */
			_cleanup_free_ char *copy = strdup(text);
			char *v;
			if (!copy)
				return -ENOMEM;
			v = os_release_value(copy, keys[k]);
			if (v) {
				*ret = v;
				return 0;
			}
		}
		return -ENOENT;
	}
	return -ENOENT;
}

uint64_t agent_uptime_sec(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec;
}

int agent_posture(Agent *a, ProtoPosture *p)
{
	PrivsepStatusReply s;
	int r;

	*p = (ProtoPosture){
		.image_version = a->image_version,
		.agent_version = AGENT_VERSION,
		.disk_encrypted = a->disk_encrypted,
		.uptime = agent_uptime_sec(),
	};
	r = privsep_status(a->privsep_fd, &s);
	if (r < 0)
		return r;
	if (s.have_epoch) {
		p->epoch = s.epoch;
		p->has_epoch = true;
	}
	p->locked = s.locked;
	/* The applied device policy: its version goes to the server (which shows what a device
	 * really runs), its heartbeat is the interval of the next check-ins. */
	p->policy_version = s.policy_version;
	agent_policy_update(a, &s);
	p->disk_encrypted = s.disk_encrypted;
	agent_set_status(a, s.have_epoch ? s.epoch : a->epoch, s.locked);
	return 0;
}

static void lease_arm(Agent *a, uint64_t used_sec);

void agent_policy_update(Agent *a, const PrivsepStatusReply *s)
{
	uint32_t hb;

	a->policy_version = s->policy_version;
	a->policy_heartbeat = s->policy_version ? s->policy_heartbeat : 0;
	if (s->policy_offline_lease != a->policy_offline_lease ||
	    (s->policy_offline_lease && !a->lease_timer)) {
		/* A new lease, or the first arming since start: it runs from the last recorded
		 * check-in (the executor records one when it applies a policy with a lease), so that
		 * neither a restart nor a reboot of an offline machine starts it afresh. */
		uint64_t used = agent_lease_elapsed((uint64_t)time(NULL), s->last_checkin);

		a->policy_offline_lease = s->policy_offline_lease;
		if (used > 0 && a->policy_offline_lease > 0)
			log_info("Offline lease of %llu s: the last check-in was %llu s ago.",
				 (unsigned long long)a->policy_offline_lease, (unsigned long long)used);
		lease_arm(a, used);
	}
	hb = agent_heartbeat_interval(a->policy_heartbeat, a->server_heartbeat);
	if (hb != a->heartbeat_sec && a->heartbeat_sec != 0)
		log_info("Heartbeat every %u s from now on (device policy version %llu).", hb,
			 (unsigned long long)a->policy_version);
	a->heartbeat_sec = hb;
}

static int on_lease_expired(sd_event_source *s, uint64_t usec, void *userdata)
{
	Agent *a = userdata;
	PrivsepExecuteReply rep;
	int r;

	log_warning("No successful check-in for the device policy's offline lease of %llu s: locking "
		    "the device.",
		    (unsigned long long)a->policy_offline_lease);
	r = privsep_lease_lock(a->privsep_fd, &rep);
	if (r < 0) {
		log_error_errno(r, "The executor could not lock the device after the offline lease: %m");
		return 0;
	}
	log_notice("Offline lease: %s (epoch %llu).", rep.reason, (unsigned long long)rep.epoch);
	agent_set_status(a, rep.has_epoch ? rep.epoch : a->epoch, rep.locked);
	return 0;
}

static void lease_arm(Agent *a, uint64_t used_sec)
{
	uint64_t now = 0, when;
	int r;

	if (a->policy_offline_lease == 0) {
		if (a->lease_timer)
			(void)sd_event_source_set_enabled(a->lease_timer, SD_EVENT_OFF);
		return;
	}
	/* CLOCK_BOOTTIME: a suspended laptop's lease keeps running (a thief can suspend it). */
	r = sd_event_now(a->event, CLOCK_BOOTTIME, &now);
	if (r >= 0) {
		uint64_t left = a->policy_offline_lease - MIN(used_sec, a->policy_offline_lease);
		when = agent_lease_deadline(now, left);
		if (!a->lease_timer)
			r = sd_event_add_time(a->event, &a->lease_timer, CLOCK_BOOTTIME, when, 100000,
					      on_lease_expired, a);
		else {
			r = sd_event_source_set_time(a->lease_timer, when);
			if (r >= 0)
				r = sd_event_source_set_enabled(a->lease_timer, SD_EVENT_ONESHOT);
		}
	}
	if (r < 0)
		log_error_errno(r, "Cannot arm the offline lease timer: %m; the lease is not enforced.");
}

void agent_lease_checkin(Agent *a)
{
	int r;

	if (a->policy_offline_lease == 0)
		return;
	/* recorded by the executor: the lease survives a restart */
	r = privsep_checkin(a->privsep_fd);
	if (r < 0)
		log_warning_errno(r, "The executor could not record the check-in: %m");
	lease_arm(a, 0);
}

void agent_lease_done(Agent *a)
{
	a->lease_timer = sd_event_source_disable_unref(a->lease_timer);
}
