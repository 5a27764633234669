/* SPDX-License-Identifier: Apache-2.0 */
/* enroll-client: a minimal device for trustpc-server's integration tests. Speaks the enrollment
 * and attestation protocol (docs/PROTOCOL.md) with lib/tpm2 against a real swtpm
 * (TRUSTPC_TPM2_DEVICE), lib/proto and lib/tls, and can misbehave on request so that the tests
 * see each rejection. Not the agent (trustpcd): no privilege separation, no D-Bus.
 *
 *   enroll-client enroll --server ADDR:PORT --ca FLEET.pem --token T --state DIR
 *                 [--name SERVERNAME] [--ek-cert DER] [--wrong-secret] [--hostname H] [--epoch N]
 *   enroll-client attest --server ADDR:PORT --state DIR [--name SERVERNAME] [--count N]
 *                 [--stale-nonce] [--other-session] [--event PCR:HEX]... [--escrow UUID]
 *                 [--escrow-context CTX] [--run SECONDS] [--garbage] [--no-attest] [--burst N]
 *                 [--command-key PEM [--result done|none|forged] [--result-epoch N]]
 *
 * With --command-key (the server's command.pub) and --run, COMMAND frames are verified with
 * command_verify (as the agent does) and printed "command ID TYPE seq=N ttl=EXP-IAT" (a redelivery of an
 * executed one: "command-again ID seq=N", refused: "command-refused REASON"); each is answered
 * with a result signed by the device's TLS key ("result ID STATUS"), unless --result none;
 * --result forged signs with a key of its own (the server must refuse it). Lock results carry
 * --result-epoch N.
 *
 * Output on stdout, one line per outcome: "enrolled ID", "attest STATE resumed=0|1 REASON",
 * "ack", "error CODE: MESSAGE". Exit: 0 done (trusted), 1 local failure, 3 the server sent
 * `error`, 4 quarantined. --run SECONDS keeps the connection, answers heartbeats, and reconnects
 * (re-attesting) whenever the server goes away, giving up after SECONDS without a server. */
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-x509.h"
#include "crypto/crypto.h"
#include "proto/command.h"
#include "proto/proto.h"
#include "tls/tls.h"
#include "tpm2/tpm2-attest.h"
#include "tpm2/tpm2.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_SERVER_ERROR = 3, EXIT_QUARANTINED = 4 };

#define IO_TIMEOUT_SECONDS 30
#define MAX_EVENTS 16

typedef struct Args {
	const char *server, *ca, *token, *state, *name, *ek_cert, *hostname;
	const char *escrow_uuid, *escrow_context, *command_key, *result_mode;
	bool wrong_secret, stale_nonce, other_session, garbage, no_attest;
	uint64_t epoch, count, run, burst, result_epoch;
	Tpm2Event events[MAX_EVENTS];
	size_t n_events;
	char event_text[MAX_EVENTS][8];
} Args;

typedef struct Conn {
	int fd;
	TlsConn *tls;
} Conn;

static void tpm2_context_freep_(Tpm2Context **c)
{
	tpm2_context_free(*c);
}

static void tls_config_freep_(TlsConfig **c)
{
	tls_config_free(*c);
}

static void conn_done(Conn *c)
{
	c->tls = tls_conn_free(c->tls);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int dial(const char *server, int *ret)
{
	_cleanup_free_ char *host = NULL;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = IO_TIMEOUT_SECONDS};
	const char *colon = strrchr(server, ':');
	uint64_t port;
	int fd;

	if (!colon || parse_uint64(colon + 1, 65535, &port) < 0)
		return log_error_errno(EINVAL, "--server '%s' is not ADDR:PORT.", server);
	host = strndup(server, (size_t)(colon - server));
	if (!host || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return log_error_errno(EINVAL, "--server '%s': not an IPv4 address.", server);
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Blocking I/O with a bound: a server that stops answering fails the test, not hangs it. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret = fd;
	return 0;
}

static int conn_open(TlsConfig *cfg, const Args *a, Conn *ret)
{
	Conn c = {.fd = -1};
	int r;

	r = dial(a->server, &c.fd);
	if (r < 0)
		return r;
	r = tls_conn_new(cfg, c.fd, a->name, &c.tls);
	if (r >= 0)
		r = tls_handshake(c.tls);
	if (r < 0) {
		log_error_errno(r, "TLS handshake with %s failed: %m (%s)", a->server,
				strna(tls_verify_error(c.tls)));
		conn_done(&c);
		return r;
	}
	(void)tls_conn_save_session(c.tls);
	*ret = c;
	return 0;
}

static int send_msg(Conn *c, const ProtoMessage *m)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t n, off = 0;
	int r;

	r = proto_encode(m, &frame, &n);
	if (r < 0)
		return log_error_errno(r, "Cannot encode '%s': %m", proto_type_name(m->type));
	while (off < n) {
		ssize_t k = tls_write(c->tls, frame + off, n - off);
		if (k < 0)
			return log_error_errno((int)k, "Sending '%s' failed: %m", proto_type_name(m->type));
		off += (size_t)k;
	}
	return 0;
}

static int read_exact(Conn *c, uint8_t *buf, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t k = tls_read(c->tls, buf + off, n - off);
		if (k == 0)
			return -ECONNRESET;
		if (k < 0)
			return (int)k;
		off += (size_t)k;
	}
	return 0;
}

/* Receives one message; an `error` is printed and returned as -EREMOTE. */
static int recv_msg(Conn *c, ProtoMessage *ret)
{
	_cleanup_free_ uint8_t *payload = NULL;
	uint8_t head[4];
	const char *why = NULL;
	size_t n;
	int r;

	r = read_exact(c, head, sizeof(head));
	if (r < 0)
		return r;
	r = proto_frame_size(head, sizeof(head), &n);
	if (r <= 0)
		return log_error_errno(EBADMSG, "Bad frame header from the server.");
	payload = malloc(n);
	if (!payload)
		return -ENOMEM;
	r = read_exact(c, payload, n);
	if (r < 0)
		return r;
	r = proto_decode(payload, n, ret, &why);
	if (r < 0)
		return log_error_errno(r, "Bad message from the server: %s", strna(why));
	if (ret->type == PROTO_ERROR) {
		printf("error %s: %s\n", ret->error.code, ret->error.message);
		fflush(stdout);
		log_error("error %s: %s", ret->error.code, ret->error.message);
		proto_message_done(ret);
		return -EREMOTE;
	}
	return 0;
}

static int expect_msg(Conn *c, ProtoType type, ProtoMessage *ret)
{
	int r = recv_msg(c, ret);
	if (r < 0)
		return r;
	if (ret->type != type) {
		log_error("Expected '%s' from the server, got '%s'.", proto_type_name(type),
			  proto_type_name(ret->type));
		proto_message_done(ret);
		return -EBADMSG;
	}
	return 0;
}

static char *state_path(const Args *a, const char *name)
{
	char *p;
	return asprintf(&p, "%s/%s", a->state, name) < 0 ? NULL : p;
}

static int state_write(const Args *a, const char *name, const void *data, size_t n, mode_t mode)
{
	_cleanup_free_ char *p = state_path(a, name);
	int r = p ? write_file_atomic(p, data, n, mode) : -ENOMEM;
	if (r < 0)
		return log_error_errno(r, "Cannot write %s/%s: %m", a->state, name);
	return 0;
}

static int state_read(const Args *a, const char *name, bool secure, char **ret, size_t *ret_size)
{
	_cleanup_free_ char *p = state_path(a, name);
	int r = p ? read_full_file(p, 1 << 20, secure, ret, ret_size) : -ENOMEM;
	if (r < 0)
		return log_error_errno(r, "Cannot read %s/%s (enroll first): %m", a->state, name);
	return 0;
}

static int exit_for(int r)
{
	return r == -EREMOTE ? EXIT_SERVER_ERROR : EXIT_FAIL;
}

/* ---- enroll ---- */

static int do_enroll(const Args *a)
{
	_cleanup_(tpm2_context_freep_) Tpm2Context *tpm = NULL;
	_cleanup_ec_key_ EcKey *tls_key = NULL;
	_cleanup_free_ uint8_t *ek_cert = NULL, *spki = NULL, *ak_blob = NULL;
	_cleanup_free_ char *ca_pem = NULL, *cert_pem = NULL, *ca_out = NULL;
	_cleanup_secure_ char *key_pem = NULL;
	_cleanup_secure_ uint8_t *secret = NULL;
	_cleanup_(tls_config_freep_) TlsConfig *cfg = NULL;
	ProtoMessage m = {};
	ProtoPcrs pcrs = {.mask = (UINT32_C(1) << 7) | (UINT32_C(1) << 11)};
	Tpm2Ak ak = {};
	Conn c = {.fd = -1};
	size_t ek_size, spki_size, ca_size, blob_size, secret_size;
	int r;

	if (mkdir(a->state, 0700) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Cannot create --state %s: %m", a->state);
	r = tpm2_context_new(NULL, &tpm);
	if (r < 0)
		return log_error_errno(r, "No TPM (TRUSTPC_TPM2_DEVICE): %m");
	if (a->ek_cert) {
		r = read_full_file(a->ek_cert, 65536, false, (char **)&ek_cert, &ek_size);
		if (r < 0)
			return log_error_errno(r, "Cannot read --ek-cert %s: %m", a->ek_cert);
	} else {
		r = tpm2_ek_cert_read(tpm, &ek_cert, &ek_size);
		if (r < 0)
			return log_error_errno(r, "No P-256 EK certificate in the TPM: %m");
	}
	r = tpm2_ak_create(tpm, &ak);
	if (r < 0)
		return log_error_errno(r, "Cannot create the AK: %m");
	r = tpm2_pcr_read(tpm, pcrs.mask, pcrs.values);
	if (r < 0)
		goto out;
	r = ec_key_generate(&tls_key);
	if (r >= 0)
		r = ec_key_public_spki_der(tls_key, &spki, &spki_size);
	if (r < 0)
		goto out;
	r = read_full_file(a->ca, 1 << 20, false, &ca_pem, &ca_size);
	if (r < 0) {
		log_error_errno(r, "Cannot read --ca %s: %m", a->ca);
		goto out;
	}
	r = tls_config_new(&(TlsConfigParams){.ca_pem = ca_pem}, &cfg);
	if (r < 0)
		goto out;
	r = conn_open(cfg, a, &c);
	if (r < 0)
		goto out;

	r = send_msg(&c, &(ProtoMessage){.type = PROTO_ENROLL,
					 .enroll = {.token = a->token,
						    .ek_cert = {ek_cert, ek_size},
						    .ak_public = {ak.public, ak.public_size},
						    .tls_public = {spki, spki_size},
						    .hostname = a->hostname,
						    .pcrs = pcrs,
						    .epoch = a->epoch}});
	if (r < 0)
		goto out;
	r = expect_msg(&c, PROTO_CREDENTIAL, &m);
	if (r < 0)
		goto out;
	r = tpm2_activate_credential(tpm, &ak, m.credential.id_object.data, m.credential.id_object.size,
				     m.credential.encrypted_secret.data, m.credential.encrypted_secret.size,
				     &secret, &secret_size);
	proto_message_done(&m);
	if (r < 0) {
		log_error_errno(r, "ActivateCredential failed: %m");
		goto out;
	}
	if (a->wrong_secret)
		secret[0] ^= 0x01;
	r = send_msg(&c,
		     &(ProtoMessage){.type = PROTO_ACTIVATE, .activate = {.secret = {secret, secret_size}}});
	if (r < 0)
		goto out;
	r = expect_msg(&c, PROTO_ENROLLED, &m);
	if (r < 0)
		goto out;

	r = x509_der_to_pem(m.enrolled.device_cert.data, m.enrolled.device_cert.size, &cert_pem);
	if (r >= 0)
		r = x509_der_to_pem(m.enrolled.ca_cert.data, m.enrolled.ca_cert.size, &ca_out);
	if (r >= 0)
		r = ec_key_private_pem(tls_key, &key_pem);
	if (r >= 0)
		r = tpm2_ak_serialize(&ak, &ak_blob, &blob_size);
	if (r >= 0)
		r = state_write(a, "device.pem", cert_pem, strlen(cert_pem), 0644);
	if (r >= 0)
		r = state_write(a, "ca.pem", ca_out, strlen(ca_out), 0644);
	if (r >= 0)
		r = state_write(a, "tls.key", key_pem, strlen(key_pem), 0600);
	if (r >= 0)
		r = state_write(a, "ak.bin", ak_blob, blob_size, 0600);
	if (r >= 0)
		r = state_write(a, "escrow.der", m.enrolled.escrow_key.data, m.enrolled.escrow_key.size,
				0644);
	if (r >= 0)
		r = state_write(a, "policy-key.der", m.enrolled.policy_key.data, m.enrolled.policy_key.size,
				0644);
	if (r >= 0 && m.enrolled.policy)
		r = state_write(a, "policy.json", m.enrolled.policy, strlen(m.enrolled.policy), 0644);
	if (r >= 0)
		r = state_write(a, "device-id", m.enrolled.device_id, strlen(m.enrolled.device_id), 0644);
	if (r >= 0) {
		printf("enrolled %s\n", m.enrolled.device_id);
		fflush(stdout);
	}
	proto_message_done(&m);
out:
	conn_done(&c);
	tpm2_ak_done(&ak);
	return r;
}

/* ---- attest ---- */

typedef struct Device {
	Tpm2Context *tpm;
	Tpm2Ak ak;
	TlsConfig *cfg;
	char device_id[DEVICE_ID_STRING_SIZE];
	EcKey *tls_key;	    /* signs results */
	EcKey *command_key; /* the server's, verifies commands (NULL: commands end the connection) */
	uint64_t last_seq;  /* highest executed command seq (kept across reconnects) */
} Device;

static void device_done(Device *d)
{
	d->tls_key = ec_key_free(d->tls_key);
	d->command_key = ec_key_free(d->command_key);
	tpm2_ak_done(&d->ak);
	d->tpm = tpm2_context_free(d->tpm);
	d->cfg = tls_config_free(d->cfg);
}

static int device_load(const Args *a, Device *d)
{
	_cleanup_free_ char *ca = NULL, *cert = NULL, *blob = NULL, *id = NULL;
	_cleanup_secure_ char *key_pem = NULL;
	_cleanup_ec_key_ EcKey *key = NULL;
	size_t n, key_size, id_size;
	int r;

	r = state_read(a, "ca.pem", false, &ca, &n);
	if (r >= 0)
		r = state_read(a, "device.pem", false, &cert, &n);
	if (r >= 0)
		r = state_read(a, "tls.key", true, &key_pem, &key_size);
	if (r >= 0)
		r = state_read(a, "device-id", false, &id, &id_size);
	if (r >= 0)
		r = state_read(a, "ak.bin", false, &blob, &n);
	if (r < 0)
		return r;
	if (id_size != DEVICE_ID_STRING_SIZE - 1)
		return log_error_errno(EINVAL, "Bad device-id file.");
	memcpy(d->device_id, id, DEVICE_ID_STRING_SIZE);
	r = tpm2_ak_deserialize((const uint8_t *)blob, n, &d->ak);
	if (r >= 0)
		r = ec_key_from_pem_or_der(key_pem, key_size, &key);
	if (r >= 0)
		r = tls_config_new(
		    &(TlsConfigParams){.ca_pem = ca, .cert_pem = cert, .key = key, .session_tickets = true},
		    &d->cfg);
	if (r < 0)
		return log_error_errno(r, "Cannot load the device state: %m");
	r = ec_key_from_pem_or_der(key_pem, key_size, &d->tls_key);
	if (r < 0)
		return log_error_errno(r, "Cannot load the device key: %m");
	if (a->command_key) {
		r = ec_key_load_file(a->command_key, &d->command_key);
		if (r < 0)
			return log_error_errno(r, "Cannot load --command-key %s: %m", a->command_key);
	}
	r = tpm2_context_new(NULL, &d->tpm);
	if (r < 0)
		return log_error_errno(r, "No TPM (TRUSTPC_TPM2_DEVICE): %m");
	return 0;
}

static int send_attest(const Args *a, Device *d, Conn *c, const uint8_t nonce[32],
		       const uint8_t exporter[32], uint32_t mask)
{
	_cleanup_free_ uint8_t *log = NULL;
	uint8_t qualifying[SHA256_SIZE];
	Tpm2Quote q = {};
	ProtoMessage m = {.type = PROTO_ATTEST};
	size_t log_size = 0;
	int r;

	r = sha256_many(qualifying, nonce, (size_t)32, exporter, (size_t)32, NULL);
	if (r >= 0)
		r = tpm2_quote(d->tpm, &d->ak, qualifying, sizeof(qualifying), mask, &q);
	if (r < 0)
		return log_error_errno(r, "Quote failed: %m");
	if (a->n_events > 0) {
		r = tpm2_eventlog_build(a->events, a->n_events, &log, &log_size);
		if (r < 0) {
			tpm2_quote_done(&q);
			return log_error_errno(r, "Cannot build the event log: %m");
		}
	}
	m.attest.quote = (ProtoBytes){q.attest, q.attest_size};
	m.attest.signature = (ProtoBytes){q.signature, sizeof(q.signature)};
	m.attest.pcrs.mask = q.pcr_mask;
	memcpy(m.attest.pcrs.values, q.pcr_values, sizeof(m.attest.pcrs.values));
	m.attest.event_log = (ProtoBytes){log ?: (const uint8_t *)"", log_size};
	m.attest.posture =
	    (ProtoPosture){.image_version = "test", .agent_version = "enroll-client", .has_epoch = true};
	r = send_msg(c, &m);
	tpm2_quote_done(&q);
	return r;
}

static int send_escrow(const Args *a, Device *d, Conn *c)
{
	_cleanup_free_ char *der = NULL, *blob = NULL, *context = NULL;
	_cleanup_ec_key_ EcKey *key = NULL;
	ProtoMessage m = {};
	size_t n;
	int r;

	r = state_read(a, "escrow.der", false, &der, &n);
	if (r < 0)
		return r;
	r = ec_key_from_spki_der(der, n, &key);
	if (r < 0)
		return log_error_errno(r, "Bad escrow key: %m");
	if (a->escrow_context)
		context = strdup(a->escrow_context);
	else if (asprintf(&context, "recovery-key:%s:%s", d->device_id, a->escrow_uuid) < 0)
		context = NULL;
	if (!context)
		return -ENOMEM;
	r = escrow_seal(key, context, "test-recovery-key", 17, &blob);
	if (r < 0)
		return log_error_errno(r, "escrow_seal failed: %m");
	r = send_msg(
	    c, &(ProtoMessage){.type = PROTO_ESCROW, .escrow = {.luks_uuid = a->escrow_uuid, .blob = blob}});
	if (r >= 0)
		r = expect_msg(c, PROTO_ACK, &m);
	if (r >= 0) {
		printf("ack\n");
		fflush(stdout);
		proto_message_done(&m);
	}
	return r;
}

/* n heartbeats in one TLS record: the server must answer all of them, although after the first
 * frame the rest sit decrypted inside mbedTLS where epoll cannot see them. */
static int send_burst(Conn *c, uint64_t n)
{
	_cleanup_free_ uint8_t *frame = NULL, *all = NULL;
	size_t size;
	ssize_t k;
	int r;

	r = proto_encode(&(ProtoMessage){.type = PROTO_HEARTBEAT}, &frame, &size);
	if (r < 0)
		return r;
	if (n > 256)
		return -EINVAL;
	all = malloc(size * n);
	if (!all)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		memcpy(all + i * size, frame, size);
	k = tls_write(c->tls, all, size * n);
	if (k != (ssize_t)(size * n))
		return log_error_errno(k < 0 ? (int)k : EIO, "Burst write failed: %m");
	for (uint64_t i = 0; i < n; i++) {
		ProtoMessage m = {};
		r = expect_msg(c, PROTO_ACK, &m);
		if (r < 0)
			return r;
		proto_message_done(&m);
	}
	printf("acks %" PRIu64 "\n", n);
	fflush(stdout);
	return 0;
}

/* One attested connection. On success *ret_conn stays open (for --run). Returns 0 trusted,
 * 1 quarantined, < 0 failure. */
static int attest_once(const Args *a, Device *d, Conn *ret_conn, uint32_t *ret_heartbeat)
{
	_cleanup_(conn_done) Conn c = {.fd = -1}, other = {.fd = -1};
	uint8_t nonce[32], exporter[32];
	ProtoMessage m = {};
	uint32_t mask;
	bool resumed;
	int r;

	if (a->stale_nonce) {
		/* A nonce from an earlier connection: the server must not accept a quote over it. */
		r = conn_open(d->cfg, a, &other);
		if (r >= 0)
			r = expect_msg(&other, PROTO_CHALLENGE, &m);
		if (r < 0)
			return r;
		memcpy(nonce, m.challenge.nonce, sizeof(nonce));
		proto_message_done(&m);
		conn_done(&other);
	}
	if (a->other_session) {
		/* The binding of another live TLS session (a relay): its exporter, our nonce. */
		r = conn_open(d->cfg, a, &other);
		if (r >= 0)
			r = tls_exporter(other.tls, exporter);
		if (r < 0)
			return r;
	}
	r = conn_open(d->cfg, a, &c);
	if (r < 0)
		return r;
	resumed = tls_resumed(c.tls);
	if (a->garbage) {
		/* Anything but `attest` first. */
		r = send_msg(&c, &(ProtoMessage){.type = PROTO_HEARTBEAT});
		if (r < 0)
			return r;
	}
	r = expect_msg(&c, PROTO_CHALLENGE, &m);
	if (r < 0)
		return r;
	if (!a->stale_nonce)
		memcpy(nonce, m.challenge.nonce, sizeof(nonce));
	mask = m.challenge.pcr_mask;
	proto_message_done(&m);
	if (a->no_attest) {
		/* Say nothing: the server's deadline must end this. */
		r = expect_msg(&c, PROTO_ACK, &m);
		if (r >= 0)
			proto_message_done(&m);
		return r < 0 ? r : -EPROTO;
	}
	if (!a->other_session) {
		r = tls_exporter(c.tls, exporter);
		if (r < 0)
			return r;
	}
	r = send_attest(a, d, &c, nonce, exporter, mask);
	if (r < 0)
		return r;
	r = expect_msg(&c, PROTO_ATTEST_RESULT, &m);
	if (r < 0)
		return r;
	printf("attest %s resumed=%d %s\n", m.attest_result.state, resumed, m.attest_result.reason);
	fflush(stdout);
	r = streq(m.attest_result.state, "trusted") ? 0 : 1;
	*ret_heartbeat = m.attest_result.heartbeat;
	proto_message_done(&m);
	if (a->escrow_uuid) {
		int k = send_escrow(a, d, &c);
		if (k < 0)
			return k;
	}
	if (a->burst > 0) {
		int k = send_burst(&c, a->burst);
		if (k < 0)
			return k;
	}
	*ret_conn = c;
	c = (Conn){.fd = -1};
	return r;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A COMMAND frame: verified like the agent does, printed, answered with a signed result. */
static int on_command(const Args *a, Device *d, Conn *c, const ProtoMessage *m)
{
	_cleanup_(command_done) Command cmd = {};
	_cleanup_(command_result_done) CommandResult res = {};
	_cleanup_ec_key_ EcKey *forged = NULL;
	_cleanup_free_ uint8_t *cose = NULL;
	const char *why = NULL, *mode = a->result_mode ?: "done";
	size_t n;
	int r;

	if (!d->command_key)
		return log_error_errno(EBADMSG, "A command arrived but no --command-key was given.");
	r = command_verify(d->command_key, d->device_id, d->last_seq, (uint64_t)time(NULL),
			   m->command.cose.data, m->command.cose.size, &cmd, &why);
	if (r < 0 && r != -ESTALE) {
		printf("command-refused %s\n", strna(why));
		fflush(stdout);
		return 0;
	}
	printf("%s %s %s seq=%" PRIu64 " ttl=%" PRIu64 "\n", r == -ESTALE ? "command-again" : "command",
	       cmd.id, command_type_name(cmd.type), cmd.seq, cmd.exp - cmd.iat);
	fflush(stdout);
	if (r == 0)
		d->last_seq = cmd.seq;
	if (streq(mode, "none"))
		return 0;

	memcpy(res.id, cmd.id, sizeof(res.id));
	memcpy(res.device_id, d->device_id, sizeof(res.device_id));
	res.seq = cmd.seq;
	res.type = cmd.type;
	res.status = RESULT_DONE;
	res.reason = strdup(cmd.type == COMMAND_LOCK ? "locked" : "ok");
	res.time = (uint64_t)time(NULL);
	res.has_epoch = cmd.type == COMMAND_LOCK;
	res.epoch = a->result_epoch;
	if (!res.reason)
		return -ENOMEM;
	if (streq(mode, "forged")) {
		r = ec_key_generate(&forged);
		if (r < 0)
			return r;
	}
	r = command_result_sign(forged ?: d->tls_key, &res, &cose, &n);
	if (r < 0)
		return log_error_errno(r, "Cannot sign the result: %m");
	r = send_msg(c, &(ProtoMessage){.type = PROTO_RESULT, .result = {.cose = {cose, n}}});
	if (r < 0)
		return r;
	printf("result %s %s\n", res.id, streq(mode, "forged") ? "forged" : "done");
	fflush(stdout);
	return 0;
}

/* Stays connected until the server goes away; heartbeats meanwhile, commands as they come. */
static void hold_connection(const Args *a, Device *d, Conn *c, uint32_t heartbeat)
{
	uint64_t next = now_ms() + (uint64_t)heartbeat * 1000;
	unsigned acks_due = 0;

	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		uint64_t t = now_ms();
		ProtoMessage m = {};
		int r;

		if (tls_pending(c->tls) == 0) {
			r = poll(&p, 1, t >= next ? 0 : (int)(next - t));
			if (r < 0)
				return;
		} else
			r = 1;
		if (r > 0) {
			/* Acks and commands; anything else is the server's close (or a crash). */
			if (recv_msg(c, &m) < 0)
				return;
			if (m.type == PROTO_ACK && acks_due > 0)
				acks_due--;
			else if (m.type != PROTO_COMMAND || on_command(a, d, c, &m) < 0) {
				proto_message_done(&m);
				return;
			}
			proto_message_done(&m);
			continue;
		}
		if (send_msg(c, &(ProtoMessage){.type = PROTO_HEARTBEAT}) < 0)
			return;
		acks_due++;
		next = now_ms() + (uint64_t)heartbeat * 1000;
	}
}

static int do_attest(const Args *a)
{
	_cleanup_(device_done) Device d = {};
	uint32_t heartbeat = 60;
	int r, last = 0;

	r = device_load(a, &d);
	if (r < 0)
		return r;
	if (a->run == 0) {
		for (uint64_t i = 0; i < MAX(a->count, (uint64_t)1); i++) {
			Conn c = {.fd = -1};
			r = attest_once(a, &d, &c, &heartbeat);
			conn_done(&c);
			if (r < 0)
				return r;
			last = r;
		}
		return last;
	}
	for (;;) {
		uint64_t deadline = now_ms() + a->run * 1000;
		Conn c = {.fd = -1};

		/* Reconnect with a bounded poll: the server may be restarting. */
		while ((r = attest_once(a, &d, &c, &heartbeat)) < 0) {
			conn_done(&c);
			if (now_ms() >= deadline)
				return log_error_errno(r, "No server for %" PRIu64 " s; giving up: %m",
						       a->run);
			(void)poll(NULL, 0, 50);
		}
		hold_connection(a, &d, &c, heartbeat);
		conn_done(&c);
		printf("disconnected\n");
		fflush(stdout);
	}
}

static int parse_event(Args *a, const char *s)
{
	Tpm2Event *e;
	const char *colon = strchr(s, ':');
	uint64_t pcr;

	if (a->n_events >= MAX_EVENTS || !colon || (size_t)(colon - s) >= sizeof(a->event_text[0]))
		return -EINVAL;
	memcpy(a->event_text[a->n_events], s, (size_t)(colon - s));
	a->event_text[a->n_events][colon - s] = 0;
	if (parse_uint64(a->event_text[a->n_events], 23, &pcr) < 0)
		return -EINVAL;
	e = &a->events[a->n_events];
	e->pcr = (uint32_t)pcr;
	e->type = 0x0d; /* EV_IPL */
	e->data = "enroll-client test event";
	if (hex_decode_exact(colon + 1, e->digest, 32) < 0)
		return -EINVAL;
	a->n_events++;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		ARG_SERVER = 0x100,
		ARG_CA,
		ARG_TOKEN,
		ARG_STATE,
		ARG_NAME,
		ARG_EK_CERT,
		ARG_WRONG_SECRET,
		ARG_HOSTNAME,
		ARG_EPOCH,
		ARG_COUNT,
		ARG_STALE,
		ARG_OTHER,
		ARG_EVENT,
		ARG_ESCROW,
		ARG_ESCROW_CONTEXT,
		ARG_RUN,
		ARG_GARBAGE,
		ARG_NO_ATTEST,
		ARG_BURST,
		ARG_COMMAND_KEY,
		ARG_RESULT,
		ARG_RESULT_EPOCH,
	};
	static const struct option opts[] = {
	    {"server", required_argument, NULL, ARG_SERVER},
	    {"ca", required_argument, NULL, ARG_CA},
	    {"token", required_argument, NULL, ARG_TOKEN},
	    {"state", required_argument, NULL, ARG_STATE},
	    {"name", required_argument, NULL, ARG_NAME},
	    {"ek-cert", required_argument, NULL, ARG_EK_CERT},
	    {"wrong-secret", no_argument, NULL, ARG_WRONG_SECRET},
	    {"hostname", required_argument, NULL, ARG_HOSTNAME},
	    {"epoch", required_argument, NULL, ARG_EPOCH},
	    {"count", required_argument, NULL, ARG_COUNT},
	    {"stale-nonce", no_argument, NULL, ARG_STALE},
	    {"other-session", no_argument, NULL, ARG_OTHER},
	    {"event", required_argument, NULL, ARG_EVENT},
	    {"escrow", required_argument, NULL, ARG_ESCROW},
	    {"escrow-context", required_argument, NULL, ARG_ESCROW_CONTEXT},
	    {"run", required_argument, NULL, ARG_RUN},
	    {"garbage", no_argument, NULL, ARG_GARBAGE},
	    {"no-attest", no_argument, NULL, ARG_NO_ATTEST},
	    {"burst", required_argument, NULL, ARG_BURST},
	    {"command-key", required_argument, NULL, ARG_COMMAND_KEY},
	    {"result", required_argument, NULL, ARG_RESULT},
	    {"result-epoch", required_argument, NULL, ARG_RESULT_EPOCH},
	    {},
	};
	Args a = {.name = "localhost", .hostname = "test-device"};
	int c, r;

	log_set_program("enroll-client");
	log_parse_environment();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case ARG_SERVER:
			a.server = optarg;
			break;
		case ARG_CA:
			a.ca = optarg;
			break;
		case ARG_TOKEN:
			a.token = optarg;
			break;
		case ARG_STATE:
			a.state = optarg;
			break;
		case ARG_NAME:
			a.name = optarg;
			break;
		case ARG_EK_CERT:
			a.ek_cert = optarg;
			break;
		case ARG_WRONG_SECRET:
			a.wrong_secret = true;
			break;
		case ARG_HOSTNAME:
			a.hostname = optarg;
			break;
		case ARG_STALE:
			a.stale_nonce = true;
			break;
		case ARG_OTHER:
			a.other_session = true;
			break;
		case ARG_GARBAGE:
			a.garbage = true;
			break;
		case ARG_NO_ATTEST:
			a.no_attest = true;
			break;
		case ARG_ESCROW:
			a.escrow_uuid = optarg;
			break;
		case ARG_ESCROW_CONTEXT:
			a.escrow_context = optarg;
			break;
		case ARG_COMMAND_KEY:
			a.command_key = optarg;
			break;
		case ARG_RESULT:
			if (!streq(optarg, "done") && !streq(optarg, "none") && !streq(optarg, "forged")) {
				log_error("--result must be done, none or forged.");
				return EXIT_FAIL;
			}
			a.result_mode = optarg;
			break;
		case ARG_RESULT_EPOCH:
			if (parse_uint64(optarg, UINT32_MAX, &a.result_epoch) < 0)
				return EXIT_FAIL;
			break;
		case ARG_EPOCH:
		case ARG_COUNT:
		case ARG_RUN:
		case ARG_BURST:
			if (parse_uint64(optarg, UINT32_MAX,
					 c == ARG_EPOCH	  ? &a.epoch
					 : c == ARG_COUNT ? &a.count
					 : c == ARG_BURST ? &a.burst
							  : &a.run) < 0)
				return EXIT_FAIL;
			break;
		case ARG_EVENT:
			if (parse_event(&a, optarg) < 0) {
				log_error("--event '%s' must be PCR:HEX (64 hex digits).", optarg);
				return EXIT_FAIL;
			}
			break;
		default:
			return EXIT_FAIL;
		}
	}
	if (optind + 1 != argc || !a.server || !a.state) {
		log_error(
		    "Usage: enroll-client enroll|attest --server ADDR:PORT --state DIR … (see the source)");
		return EXIT_FAIL;
	}
	if (streq(argv[optind], "enroll")) {
		if (!a.ca || !a.token) {
			log_error("enroll needs --ca and --token.");
			return EXIT_FAIL;
		}
		r = do_enroll(&a);
		return r < 0 ? exit_for(r) : EXIT_OK;
	}
	if (streq(argv[optind], "attest")) {
		r = do_attest(&a);
		return r < 0 ? exit_for(r) : r == 1 ? EXIT_QUARANTINED : EXIT_OK;
	}
	log_error("Unknown verb '%s'.", argv[optind]);
	return EXIT_FAIL;
}
