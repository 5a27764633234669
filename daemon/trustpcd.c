/* SPDX-License-Identifier: Apache-2.0 */
/* trustpcd: the device agent. Enrolls the device once (enroll), then keeps the attested connection
 * to the fleet server and serves org.trustpc.Agent1 on D-Bus (run). docs/man/trustpcd.8. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "trustpcd.h"

int agent_tpm_open(const Args *a, Tpm2Context **ret)
{
	const char *dev = a->tpm2_device ?: getenv("TRUSTPC_TPM2_DEVICE") ?: "/dev/tpmrm0";
	int r = tpm2_context_new(dev, ret);
	if (r < 0)
		return log_error_errno(r == -EIO ? -ENODEV : r,
				       "Cannot reach a TPM at '%s': %m. Pass --tpm2-device=PATH|TCTI or set "
				       "TRUSTPC_TPM2_DEVICE.",
				       dev);
	return 0;
}

static void help(void)
{
	printf("trustpcd — the trustpc device agent\n\n"
	       "  enroll --server HOST:PORT --ca FLEET_CA.pem (--token T | --token-file FILE)\n"
	       "         enroll this device with the fleet server's enroll port (once)\n"
	       "  run [--server HOST:PORT] [--event-log FILE] [--bus-address ADDRESS]\n"
	       "         keep the attested connection to the device port; serve org.trustpc.Agent1\n\n"
	       "Options: --state-dir DIR (default %s), --tpm2-device PATH|TCTI (or TRUSTPC_TPM2_DEVICE),\n"
	       "         --user USER (the unprivileged network process, default nobody)\n"
	       "The token may also come from TRUSTPC_ENROLL_TOKEN. See trustpcd(8).\n",
	       "/var/lib/trustpcd");
}

int main(int argc, char **argv)
{
	enum { ARG_STATE = 0x100, ARG_SERVER, ARG_TOKEN, ARG_TOKEN_FILE, ARG_CA, ARG_TPM, ARG_EVENT_LOG, ARG_USER, ARG_BUS };
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"state-dir", required_argument, NULL, ARG_STATE},
		{"server", required_argument, NULL, ARG_SERVER},
		{"token", required_argument, NULL, ARG_TOKEN},
		{"token-file", required_argument, NULL, ARG_TOKEN_FILE},
		{"ca", required_argument, NULL, ARG_CA},
		{"tpm2-device", required_argument, NULL, ARG_TPM},
		{"event-log", required_argument, NULL, ARG_EVENT_LOG},
		{"user", required_argument, NULL, ARG_USER},
		{"bus-address", required_argument, NULL, ARG_BUS},
		{},
	};
	Args a = {0};
	const char *verb;
	int c;

	log_set_program("trustpcd");
	log_parse_environment();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return EXIT_OK;
		case ARG_STATE:
			a.state_dir = optarg;
			break;
		case ARG_SERVER:
			a.server = optarg;
			break;
		case ARG_TOKEN:
			a.token = optarg;
			break;
		case ARG_TOKEN_FILE:
			a.token_file = optarg;
			break;
		case ARG_CA:
			a.ca = optarg;
			break;
		case ARG_TPM:
			a.tpm2_device = optarg;
			break;
		case ARG_EVENT_LOG:
			a.event_log = optarg;
			break;
		case ARG_USER:
			a.user = optarg;
			break;
		case ARG_BUS:
			a.bus_address = optarg;
			break;
		default:
			log_error("Unknown option; see trustpcd --help.");
			return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		log_error("Expected one verb: enroll or run (trustpcd --help).");
		return EXIT_USAGE;
	}
	verb = argv[optind];
	if (streq(verb, "enroll"))
		return verb_enroll(&a);
	if (streq(verb, "run"))
		return verb_run(&a);
	log_error("Unknown verb '%s': expected enroll or run.", verb);
	return EXIT_USAGE;
}
