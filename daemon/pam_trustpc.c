/* SPDX-License-Identifier: Apache-2.0 */
/* pam_trustpc.so: a PAM account module that refuses logins while trustpcd's executor records a
 * remote lock (issue 4, docs/man/pam_trustpc.8). It reads one file, STATE_COMMANDS in the state
 * dir, which only the privileged executor writes (atomically, executor-command.h), and decides:
 *
 *   no state dir                        → allow: never enrolled, nothing can have locked it
 *   state dir, no commands.json         → allow: no command ever ran (the executor's zero state)
 *   "locked": false                     → allow
 *   "locked": true                      → deny (PAM_PERM_DENIED), the lock reason to the user
 *   anything else (unreadable, not a regular file, too large, not ours to trust, malformed JSON,
 *   a missing or mistyped key)          → deny: fail closed, logged with pam_syslog
 *
 * except for the users named in allow_users= (a helpdesk break-glass account), who are let in
 * and logged. The module runs inside every login process (sshd, login, gdm): it links libpam and
 * jansson only, keeps no state between calls, and exports nothing but pam_sm_acct_mgmt. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "agent-state.h"
#include "basic/macro.h"
#include "proto/proto.h"

typedef struct PamTrustpcState {
	bool locked;
	uint64_t last_seq;
	bool has_epoch;
	uint64_t epoch;
	char reason[PROTO_TEXT_MAX + 1]; /* "lock_reason", made safe for a terminal; "" if none */
} PamTrustpcState;

typedef struct PamTrustpcArgs {
	const char *state_dir;
	const char *allow_users; /* comma-separated user names, NULL: nobody */
	bool debug;
} PamTrustpcArgs;

static void json_unref(json_t **j)
{
	if (*j)
		json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_unref)

static int get_u64(json_t *o, const char *key, bool required, uint64_t *ret)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return required ? -EBADMSG : -ENOENT;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EBADMSG;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

/* The reason is the operator's text (trustpcctl lock --reason), shown on the user's terminal: C0
 * and C1 control characters (ESC, CSI U+009B) could move the cursor or rewrite the screen, so
 * each becomes '?'. jansson has already refused invalid UTF-8. */
static void text_sanitize(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	for (; *s && o + 1 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			buf[o++] = '?';
		else if (c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f) {
			buf[o++] = '?';
			s++;
		} else
			buf[o++] = (char)c;
	}
	buf[o] = 0;
}

/* Strict: an object (no duplicate keys, nothing after it, no NUL) with "locked" a boolean and
 * "last_seq" a non-negative integer (both always written by exec_state_save); "epoch", if there,
 * a non-negative integer; "last_reason" and "lock_reason", if there, strings (the latter at most
 * PROTO_TEXT_MAX bytes). Other keys are ignored: a newer trustpcd may add some, and refusing them
 * would lock every user out after an agent upgrade. -EFBIG above STATE_FILE_MAX bytes, -EBADMSG
 * otherwise, with *ret_why naming the fault. */
static int pam_trustpc_state_parse(const char *text, size_t n, PamTrustpcState *ret, const char **ret_why)
{
	_cleanup_json_ json_t *o = NULL;
	PamTrustpcState s = {0};
	json_t *v;
	int r;

	if (n > STATE_FILE_MAX) {
		*ret_why = "larger than the state file limit";
		return -EFBIG;
	}
	o = json_loadb(text, n, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o)) {
		*ret_why = o ? "not a JSON object" : "not valid JSON";
		return -EBADMSG;
	}
	v = json_object_get(o, "locked");
	if (!json_is_boolean(v)) {
		*ret_why = "\"locked\" is missing or not a boolean";
		return -EBADMSG;
	}
	s.locked = json_is_true(v);
	if (get_u64(o, "last_seq", true, &s.last_seq) < 0) {
		*ret_why = "\"last_seq\" is missing or not a non-negative integer";
		return -EBADMSG;
	}
	r = get_u64(o, "epoch", false, &s.epoch);
	if (r == -EBADMSG) {
		*ret_why = "\"epoch\" is not a non-negative integer";
		return -EBADMSG;
	}
	s.has_epoch = r >= 0;
	v = json_object_get(o, "last_reason");
	if (v && !json_is_string(v)) {
		*ret_why = "\"last_reason\" is not a string";
		return -EBADMSG;
	}
	v = json_object_get(o, "lock_reason");
	if (v && (!json_is_string(v) || json_string_length(v) > PROTO_TEXT_MAX)) {
		*ret_why = "\"lock_reason\" is not a string of at most 1024 bytes";
		return -EBADMSG;
	}
	if (v)
		text_sanitize(json_string_value(v), s.reason, sizeof(s.reason));
	*ret = s;
	return 0;
}

/* Someone other than root able to write the file, or the dir it is in, could write
 * "locked": false: such a state is not trusted (the executor itself refuses such a dir,
 * state_dir_prepare). */
static bool stat_trusted(const struct stat *st)
{
	return st->st_uid == 0 && !(st->st_mode & 0022);
}

/* Reads STATE_COMMANDS from dir. 1: there is no state dir (*ret untouched); 0: *ret filled (the
 * zero state when the file is missing); negative errno with *ret_why on anything else. */
static int pam_trustpc_state_load(const char *dir, PamTrustpcState *ret, const char **ret_why)
{
	_cleanup_close_ int dfd = -EBADF, fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t n = 0;
	struct stat st;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT)
			return 1;
		*ret_why = "cannot open the state dir";
		return -errno;
	}
	if (fstat(dfd, &st) < 0) {
		*ret_why = "cannot stat the state dir";
		return -errno;
	}
	if (!stat_trusted(&st)) {
		*ret_why = "the state dir is not owned by root or is writable by others";
		return -EPERM;
	}
	/* O_NOFOLLOW: the executor writes a regular file by rename, never a link; O_NONBLOCK: a FIFO
	 * in its place must not hang the login, the fstat below then refuses it. */
	fd = openat(dfd, STATE_COMMANDS, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT) {
			*ret = (PamTrustpcState){0};
			return 0;
		}
		*ret_why = "cannot open the state file";
		return -errno;
	}
	if (fstat(fd, &st) < 0) {
		*ret_why = "cannot stat the state file";
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		*ret_why = "the state file is not a regular file";
		return -EBADMSG;
	}
	if (!stat_trusted(&st)) {
		*ret_why = "the state file is not owned by root or is writable by others";
		return -EPERM;
	}
	if (st.st_size > STATE_FILE_MAX) {
		*ret_why = "larger than the state file limit";
		return -EFBIG;
	}
	/* One byte more than the limit: a file that grew after the fstat is still caught. */
	buf = malloc(STATE_FILE_MAX + 1);
	if (!buf) {
		*ret_why = "out of memory";
		return -ENOMEM;
	}
	while (n < STATE_FILE_MAX + 1) {
		ssize_t k = read(fd, buf + n, STATE_FILE_MAX + 1 - n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			*ret_why = "cannot read the state file";
			return -errno;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	return pam_trustpc_state_parse(buf, n, ret, ret_why);
}

static int args_parse(int argc, const char **argv, PamTrustpcArgs *ret, const char **ret_bad)
{
	PamTrustpcArgs a = {.state_dir = STATE_DIR_DEFAULT};
	const char *v;

	for (int i = 0; i < argc; i++) {
		if ((v = startswith(argv[i], "state_dir="))) {
			if (v[0] != '/') {
				*ret_bad = argv[i];
				return -EINVAL;
			}
			a.state_dir = v;
		} else if ((v = startswith(argv[i], "allow_users=")))
			a.allow_users = v;
		else if (streq(argv[i], "debug"))
			a.debug = true;
		else {
			/* A misspelt "state_dir" would silently check the default dir instead. */
			*ret_bad = argv[i];
			return -EINVAL;
		}
	}
	*ret = a;
	return 0;
}

/* Exact, whole-name match in a comma-separated list ("ab" does not match "abc,b"). */
static bool user_in_list(const char *list, const char *user)
{
	size_t l = strlen(user);

	if (!list || l == 0)
		return false;
	for (const char *p = list; *p;) {
		size_t k = strcspn(p, ",");

		if (k == l && strncmp(p, user, l) == 0)
			return true;
		p += k;
		if (*p == ',')
			p++;
	}
	return false;
}

int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	PamTrustpcArgs a;
	PamTrustpcState s = {0};
	const char *why = NULL, *bad = NULL, *user = NULL;
	const void *item = NULL;
	bool silent = flags & PAM_SILENT;
	int r;

	if (args_parse(argc, argv, &a, &bad) < 0) {
		pam_syslog(pamh, LOG_ERR,
			   "Invalid module argument \"%s\" (state_dir=ABSOLUTE_PATH, allow_users=A,B, "
			   "debug): login refused, fix the PAM configuration.",
			   bad);
		return PAM_SERVICE_ERR;
	}
	if (pam_get_item(pamh, PAM_USER, &item) == PAM_SUCCESS && item)
		user = item;

	r = pam_trustpc_state_load(a.state_dir, &s, &why);
	if (r > 0 || (r == 0 && !s.locked)) {
		if (a.debug)
			pam_syslog(pamh, LOG_DEBUG, "%s: login of %s allowed.",
				   r > 0 ? "No state dir (never enrolled)" : "Device not locked",
				   strna(user));
		return PAM_SUCCESS;
	}
	if (user && user_in_list(a.allow_users, user)) {
		if (r < 0)
			pam_syslog(
			    pamh, LOG_NOTICE,
			    "Break-glass login of %s (allow_users) while the lock state is unusable: %s.",
			    user, why);
		else
			pam_syslog(pamh, LOG_NOTICE,
				   "Break-glass login of %s (allow_users) while the device is locked.",
				   user);
		if (!silent)
			pam_info(pamh, "This device is %s: signed in with the break-glass account %s.",
				 r < 0 ? "in an unknown lock state" : "locked by your IT department", user);
		return PAM_SUCCESS;
	}
	if (r < 0) {
		pam_syslog(
		    pamh, LOG_ERR,
		    "Lock state %s/%s unusable: %s (%s). Login of %s refused (fail closed); the "
		    "file is written by trustpcd's executor, repair it or use an allow_users account.",
		    a.state_dir, STATE_COMMANDS, why, strerror(-r), strna(user));
		if (!silent)
			pam_error(pamh, "The lock state of this device cannot be read: logins are refused. "
					"Contact the helpdesk.");
		return r == -ENOMEM ? PAM_BUF_ERR : PAM_PERM_DENIED;
	}
	if (s.has_epoch)
		pam_syslog(pamh, LOG_NOTICE,
			   "Device locked (lock epoch %llu, command %llu): login of %s refused.",
			   (unsigned long long)s.epoch, (unsigned long long)s.last_seq, strna(user));
	else
		pam_syslog(pamh, LOG_NOTICE, "Device locked (command %llu): login of %s refused.",
			   (unsigned long long)s.last_seq, strna(user));
	if (!silent)
		pam_error(pamh,
			  "This device is locked by your IT department (reason: %s). Contact the helpdesk.",
			  s.reason[0] ? s.reason : "not given");
	return PAM_PERM_DENIED;
}
