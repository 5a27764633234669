/* SPDX-License-Identifier: Apache-2.0 */
/* load-devices enroll: the enrollment protocol (docs/PROTOCOL.md "Enrollment") for every device of
 * 0..K-1 without a state file, with blocking sockets, split over --jobs processes (the server is
 * one loop: two client processes keep it busy while each waits for an answer). Done once: `run`
 * reuses the state files. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-x509.h"
#include "load-devices.h"
#include "proto/proto.h"

#define IO_TIMEOUT_SECONDS 60

typedef struct Link {
	int fd;
	TlsConn *tls;
} Link;

static void link_done(Link *l)
{
	l->tls = tls_conn_free(l->tls);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

int server_address(const char *server, struct sockaddr_in *ret)
{
	_cleanup_free_ char *host = NULL;
	const char *colon = strrchr(server, ':');
	uint64_t port;

	*ret = (struct sockaddr_in){.sin_family = AF_INET};
	if (!colon || parse_uint64(colon + 1, 65535, &port) < 0)
		return log_error_errno(EINVAL, "--server '%s' is not ADDR:PORT.", server);
	host = strndup(server, (size_t)(colon - server));
	if (!host || inet_pton(AF_INET, host, &ret->sin_addr) != 1)
		return log_error_errno(EINVAL, "--server '%s': not an IPv4 address.", server);
	ret->sin_port = htons((uint16_t)port);
	return 0;
}

static int link_open(const Options *o, TlsConfig *cfg, Link *ret)
{
	struct sockaddr_in sa;
	struct timeval tv = {.tv_sec = IO_TIMEOUT_SECONDS};
	Link l = {.fd = -1};
	int r;

	r = server_address(o->server, &sa);
	if (r < 0)
		return r;
	l.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l.fd < 0)
		return -errno;
	/* Blocking with a bound: a server that stops answering fails the run instead of hanging it. */
	(void)setsockopt(l.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(l.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	r = connect(l.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	if (r >= 0)
		r = tls_conn_new(cfg, l.fd, o->name, &l.tls);
	if (r >= 0)
		r = tls_handshake(l.tls);
	if (r < 0) {
		log_error_errno(r, "Cannot connect to the enroll port %s: %m (%s)", o->server,
				strna(l.tls ? tls_verify_error(l.tls) : NULL));
		link_done(&l);
		return r;
	}
	*ret = l;
	return 0;
}

static int link_send(Link *l, const ProtoMessage *m)
{
	_cleanup_erase_ uint8_t *frame = NULL; /* enroll carries the token, activate the secret */
	size_t n, off = 0;
	int r;

	r = proto_encode(m, &frame, &n);
	if (r < 0)
		return r;
	while (off < n) {
		ssize_t k = tls_write(l->tls, frame + off, n - off);
		if (k < 0)
			return (int)k;
		off += (size_t)k;
	}
	return 0;
}

static int link_read(Link *l, uint8_t *buf, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t k = tls_read(l->tls, buf + off, n - off);
		if (k <= 0)
			return k == 0 ? -ECONNRESET : (int)k;
		off += (size_t)k;
	}
	return 0;
}

static int link_expect(Link *l, ProtoType type, ProtoMessage *ret)
{
	_cleanup_free_ uint8_t *payload = NULL;
	uint8_t head[4];
	const char *why = NULL;
	size_t n;
	int r;

	r = link_read(l, head, sizeof(head));
	if (r < 0)
		return r;
	if (proto_frame_size(head, sizeof(head), &n) <= 0)
		return -EBADMSG;
	payload = malloc(n);
	if (!payload)
		return -ENOMEM;
	r = link_read(l, payload, n);
	if (r >= 0)
		r = proto_decode(payload, n, ret, &why);
	if (r < 0)
		return log_error_errno(r, "Bad message from the server: %s", strna(why));
	if (ret->type != type) {
		if (ret->type == PROTO_ERROR)
			log_error("The server refused: %s: %s", ret->error.code, ret->error.message);
		else
			log_error("Expected '%s', got '%s'.", proto_type_name(type),
				  proto_type_name(ret->type));
		proto_message_done(ret);
		return -EPROTO;
	}
	return 0;
}

typedef struct EnrollCtx {
	const Options *o;
	const Fleet *fleet;
	const EcKey *tpm_ca_key;
	const char *tpm_ca_pem;
	TlsConfig *cfg; /* the enroll port: server authentication only */
} EnrollCtx;

/* The device file: hex "name=value" lines (see device_load). */
static int device_save(const Options *o, unsigned index, const char *id, const EcKey *ak,
		       const EcKey *tls_key, const ProtoMessage *enrolled)
{
	_cleanup_free_ char *path = device_path(o, index), *cert_pem = NULL, *cert_hex = NULL, *text = NULL,
			   *cmdkey_hex = NULL, *policykey_hex = NULL;
	_cleanup_secure_ char *ak_pem = NULL, *key_pem = NULL;
	_cleanup_erase_ char *ak_hex = NULL, *key_hex = NULL, *id_hex = NULL;
	int r;

	r = x509_der_to_pem(enrolled->enrolled.device_cert.data, enrolled->enrolled.device_cert.size,
			    &cert_pem);
	if (r >= 0)
		r = ec_key_private_pem(ak, &ak_pem);
	if (r >= 0)
		r = ec_key_private_pem(tls_key, &key_pem);
	if (r < 0)
		return r;
	id_hex = hex_encode(id, strlen(id));
	ak_hex = hex_encode(ak_pem, strlen(ak_pem));
	key_hex = hex_encode(key_pem, strlen(key_pem));
	cert_hex = hex_encode(cert_pem, strlen(cert_pem));
	/* The fleet command key (SPKI DER): what the device checks every command against. */
	if (!enrolled->enrolled.has_command_key)
		return log_error_errno(ENOKEY, "The server sent no command key at enrollment.");
	cmdkey_hex = hex_encode(enrolled->enrolled.command_key.data, enrolled->enrolled.command_key.size);
	/* The fleet policy key (DER): an unlock's disk policy must verify with it. */
	policykey_hex = hex_encode(enrolled->enrolled.policy_key.data, enrolled->enrolled.policy_key.size);
	if (!path || !id_hex || !ak_hex || !key_hex || !cert_hex || !cmdkey_hex || !policykey_hex ||
	    asprintf(&text, "id=%s\nak=%s\nkey=%s\ncert=%s\ncmdkey=%s\npolicykey=%s\n", id_hex, ak_hex,
		     key_hex, cert_hex, cmdkey_hex, policykey_hex) < 0)
		return -ENOMEM;
	r = write_file_atomic(path, text, strlen(text), 0600);
	memory_erase(text, strlen(text));
	return r;
}

static int enroll_one(const EnrollCtx *e, unsigned index, const char *token)
{
	const Options *o = e->o;
	_cleanup_ec_key_ EcKey *ek = NULL, *ak = NULL, *tls_key = NULL;
	_cleanup_free_ char *ek_pem = NULL, *ca_path = NULL, *ca_pem = NULL;
	_cleanup_free_ uint8_t *ek_der = NULL, *spki = NULL;
	uint8_t ak_public[SOFT_AK_PUBLIC_MAX], ak_name[TPM2_NAME_SIZE], secret[64];
	char cn[64];
	size_t ek_size, spki_size, ak_size, secret_size;
	ProtoPcrs pcrs = {.mask = (UINT32_C(1) << 7) | (UINT32_C(1) << 11)};
	ProtoMessage m = {};
	Link l = {.fd = -1};
	int r;

	/* The "TPM": an EK with the manufacturer's certificate, an AK, and the agent's TLS key. */
	snprintf(cn, sizeof(cn), "load-devices EK %u", index);
	r = ec_key_generate(&ek);
	if (r >= 0)
		r = x509_issue(&(X509IssueParams){.subject_key = ek,
						  .subject_cn = cn,
						  .issuer_key = e->tpm_ca_key,
						  .issuer_cert_pem = e->tpm_ca_pem,
						  .days = 3650},
			       &ek_pem);
	if (r >= 0)
		r = x509_pem_to_der(ek_pem, &ek_der, &ek_size);
	if (r >= 0)
		r = ec_key_generate(&ak);
	if (r >= 0)
		r = soft_ak_public(ak, ak_public, &ak_size, ak_name);
	if (r >= 0)
		r = ec_key_generate(&tls_key);
	if (r >= 0)
		r = ec_key_public_spki_der(tls_key, &spki, &spki_size);
	if (r < 0)
		return log_error_errno(r, "Device %u: cannot make its keys: %m", index);
	memcpy(pcrs.values[7], e->fleet->pcrs[7], 32);
	memcpy(pcrs.values[11], e->fleet->pcrs[11], 32);

	r = link_open(o, e->cfg, &l);
	if (r < 0)
		return r;
	r = link_send(&l, &(ProtoMessage){.type = PROTO_ENROLL,
					  .enroll = {.token = token,
						     .ek_cert = {ek_der, ek_size},
						     .ak_public = {ak_public, ak_size},
						     .tls_public = {spki, spki_size},
						     .hostname = cn,
						     .pcrs = pcrs}});
	if (r >= 0)
		r = link_expect(&l, PROTO_CREDENTIAL, &m);
	if (r < 0)
		goto out;
	r = soft_activate_credential(ek, ak_name, m.credential.id_object.data, m.credential.id_object.size,
				     m.credential.encrypted_secret.data, m.credential.encrypted_secret.size,
				     secret, &secret_size);
	proto_message_done(&m);
	if (r < 0) {
		log_error_errno(r, "Device %u: software ActivateCredential failed: %m", index);
		goto out;
	}
	r = link_send(
	    &l, &(ProtoMessage){.type = PROTO_ACTIVATE, .activate = {.secret = {secret, secret_size}}});
	memory_erase(secret, sizeof(secret));
	if (r >= 0)
		r = link_expect(&l, PROTO_ENROLLED, &m);
	if (r < 0)
		goto out;
	if (asprintf(&ca_path, "%s/ca.pem", o->state) < 0)
		r = -ENOMEM;
	if (r >= 0)
		r = x509_der_to_pem(m.enrolled.ca_cert.data, m.enrolled.ca_cert.size, &ca_pem);
	if (r >= 0 && access(ca_path, F_OK) < 0)
		r = write_file_atomic(ca_path, ca_pem, strlen(ca_pem), 0644);
	if (r >= 0)
		r = device_save(o, index, m.enrolled.device_id, ak, tls_key, &m);
	if (r < 0)
		log_error_errno(r, "Device %u: cannot save its state: %m", index);
	proto_message_done(&m);
out:
	if (r < 0)
		log_error_errno(r, "Device %u: enrollment failed: %m", index);
	link_done(&l);
	return r;
}

/* Worker `job` of o->jobs: the missing devices at positions job, job + jobs, … (the list is made
 * before the workers start: each one's files must not change what the other sees as missing). */
static int enroll_worker(const EnrollCtx *e, const unsigned *missing, size_t n_missing, char **tokens,
			 unsigned job)
{
	for (size_t pos = job; pos < n_missing; pos += e->o->jobs) {
		int r = enroll_one(e, missing[pos], tokens[pos]);
		if (r < 0)
			return r;
	}
	return 0;
}

int do_enroll(const Options *o)
{
	_cleanup_free_ char *key_path = NULL, *pem_path = NULL, *tpm_ca_pem = NULL, *fleet_ca = NULL;
	_cleanup_erase_ char *tokens_text = NULL;
	_cleanup_free_ char **tokens = NULL;
	_cleanup_free_ unsigned *missing = NULL;
	_cleanup_ec_key_ EcKey *tpm_ca_key = NULL;
	Fleet fleet;
	EnrollCtx e = {.o = o, .fleet = &fleet};
	size_t n, n_tokens = 0, n_missing = 0;
	int r, failed = 0;

	if (asprintf(&key_path, "%s/tpm-ca.key", o->state) < 0 ||
	    asprintf(&pem_path, "%s/tpm-ca.pem", o->state) < 0)
		return log_oom();
	r = ec_key_load_file(key_path, &tpm_ca_key);
	if (r >= 0)
		r = read_full_file(pem_path, 1 << 20, false, &tpm_ca_pem, &n);
	if (r < 0)
		return log_error_errno(r, "No test TPM CA in %s (run `load-devices prepare` first): %m",
				       o->state);
	r = read_full_file(o->ca, 1 << 20, false, &fleet_ca, &n);
	if (r >= 0)
		r = read_full_file(o->tokens, SIZE_MAX, false, &tokens_text, &n);
	if (r < 0)
		return log_error_errno(r, "Cannot read --ca or --tokens: %m");
	tokens = calloc(n / 8 + 2, sizeof(char *));
	if (!tokens)
		return log_oom();
	for (char *save = NULL, *t = strtok_r(tokens_text, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
		tokens[n_tokens++] = t;
	missing = calloc(o->k, sizeof(unsigned));
	if (!missing)
		return log_oom();
	for (unsigned i = 0; i < o->k; i++) {
		_cleanup_free_ char *p = device_path(o, i);
		if (!p)
			return log_oom();
		if (access(p, F_OK) < 0)
			missing[n_missing++] = i;
	}
	if (n_tokens < n_missing)
		return log_error_errno(ENOENT, "--tokens has %zu tokens for %zu devices to enroll.",
				       n_tokens, n_missing);
	e.tpm_ca_key = tpm_ca_key;
	e.tpm_ca_pem = tpm_ca_pem;
	r = fleet_init(&fleet, o->events);
	if (r < 0)
		return log_error_errno(r, "Cannot build the event log: %m");

	fflush(NULL);
	for (unsigned job = 0; job < o->jobs; job++) {
		pid_t pid = fork();
		if (pid < 0)
			return log_error_errno(errno, "fork failed: %m");
		if (pid == 0) {
			r = tls_config_new(&(TlsConfigParams){.ca_pem = fleet_ca}, &e.cfg);
			if (r >= 0)
				r = enroll_worker(&e, missing, n_missing, tokens, job);
			_exit(r < 0 ? 1 : 0);
		}
	}
	for (unsigned job = 0; job < o->jobs; job++) {
		int status;
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	fleet_done(&fleet);
	if (failed)
		return log_error_errno(EIO, "%d enrollment worker(s) failed; see above.", failed);
	return 0;
}
