/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* trustpcd: the device agent. One file per verb (agent-enroll.c, agent-run.c); docs/man/trustpcd.8. */

#include "tpm2/tpm2.h"

typedef struct Args {
	const char *state_dir;
	const char *server;      /* HOST:PORT: enroll port for enroll, device port for run */
	const char *token;
	const char *token_file;
	const char *ca;          /* enroll: the fleet CA that pins the server */
	const char *tpm2_device;
	const char *event_log;   /* run: event log file instead of the firmware's */
	const char *user;        /* the network process's user */
	const char *bus_address;
} Args;

/* Exit codes (trustpcd(8) "EXIT STATUS"). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,         /* anything else: the log says what */
	EXIT_USAGE = 2,        /* bad command line or config */
	EXIT_REFUSED = 3,      /* the server refused (the log names its error code) */
	EXIT_PRIVSEP = 4,      /* the network process violated the privsep protocol */
	EXIT_NO_TPM = 5,       /* no usable TPM */
};

int verb_enroll(const Args *a);
int verb_run(const Args *a);

/* Opens the TPM named by --tpm2-device, TRUSTPC_TPM2_DEVICE or /dev/tpmrm0; logs the error. */
int agent_tpm_open(const Args *a, Tpm2Context **ret);
