/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Splitting trustpcd into the executor (the parent: keeps root, the TPM and the state dir) and the
 * network process (the child: drops to an unprivileged user before it touches any untrusted
 * byte). docs/PRIVSEP.md. */

#include <stdbool.h>
#include <sys/types.h>

typedef struct PrivsepUser {
	uid_t uid;
	gid_t gid;
	char *name;
} PrivsepUser;

/* Looks the user up (before the fork: NSS may need files the child can no longer read).
 * -ESRCH when it does not exist. */
int privsep_user_lookup(const char *name, PrivsepUser *ret);
void privsep_user_done(PrivsepUser *u);

/* socketpair(SOCK_SEQPACKET) + fork. In the parent returns the child's pid (> 0) and its end of the
 * socket; in the child returns 0 and the child's end (the other end is closed in each). */
int privsep_fork(pid_t *ret_pid, int *ret_fd);

/* In the child: setgroups(0) + setresgid + setresuid to u when running as root (checked: regaining
 * root must fail afterwards), then PR_SET_NO_NEW_PRIVS and a parent-death SIGKILL (so the network
 * process never outlives the executor). Not root (tests, a developer): only the last two. */
int privsep_drop_privileges(const PrivsepUser *u);

/* Parent: forward SIGTERM/SIGINT/SIGHUP to pid (the network process stops, the executor then sees
 * EOF and exits in turn). */
int privsep_forward_signals(pid_t pid);
/* Parent after a protocol violation or a failure: SIGKILL and reap the child. */
void privsep_kill_child(pid_t pid);
/* Parent after EOF: reap the child; returns its exit status (128+signal when killed). */
int privsep_wait_child(pid_t pid);
