/* SPDX-License-Identifier: Apache-2.0 */
/* trustpc-server: enrollment, the attested device channel and the admin API of a trustpc fleet.
 * One file per verb (server-init.c, server-run.c, server-manage.c); this file parses the command
 * line and holds what the verbs share. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "server.h"

char *server_path(const char *state_dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", state_dir, name) < 0)
		return NULL;
	return p;
}

int server_store_open(const char *state_dir, Store **ret)
{
	_cleanup_free_ char *db = server_path(state_dir, SERVER_DB_NAME);
	int r;

	if (!db)
		return log_oom();
	r = store_open(db, ret);
	if (r < 0)
		return log_error_errno(r,
				       "Cannot open the database '%s': %m. Is '%s' a state dir made by "
				       "'trustpc-server init'?",
				       db, state_dir);
	return 0;
}

static void help(void)
{
	printf(
	    "trustpc-server — enrollment, attested device channel and admin API of a trustpc fleet\n\n"
	    "  init --state-dir DIR [--hostname NAME]   create the fleet CA, server certificate and keys\n"
	    "  run --state-dir DIR [--config FILE] [--listen ADDR] [--enroll-port N] [--device-port N]\n"
	    "      [--admin-port N] [--tpm-ca FILE]      serve (sd_notify READY=1 once listening)\n"
	    "  operator add NAME --role viewer|helpdesk|admin --state-dir DIR   print a new operator token\n"
	    "  token create [--image NAME] [--ttl SECONDS] --state-dir DIR      print an enrollment token\n"
	    "  image set NAME PCR=HEX... --state-dir DIR                        register expected PCR "
	    "values\n\n"
	    "See trustpc-server(8).\n");
}

int main(int argc, char **argv)
{
	enum {
		ARG_STATE_DIR = 0x100,
		ARG_CONFIG,
		ARG_HOSTNAME,
		ARG_ROLE,
		ARG_IMAGE,
		ARG_TTL,
		ARG_LISTEN,
		ARG_ENROLL_PORT,
		ARG_DEVICE_PORT,
		ARG_ADMIN_PORT,
		ARG_TPM_CA,
	};
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"state-dir", required_argument, NULL, ARG_STATE_DIR},
	    {"config", required_argument, NULL, ARG_CONFIG},
	    {"hostname", required_argument, NULL, ARG_HOSTNAME},
	    {"role", required_argument, NULL, ARG_ROLE},
	    {"image", required_argument, NULL, ARG_IMAGE},
	    {"ttl", required_argument, NULL, ARG_TTL},
	    {"listen", required_argument, NULL, ARG_LISTEN},
	    {"enroll-port", required_argument, NULL, ARG_ENROLL_PORT},
	    {"device-port", required_argument, NULL, ARG_DEVICE_PORT},
	    {"admin-port", required_argument, NULL, ARG_ADMIN_PORT},
	    {"tpm-ca", required_argument, NULL, ARG_TPM_CA},
	    {},
	};
	static const struct {
		const char *name;
		int (*fn)(ServerArgs *);
	} verbs[] = {
	    {"init", verb_init},   {"run", verb_run},	  {"operator", verb_operator},
	    {"token", verb_token}, {"image", verb_image},
	};
	/* Flags that override a config key, in the order given. */
	static const char *const setting_keys[] = {
	    [ARG_LISTEN - ARG_LISTEN] = "listen",	    [ARG_ENROLL_PORT - ARG_LISTEN] = "enroll_port",
	    [ARG_DEVICE_PORT - ARG_LISTEN] = "device_port", [ARG_ADMIN_PORT - ARG_LISTEN] = "admin_port",
	    [ARG_TPM_CA - ARG_LISTEN] = "tpm_ca",
	};
	ServerArgs a = {.ttl = 86400};
	int c, r;

	log_set_program("trustpc-server");
	log_parse_environment();

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return SERVER_EXIT_OK;
		case ARG_STATE_DIR:
			a.state_dir = optarg;
			break;
		case ARG_CONFIG:
			a.config = optarg;
			break;
		case ARG_HOSTNAME:
			a.hostname = optarg;
			break;
		case ARG_ROLE:
			a.role = optarg;
			break;
		case ARG_IMAGE:
			a.image = optarg;
			break;
		case ARG_TTL:
			if (parse_uint64(optarg, UINT32_MAX, &a.ttl) < 0 || a.ttl == 0) {
				log_error("--ttl '%s' is not a positive number of seconds.", optarg);
				return SERVER_EXIT_USAGE;
			}
			break;
		case ARG_LISTEN:
		case ARG_ENROLL_PORT:
		case ARG_DEVICE_PORT:
		case ARG_ADMIN_PORT:
		case ARG_TPM_CA:
			if (a.n_settings >= ELEMENTSOF(a.settings)) {
				log_error("Too many options.");
				return SERVER_EXIT_USAGE;
			}
			a.settings[a.n_settings][0] = setting_keys[c - ARG_LISTEN];
			a.settings[a.n_settings++][1] = optarg;
			break;
		default:
			return SERVER_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		help();
		return SERVER_EXIT_USAGE;
	}
	a.argv = argv + optind + 1;
	a.argc = argc - optind - 1;
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[optind], verbs[i].name)) {
			if (!a.state_dir) {
				log_error("--state-dir DIR is required.");
				return SERVER_EXIT_USAGE;
			}
			r = verbs[i].fn(&a);
			return r < 0 ? SERVER_EXIT_FAIL : r;
		}
	log_error("Unknown verb '%s'. See 'trustpc-server --help'.", argv[optind]);
	return SERVER_EXIT_USAGE;
}
