/* SPDX-License-Identifier: Apache-2.0 */
/* bench-tls [FULL] [RESUMED] [HELD] — lib/tls over loopback TCP: a server (this process) and a
 * client (a forked child, its own heap and CPU). Measures full handshakes with client
 * authentication per second, ticket-resumed handshakes per second, server CPU per handshake, and
 * the server's heap per established connection (glibc mallinfo2: Debian's mbedTLS is built without
 * MBEDTLS_PLATFORM_MEMORY, so mbedtls_platform_set_calloc_free is not available). Prints the
 * figures of /work/shared/design/REFERENCES.md beside ours. Exits non-zero only if a handshake
 * fails or a resumption does not resume. */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto-x509.h"
#include "crypto/crypto.h"
#include "tls/tls.h"

typedef struct Pki {
	EcKey *ca_key, *server_key, *client_key;
	char *ca, *server, *client;
} Pki;

static double now_s(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench-tls: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

static char *issue(const EcKey *k, const char *cn, const char *dns, const EcKey *ik, const char *ipem, int ca,
		   int client)
{
	X509IssueParams p = {.subject_key = k, .subject_cn = cn, .dns_name = dns, .issuer_key = ik,
			     .issuer_cert_pem = ipem, .days = 1, .is_ca = ca, .client_auth = client};
	char *pem = NULL;
	int r = x509_issue(&p, &pem);
	if (r < 0)
		die("x509_issue", r);
	return pem;
}

/* Client child: connects n times per phase, handshakes, exchanges one byte each way. */
static void client_phase(const Pki *pki, int port, int n, bool tickets, bool hold)
{
	TlsConfigParams p = {.ca_pem = pki->ca, .cert_pem = pki->client, .key = pki->client_key,
			     .session_tickets = tickets};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	TlsConfig *c = NULL;
	TlsConn **held = calloc((size_t)n, sizeof(TlsConn *));
	int *fds = calloc((size_t)n, sizeof(int)), r = -ENOMEM;
	char b = 'x';

	if (!held || !fds || (r = tls_config_new(&p, &c)) < 0)
		die("client config", r);
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
		TlsConn *t = NULL;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("connect", errno);
		if ((r = tls_conn_new(c, fd, "localhost", &t)) < 0 || (r = tls_handshake(t)) < 0)
			die("client handshake", r);
		if (tickets)
			(void)tls_conn_save_session(t);
		if (tls_write(t, &b, 1) != 1 || tls_read(t, &b, 1) != 1)
			die("client exchange", EIO);
		if (hold) {
			held[i] = t;
			fds[i] = fd;
		} else {
			tls_conn_free(t);
			close(fd);
		}
	}
	if (hold) /* until the server is done measuring and closes */
		for (int i = 0; i < n; i++) {
			(void)tls_read(held[i], &b, 1);
			tls_conn_free(held[i]);
			close(fds[i]);
		}
	tls_config_free(c);
	free(held);
	free(fds);
}

typedef struct Result {
	double wall, cpu;
	int resumed;
} Result;

/* Server side of one phase: accept, handshake, exchange; keep the connections when hold. */
static Result server_phase(TlsConfig *s, int lfd, int n, TlsConn **held, int *held_fd)
{
	Result res = {0};
	double w0 = now_s(CLOCK_MONOTONIC);
	char b;

	for (int i = 0; i < n; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), r;
		TlsConn *t = NULL;
		double c0;

		if (fd < 0)
			die("accept", errno);
		c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
		if ((r = tls_conn_new(s, fd, NULL, &t)) < 0 || (r = tls_handshake(t)) < 0) {
			fprintf(stderr, "bench-tls: %s\n", t ? tls_verify_error(t) ?: "" : "");
			die("server handshake", r);
		}
		if (tls_read(t, &b, 1) != 1 || tls_write(t, &b, 1) != 1)
			die("server exchange", EIO);
		res.resumed += tls_resumed(t);
		if (held) {
			res.cpu += now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
			held[i] = t;
			held_fd[i] = fd;
			continue;
		}
		tls_conn_free(t);
		res.cpu += now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
		close(fd);
	}
	res.wall = now_s(CLOCK_MONOTONIC) - w0;
	return res;
}

int main(int argc, char **argv)
{
	int n_full = argc > 1 ? atoi(argv[1]) : 100, n_res = argc > 2 ? atoi(argv[2]) : 1000;
	int n_held = argc > 3 ? atoi(argv[3]) : 200, lfd, port, status, r, one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	TlsConfigParams sp = {.server = true, .require_client_cert = true, .session_tickets = true};
	TlsConfig *s = NULL;
	TlsConn **held;
	int *held_fd;
	Pki pki = {0};
	Result full, res;
	struct mallinfo2 m0, m1;
	pid_t child;

	if (n_full < 1 || n_res < 1 || n_held < 1)
		die("usage: bench-tls [FULL] [RESUMED] [HELD]", EINVAL);
	if (ec_key_generate(&pki.ca_key) < 0 || ec_key_generate(&pki.server_key) < 0 ||
	    ec_key_generate(&pki.client_key) < 0)
		die("keys", EIO);
	pki.ca = issue(pki.ca_key, "bench CA", NULL, NULL, NULL, 1, 0);
	pki.server = issue(pki.server_key, "bench server", "localhost", pki.ca_key, pki.ca, 0, 0);
	pki.client = issue(pki.client_key, "device-bench", NULL, pki.ca_key, pki.ca, 0, 1);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 256) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		die("listen", errno);
	port = ntohs(sa.sin_port);

	child = fork();
	if (child < 0)
		die("fork", errno);
	if (child == 0) {
		close(lfd);
		client_phase(&pki, port, n_full, false, false);
		client_phase(&pki, port, n_res + 1, true, false); /* the first one gets the ticket */
		client_phase(&pki, port, n_held, false, true);
		_exit(0);
	}

	sp.ca_pem = pki.ca;
	sp.cert_pem = pki.server;
	sp.key = pki.server_key;
	if ((r = tls_config_new(&sp, &s)) < 0)
		die("server config", r);

	full = server_phase(s, lfd, n_full, NULL, NULL);
	(void)server_phase(s, lfd, 1, NULL, NULL);
	res = server_phase(s, lfd, n_res, NULL, NULL);
	if (full.resumed != 0 || res.resumed != n_res) {
		fprintf(stderr, "bench-tls: %d of %d full handshakes resumed, %d of %d resumptions resumed\n",
			full.resumed, n_full, res.resumed, n_res);
		return 1;
	}

	held = calloc((size_t)n_held, sizeof(TlsConn *));
	held_fd = calloc((size_t)n_held, sizeof(int));
	if (!held || !held_fd)
		die("calloc", ENOMEM);
	malloc_trim(0);
	m0 = mallinfo2();
	(void)server_phase(s, lfd, n_held, held, held_fd);
	m1 = mallinfo2();
	for (int i = 0; i < n_held; i++) {
		tls_conn_free(held[i]);
		close(held_fd[i]);
	}
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("client child failed", EIO);

	printf("lib/tls, mbedTLS 2.28, TLS 1.2 ECDHE-ECDSA P-256 AES-128-GCM, loopback TCP, client in a child\n");
	printf("%-44s %14s %14s\n", "", "trustpc", "REFERENCES.md");
	printf("%-44s %14.0f %14s\n", "full handshakes/s (client auth, both ends)", n_full / full.wall, "~125/core");
	printf("%-44s %14.2f %14s\n", "server CPU ms per full handshake", 1e3 * full.cpu / n_full, "~8");
	printf("%-44s %14.0f %14s\n", "resumed handshakes/s (ticket)", n_res / res.wall, "-");
	printf("%-44s %14.3f %14s\n", "server CPU ms per resumed handshake", 1e3 * res.cpu / n_res, "~0.05");
	printf("%-44s %14.0f %14s\n", "server heap bytes per established conn",
	       (double)(m1.uordblks - m0.uordblks) / n_held, "~37 KB");
	printf("(%d full, %d resumed, %d held connections; the full-handshake rate includes the client's\n"
	       " CPU on the same machine, the server CPU figures are the server's alone)\n",
	       n_full, n_res, n_held);

	free(held);
	free(held_fd);
	tls_config_free(s);
	close(lfd);
	free(pki.ca);
	free(pki.server);
	free(pki.client);
	ec_key_free(pki.ca_key);
	ec_key_free(pki.server_key);
	ec_key_free(pki.client_key);
	return 0;
}
