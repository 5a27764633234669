/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What the admin API's files share (admin-api.c: auth, routing, devices, tokens, images, audit;
 * admin-api-commands.c: commands and recovery keys). Not for other modules. */

#include <jansson.h>

#include "admin-api.h"
#include "basic/macro.h"

typedef struct ApiCall {
	const AdminContext *ctx;
	const HttpRequest *req;
	const char *operator;
	OperatorRole role;
	const char *arg; /* the {id} of /devices/{id}… */
	HttpResponse *resp;
	AdminFleet **fleet_out; /* admin_api_handle_async: a fleet command is left here, not run */
} ApiCall;

/* json_decrefp comes with jansson >= 2.9. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

/* Answers: each fills c->resp and returns 0, or -ENOMEM. */
int answer_error(ApiCall *c, int status, const char *code, const char *fmt, ...) _printf_(4, 5);
int answer_internal(ApiCall *c, int r, const char *what); /* logs once; 500 */
int answer_json(ApiCall *c, int status, json_t *j);	  /* takes j */

json_t *json_time(time_t t);
json_t *json_string_or_null(const char *s);
json_t *json_embedded(const char *text);
json_t *device_json(ApiCall *c, const DeviceRecord *d);

/* The body as an object with only the allowed members: 0 and *ret, or 1 after a 400 answer. */
int parse_body(ApiCall *c, const char *const *allowed, json_t **ret);
/* 400 when there is a query string; 0 otherwise. */
int refuse_query(ApiCall *c);

/* admin-api-commands.c */
json_t *command_json(const CommandRecord *c);
int api_device_command(ApiCall *c); /* POST /devices/{id}/commands */
int api_fleet_command(ApiCall *c);  /* POST /commands */
int api_commands_list(ApiCall *c);  /* GET /commands */
int api_recovery_key(ApiCall *c);   /* POST /devices/{id}/recovery-key */
/* The device's newest commands for GET /devices/{id}: a JSON array, or NULL (a 500 was answered
 * or OOM: *ret_error). */
json_t *device_commands_json(ApiCall *c, const char *device_id, int *ret_error);
