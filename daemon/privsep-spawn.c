/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "privsep-spawn.h"

int privsep_user_lookup(const char *name, PrivsepUser *ret)
{
	struct passwd *pw;
	char *n;

	errno = 0;
	pw = getpwnam(name);
	if (!pw)
		return errno > 0 ? -errno : -ESRCH;
	n = strdup(name);
	if (!n)
		return -ENOMEM;
	*ret = (PrivsepUser){.uid = pw->pw_uid, .gid = pw->pw_gid, .name = n};
	return 0;
}

void privsep_user_done(PrivsepUser *u)
{
	free(u->name);
	u->name = NULL;
}

int privsep_fork(pid_t *ret_pid, int *ret_fd)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		close(sv[0]);
		*ret_pid = 0;
		*ret_fd = sv[1];
		return 0;
	}
	close(sv[1]);
	*ret_pid = pid;
	*ret_fd = sv[0];
	return 1;
}

int privsep_drop_privileges(const PrivsepUser *u)
{
	pid_t parent = getppid();

	if (geteuid() == 0) {
		if (u->uid == 0)
			return log_error_errno(EPERM, "Refusing to run the network process as root (--user=%s).",
					       u->name);
		/* Order matters: groups and gid while we still may, the uid last. */
		if (setgroups(0, NULL) < 0)
			return log_error_errno(errno, "setgroups(0) failed: %m");
		if (setresgid(u->gid, u->gid, u->gid) < 0)
			return log_error_errno(errno, "setresgid(%u) failed: %m", (unsigned)u->gid);
		if (setresuid(u->uid, u->uid, u->uid) < 0)
			return log_error_errno(errno, "setresuid(%u) failed: %m", (unsigned)u->uid);
		/* Prove it: a process that can become root again has not dropped anything. */
		if (setuid(0) == 0 || setgid(0) == 0)
			return log_error_errno(EPERM, "Could regain root after dropping privileges; stopping.");
	} else
		log_debug("Not root: the network process keeps uid %u.", (unsigned)getuid());

	/* No setuid binary or file capability can give this process anything back. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return log_error_errno(errno, "PR_SET_NO_NEW_PRIVS failed: %m");
	/* Set after the credential change, which clears it. The network process must not live on
	 * without its executor; if the parent is already gone, stop now. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return log_error_errno(errno, "PR_SET_PDEATHSIG failed: %m");
	if (getppid() != parent)
		return log_error_errno(ESRCH, "The executor is gone.");
	if (chdir("/") < 0)
		return log_error_errno(errno, "chdir(/) failed: %m");
	return 0;
}

static volatile pid_t forward_pid = 0;

static void forward_signal(int sig)
{
	int saved = errno;
	if (forward_pid > 0)
		(void)kill(forward_pid, SIGTERM);
	errno = saved;
}

int privsep_forward_signals(pid_t pid)
{
	struct sigaction sa = {.sa_handler = forward_signal, .sa_flags = SA_RESTART};
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};

	forward_pid = pid;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
		if (sigaction(sigs[i], &sa, NULL) < 0)
			return -errno;
	return 0;
}

void privsep_kill_child(pid_t pid)
{
	if (pid <= 0)
		return;
	(void)kill(pid, SIGKILL);
	(void)privsep_wait_child(pid);
}

int privsep_wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	forward_pid = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}
