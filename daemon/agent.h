/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The network/D-Bus process of `trustpcd run`: one sd-event loop with the outbound mTLS connection
 * to the server's device port (agent-conn.c), the D-Bus service org.trustpc.Agent1 (agent-bus.c)
 * and the privsep socket to the executor (blocking round trips: each is one TPM command or one
 * file read). Unprivileged: everything it parses is untrusted. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "agent-backoff.h"
#include "tls/tls.h"
#include "tpm2/tpm2.h"

typedef enum ConnState {
	CONN_IDLE,        /* not connected; the timer is the reconnect backoff (or nothing) */
	CONN_CONNECTING,  /* TCP connect in progress */
	CONN_HANDSHAKE,   /* TLS handshake */
	CONN_CHALLENGE,   /* waiting for the server's challenge */
	CONN_ATTESTING,   /* attest sent, waiting for attest-result */
	CONN_READY,       /* attest-result received; the timer is the heartbeat */
} ConnState;

#define AGENT_VERSION "trustpcd " PROJECT_VERSION
#define AGENT_CONNECT_TIMEOUT_USEC (UINT64_C(30) * 1000000) /* TCP + TLS + attestation */
#define AGENT_HEARTBEAT_DEFAULT_SEC 300
#define AGENT_HEARTBEAT_MIN_SEC 5
#define AGENT_HEARTBEAT_MAX_SEC 86400
#define AGENT_ACKS_MAX 8

/* ACK_POWEROFF: the heartbeat sent right after the result of a lock --poweroff; the server answers
 * frames in order, so its ack means the result was committed. */
typedef enum AckKind { ACK_HEARTBEAT = 1, ACK_ESCROW, ACK_POWEROFF } AckKind;

#define AGENT_POWEROFF_WAIT_USEC (10 * 1000000ULL) /* for that ack, then power off regardless */

typedef struct Agent {
	sd_event *event;
	sd_bus *bus;
	const char *bus_address;      /* NULL: the system bus (DBUS_SYSTEM_BUS_ADDRESS honoured) */
	int privsep_fd;

	/* from the state loaded by the parent */
	bool enrolled;
	char device_id[DEVICE_ID_STRING_SIZE];
	char *host, *port;            /* the device port; host is also the expected server name */
	TlsConfig *tls;               /* NULL when not enrolled */
	char *image_version;
	struct EcKey *command_key;    /* the fleet command public key, NULL: commands are rejected */
	const struct EcKey *result_key; /* the TLS key: signs command results */

	/* connection */
	ConnState state;
	int fd;
	TlsConn *conn;
	sd_event_source *io;
	sd_event_source *timer;
	uint8_t *rbuf;
	size_t rlen;
	uint8_t *wbuf;                /* one or more frames waiting for the socket */
	size_t wlen;
	Backoff backoff;
	uint32_t heartbeat_sec;       /* in force: agent_heartbeat_interval() */
	uint32_t server_heartbeat;    /* the last attest-result's, 0 = none */
	AckKind acks[AGENT_ACKS_MAX]; /* what each outstanding ack answers, oldest first */
	unsigned nacks;
	bool escrow_sent;             /* this connection uploaded (or found no) escrow */

	/* the applied device policy, as the executor last reported it (agent_posture) */
	uint64_t policy_version;      /* 0: none applied */
	uint32_t policy_heartbeat;    /* s; wins over the attest-result's heartbeat when set */
	uint64_t policy_offline_lease; /* s, 0 = none */
	sd_event_source *lease_timer; /* CLOCK_BOOTTIME: fires offline_lease after the last check-in */
	sd_event_source *poweroff_timer; /* armed while a lock --poweroff waits for its result's ack */

	/* what D-Bus shows */
	bool connected;
	bool attested;
	uint64_t epoch;
	bool locked;
	uint64_t last_checkin;        /* µs since the epoch, 0 = never */
	bool disk_encrypted;
} Agent;

/* agent-conn.c */
int agent_conn_start(Agent *a);            /* connect now (cancels a pending backoff) */
void agent_conn_close(Agent *a, bool retry); /* drop the connection; retry: schedule backoff */
int agent_check_in_now(Agent *a);          /* heartbeat when attested, else reconnect now */
void agent_conn_done(Agent *a);
/* After the result of a lock --poweroff was sent: a heartbeat whose ack shows the server has the
 * result, then the executor powers off — at the ack, or AGENT_POWEROFF_WAIT_USEC later, or at once
 * when nothing can be sent (the lock is in the TPM already; only the report is at stake). */
void agent_poweroff_begin(Agent *a);
struct ProtoMessage;
int agent_send(Agent *a, const struct ProtoMessage *m); /* queue one frame and flush */

/* agent-command.c: one PROTO_COMMAND (the COSE bytes) → the executor → a signed PROTO_RESULT. */
int agent_command_handle(Agent *a, const uint8_t *cose, size_t n);

/* agent-posture.c */
int agent_read_image_version(char **ret);  /* /etc/os-release IMAGE_VERSION, else VERSION_ID */
uint64_t agent_uptime_sec(void);
/* Asks the executor for epoch/locked (updates a->epoch, a->locked) and fills p (strings point into
 * a). */
struct ProtoPosture;
int agent_posture(Agent *a, struct ProtoPosture *p);
/* The heartbeat interval: the applied device policy's (signed by the fleet command key, so it wins
 * over the attest-result's unsigned hint) when one is applied, else the server's; clamped to
 * AGENT_HEARTBEAT_MIN_SEC … AGENT_HEARTBEAT_MAX_SEC. */
uint32_t agent_heartbeat_interval(uint32_t policy_heartbeat, uint32_t server_heartbeat);
/* Takes the device policy from an executor STATUS reply (a->policy_*, a->heartbeat_sec). */
struct PrivsepStatusReply;
void agent_policy_update(Agent *a, const struct PrivsepStatusReply *s);
/* The offline lease (agent-posture.c): a successful check-in (a trusted attest-result, a heartbeat
 * acknowledged on a trusted connection) re-arms the one lease timer; when it fires, the executor
 * locks the device (privsep_lease_lock). */
void agent_lease_checkin(Agent *a);
void agent_lease_done(Agent *a);
/* agent-policy.c: the lease's deadline on a µs clock, saturating below USEC_INFINITY (a lease of
 * 2^63-1 s never expires rather than wrapping into the past). */
uint64_t agent_lease_deadline(uint64_t now_usec, uint64_t lease_sec);
/* Seconds of the lease already used at start: since the recorded check-in (Unix s, 0 = none), 0
 * when none or when the clock is before it (a clock set back gains nothing over a fresh lease). */
uint64_t agent_lease_elapsed(uint64_t now_sec, uint64_t last_checkin_sec);

/* agent-bus.c */
int agent_bus_start(Agent *a);
/* Setters that emit the change only when the value changed. */
void agent_set_connected(Agent *a, bool b);
void agent_set_attested(Agent *a, bool b);
void agent_set_status(Agent *a, uint64_t epoch, bool locked);
void agent_set_last_checkin(Agent *a, uint64_t usec);
