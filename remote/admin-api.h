/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The admin API (docs/PROTOCOL.md "Admin API"): routes a parsed HTTP request to the store and
 * answers JSON. Transport-free: the server reads the request with the parser of http.h, calls
 * admin_api_handle, writes http_response_format() of the answer and closes the connection.
 *
 *   GET  /api/v1/devices             viewer    [{device_id, hostname, image, state, connected,
 *                                               enrolled_at, last_seen, attested_at, reason, posture}]
 *   GET  /api/v1/devices/{id}        viewer    that object + tls_key_sha256, ek_cert_sha256, escrowed,
 *                                               history (the device's last audit entries, newest first)
 *   POST /api/v1/tokens              admin     {image?, ttl_seconds?} → 201 {token, expires_at}
 *   GET  /api/v1/images              viewer    [{name, pcrs: {"7": hex, …}}]
 *   POST /api/v1/images              admin     {name, pcrs: {"7": hex, …}} → 201 the image
 *   GET  /api/v1/audit?after=N&limit=M viewer  [{seq, time, actor, action, subject, details, hash}]
 *   GET  /api/v1/audit/verify        viewer    {ok, entries, first_bad_seq, last_hash}
 *   POST /api/v1/devices/{id}/commands helpdesk {type, reason?, poweroff?, class?, policy fields?}
 *                                               → 202 the command {id, seq, state: "queued", …}
 *                                               (type "policy" needs admin)
 *   POST /api/v1/commands            helpdesk  {devices: [id…] | all: true, type, …} → 202 [command
 *                                               or {device_id, error, message}]
 *   GET  /api/v1/commands?device=ID&limit=N viewer [command], newest first
 *   POST /api/v1/devices/{id}/recovery-key admin {} → {device_id, luks_uuid, recovery_key}
 *                                               (audited "recovery-key.read" before it is answered)
 *
 * Times are Unix seconds (JSON integers), null for "never". Checks in this order, so that a
 * caller without a valid token learns nothing about the routes:
 *   401 missing/malformed Authorization or unknown token (with WWW-Authenticate: Bearer)
 *   404 unknown path, 405 known path with another method
 *   403 role too low ("… needs the admin role; you are helpdesk")
 *   400 bad query or body, 404 unknown device/image, 413 body over HTTP_BODY_MAX
 * Every operator action (token create, image add) is written to the audit log with the operator's
 * name as actor, in the same transaction as the action. */

#include <stdbool.h>
#include <time.h>

#include "command-issue.h"
#include "http.h"
#include "store.h"

typedef struct AdminContext {
	Store *store;
	/* Whether the device has a live connection now (the server's connection table); may be NULL
	 * (every device reported as not connected). */
	bool (*is_connected)(void *userdata, const char *device_id);
	void *userdata;
	time_t now; /* the request's time (reserved for time-based answers) */
	/* Command signing (NULL: the command routes answer 503). */
	const CommandIssueKeys *commands;
	/* Called after a command was committed, so the server can deliver it to a connected device
	 * at once; may be NULL. */
	void (*command_queued)(void *userdata, const char *device_id);
	/* The escrow private key file, read per request so the key is not kept in memory (NULL: the
	 * recovery-key route answers 503). */
	const char *escrow_key_path;
} AdminContext;

/* Always fills resp (any status, JSON body) and returns 0, except -ENOMEM (resp untouched: answer
 * 500 without a body). A store failure becomes a 500 {"error":"internal"} answer and is logged. */
int admin_api_handle(const AdminContext *ctx, const HttpRequest *req, HttpResponse *resp);

/* A fleet command (POST /api/v1/commands) is queued in slices of ADMIN_FLEET_SLICE devices (64:
 * one slice is ~60 ms of the server's loop, the longest another connection waits), each slice one
 * store batch (one commit) and delivered after it. admin_api_handle runs every slice before it
 * answers. admin_api_handle_async does the same for every other request, but leaves a fleet
 * command that passed its checks in *ret_fleet (resp stays empty) for the caller to run with
 * admin_fleet_step, one slice a call, so that an event loop serves its other connections
 * between slices. admin_fleet_step returns 0 while there is more to queue, 1 with the answer in
 * resp, or -ENOMEM. ctx must be equivalent to the one the request was handled with. */
#define ADMIN_FLEET_SLICE 64
typedef struct AdminFleet AdminFleet;
int admin_api_handle_async(const AdminContext *ctx, const HttpRequest *req, HttpResponse *resp,
			   AdminFleet **ret_fleet);
int admin_fleet_step(AdminFleet *f, const AdminContext *ctx, HttpResponse *resp);
/* How far it got: devices done so far, of how many. */
void admin_fleet_progress(const AdminFleet *f, size_t *ret_done, size_t *ret_total);
AdminFleet *admin_fleet_free(AdminFleet *f);

/* For the server's parse failures: the answer to send for an HttpParseError. */
int admin_api_parse_error(const HttpParseError *err, HttpResponse *resp);
