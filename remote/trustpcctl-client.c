/* SPDX-License-Identifier: Apache-2.0 */
/* trustpcctl: one HTTPS request per call to the admin port (docs/PROTOCOL.md "Admin API"):
 * TCP connect with a bound, TLS 1.2 pinned to the fleet CA with the server name set, the request,
 * the answer read until the server closes, then mapped to an exit code. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "basic/secret-input.h"
#include "http.h"
#include "tls/tls.h"
#include "trustpcctl.h"

#define CONNECT_TIMEOUT_MS 10000
#define IO_TIMEOUT_S 30
/* POST /api/v1/commands answers only once every device's command is signed and committed (a few
 * ms each, one after the other: 10,000 devices took minutes on a loaded 2-CPU server, see
 * bench/README.md "bench-fleet-lock.sh"); up to 100,000 devices may be named. Giving up earlier
 * would report a failure for commands that are queued and will run. */
#define FLEET_IO_TIMEOUT_S 1800
#define FLEET_TARGET "/api/v1/commands"
#define TOKEN_ENV "TRUSTPC_OPERATOR_TOKEN"
#define TOKEN_FILE_MAX 4096

static char *token; /* secure memory, loaded once */

static void token_free(void)
{
	token = secure_free(token);
}

/* The operator token from --token-file or $TRUSTPC_OPERATOR_TOKEN (never argv: other users see
 * it in ps). The variable is wiped after reading so children and /proc/self/environ do not keep it. */
static int token_load(const CtlOptions *o)
{
	_cleanup_secure_ char *data = NULL;
	size_t n;
	int r;

	if (token)
		return 0;
	if (o->token_file) {
		r = read_full_file(o->token_file, TOKEN_FILE_MAX, true, &data, &n);
		if (r < 0) {
			log_error_errno(r, "Cannot read the operator token from %s: %m.", o->token_file);
			return CTL_EXIT_AUTH;
		}
	} else {
		const char *e = getenv(TOKEN_ENV);
		if (!e || !*e) {
			log_error("No operator token: give --token-file FILE or set $%s "
				  "(made by 'trustpc-server operator add NAME --role ROLE').",
				  TOKEN_ENV);
			return CTL_EXIT_AUTH;
		}
		data = secure_strdup(e);
		env_wipe(TOKEN_ENV);
		if (!data)
			return log_oom(), CTL_EXIT_ERROR;
		n = strlen(data);
	}
	/* One line; trailing newline and blanks are not part of it. */
	while (n > 0 && strchr(" \t\r\n", data[n - 1]))
		data[--n] = 0;
	if (n == 0 || strpbrk(data, " \t\r\n")) {
		log_error("The operator token%s%s is not one word.", o->token_file ? " in " : "",
			  o->token_file ?: "");
		return CTL_EXIT_AUTH;
	}
	token = TAKE_PTR(data);
	atexit(token_free);
	return 0;
}

/* Connects within CONNECT_TIMEOUT_MS, trying each address; returns a blocking socket with I/O
 * timeouts (a stalled server must not hang a helpdesk script). */
static int connect_server(const CtlOptions *o, int *ret_fd)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	int r, last = -ECONNREFUSED;

	r = getaddrinfo(o->host, o->port, &hints, &ai);
	if (r != 0) {
		log_error("Cannot resolve %s: %s.", o->host, gai_strerror(r));
		return CTL_EXIT_UNREACHABLE;
	}
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		_cleanup_close_ int fd =
		    socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		struct pollfd p;
		socklen_t len = sizeof(int);
		int err = 0;

		if (fd < 0) {
			last = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			last = -errno;
			continue;
		}
		p = (struct pollfd){.fd = fd, .events = POLLOUT};
		r = poll(&p, 1, CONNECT_TIMEOUT_MS);
		if (r == 0) {
			last = -ETIMEDOUT;
			continue;
		}
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
			last = -errno;
			continue;
		}
		if (err != 0) {
			last = -err;
			continue;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
			last = -errno;
			continue;
		}
		freeaddrinfo(ai);
		*ret_fd = TAKE_FD(fd);
		return 0;
	}
	freeaddrinfo(ai);
	log_error_errno(last,
			"Cannot connect to %s:%s: %m. Is trustpc-server running, and is %s its admin_port?",
			o->host, o->port, o->port);
	return CTL_EXIT_UNREACHABLE;
}

static int tls_setup(const CtlOptions *o, int fd, TlsConfig **ret_config, TlsConn **ret_conn)
{
	_cleanup_free_ char *ca = NULL;
	TlsConfig *config = NULL;
	TlsConn *conn = NULL;
	int r;

	r = read_full_file(o->ca_path, 1024 * 1024, false, &ca, NULL);
	if (r < 0) {
		log_error_errno(r, "Cannot read the fleet CA %s: %m.", o->ca_path);
		return CTL_EXIT_ERROR;
	}
	r = tls_config_new(&(TlsConfigParams){.server = false, .ca_pem = ca}, &config);
	if (r < 0) {
		log_error_errno(r,
				"Cannot use %s as the fleet CA: %m. It must be the PEM ca.pem from the "
				"server's state dir.",
				o->ca_path);
		return CTL_EXIT_ERROR;
	}
	/* The server name is the host part of --server: mbedTLS checks it against the certificate
	 * (without it any certificate from the CA would do, CVE-2025-27809). */
	r = tls_conn_new(config, fd, o->host, &conn);
	if (r < 0) {
		tls_config_free(config);
		log_error_errno(r, "Cannot start TLS: %m.");
		return CTL_EXIT_ERROR;
	}
	for (;;) {
		r = tls_handshake(conn);
		if (r != -EINTR)
			break;
	}
	if (r < 0) {
		const char *why = tls_verify_error(conn);
		if (r == -EAGAIN)
			log_error("The server at %s:%s did not finish the TLS handshake within %d s.",
				  o->host, o->port, IO_TIMEOUT_S);
		else if (r == -EACCES)
			log_error("TLS refused: the server's certificate is not acceptable (%s). Is %s the "
				  "fleet CA "
				  "(ca.pem in the server's state dir), and is '%s' the name in the server's "
				  "certificate?",
				  why ?: "verification failed", o->ca_path, o->host);
		else
			log_error_errno(r, "TLS handshake with %s:%s failed: %m%s%s.", o->host, o->port,
					why ? ": " : "", why ?: "");
		tls_conn_free(conn);
		tls_config_free(config);
		return CTL_EXIT_UNREACHABLE;
	}
	*ret_config = config;
	*ret_conn = conn;
	return 0;
}

static int write_all(TlsConn *t, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = tls_write(t, p, n);
		if (k == -EINTR)
			continue;
		if (k < 0)
			return (int)k;
		if (k == 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads until the server closes (one request per connection), bounded. */
static int read_all(TlsConn *t, char **ret, size_t *ret_size)
{
	size_t max = HTTP_HEAD_MAX + HTTP_CLIENT_BODY_MAX, n = 0, cap = 16384;
	_cleanup_free_ char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t k;

		if (n == cap) {
			char *b;
			if (cap >= max)
				return -EMSGSIZE;
			cap = MIN(cap * 2, max);
			b = realloc(buf, cap);
			if (!b)
				return -ENOMEM;
			buf = b;
		}
		k = tls_read(t, buf + n, cap - n);
		if (k == -EINTR)
			continue;
		if (k == 0)
			break;
		if (k == -ECONNRESET && n > 0)
			break; /* closed without close_notify: the parser checks Content-Length */
		if (k < 0)
			return (int)k;
		n += (size_t)k;
	}
	*ret = TAKE_PTR(buf);
	*ret_size = n;
	return 0;
}

static int exit_for_status(int status)
{
	switch (status) {
	case 401:
	case 403:
		return CTL_EXIT_AUTH;
	case 404:
		return CTL_EXIT_NOT_FOUND;
	default:
		return CTL_EXIT_ERROR;
	}
}

int ctl_call(const CtlOptions *o, const char *method, const char *target, json_t *body, json_t **ret)
{
	_cleanup_free_ char *body_text = NULL, *answer = NULL, *resp_body = NULL;
	_cleanup_erase_ char *request = NULL;
	_cleanup_close_ int fd = -EBADF;
	TlsConfig *config = NULL;
	TlsConn *conn = NULL;
	size_t answer_size = 0, resp_len = 0;
	json_t *j;
	/* A fleet command: the server answers after queueing for every device. */
	bool fleet = streq(method, "POST") && streq(target, FLEET_TARGET);
	int r, status = 0;

	r = token_load(o);
	if (r != 0)
		return r;
	if (body) {
		body_text = json_dumps(body, JSON_COMPACT);
		if (!body_text)
			return log_oom(), CTL_EXIT_ERROR;
	}
	if (asprintf(
		&request,
		"%s %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\nUser-Agent: trustpcctl/%s\r\n"
		"Accept: application/json\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		method, target, o->host, o->port, token, PROJECT_VERSION,
		body_text ? "Content-Type: application/json\r\n" : "", body_text ? strlen(body_text) : 0,
		body_text ?: "") < 0) {
		request = NULL;
		return log_oom(), CTL_EXIT_ERROR;
	}

	r = connect_server(o, &fd);
	if (r != 0)
		return r;
	r = tls_setup(o, fd, &config, &conn);
	if (r != 0)
		return r;
	r = write_all(conn, request, strlen(request));
	if (r >= 0 && fleet) {
		struct timeval tv = {.tv_sec = FLEET_IO_TIMEOUT_S};
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
			r = -errno;
	}
	if (r >= 0)
		r = read_all(conn, &answer, &answer_size);
	tls_conn_free(conn);
	tls_config_free(config);
	if (r == -EAGAIN && fleet) {
		/* Whatever the server committed stays queued: a blind retry would queue every command
		 * a second time. */
		log_error("The server at %s:%s did not answer within %d s. It may still be queueing the "
			  "commands: check 'trustpcctl commands' before issuing them again.",
			  o->host, o->port, FLEET_IO_TIMEOUT_S);
		return CTL_EXIT_UNREACHABLE;
	}
	if (r == -EAGAIN) {
		log_error("The server at %s:%s did not answer within %d s.", o->host, o->port, IO_TIMEOUT_S);
		return CTL_EXIT_UNREACHABLE;
	}
	if (r < 0) {
		log_error_errno(r, "The request to %s:%s failed: %m.", o->host, o->port);
		return CTL_EXIT_UNREACHABLE;
	}
	r = http_response_parse(answer, answer_size, &status, &resp_body, &resp_len);
	if (r < 0) {
		log_error_errno(r, "The server at %s:%s sent a malformed HTTP answer: %m.", o->host,
				o->port);
		return CTL_EXIT_ERROR;
	}

	j = json_loadb(resp_body, resp_len, JSON_DECODE_ANY, NULL);
	if (status < 200 || status > 299) {
		const char *msg = json_string_value(json_object_get(j, "message"));
		log_error("%s %s: HTTP %d %s: %s", method, target, status, http_status_text(status),
			  msg ?: "the server gave no reason.");
		json_decref(j);
		return exit_for_status(status);
	}
	if (!j) {
		log_error("The server at %s:%s answered HTTP %d with a body that is not JSON.", o->host,
			  o->port, status);
		return CTL_EXIT_ERROR;
	}
	if (ret)
		*ret = j;
	else
		json_decref(j);
	return 0;
}
