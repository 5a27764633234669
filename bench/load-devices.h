/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* load-devices: many simulated devices against one trustpc-server (bench/README.md).
 *
 * Each device has a SOFTWARE "TPM" (load-devices-soft.c): an ECC P-256 EK with a certificate from
 * a test manufacturer CA, a software AK whose TPM2B_PUBLIC has the attributes the server requires,
 * ActivateCredential and TPM2_Quote done in software with the same structures a TPM produces. The
 * server cannot tell them from real TPMs (it checks structure and signatures, not timing); what
 * differs is listed in bench/README.md. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "crypto/crypto.h"
#include "proto/command.h"
#include "tls/tls.h"
#include "tpm2/tpm2.h"

#define SOFT_AK_PUBLIC_MAX 128 /* a marshalled P-256 TPM2B_PUBLIC is 90 bytes */
#define SOFT_ATTEST_MAX 256    /* a marshalled quote TPMS_ATTEST with 32-byte extraData: ~145 */

/* The AK's TPM2B_PUBLIC (restricted, fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth,
 * ECDSA-SHA256, P-256 — what tpm2_ak_public_check accepts) and its name (000b || SHA-256(TPMT_PUBLIC)). */
int soft_ak_public(const EcKey *ak, uint8_t buf[SOFT_AK_PUBLIC_MAX], size_t *ret_size,
		   uint8_t ret_name[TPM2_NAME_SIZE]);

/* TPM2_ActivateCredential in software (TPM 2.0 Part 1, 24.4–24.6, ECC EK): Z = ECDH(EK, ephemeral
 * point from the encrypted secret), seed = KDFe(Z, "IDENTITY", ephemeral x, EK x), checks the outer
 * HMAC (KDFa(seed, "INTEGRITY")) over encIdentity || name(AK), then AES-128-CFB (KDFa(seed, "STORAGE",
 * name)) with a zero IV. -EBADMSG when the HMAC does not match (another AK name or EK) or anything
 * is malformed, as a TPM would refuse it. ret holds up to 64 bytes. */
int soft_activate_credential(const EcKey *ek, const uint8_t ak_name[TPM2_NAME_SIZE],
			     const uint8_t *id_object, size_t id_object_size,
			     const uint8_t *encrypted_secret, size_t encrypted_secret_size, uint8_t ret[64],
			     size_t *ret_size);

/* TPM2_Quote in software: a TPMS_ATTEST (TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, qualifiedSigner
 * = the AK name, extraData = qualifying, one SHA-256 selection = mask, pcrDigest = SHA-256 of the
 * selected values in ascending order), signed (ECDSA P-256, SHA-256 of the marshalled bytes) by the AK. */
typedef struct SoftQuoteParams {
	const EcKey *ak;
	const uint8_t *ak_name;
	const uint8_t *qualifying; /* 32 bytes */
	uint32_t mask;
	const uint8_t (*values)[TPM2_SHA256_SIZE]; /* TPM2_PCRS_MAX values */
	uint64_t clock;				   /* clockInfo.clock: a TPM's milliseconds counter */
} SoftQuoteParams;
int soft_quote(const SoftQuoteParams *p, uint8_t attest[SOFT_ATTEST_MAX], size_t *ret_size, uint8_t sig[64]);

/* ---- the tool (load-devices.c, load-devices-enroll.c, load-devices-run.c) ---- */

/* What every device reports: the same event log and PCR values (the PCRs the log touches are its
 * replay; the others zero). */
typedef struct Fleet {
	uint8_t *event_log;
	size_t event_log_size;
	uint8_t pcrs[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
} Fleet;
int fleet_init(Fleet *f, unsigned n_events);
void fleet_done(Fleet *f);

typedef struct Device {
	unsigned index;
	char id[DEVICE_ID_STRING_SIZE];
	EcKey *ak;
	uint8_t ak_name[TPM2_NAME_SIZE];
	char *cert_pem; /* the device certificate from enrollment */
	char *key_pem;	/* its TLS key (secure memory) */
	TlsConfig *cfg; /* one per device: it holds that device's saved session (ticket) */
	EcKey *command_key; /* the fleet command key from `enrolled` (NULL: enrolled without one) */
	EcKey *policy_key;  /* the fleet disk-policy key from `enrolled` (likewise) */
	EcKey *tls_key;	    /* signs command results (the agent signs them with its TLS key) */
} Device;

typedef struct Options {
	const char *state;  /* the devices' state dir */
	const char *server; /* 127.0.0.1:PORT */
	const char *name;   /* the server certificate's name */
	const char *tokens; /* enroll: file with one token per line */
	const char *ca;	    /* enroll: the fleet CA (the server's ca.pem) */
	unsigned k;	    /* devices */
	unsigned jobs;	    /* enroll: processes */
	unsigned window;    /* run: connections in progress at once in the rate phases */
	unsigned events;    /* events in the log every device sends (0: none) */
	unsigned timeout;   /* run: seconds a phase may take before it is a failure */
	int server_pid;	    /* run: whose memory and CPU time to read */
} Options;

/* ---- serve: devices that execute commands (load-devices-command.c) ---- */

/* What a simulated device keeps of its commands, one record per device in DIR/sim-state (a shared
 * mapping, so that it outlives the process and a rerun continues the counters). */
typedef struct SimState {
	uint64_t last_seq; /* of the last executed command */
	uint64_t epoch;	   /* the "lock counter": + 1 per lock */
	uint32_t locked, has_epoch;
	uint32_t last_status, last_type; /* ResultStatus, CommandType of the last executed command */
	char last_id[COMMAND_ID_SIZE * 2 + 1];
	char last_reason[160];
} SimState;
int sim_state_open(const Options *o, SimState **ret, size_t *ret_size);

typedef struct DeviceCommandParams {
	const Device *dev;
	SimState *state;
	const Fleet *fleet;
	uint64_t clock; /* the quote's clockInfo.clock */
} DeviceCommandParams;
/* Verifies and executes one command (the `command` message's COSE bytes) and returns the
 * `result` frame to send (with its length prefix). Errors only when no result can be made
 * (-ENOMEM, a signing failure): every refusal is a signed `rejected` result. */
int device_command(const DeviceCommandParams *p, const uint8_t *cose, size_t n, uint8_t **ret_frame,
		   size_t *ret_size, CommandType *ret_type);

/* "dev-%05u" under the state dir. */
char *device_path(const Options *o, unsigned index);
int device_load(const Options *o, unsigned index, Device *ret);
void device_done(Device *d);
/* (Re)creates the device's TLS config: a new one holds no saved session, so the next connection
 * is a full handshake. */
int device_tls_reset(const Options *o, Device *d, const char *ca_pem);

/* "127.0.0.1:PORT" (IPv4 only: the benchmark runs on loopback). */
int server_address(const char *server, struct sockaddr_in *ret);

int do_prepare(const Options *o);
int do_missing(const Options *o);
int do_enroll(const Options *o);
int do_run(const Options *o);
int do_serve(const Options *o);
