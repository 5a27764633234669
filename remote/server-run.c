/* SPDX-License-Identifier: Apache-2.0 */
/* trustpc-server run: load the state dir, open the store and the three listeners, serve on one
 * sd-event loop until SIGTERM/SIGINT, then close the listeners and connections and exit 0. */
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-x509.h"
#include "server.h"

#define PEM_MAX_SIZE (1024 * 1024)

/* ---- device table ---- */

/* Sessions in the tree start with their NUL-terminated device id (DeviceSession's first member),
 * so a bare id string is a valid search key. */
static int device_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

int server_device_register(Server *s, DeviceEntry *e)
{
	DeviceEntry **slot = tsearch(e, &s->devices, device_cmp);

	if (!slot)
		return -ENOMEM;
	if (*slot != e) {
		/* The device connected again while its old connection is still open (a laptop that
		 * changed networks; the old TCP connection is half-dead). The new, attesting one wins;
		 * the old one's unregister then finds another entry in the slot and leaves it. */
		ServerConn *old = (*slot)->conn;
		log_info("Device %s connected again from %s; closing its old connection from %s.",
			 e->device_id, e->conn->peer, old->peer);
		*slot = e;
		conn_close(old);
	} else
		s->n_devices++;
	return 0;
}

void server_device_unregister(Server *s, DeviceEntry *e)
{
	DeviceEntry **slot = tfind(e->device_id, &s->devices, device_cmp);

	if (!slot || *slot != e)
		return;
	tdelete(e->device_id, &s->devices, device_cmp);
	s->n_devices--;
}

ServerConn *server_device_find(Server *s, const char *device_id)
{
	DeviceEntry **slot = tfind(device_id, &s->devices, device_cmp);
	return slot ? (*slot)->conn : NULL;
}

bool server_is_connected(void *userdata, const char *device_id)
{
	return device_id && server_device_find(userdata, device_id) != NULL;
}

static void noop_free(void *p)
{
}

/* ---- state dir ---- */

static int load_text(const char *state_dir, const char *name, char **ret)
{
	_cleanup_free_ char *path = server_path(state_dir, name);
	size_t n;
	int r;

	if (!path)
		return log_oom();
	r = read_full_file(path, PEM_MAX_SIZE, false, ret, &n);
	if (r < 0)
		return log_error_errno(
		    r, "Cannot read '%s': %m. Is '%s' a state dir made by 'trustpc-server init'?", path,
		    state_dir);
	return 0;
}

static int load_key(const char *state_dir, const char *name, EcKey **ret)
{
	_cleanup_free_ char *path = server_path(state_dir, name);
	int r;

	if (!path)
		return log_oom();
	r = ec_key_load_file(path, ret);
	if (r < 0)
		return log_error_errno(
		    r,
		    "Cannot load the key '%s': %m. Is '%s' a state dir made by 'trustpc-server "
		    "init'?",
		    path, state_dir);
	return 0;
}

static void server_keys_done(ServerKeys *k)
{
	ec_key_free(k->ca_key);
	free(k->ca_pem);
	free(k->ca_der);
	ec_key_free(k->policy_key);
	free(k->policy_spki);
	free(k->escrow_spki);
	free(k->command_spki);
	free(k->tpm_ca_pem);
	ec_key_free(k->command_key);
	free(k->escrow_key_path);
	*k = (ServerKeys){};
}

static int server_keys_load(Server *s)
{
	_cleanup_ec_key_ EcKey *escrow = NULL;
	ServerKeys *k = &s->keys;
	size_t n;
	int r;

	r = load_key(s->state_dir, "ca.key", &k->ca_key);
	if (r < 0)
		return r;
	r = load_text(s->state_dir, "ca.pem", &k->ca_pem);
	if (r < 0)
		return r;
	r = x509_pem_to_der(k->ca_pem, &k->ca_der, &k->ca_der_size);
	if (r < 0)
		return log_error_errno(r, "%s/ca.pem is not a PEM certificate: %m.", s->state_dir);
	r = load_key(s->state_dir, "policy.key", &k->policy_key);
	if (r < 0)
		return r;
	r = ec_key_public_spki_der(k->policy_key, &k->policy_spki, &k->policy_spki_size);
	if (r < 0)
		return log_error_errno(r, "Cannot encode the policy key: %m.");
	r = load_key(s->state_dir, "escrow.pub", &escrow);
	if (r < 0)
		return r;
	r = ec_key_public_spki_der(escrow, &k->escrow_spki, &k->escrow_spki_size);
	if (r >= 0)
		r = ec_key_fingerprint(escrow, k->escrow_kid);
	if (r < 0)
		return log_error_errno(r, "Cannot encode the escrow key: %m.");

	r = load_key(s->state_dir, "command.key", &k->command_key);
	if (r < 0)
		return r;
	r = ec_key_public_spki_der(k->command_key, &k->command_spki, &k->command_spki_size);
	if (r < 0)
		return r;
	/* Only the path: the escrow private key is read when an admin asks for a recovery key and
	 * dropped again, never held by the process that talks to the network all day. */
	k->escrow_key_path = server_path(s->state_dir, "escrow.key");
	if (!k->escrow_key_path)
		return log_oom();
	s->command_issue = (CommandIssueKeys){
	    .command_key = k->command_key,
	    .policy_key = k->policy_key,
	    .policy_pcrs = s->config.policy_pcrs,
	    .ttl = s->config.command_ttl,
	};

	if (!s->config.tpm_ca)
		return log_error_errno(EINVAL,
				       "No TPM manufacturer CA bundle: set tpm_ca in %s/%s or pass --tpm-ca "
				       "FILE (EK certificates are checked against it at enrollment).",
				       s->state_dir, SERVER_CONF_NAME);
	r = read_full_file(s->config.tpm_ca, PEM_MAX_SIZE, false, &k->tpm_ca_pem, &n);
	if (r < 0)
		return log_error_errno(r, "Cannot read the TPM CA bundle '%s': %m.", s->config.tpm_ca);
	if (!strstr(k->tpm_ca_pem, "-----BEGIN CERTIFICATE-----"))
		return log_error_errno(EINVAL, "TPM CA bundle '%s' holds no PEM certificate.",
				       s->config.tpm_ca);
	return 0;
}

static int server_tls_setup(Server *s)
{
	_cleanup_ec_key_ EcKey *key = NULL;
	_cleanup_free_ char *cert = NULL;
	int r;

	r = load_key(s->state_dir, "server.key", &key);
	if (r < 0)
		return r;
	r = load_text(s->state_dir, "server.pem", &cert);
	if (r < 0)
		return r;
	for (ListenerKind i = 0; i < _LISTENER_MAX; i++) {
		TlsConfigParams p = {
		    .server = true,
		    .ca_pem = s->keys.ca_pem,
		    .cert_pem = cert,
		    .key = key,
		    /* Device port: the certificate issued at enrollment is the device's identity. */
		    .require_client_cert = i == LISTENER_DEVICE,
		    /* Reconnect storms are paid in ECDHE + ECDSA: resumption makes them cheap; a
		     * resumed session is attested like a full one (fresh exporter per connection). */
		    .session_tickets = i == LISTENER_DEVICE,
		};
		r = tls_config_new(&p, &s->listeners[i].tls);
		if (r < 0)
			return log_error_errno(r, "Cannot set up TLS with %s/server.pem and server.key: %m.",
					       s->state_dir);
	}
	return 0;
}

/* ---- run ---- */

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
	Server *s = userdata;
	log_info("Received %s, shutting down.", strsignal((int)si->ssi_signo));
	(void)sd_notify(false, "STOPPING=1\nSTATUS=Shutting down.");
	return sd_event_exit(s->event, 0);
}

/* Many devices, each one socket: the default soft limit (1024) is far too low. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int server_load(Server *s, ServerArgs *a)
{
	_cleanup_free_ char *conf = NULL;
	int r;

	s->state_dir = a->state_dir;
	if (!a->config) {
		conf = server_path(a->state_dir, SERVER_CONF_NAME);
		if (!conf)
			return log_oom();
	}
	r = server_config_load(&s->config, a->config ?: conf, a->config != NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->n_settings; i++) {
		char origin[64];
		snprintf(origin, sizeof(origin), "option for %s", a->settings[i][0]);
		r = server_config_set(&s->config, a->settings[i][0], a->settings[i][1], origin);
		if (r < 0)
			return r;
	}
	r = server_keys_load(s);
	if (r < 0)
		return r;
	return server_store_open(s->state_dir, &s->store);
}

static int server_listen(Server *s)
{
	const uint16_t ports[_LISTENER_MAX] = {
	    [LISTENER_ENROLL] = s->config.enroll_port,
	    [LISTENER_DEVICE] = s->config.device_port,
	    [LISTENER_ADMIN] = s->config.admin_port,
	};
	int r;

	r = server_tls_setup(s);
	if (r < 0)
		return r;
	for (ListenerKind i = 0; i < _LISTENER_MAX; i++) {
		r = listener_open(s, i, s->config.listen, ports[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

int verb_run(ServerArgs *a)
{
	Server s = {};
	sigset_t mask;
	int r;

	if (a->argc != 0) {
		log_error("Usage: trustpc-server run --state-dir DIR [--config FILE] [--listen ADDR] "
			  "[--enroll-port N] "
			  "[--device-port N] [--admin-port N] [--tpm-ca FILE]");
		return SERVER_EXIT_USAGE;
	}
	umask(0077);
	raise_nofile();
	(void)signal(SIGPIPE, SIG_IGN);
	server_config_init(&s.config);
	for (size_t i = 0; i < _LISTENER_MAX; i++)
		s.listeners[i].fd = -EBADF;

	r = server_load(&s, a);
	if (r < 0) {
		r = SERVER_EXIT_CONFIG;
		goto out;
	}
	r = sd_event_default(&s.event);
	if (r < 0) {
		log_error_errno(r, "Cannot create the event loop: %m.");
		goto fail;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	r = sd_event_add_signal(s.event, NULL, SIGTERM, on_signal, &s);
	if (r >= 0)
		r = sd_event_add_signal(s.event, NULL, SIGINT, on_signal, &s);
	if (r < 0) {
		log_error_errno(r, "Cannot watch SIGTERM/SIGINT: %m.");
		goto fail;
	}
	/* After the signal mask: the workers inherit SIGTERM and SIGINT blocked. */
	r = work_pool_new(s.event, 0, server_result_verify, server_results_done, &s, &s.results);
	if (r < 0)
		goto fail;
	r = server_listen(&s);
	if (r < 0)
		goto fail;

	log_info("Listening on %s: enroll port %u, device port %u, admin port %u; %u worker threads.",
		 s.config.listen, s.listeners[LISTENER_ENROLL].port, s.listeners[LISTENER_DEVICE].port,
		 s.listeners[LISTENER_ADMIN].port, work_pool_threads(s.results));
	/* STATUS= carries the bound ports: with port 0 (tests) that is how a supervisor learns them. */
	(void)sd_notifyf(false, "READY=1\nSTATUS=Listening on %s: enroll %u, device %u, admin %u",
			 s.config.listen, s.listeners[LISTENER_ENROLL].port,
			 s.listeners[LISTENER_DEVICE].port, s.listeners[LISTENER_ADMIN].port);

	r = sd_event_loop(s.event);
	if (r < 0) {
		log_error_errno(r, "Event loop failed: %m.");
		goto fail;
	}
	r = SERVER_EXIT_OK;
	goto out;
fail:
	r = SERVER_EXIT_FAIL;
out:
	/* Listeners first (no new connections), then the connections (close_notify); every store
	 * write was committed by the handler that made it, so closing the store loses nothing. */
	for (size_t i = 0; i < _LISTENER_MAX; i++)
		listener_close(&s.listeners[i]);
	server_close_all_conns(&s);
	server_fleet_tasks_free(&s);
	/* Results still with the workers are dropped uncommitted: their commands stay delivered and
	 * the devices send the results again on their next connection. */
	s.results = work_pool_free(s.results, server_result_drop);
	tdestroy(s.devices, noop_free);
	s.store = store_close(s.store);
	s.event = sd_event_unref(s.event);
	server_keys_done(&s.keys);
	server_config_done(&s.config);
	if (r == SERVER_EXIT_OK)
		log_info("Stopped.");
	return r;
}
