/* SPDX-License-Identifier: Apache-2.0 */
/* Local management verbs that work on the state dir directly (the server may be running: SQLite
 * in WAL mode serialises the writers): the first operator token (without one, nobody can use the
 * admin API), and enrollment tokens and image values for a fleet builder on the server host. The
 * same actions over the network are trustpcctl's (admin API). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "server.h"

#define LOCAL_ACTOR "trustpc-server (local)"

static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("._@-", *p)))
			return false;
	return true;
}

int verb_operator(ServerArgs *a)
{
	_cleanup_(server_store_closep) Store *store = NULL;
	_cleanup_erase_ char *token = NULL;
	OperatorRole role;
	int r;

	if (a->argc != 2 || !streq(a->argv[0], "add") || !a->role) {
		log_error(
		    "Usage: trustpc-server operator add NAME --role viewer|helpdesk|admin --state-dir DIR");
		return SERVER_EXIT_USAGE;
	}
	if (!name_valid(a->argv[1])) {
		log_error("Operator name '%s' must be 1-64 characters of [A-Za-z0-9._@-].", a->argv[1]);
		return SERVER_EXIT_USAGE;
	}
	if (operator_role_from_name(a->role, &role) < 0) {
		log_error("--role '%s' must be viewer, helpdesk or admin.", a->role);
		return SERVER_EXIT_USAGE;
	}
	r = server_store_open(a->state_dir, &store);
	if (r < 0)
		return SERVER_EXIT_CONFIG;
	r = store_operator_add(store, a->argv[1], role, &token);
	if (r == -EEXIST) {
		log_error("Operator '%s' exists already.", a->argv[1]);
		return SERVER_EXIT_FAIL;
	}
	if (r < 0)
		return log_error_errno(r, "Cannot add operator '%s': %m.", a->argv[1]);
	r = server_audit_local(store, "operator.add", a->argv[1], json_pack("{s:s}", "role", a->role));
	if (r < 0)
		return r;
	/* Shown once: only its hash is stored. */
	printf("%s\n", token);
	return fflush(stdout) == 0 ? SERVER_EXIT_OK : SERVER_EXIT_FAIL;
}

int verb_token(ServerArgs *a)
{
	_cleanup_(server_store_closep) Store *store = NULL;
	_cleanup_erase_ char *token = NULL;
	time_t expires;
	int r;

	if (a->argc != 1 || !streq(a->argv[0], "create")) {
		log_error(
		    "Usage: trustpc-server token create [--image NAME] [--ttl SECONDS] --state-dir DIR");
		return SERVER_EXIT_USAGE;
	}
	if (a->image && !name_valid(a->image)) {
		log_error("--image '%s' must be 1-64 characters of [A-Za-z0-9._@-].", a->image);
		return SERVER_EXIT_USAGE;
	}
	r = server_store_open(a->state_dir, &store);
	if (r < 0)
		return SERVER_EXIT_CONFIG;
	r = store_token_create(store, a->image, a->ttl, LOCAL_ACTOR, &token, &expires);
	if (r < 0)
		return log_error_errno(r, "Cannot create an enrollment token: %m.");
	printf("%s\n", token);
	return fflush(stdout) == 0 ? SERVER_EXIT_OK : SERVER_EXIT_FAIL;
}

static int parse_pcr_arg(const char *s, ImageRecord *img)
{
	const char *eq = strchr(s, '=');
	char num[4];
	uint64_t n;

	if (!eq || eq == s || (size_t)(eq - s) >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, (size_t)(eq - s));
	num[eq - s] = 0;
	if (parse_uint64(num, TPM2_PCRS_MAX - 1, &n) < 0)
		return -EINVAL;
	if (hex_decode_exact(eq + 1, img->pcr_values[n], 32) < 0)
		return -EINVAL;
	img->pcr_mask |= UINT32_C(1) << n;
	return 0;
}

int verb_image(ServerArgs *a)
{
	_cleanup_(server_store_closep) Store *store = NULL;
	ImageRecord img = {};
	json_t *pcrs;
	int r;

	if (a->argc < 3 || !streq(a->argv[0], "set")) {
		log_error("Usage: trustpc-server image set NAME PCR=HEX... --state-dir DIR");
		return SERVER_EXIT_USAGE;
	}
	if (!name_valid(a->argv[1])) {
		log_error("Image name '%s' must be 1-64 characters of [A-Za-z0-9._@-].", a->argv[1]);
		return SERVER_EXIT_USAGE;
	}
	for (int i = 2; i < a->argc; i++)
		if (parse_pcr_arg(a->argv[i], &img) < 0) {
			log_error("'%s' must be PCR=HEX with PCR 0-23 and HEX 64 hex digits (SHA-256 bank).",
				  a->argv[i]);
			return SERVER_EXIT_USAGE;
		}
	img.name = a->argv[1];
	r = server_store_open(a->state_dir, &store);
	if (r < 0)
		return SERVER_EXIT_CONFIG;
	r = store_image_put(store, &img);
	if (r < 0)
		return log_error_errno(r, "Cannot register image '%s': %m.", img.name);
	pcrs = json_object();
	for (int i = 2; i < a->argc && pcrs; i++) {
		_cleanup_free_ char *k = strndup(a->argv[i], (size_t)(strchr(a->argv[i], '=') - a->argv[i]));
		if (k)
			json_object_set_new(pcrs, k, json_string(strchr(a->argv[i], '=') + 1));
	}
	r = server_audit_local(store, "image.set", img.name, pcrs ? json_pack("{s:o}", "pcrs", pcrs) : NULL);
	if (r < 0)
		return r;
	printf("Image '%s' registered with %d PCR values.\n", img.name, a->argc - 2);
	return SERVER_EXIT_OK;
}
