/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* trustpc-server internals: what its files (trustpc-server.c, server-*.c) share.
 *
 * One sd-event loop, three TLS listeners (docs/PROTOCOL.md "Ports"):
 *   enroll  server-auth only; the one-time token authenticates   server-enroll.c
 *   device  mutual TLS, client certificate from the fleet CA      server-device.c
 *   admin   server-auth, operator bearer tokens (HTTP + JSON)     server-admin.c
 * Connections are small state machines (server-conn.c): TLS handshake → frames → handlers.
 * Everything runs on the loop's thread, except the signature checks of command results, which
 * run on worker threads (server-work.c) and come back to the loop; a handler that writes to the
 * store commits before it answers (brief point 8). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "command-issue.h"
#include "crypto/crypto.h"
#include "proto/proto.h"
#include "store.h"
#include "tls/tls.h"
#include "tpm2/tpm2.h"

#define SERVER_DB_NAME "trustpc-server.db"
#define SERVER_CONF_NAME "trustpc-server.conf"

/* Exit codes (trustpc-server(8)). */
enum {
	SERVER_EXIT_OK = 0,
	SERVER_EXIT_FAIL = 1,
	SERVER_EXIT_USAGE = 2,
	SERVER_EXIT_CONFIG = 3, /* bad config file or state dir (missing keys, not initialised) */
	SERVER_EXIT_EXISTS = 4, /* init: the state dir is already in use */
};

/* ---- configuration (server-config.c; every key documented in trustpc-server(8)) ---- */
typedef struct ServerConfig {
	char *listen;	      /* numeric IPv4 or IPv6 address */
	uint16_t enroll_port; /* 0 = any free port (reported in STATUS=) */
	uint16_t device_port;
	uint16_t admin_port;
	char *tpm_ca;		   /* PEM bundle of the TPM manufacturers' CAs */
	uint32_t attest_pcrs;	   /* quoted on every connection (plus the image's PCRs) */
	uint32_t policy_pcrs;	   /* bound by the first disk policy (plus PCR 15 = 0) */
	uint32_t heartbeat;	   /* seconds between device heartbeats */
	uint32_t attest_timeout;   /* seconds from accept to a finished attestation or enrollment step */
	uint32_t max_connections;  /* enroll + device connections at once */
	uint32_t device_cert_days; /* validity of issued device certificates */
	char *default_image;	   /* image of devices whose token names none, may be NULL */
	uint32_t command_ttl;	   /* seconds a signed command stays valid */
} ServerConfig;

void server_config_init(ServerConfig *c);
void server_config_done(ServerConfig *c);
/* One "key = value" setting; -ENOENT unknown key, -EINVAL bad value (both logged). */
int server_config_set(ServerConfig *c, const char *key, const char *value, const char *origin);
/* Reads a config file; a missing file is fine unless must_exist. Errors are logged. */
int server_config_load(ServerConfig *c, const char *path, bool must_exist);
/* The commented default file written by init. */
extern const char server_config_default_text[];

/* ---- the running server ---- */
typedef enum ListenerKind {
	LISTENER_ENROLL,
	LISTENER_DEVICE,
	LISTENER_ADMIN,
	_LISTENER_MAX,
} ListenerKind;

typedef struct Server Server;
typedef struct ServerConn ServerConn;
typedef struct FleetTask FleetTask;

/* ---- worker threads (server-work.c) ----
 * A pool of threads for CPU-bound work that needs nothing of the loop's (the ECDSA checks of
 * command results). work(job) runs on a worker; done(userdata, jobs, n) runs on the loop's
 * thread with every job finished since its last call, in the order they finished. n_threads 0:
 * one per online CPU (at most 16). Freeing joins the threads; jobs not handed to done yet are
 * passed to drop. */
typedef struct WorkPool WorkPool;
typedef void (*WorkFn)(void *job);
typedef void (*WorkDoneFn)(void *userdata, void **jobs, size_t n);
int work_pool_new(sd_event *e, unsigned n_threads, WorkFn work, WorkDoneFn done, void *userdata,
		  WorkPool **ret);
int work_pool_submit(WorkPool *p, void *job);
unsigned work_pool_threads(const WorkPool *p);
WorkPool *work_pool_free(WorkPool *p, void (*drop)(void *job));

typedef struct Listener {
	Server *server;
	ListenerKind kind;
	int fd;
	uint16_t port; /* the bound port */
	sd_event_source *io;
	TlsConfig *tls;
	unsigned n_conns;
	unsigned max_conns;
	bool paused; /* not accepting: at the connection bound or out of fds */
} Listener;

typedef struct ServerKeys {
	EcKey *ca_key;
	char *ca_pem;
	uint8_t *ca_der;
	size_t ca_der_size;
	EcKey *policy_key; /* signs the first disk policy */
	uint8_t *policy_spki;
	size_t policy_spki_size;
	uint8_t *escrow_spki; /* devices encrypt recovery keys to it */
	size_t escrow_spki_size;
	uint8_t *command_spki; /* devices verify commands with it (sent at enrollment) */
	size_t command_spki_size;
	uint8_t escrow_kid[SHA256_SIZE];
	char *tpm_ca_pem;      /* EK certificates must chain to this bundle */
	EcKey *command_key;    /* signs commands */
	char *escrow_key_path; /* read per recovery-key request, not kept in memory */
} ServerKeys;

struct Server {
	ServerConfig config;
	const char *state_dir;
	sd_event *event;
	Store *store;
	ServerKeys keys;
	CommandIssueKeys command_issue; /* points into keys and config */
	Listener listeners[_LISTENER_MAX];
	ServerConn *conns; /* all open connections (list) */
	size_t n_conns;
	void *devices; /* tsearch tree of DeviceSession*: attested-or-attesting devices */
	size_t n_devices;
	uint64_t n_sessions; /* device sessions ever opened: each one's serial */
	WorkPool *results;   /* verifies command results (server_result_verify) */
	FleetTask *fleet_tasks; /* fleet commands being queued (server-admin.c) */
	/* Audit records for rejected handshakes, rate limited: scanners must not grow the chain. */
	uint64_t audit_window_start;
	unsigned audit_window_count;
	unsigned audit_suppressed;
};

/* ---- connections (server-conn.c) ---- */
typedef struct ConnHandler {
	/* The TLS handshake finished. < 0: close. */
	int (*established)(ServerConn *c);
	/* A decoded frame (enroll and device ports). < 0: close (after the queued output). */
	int (*message)(ServerConn *c, const ProtoMessage *m);
	/* Raw bytes in c->in (admin port); consume with conn_input_consume. */
	int (*input)(ServerConn *c);
	/* A protocol failure the connection layer found (malformed frame, timeout): report it the
	 * kind's way (error message, audit), then the connection closes. */
	void (*fail)(ServerConn *c, const char *code, const char *reason);
	/* The deadline passed. */
	void (*timeout)(ServerConn *c);
	/* The connection is going away: free the session. */
	void (*closed)(ServerConn *c);
} ConnHandler;

extern const ConnHandler enroll_handler, device_handler, admin_handler;
/* Stops the fleet commands still being queued (at shutdown; what was queued stays queued). */
void server_fleet_tasks_free(Server *s);

struct ServerConn {
	Server *server;
	Listener *listener;
	const ConnHandler *handler;
	ServerConn *prev, *next;
	int fd;
	char peer[64]; /* "addr:port" for logs and audit */
	TlsConn *tls;
	sd_event_source *io;
	sd_event_source *timer;
	bool established;
	bool closing; /* flush the output, then close */
	bool dead;    /* close when the current dispatch returns */
	bool in_dispatch;
	uint8_t *in; /* the frame (or request) being received */
	size_t in_size, in_alloc, in_max;
	uint8_t *out; /* queued output */
	size_t out_size, out_off, out_inflight;
	void *session; /* EnrollSession / DeviceSession / AdminSession */
};

int listener_open(Server *s, ListenerKind kind, const char *address, uint16_t port);
void listener_close(Listener *l);

/* Queue a message / raw bytes and start writing. */
int conn_send(ServerConn *c, const ProtoMessage *m);
int conn_send_raw(ServerConn *c, const void *data, size_t n);
/* Write the queued output now: for output queued from another connection's handler (a command
 * queued on the admin port for a device), which would otherwise wait for the device's next
 * event. May free c (when the write fails). */
void conn_kick(ServerConn *c);
/* Queue an `error` message and close once it is written. */
void conn_send_error(ServerConn *c, const char *code, const char *message);
/* Close after the queued output (bounded by a short deadline). */
void conn_close_after_write(ServerConn *c);
/* Close now (from another connection's handler too). */
void conn_close(ServerConn *c);
/* (Re)arm the connection's deadline, seconds from now. */
int conn_set_deadline(ServerConn *c, uint64_t seconds);
/* Drop the first n bytes of c->in (admin input). */
void conn_input_consume(ServerConn *c, size_t n);
void server_close_all_conns(Server *s);

/* ---- audit (server-audit.c) ---- */
/* Appends an audit record; details is a JSON object (stolen; NULL allowed). Logs failures. */
int audit_record(Store *store, const char *actor, const char *action, const char *subject, json_t *details);
int server_audit_local(Store *store, const char *action, const char *subject, json_t *details);
#define SERVER_ACTOR "trustpc-server"
int server_audit(Server *s, const char *action, const char *subject, json_t *details);
/* For rejections anyone on the network can cause without credentials (failed client
 * certificates): at most SERVER_AUDIT_BURST records a minute, so scanners cannot grow the chain
 * without bound; the suppressed count is logged and recorded with the next window. */
#define SERVER_AUDIT_BURST 60
void server_audit_rate_limited(Server *s, const char *action, const char *subject, json_t *details);

/* Device table: the connection that currently speaks for a device id. A DeviceEntry is the
 * first member of the device port's session. Registering an id that is already there closes the
 * older connection. */
typedef struct DeviceEntry {
	char device_id[DEVICE_ID_STRING_SIZE]; /* first: a bare id string is a search key */
	ServerConn *conn;
} DeviceEntry;
int server_device_register(Server *s, DeviceEntry *e);
void server_device_unregister(Server *s, DeviceEntry *e);
ServerConn *server_device_find(Server *s, const char *device_id);
bool server_is_connected(void *userdata, const char *device_id);

/* ---- commands on the device port (server-command.c) ---- */
/* Sends the device's first pending command (in seq order; a quarantined device only
 * lock/unlock/wipe) unless it was already sent on this connection (seq <= *sent_seq): one command
 * in flight per device. Marks it delivered; *sent_seq follows. Store failures are logged
 * and leave the commands pending ("delivered" means handed to the connection: a crash before the
 * bytes leave only means the next connection sends it again). Returns 0. */
int server_commands_deliver(ServerConn *c, const char *device_id, DeviceState state, uint64_t *sent_seq);
typedef struct DeviceCommandPeer {
	const char *device_id;
	const EcKey *tls_key;	 /* the registered TLS key: results are signed with it */
	const uint8_t *ak_point; /* 65 bytes: the quotes of lock/wipe results */
	uint64_t sent_seq;	 /* the command in flight on this connection (0: none) */
	uint64_t session;	 /* the session's serial (server_device_result_done) */
} DeviceCommandPeer;
/* A `result` message: copied and handed to the worker threads (s->results), which check its
 * signature and quote (server_result_verify); then, on the loop thread, a burst of them is
 * matched to delivered commands of their devices and recorded under one store batch
 * (server_results_done), after which each device gets its next command
 * (server_device_result_done). Refusals are logged and audited ("command.result-refused"); the
 * connection stays. Returns 1 (being verified) or < 0. server_result_drop frees a job (also the
 * pool's drop at shutdown: the command stays delivered and its result comes again). */
int server_command_result(ServerConn *c, const DeviceCommandPeer *peer, const ProtoMessage *m);
void server_result_verify(void *job);
void server_results_done(void *userdata, void **jobs, size_t n);
void server_result_drop(void *job);
/* A result of session `session` of this device is recorded (deliver: and committed): clears that
 * session's in-verification mark and sends the device's next command on its current connection. */
void server_device_result_done(Server *s, const char *device_id, uint64_t session, bool deliver);
/* AdminContext.command_queued: deliver now when the device is connected and attested. */
void server_device_command_queued(void *userdata, const char *device_id);

/* ---- verbs ---- */
typedef struct ServerArgs {
	const char *state_dir;
	const char *config;
	const char *hostname;	     /* init */
	const char *role;	     /* operator add */
	const char *image;	     /* token create */
	uint64_t ttl;		     /* token create */
	const char *settings[16][2]; /* flags that override config keys */
	size_t n_settings;
	char **argv; /* positional arguments after the verb */
	int argc;
} ServerArgs;

int verb_init(ServerArgs *a);
int verb_run(ServerArgs *a);
int verb_operator(ServerArgs *a);
int verb_token(ServerArgs *a);
int verb_image(ServerArgs *a);

/* Path of a file in the state dir (malloc'ed); NULL on OOM. */
char *server_path(const char *state_dir, const char *name);
/* Opens the store of a state dir, logging a clear error. */
int server_store_open(const char *state_dir, Store **ret);
static inline void server_store_closep(Store **s)
{
	store_close(*s);
}
