/* SPDX-License-Identifier: Apache-2.0 */
/* Test-only driver (never installed): signs one command with a test command key and hands it to the
 * real executor (executor_run in a forked child, on a SOCK_SEQPACKET socketpair, with the real TPM
 * named by TRUSTPC_TPM2_DEVICE and the state dir's trustpcd.conf volumes), the way trustpcd's
 * network process does. Prints the executor's reply as KEY=VALUE lines.
 *
 *   exec-command --state-dir DIR --key CMD.pem --type lock|unlock|wipe|policy --seq N
 *                [--id HEX32] [--device ID] [--exp-delta S] [--policy FILE] [--class NAME]
 *                [--crash intent-written|counter-incremented]
 *
 * --device defaults to the TPM's own device id. --crash makes the executor SIGKILL itself at that
 * point (executor_crash_hook), as a power cut would. Exit: 0 reply printed, 3 the executor died
 * (printed "executor=killed"), 1 other errors. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent-state.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "executor-command.h"
#include "privsep-executor.h"
#include "privsep-proto.h"
#include "proto/command.h"

static const char *crash_at;

static void crash(const char *point)
{
	if (crash_at && streq(crash_at, point)) {
		fprintf(stderr, "exec-command: killing the executor at '%s'\n", point);
		raise(SIGKILL);
	}
}

static int executor_child(int fd, const char *dir)
{
	_cleanup_(agent_config_done) AgentConfig cfg = {0};
	Tpm2Context *tpm = NULL;
	unsigned line = 0;
	int r;

	r = agent_config_load(dir, &cfg, &line);
	if (r < 0) {
		fprintf(stderr, "exec-command: %s/%s line %u is bad\n", dir, STATE_CONFIG, line);
		return 1;
	}
	r = tpm2_context_new(getenv("TRUSTPC_TPM2_DEVICE") ?: "/dev/tpmrm0", &tpm);
	if (r < 0) {
		fprintf(stderr, "exec-command: no TPM: %s\n", strerror(-r));
		return 1;
	}
	Executor e = {
	    .fd = fd,
	    .state_dir = dir,
	    .tpm = tpm,
	    .enrolled = true,
	    .volumes = cfg.volumes,
	    .n_volumes = cfg.n_volumes,
	};
	if (tpm2_device_id(tpm, e.device_id) < 0)
		return 1;
	executor_crash_hook = crash;
	r = executor_run(&e);
	tpm2_context_free(tpm);
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 'd'},
	    {"key", required_argument, NULL, 'k'},
	    {"type", required_argument, NULL, 't'},
	    {"seq", required_argument, NULL, 's'},
	    {"id", required_argument, NULL, 'i'},
	    {"device", required_argument, NULL, 'D'},
	    {"exp-delta", required_argument, NULL, 'e'},
	    {"policy", required_argument, NULL, 'p'},
	    {"class", required_argument, NULL, 'c'},
	    {"crash", required_argument, NULL, 'C'},
	    {},
	};
	const char *dir = NULL, *key_path = NULL, *type = NULL, *id = NULL, *device = NULL, *policy = NULL,
		   *cls = "all";
	long long exp_delta = 600;
	unsigned long long seq = 0;
	_cleanup_free_ char *policy_text = NULL;
	_cleanup_free_ uint8_t *cose = NULL;
	_cleanup_ec_key_ EcKey *key = NULL;
	Tpm2Context *tpm = NULL;
	PrivsepExecuteReply rep;
	Command c = {0};
	int sv[2], c_opt, r, status;
	pid_t pid;
	size_t n;

	log_set_program("exec-command");
	log_parse_environment();
	while ((c_opt = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c_opt) {
		case 'd':
			dir = optarg;
			break;
		case 'k':
			key_path = optarg;
			break;
		case 't':
			type = optarg;
			break;
		case 's':
			seq = strtoull(optarg, NULL, 10);
			break;
		case 'i':
			id = optarg;
			break;
		case 'D':
			device = optarg;
			break;
		case 'e':
			exp_delta = strtoll(optarg, NULL, 10);
			break;
		case 'p':
			policy = optarg;
			break;
		case 'c':
			cls = optarg;
			break;
		case 'C':
			crash_at = optarg;
			break;
		default:
			return 1;
		}
	}
	if (!dir || !key_path || !type || command_type_from_name(type, &c.type) < 0) {
		fprintf(stderr, "usage: see the head of tests/unit/daemon/exec-command.c\n");
		return 1;
	}
	if (ec_key_load_file(key_path, &key) < 0)
		return 1;
	if (!device) {
		if (tpm2_context_new(getenv("TRUSTPC_TPM2_DEVICE") ?: "/dev/tpmrm0", &tpm) < 0 ||
		    tpm2_device_id(tpm, c.device_id) < 0)
			return 1;
		tpm = tpm2_context_free(tpm);
	} else
		snprintf(c.device_id, sizeof(c.device_id), "%s", device);
	if (id)
		snprintf(c.id, sizeof(c.id), "%s", id);
	c.seq = seq;
	c.iat = (uint64_t)time(NULL);
	c.exp = (uint64_t)((long long)time(NULL) + exp_delta);
	if (exp_delta < 0)
		c.iat = c.exp - 60;
	c.issuer = (char *)"exec-command";
	switch (c.type) {
	case COMMAND_LOCK:
		c.args.lock.reason = (char *)"test";
		break;
	case COMMAND_UNLOCK:
		if (!policy || read_full_file(policy, 65536, false, &policy_text, NULL) < 0)
			return 1;
		c.args.unlock.policy = policy_text;
		break;
	case COMMAND_WIPE:
		c.args.wipe.class_name = (char *)cls;
		break;
	default:
		c.args.policy = (DevicePolicy){.version = seq, .heartbeat = 300};
	}
	r = command_sign(key, &c, &cose, &n);
	if (r < 0) {
		fprintf(stderr, "exec-command: command_sign: %s\n", strerror(-r));
		return 1;
	}
	printf("id=%s\n", c.id);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(sv[1]);
		_exit(executor_child(sv[0], dir));
	}
	close(sv[0]);
	r = privsep_execute(sv[1], cose, n, &rep);
	close(sv[1]);
	if (waitpid(pid, &status, 0) < 0)
		return 1;
	if (r == -ECONNRESET && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
		printf("executor=killed\n");
		return 3;
	}
	if (r < 0) {
		fprintf(stderr, "exec-command: EXECUTE failed: %s\n", strerror(-r));
		return 1;
	}
	printf("status=%s\nreason=%s\nseq=%llu\ntype=%s\nepoch=%s%llu\nlocked=%u\nredelivered=%u\nreply_id=%"
	       "s\n",
	       result_status_name(rep.status), rep.reason, (unsigned long long)rep.seq,
	       rep.type ? command_type_name(rep.type) : "", rep.has_epoch ? "" : "none-",
	       (unsigned long long)rep.epoch, rep.locked, rep.redelivered, rep.id);
	return 0;
}
