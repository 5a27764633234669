/* SPDX-License-Identifier: Apache-2.0 */
/* org.trustpc.Agent1 on the system bus (docs/man/trustpcd.8): read-only properties for everyone,
 * CheckInNow() for root. The bus policy (org.trustpc.Agent1.conf) enforces the same; the method
 * checks the caller itself as well, so a looser policy on some machine does not open it. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>

#include "agent.h"
#include "basic/log.h"
#include "basic/macro.h"

#define BUS_NAME "org.trustpc.Agent1"
#define BUS_PATH "/org/trustpc/Agent1"
#define BUS_IFACE "org.trustpc.Agent1"

static int prop_device_id(sd_bus *bus, const char *path, const char *iface, const char *prop,
			  sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	Agent *a = userdata;
	return sd_bus_message_append(reply, "s", a->enrolled ? a->device_id : "");
}

static int prop_bool(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
		     void *userdata, sd_bus_error *error)
{
	/* userdata points at the bool field (vtable offset); D-Bus booleans are 32-bit. */
	return sd_bus_message_append(reply, "b", (int)*(bool *)userdata);
}

static int prop_u64(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
		    void *userdata, sd_bus_error *error)
{
	return sd_bus_message_append(reply, "t", *(uint64_t *)userdata);
}

static int method_check_in_now(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	_cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
	Agent *a = userdata;
	uid_t uid = (uid_t)-1;
	int r;

	/* Validate first: who asks, then whether there is anything to do. */
	r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
	if (r >= 0)
		r = sd_bus_creds_get_euid(creds, &uid);
	if (r < 0 || uid != 0)
		return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Only root may call CheckInNow().");
	if (!a->enrolled)
		return sd_bus_error_set(error, "org.trustpc.Agent1.Error.NotEnrolled",
					"This device is not enrolled: run trustpcd enroll first.");
	log_info("CheckInNow() by uid %u.", (unsigned)uid);
	r = agent_check_in_now(a);
	if (r < 0)
		return sd_bus_error_set_errnof(error, r, "Check-in failed: %m");
	return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable agent_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("DeviceId", "s", prop_device_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Connected", "b", prop_bool, offsetof(Agent, connected),
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Attested", "b", prop_bool, offsetof(Agent, attested), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Epoch", "t", prop_u64, offsetof(Agent, epoch), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Locked", "b", prop_bool, offsetof(Agent, locked), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("LastCheckIn", "t", prop_u64, offsetof(Agent, last_checkin),
			SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	/* UNPRIVILEGED: sd-bus's own check would demand CAP_SYS_ADMIN, which callers over
	 * dbus-daemon cannot prove; the method checks the caller's uid itself. */
	SD_BUS_METHOD("CheckInNow", "", "", method_check_in_now, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END,
};

int agent_bus_start(Agent *a)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	int r;

	if (a->bus_address) {
		r = sd_bus_new(&bus);
		if (r >= 0)
			r = sd_bus_set_address(bus, a->bus_address);
		if (r >= 0)
			r = sd_bus_set_bus_client(bus, true);
		if (r >= 0)
			r = sd_bus_start(bus);
	} else
		r = sd_bus_open_system(&bus); /* honours DBUS_SYSTEM_BUS_ADDRESS */
	if (r < 0)
		return log_error_errno(r, "Cannot connect to the %s bus: %m", a->bus_address ?: "system");
	r = sd_bus_add_object_vtable(bus, NULL, BUS_PATH, BUS_IFACE, agent_vtable, a);
	if (r < 0)
		return log_error_errno(r, "Cannot register %s: %m", BUS_PATH);
	r = sd_bus_request_name(bus, BUS_NAME, 0);
	if (r < 0)
		return log_error_errno(r,
				       "Cannot own the bus name %s: %m. Is org.trustpc.Agent1.conf installed in "
				       "/usr/share/dbus-1/system.d/ and does it allow this user?",
				       BUS_NAME);
	r = sd_bus_attach_event(bus, a->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return log_error_errno(r, "Cannot attach the bus to the event loop: %m");
	/* A lost bus (dbus-daemon restarted) ends the process; systemd restarts it cleanly. */
	(void)sd_bus_set_exit_on_disconnect(bus, true);
	a->bus = TAKE_PTR(bus);
	return 0;
}

static void changed(Agent *a, const char *prop)
{
	if (!a->bus)
		return;
	int r = sd_bus_emit_properties_changed(a->bus, BUS_PATH, BUS_IFACE, prop, NULL);
	if (r < 0)
		log_debug_errno(r, "Cannot emit PropertiesChanged for %s: %m", prop);
}

void agent_set_connected(Agent *a, bool b)
{
	if (a->connected == b)
		return;
	a->connected = b;
	changed(a, "Connected");
}

void agent_set_attested(Agent *a, bool b)
{
	if (a->attested == b)
		return;
	a->attested = b;
	changed(a, "Attested");
}

void agent_set_status(Agent *a, uint64_t epoch, bool locked)
{
	if (a->epoch != epoch) {
		a->epoch = epoch;
		changed(a, "Epoch");
	}
	if (a->locked != locked) {
		a->locked = locked;
		changed(a, "Locked");
	}
}

void agent_set_last_checkin(Agent *a, uint64_t usec)
{
	a->last_checkin = usec;
	changed(a, "LastCheckIn");
}
