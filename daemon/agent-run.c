/* SPDX-License-Identifier: Apache-2.0 */
/* `trustpcd run`: load the enrollment (root), fork; the child drops privileges and runs the
 * network/D-Bus loop, the parent opens the TPM and becomes the executor. docs/PRIVSEP.md. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-state.h"
#include "agent.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "executor-command.h"
#include "executor-enforce.h"
#include "privsep-executor.h"
#include "privsep-proto.h"
#include "privsep-spawn.h"
#include "trustpcd.h"

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	log_info("Stopping on signal %u.", si->ssi_signo);
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* Test hook (docs/man/trustpcd.8, ENVIRONMENT): makes this process misbehave on purpose, the way a
 * compromised network process would, so that tests can show the executor's reaction. */
static void test_bad_request(int fd)
{
	const char *what = getenv("TRUSTPCD_TEST_BAD_REQUEST");
	uint8_t buf[64] = {0};
	PrivsepHeader h = {0};

	if (!what)
		return;
	log_warning("TRUSTPCD_TEST_BAD_REQUEST=%s: sending a malformed request to the executor.", what);
	if (streq(what, "short")) {
		(void)privsep_send(fd, buf, 3);
		return;
	}
	if (streq(what, "unknown-type"))
		h = (PrivsepHeader){.type = 99, .size = 0};
	else if (streq(what, "quote-size"))
		h = (PrivsepHeader){.type = PRIVSEP_QUOTE, .size = 8};
	else if (streq(what, "activate"))
		h = (PrivsepHeader){.type = PRIVSEP_ACTIVATE, .size = 8};
	memcpy(buf, &h, sizeof(h));
	(void)privsep_send(fd, buf, sizeof(h) + h.size);
}

static int network_main(Agent *a, AgentState *st)
{
	_cleanup_ec_key_ EcKey *key = NULL;
	PrivsepStatusReply status;
	sigset_t ss;
	int r;

	r = sd_event_new(&a->event);
	if (r < 0)
		return log_error_errno(r, "Cannot create the event loop: %m");
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	(void)sd_event_add_signal(a->event, NULL, SIGTERM, on_signal, NULL);
	(void)sd_event_add_signal(a->event, NULL, SIGINT, on_signal, NULL);

	if (st->enrolled) {
		/* The TLS key and certificates were read by the parent as root; they are parsed here,
		 * after the privileges are gone. */
		r = ec_key_from_pem_or_der(st->tls_key_pem, strlen(st->tls_key_pem), &key);
		if (r < 0)
			return log_error_errno(r, "The stored TLS key (%s) is not a P-256 private key: %m. Enroll again.",
					       STATE_TLS_KEY);
		TlsConfigParams p = {
			.server = false,
			.ca_pem = st->ca_pem,
			.cert_pem = st->device_cert_pem,
			.key = key,
			.session_tickets = true,
		};
		r = tls_config_new(&p, &a->tls);
		if (r < 0)
			return log_error_errno(r, "Cannot set up TLS with the stored certificates (%s, %s): %m. Enroll again.",
					       STATE_CA_CERT, STATE_DEVICE_CERT);
		a->result_key = key;
		if (st->command_key_pem) {
			r = ec_key_from_pem_or_der(st->command_key_pem, strlen(st->command_key_pem), &a->command_key);
			if (r < 0)
				log_warning_errno(r, "%s is not a P-256 public key: %m; rejecting remote commands.",
						  STATE_COMMAND_KEY);
		} else
			log_notice("No fleet command key (%s) in the state dir: remote commands will be rejected.",
				   STATE_COMMAND_KEY);
	}
	/* Only the copies inside the TLS configuration stay. */
	agent_state_done(st);
	(void)agent_read_image_version(&a->image_version);

	r = privsep_status(a->privsep_fd, &status);
	if (r < 0)
		return log_error_errno(r, "The executor does not answer: %m");
	agent_set_status(a, status.epoch, status.locked);
	a->disk_encrypted = status.disk_encrypted;
	/* the applied device policy: its heartbeat, and its offline lease runs from now */
	agent_policy_update(a, &status);

	r = agent_bus_start(a);
	if (r < 0)
		return r;
	r = privsep_ready(a->privsep_fd);
	if (r < 0)
		return log_error_errno(r, "The executor does not answer: %m");
	test_bad_request(a->privsep_fd);

	if (a->enrolled) {
		log_info("Device %s: connecting to %s:%s.", a->device_id, a->host, a->port);
		r = agent_conn_start(a);
		if (r < 0)
			return r;
	} else
		log_notice("Not enrolled: serving D-Bus only. Enroll with trustpcd enroll, then restart.");

	r = sd_event_loop(a->event);
	agent_lease_done(a);
	agent_conn_done(a);
	a->result_key = NULL;
	a->command_key = ec_key_free(a->command_key);
	return r < 0 ? log_error_errno(r, "Event loop failed: %m") : r;
}

static int child(const Args *args, int fd, const PrivsepUser *user, AgentState *st, const char *server)
{
	Agent a = {.privsep_fd = fd, .fd = -EBADF, .bus_address = args->bus_address, .enrolled = st->enrolled};
	int r;

	/* Only the executor speaks to systemd: a compromised network process must not be able to
	 * report readiness or a main PID. */
	unsetenv("NOTIFY_SOCKET");
	r = privsep_drop_privileges(user);
	if (r < 0)
		return EXIT_FAIL;
	memcpy(a.device_id, st->device_id, sizeof(a.device_id));
	if (st->enrolled && server_address_split(server, &a.host, &a.port) < 0)
		return EXIT_USAGE;
	r = network_main(&a, st);
	a.tls = tls_config_free(a.tls);
	sd_bus_flush_close_unref(a.bus);
	sd_event_unref(a.event);
	free(a.host);
	free(a.port);
	free(a.image_version);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}

int verb_run(const Args *args)
{
	const char *dir = args->state_dir ?: STATE_DIR_DEFAULT;
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	AgentConfig cfg = {0};
	AgentState st = {0};
	PrivsepUser user = {0};
	Tpm2Ak ak = {0};
	const char *server;
	unsigned line = 0;
	pid_t pid;
	int r, fd, ret = EXIT_FAIL;

	r = agent_config_load(dir, &cfg, &line);
	if (r == -EINVAL) {
		log_error("%s/%s line %u: unknown key, bad path or not KEY = VALUE (keys: server, volumes, volume.CLASS).", dir, STATE_CONFIG,
			  line);
		return EXIT_USAGE;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read %s/%s: %m", dir, STATE_CONFIG);
		return EXIT_FAIL;
	}
	r = agent_state_load(dir, &st);
	if (r < 0)
		goto out;
	server = args->server ?: cfg.server;
	if (st.enrolled) {
		_cleanup_free_ char *h = NULL, *p = NULL;
		if (!server || server_address_split(server, &h, &p) < 0) {
			log_error("No valid device port: pass --server HOST:PORT or set 'server = HOST:PORT' in %s/%s.",
				  dir, STATE_CONFIG);
			ret = EXIT_USAGE;
			goto out;
		}
		r = tpm2_ak_deserialize((const uint8_t *)st.ak_blob, st.ak_blob_size, &ak);
		if (r < 0) {
			log_error_errno(r, "%s/%s is not an AK blob: %m. Enroll again.", dir, STATE_AK);
			goto out;
		}
	}
	r = privsep_user_lookup(args->user ?: "nobody", &user);
	if (r < 0) {
		log_error_errno(r, "Unknown user '%s' for the network process (--user): %m", args->user ?: "nobody");
		ret = EXIT_USAGE;
		goto out;
	}

	r = privsep_fork(&pid, &fd);
	if (r < 0) {
		log_error_errno(r, "Cannot start the network process: %m");
		goto out;
	}
	if (r == 0) {
		tpm2_ak_done(&ak);
		_exit(child(args, fd, &user, &st, server));
	}

	/* Executor. The TLS key is the network process's alone from here on. */
	Executor e = {
		.fd = fd,
		.state_dir = dir,
		.event_log_path = args->event_log,
		.enrolled = st.enrolled,
		.disk_encrypted = cfg.disk_encrypted,
		.has_policy = st.has_policy,
		.policy_epoch = st.policy_epoch,
		.volumes = cfg.volumes,
		.n_volumes = cfg.n_volumes,
		.lock_sessions = true,
		.enforce = true,
	};
	memcpy(e.device_id, st.device_id, sizeof(e.device_id));
	agent_state_done(&st);
	(void)privsep_forward_signals(pid);

	/* Opened after the fork: the network process must not inherit the TPM connection. */
	r = agent_tpm_open(args, &tpm);
	if (r < 0 && e.enrolled) {
		privsep_kill_child(pid);
		ret = EXIT_NO_TPM;
		goto out;
	}
	e.tpm = tpm;
	e.ak = e.enrolled ? &ak : NULL;
	log_info("Executor ready (pid %d); network process pid %d runs as %s.", (int)getpid(), (int)pid,
		 geteuid() == 0 ? user.name : "the invoking user");

	/* /run starts empty at boot: the applied device policy's settings again. */
	if (e.enrolled) {
		DevicePolicy dp;
		char summary[160];

		if (exec_device_policy_load(dir, &dp) >= 0 && exec_enforce_policy(&dp, summary, sizeof(summary)) >= 0)
			log_info("Device policy version %llu enforced: %s.", (unsigned long long)dp.version, summary);
	}

	r = executor_run(&e);
	close(fd);
	if (r == -EPROTO) {
		privsep_kill_child(pid);
		ret = EXIT_PRIVSEP;
	} else if (r < 0) {
		privsep_kill_child(pid);
		ret = EXIT_FAIL;
	} else {
		ret = privsep_wait_child(pid);
		if (ret != 0)
			log_error("The network process exited with status %d.", ret);
	}
out:
	tpm2_ak_done(&ak);
	agent_state_done(&st);
	agent_config_done(&cfg);
	privsep_user_done(&user);
	return ret;
}
