/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* trustpcd's state dir (default /var/lib/trustpcd, mode 0700, root): the enrollment written by
 * `trustpcd enroll` (all files 0600, atomic writes), the escrow file left by
 * `trustpc-disk enroll --escrow-out`, and the optional config file. Only privileged code (the
 * enroll/run parent before it forks, then the executor) reads or writes it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm2/tpm2.h"

#define STATE_DIR_DEFAULT "/var/lib/trustpcd"

#define STATE_DEVICE_ID "device-id"       /* written last: its presence means "enrolled" */
#define STATE_DEVICE_CERT "device.pem"    /* our TLS client certificate, issued by the fleet CA */
#define STATE_CA_CERT "ca.pem"            /* the fleet CA: pins the server */
#define STATE_TLS_KEY "tls-key.pem"       /* P-256 TLS key (software key; the AK quote binds the TPM) */
#define STATE_AK "ak.blob"                /* tpm2_ak_serialize: only usable with this TPM */
#define STATE_POLICY "policy.json"        /* the signed disk policy from enrollment */
#define STATE_POLICY_KEY "policy-key.pem" /* the fleet policy public key */
#define STATE_ESCROW_KEY "escrow-key.pem" /* the fleet escrow public key (for trustpc-disk enroll) */
#define STATE_ESCROW "escrow.json"        /* pending recovery-key escrow (trustpc-disk --escrow-out) */
#define STATE_ESCROW_DONE "escrow.json.uploaded"
#define STATE_CONFIG "trustpcd.conf"      /* optional: "server = HOST:PORT", "volumes = PATH …",
					     * "volume.CLASS = PATH …" */
#define STATE_COMMAND_KEY "command-key.pem" /* the fleet command public key (optional until commands) */
#define STATE_COMMANDS "commands.json"    /* the executor's command state (executor-command.h) */
#define STATE_INTENT "command-intent.json" /* a command being executed (crash recovery) */
#define STATE_DEVICE_POLICY "device-policy.json" /* the applied device policy (device_policy_parse_json) */
#define STATE_CHECKIN "checkin.json" /* the last successful check-in, while an offline lease is in force */

#define STATE_FILE_MAX (64 * 1024)

int state_path(const char *dir, const char *name, char **ret);
/* write_file_atomic with mode 0600 into dir. */
int state_write(const char *dir, const char *name, const void *data, size_t n);
/* read_full_file with STATE_FILE_MAX; -ENOENT passes through. */
int state_read(const char *dir, const char *name, bool secure, char **ret, size_t *ret_size);
/* mkdir -m 0700 (and the parents); refuses (-EPERM) a state dir writable by others. */
int state_dir_prepare(const char *dir);

/* One configured LUKS volume: class_name NULL for "volumes =", else the CLASS of "volume.CLASS =". */
typedef struct AgentVolume {
	char *class_name;
	char *path;
} AgentVolume;

#define AGENT_VOLUMES_MAX 64
#define AGENT_CLASS_NAME_MAX 64

typedef struct AgentConfig {
	char *server;          /* "HOST:PORT" of the device port, NULL if not configured */
	bool disk_encrypted;   /* "volumes =" or a "volume.CLASS =" names at least one path */
	AgentVolume *volumes;  /* in file order */
	size_t n_volumes;
} AgentConfig;
/* A missing file gives the defaults. -EINVAL (*ret_line set) on an unknown key or bad line. */
int agent_config_load(const char *dir, AgentConfig *ret, unsigned *ret_line);
void agent_config_done(AgentConfig *c);

typedef struct AgentState {
	bool enrolled;
	char device_id[DEVICE_ID_STRING_SIZE];
	char *device_cert_pem;
	char *ca_pem;
	char *tls_key_pem;     /* secure memory */
	uint8_t *ak_blob;
	size_t ak_blob_size;
	bool has_policy;       /* policy.json parsed, for this device, signed by policy-key.pem */
	uint64_t policy_epoch;
	char *command_key_pem; /* NULL: no command key stored, commands are rejected */
} AgentState;

/* Reads the enrollment. Not enrolled (no device-id) is not an error: ret->enrolled = false.
 * A half-written or inconsistent enrollment is -EBADMSG, logged with the file at fault. */
int agent_state_load(const char *dir, AgentState *ret);
void agent_state_done(AgentState *s);

/* "HOST:PORT" or "[V6]:PORT" → malloc'ed host and port; -EINVAL otherwise. */
int server_address_split(const char *s, char **ret_host, char **ret_port);
