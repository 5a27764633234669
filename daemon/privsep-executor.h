/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The privileged executor: serves the fixed message set of privsep-proto.h on one socket. It holds
 * the TPM context, the AK and the state dir; it never sees TLS, CBOR or D-Bus bytes. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent-state.h"
#include "tpm2/tpm2-attest.h"

typedef struct Executor {
	int fd;
	bool enroll;                  /* serving `trustpcd enroll` (ACTIVATE, STORE) */
	Tpm2Context *tpm;             /* NULL: no TPM reachable (STATUS still answers) */
	const Tpm2Ak *ak;             /* NULL: not enrolled (QUOTE refused with -ENOLINK) */
	const char *state_dir;
	const char *event_log_path;   /* NULL: the kernel's firmware event log */

	/* enroll: what STORE writes besides the network process's blobs (made here, not received) */
	const char *tls_key_pem;
	const uint8_t *ak_blob;
	size_t ak_blob_size;

	/* run: from the state loaded before the fork */
	bool enrolled;
	bool disk_encrypted;
	bool has_policy;
	uint64_t policy_epoch;
	char device_id[DEVICE_ID_STRING_SIZE];
	const AgentVolume *volumes;   /* trustpcd.conf "volumes =" and "volume.CLASS =" */
	size_t n_volumes;
	bool lock_sessions;           /* a lock asks logind to lock the screens (off in tests) */
	bool enforce;                 /* apply usb_storage/screen_lock to the machine (off in unit tests) */
	bool poweroff_armed;          /* a lock --poweroff is done: POWEROFF is allowed */

	bool notified;                /* READY=1 sent to systemd */
	bool stored;                  /* enroll: STORE succeeded */
	unsigned requests;            /* served, for the log */
} Executor;

#define EVENT_LOG_FIRMWARE "/sys/kernel/security/tpm0/binary_bios_measurements"

/* Serves requests until the network process closes its end (returns 0) or violates the protocol
 * (returns -EPROTO after logging what it sent; the caller must kill it and exit). Other negative
 * errnos: the socket failed. A failed TPM operation is answered as an error, not fatal. */
int executor_run(Executor *e);
