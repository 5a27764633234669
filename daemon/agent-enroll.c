/* SPDX-License-Identifier: Apache-2.0 */
/* `trustpcd enroll` (docs/PROTOCOL.md "Enrollment"). The privileged part reads the EK certificate,
 * creates the AK and the TLS key and reads PCRs 7, 11 and the lock counter, all from local sources,
 * then forks. The network process (unprivileged) talks to the enroll port; it asks the executor to
 * activate the credential and, at the end, to store the enrollment. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "agent-state.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "basic/secret-input.h"
#include "crypto/crypto-x509.h"
#include "crypto/crypto.h"
#include "privsep-executor.h"
#include "privsep-proto.h"
#include "privsep-spawn.h"
#include "proto/proto.h"
#include "tls/tls.h"
#include "tpm2/tpm2-attest.h"
#include "trustpcd.h"

#define ENROLL_PCRS ((UINT32_C(1) << 7) | (UINT32_C(1) << 11))
#define ENROLL_TIMEOUT_SEC 30

typedef struct EnrollCtx {
	char *host, *port;
	char *token;            /* secure */
	char *ca_pem;           /* --ca: pins the server and must issue our certificate */
	uint8_t *ek_cert;
	size_t ek_cert_size;
	Tpm2Ak ak;
	uint8_t *ak_blob;
	size_t ak_blob_size;
	char *tls_key_pem;      /* secure */
	uint8_t *tls_spki;
	size_t tls_spki_size;
	char hostname[256];
	uint8_t pcrs[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	uint64_t epoch;
} EnrollCtx;

static void enroll_ctx_done(EnrollCtx *c)
{
	free(c->host);
	free(c->port);
	secure_free(c->token);
	free(c->ca_pem);
	free(c->ek_cert);
	tpm2_ak_done(&c->ak);
	free(c->ak_blob);
	secure_free(c->tls_key_pem);
	free(c->tls_spki);
	*c = (EnrollCtx){0};
}

static int acquire_token(const Args *a, EnrollCtx *c)
{
	const char *env = getenv("TRUSTPC_ENROLL_TOKEN");
	size_t n;
	int r;

	if (a->token_file) {
		r = read_full_file(a->token_file, PROTO_TEXT_MAX, true, &c->token, &n);
		if (r < 0)
			return log_error_errno(r, "Cannot read the enrollment token from '%s': %m", a->token_file);
		while (n > 0 && (c->token[n - 1] == '\n' || c->token[n - 1] == '\r'))
			c->token[--n] = 0;
	} else if (a->token || env) {
		c->token = secure_strdup(a->token ?: env);
		if (!c->token)
			return log_oom();
		/* Single-use, but still: keep it out of /proc/PID/environ. */
		if (!a->token)
			env_wipe("TRUSTPC_ENROLL_TOKEN");
	}
	if (!c->token || !*c->token || strlen(c->token) >= PROTO_TEXT_MAX)
		return log_error_errno(EINVAL, "An enrollment token is needed: --token T, --token-file FILE or "
					       "TRUSTPC_ENROLL_TOKEN (from trustpcctl token create).");
	return 0;
}

/* Everything that needs the TPM or root, before the fork. */
static int enroll_prepare(const Args *a, EnrollCtx *c)
{
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	_cleanup_ec_key_ EcKey *key = NULL;
	bool created = false;
	int r;

	r = agent_tpm_open(a, &tpm);
	if (r < 0)
		return r;
	r = tpm2_ek_cert_read(tpm, &c->ek_cert, &c->ek_cert_size);
	if (r == -ENOENT)
		return log_error_errno(r, "This TPM has no ECC P-256 EK certificate at NV 0x%08x; it cannot be "
					  "enrolled (ask the TPM vendor for its EK certificate).",
				       TPM2_EK_CERT_NV_ECC_P256);
	if (r < 0)
		return log_error_errno(r, "Cannot read the EK certificate: %m");
	r = tpm2_ak_create(tpm, &c->ak);
	if (r < 0)
		return log_error_errno(r, "Creating the attestation key failed: %m");
	r = tpm2_ak_serialize(&c->ak, &c->ak_blob, &c->ak_blob_size);
	if (r < 0)
		return log_error_errno(r, "Serialising the attestation key failed: %m");
	r = tpm2_pcr_read(tpm, ENROLL_PCRS, c->pcrs);
	if (r < 0)
		return log_error_errno(r, "Reading PCRs 7 and 11 failed: %m");
	/* The first disk policy is signed for this epoch: the counter must exist now. */
	r = tpm2_counter_ensure(tpm, TPM2_LOCK_COUNTER_NV_INDEX, &c->epoch, &created);
	if (r < 0)
		return log_error_errno(r, "Cannot read or create the lock counter at NV 0x%08x: %m",
				       TPM2_LOCK_COUNTER_NV_INDEX);
	if (created)
		log_info("Created the TPM lock counter (epoch %llu).", (unsigned long long)c->epoch);

	/* The TLS key is a software key (mbedTLS 2.28 cannot use a TPM key in TLS); the AK quote on
	 * every connection is what binds the TPM to the session. */
	r = ec_key_generate(&key);
	if (r >= 0)
		r = ec_key_private_pem(key, &c->tls_key_pem);
	if (r >= 0)
		r = ec_key_public_spki_der(key, &c->tls_spki, &c->tls_spki_size);
	if (r < 0)
		return log_error_errno(r, "Generating the TLS key failed: %m");
	if (gethostname(c->hostname, sizeof(c->hostname) - 1) < 0)
		snprintf(c->hostname, sizeof(c->hostname), "unknown");
	return 0;
}

/* ---- the network process ---- */

static int write_all(TlsConn *t, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = tls_write(t, p, n);
		if (k == -EAGAIN)
			return -ETIMEDOUT; /* blocking socket: EAGAIN is SO_SNDTIMEO */
		if (k < 0)
			return (int)k;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int send_msg(TlsConn *t, const ProtoMessage *m)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t n;
	int r;

	r = proto_encode(m, &frame, &n);
	if (r < 0)
		return r;
	return write_all(t, frame, n);
}

/* Reads one frame; *buf (RBUF) keeps any bytes that follow it. */
static int recv_msg(TlsConn *t, uint8_t *buf, size_t *len, ProtoMessage *ret, const char **ret_reason)
{
	size_t payload;
	int r;

	for (;;) {
		r = proto_frame_size(buf, *len, &payload);
		if (r < 0) {
			*ret_reason = "frame length out of range";
			return -EBADMSG;
		}
		if (r > 0 && *len >= 4 + payload)
			break;
		ssize_t k = tls_read(t, buf + *len, 4 + PROTO_FRAME_MAX - *len);
		if (k == -EAGAIN)
			return -ETIMEDOUT;
		if (k < 0)
			return (int)k;
		if (k == 0)
			return -ECONNRESET;
		*len += (size_t)k;
	}
	r = proto_decode(buf + 4, payload, ret, ret_reason);
	memmove(buf, buf + 4 + payload, *len - 4 - payload);
	*len -= 4 + payload;
	return r;
}

static int server_refused(const ProtoMessage *m)
{
	static const struct {
		const char *code, *hint;
	} hints[] = {
		{"bad-token", "The token is unknown, already used or expired. Ask the fleet admin for a new one "
			      "(trustpcctl token create) and run trustpcd enroll again."},
		{"bad-ek-cert", "The server does not trust this TPM's EK certificate: its manufacturer CA must be "
				"in the server's TPM CA bundle."},
		{"bad-ak", "The server refused the attestation key; this is a bug in trustpcd or the TPM."},
		{"bad-credential", "The credential activation proof was wrong: the TPM that answered is not the "
				   "one whose EK certificate was sent."},
		{"bad-message", "The server could not parse our message: agent and server versions differ?"},
		{"internal", "The server failed; see its log and try again."},
	};
	const char *hint = "See the server's log.";

	for (size_t i = 0; i < ELEMENTSOF(hints); i++)
		if (streq_ptr(m->error.code, hints[i].code))
			hint = hints[i].hint;
	log_error("The server refused the enrollment: %s (%s). %s", strna(m->error.code),
		  strna(m->error.message), hint);
	return EXIT_REFUSED;
}

static int expect(const ProtoMessage *m, ProtoType t)
{
	if (m->type == PROTO_ERROR)
		return server_refused(m);
	if (m->type != t) {
		log_error("The server answered '%s' where '%s' was due; not enrolling.", proto_type_name(m->type),
			  proto_type_name(t));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* The enrolled message: our certificate must chain to the CA we pinned and certify our TLS key;
 * the keys must be P-256 SPKIs. Converted to PEM here (unprivileged), stored by the executor. */
static int store_enrollment(const EnrollCtx *c, int fd, const ProtoMessage *m)
{
	_cleanup_free_ char *cert_pem = NULL, *ca_pem = NULL, *policy_pem = NULL, *escrow_pem = NULL,
			    *command_pem = NULL;
	_cleanup_free_ uint8_t *spki = NULL;
	_cleanup_ec_key_ EcKey *pk = NULL, *ek = NULL, *ck = NULL;
	const char *why = NULL;
	size_t spki_size;
	int r;

	if (!m->enrolled.device_id || strlen(m->enrolled.device_id) != DEVICE_ID_STRING_SIZE - 1 ||
	    device_id_parse(m->enrolled.device_id, (uint8_t[DEVICE_ID_SIZE]){0}) < 0) {
		log_error("The server sent an invalid device id; not enrolling.");
		return EXIT_FAIL;
	}
	r = x509_verify_der(m->enrolled.device_cert.data, m->enrolled.device_cert.size, c->ca_pem, &spki,
			    &spki_size, &why);
	if (r < 0) {
		log_error_errno(r, "The device certificate from the server does not chain to --ca (%s): %m.",
				strna(why));
		return EXIT_FAIL;
	}
	if (spki_size != c->tls_spki_size || memcmp(spki, c->tls_spki, spki_size) != 0) {
		log_error("The device certificate from the server certifies another key than ours; not enrolling.");
		return EXIT_FAIL;
	}
	r = x509_der_to_pem(m->enrolled.device_cert.data, m->enrolled.device_cert.size, &cert_pem);
	if (r >= 0)
		r = x509_der_to_pem(m->enrolled.ca_cert.data, m->enrolled.ca_cert.size, &ca_pem);
	if (r < 0) {
		log_error_errno(r, "The certificates from the server are malformed: %m");
		return EXIT_FAIL;
	}
	r = ec_key_from_spki_der(m->enrolled.policy_key.data, m->enrolled.policy_key.size, &pk);
	if (r >= 0)
		r = ec_key_public_pem(pk, &policy_pem);
	if (r >= 0)
		r = ec_key_from_spki_der(m->enrolled.escrow_key.data, m->enrolled.escrow_key.size, &ek);
	if (r >= 0)
		r = ec_key_public_pem(ek, &escrow_pem);
	if (r < 0) {
		log_error_errno(r, "The policy or escrow key from the server is not a P-256 public key: %m");
		return EXIT_FAIL;
	}
	/* Optional: a server without remote commands sends none, and every command is rejected. */
	if (m->enrolled.has_command_key) {
		r = ec_key_from_spki_der(m->enrolled.command_key.data, m->enrolled.command_key.size, &ck);
		if (r >= 0)
			r = ec_key_public_pem(ck, &command_pem);
		if (r < 0) {
			log_error_errno(r, "The command key from the server is not a P-256 public key: %m");
			return EXIT_FAIL;
		}
	} else
		log_notice("The server sent no fleet command key: remote lock, unlock and wipe will be rejected.");
	PrivsepStoreBlobs b = {.device_id = m->enrolled.device_id};
	b.data[STORE_DEVICE_CERT] = cert_pem;
	b.size[STORE_DEVICE_CERT] = strlen(cert_pem);
	b.data[STORE_CA_CERT] = ca_pem;
	b.size[STORE_CA_CERT] = strlen(ca_pem);
	b.data[STORE_POLICY_KEY] = policy_pem;
	b.size[STORE_POLICY_KEY] = strlen(policy_pem);
	b.data[STORE_ESCROW_KEY] = escrow_pem;
	b.size[STORE_ESCROW_KEY] = strlen(escrow_pem);
	b.data[STORE_POLICY] = m->enrolled.policy;
	b.size[STORE_POLICY] = m->enrolled.policy ? strlen(m->enrolled.policy) : 0;
	b.data[STORE_COMMAND_KEY] = command_pem;
	b.size[STORE_COMMAND_KEY] = command_pem ? strlen(command_pem) : 0;
	r = privsep_store(fd, &b);
	if (r < 0) {
		log_error_errno(r, "The executor did not store the enrollment: %m");
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int tcp_connect(const EnrollCtx *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
	struct timeval tv = {.tv_sec = ENROLL_TIMEOUT_SEC};
	int fd, r;

	r = getaddrinfo(c->host, c->port, &hints, &ai);
	if (r != 0)
		return log_error_errno(EHOSTUNREACH, "Cannot resolve %s: %s", c->host, gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		/* Bounded: a server that never answers must not hang the enrollment. */
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			r = -errno;
			close(fd);
			fd = r;
		}
	} else
		fd = -errno;
	freeaddrinfo(ai);
	if (fd < 0)
		return log_error_errno(fd, "Cannot connect to %s:%s: %m", c->host, c->port);
	return fd;
}

static int enroll_network(const EnrollCtx *c, int privsep_fd)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_secure_ uint8_t *secret = NULL;
	TlsConfig *cfg = NULL;
	TlsConn *t = NULL;
	ProtoMessage m = {0}, in = {0};
	const char *why = NULL;
	size_t len = 0, secret_size = 0;
	int r, ret = EXIT_FAIL;

	buf = malloc(4 + PROTO_FRAME_MAX);
	if (!buf) {
		log_oom();
		return EXIT_FAIL;
	}
	fd = tcp_connect(c);
	if (fd < 0)
		return EXIT_FAIL;
	TlsConfigParams p = {.server = false, .ca_pem = c->ca_pem};
	r = tls_config_new(&p, &cfg);
	if (r < 0) {
		log_error_errno(r, "--ca does not hold a usable CA certificate: %m");
		goto out;
	}
	r = tls_conn_new(cfg, fd, c->host, &t);
	if (r >= 0)
		r = tls_handshake(t);
	if (r == -EAGAIN)
		r = -ETIMEDOUT;
	if (r < 0) {
		log_error_errno(r, "TLS handshake with %s:%s failed (%s): %m. The server must present a "
				   "certificate for '%s' issued by --ca.",
				c->host, c->port, strna(t ? tls_verify_error(t) : NULL), c->host);
		goto out;
	}

	m = (ProtoMessage){.type = PROTO_ENROLL};
	m.enroll.token = c->token;
	m.enroll.ek_cert = (ProtoBytes){c->ek_cert, c->ek_cert_size};
	m.enroll.ak_public = (ProtoBytes){c->ak.public, c->ak.public_size};
	m.enroll.tls_public = (ProtoBytes){c->tls_spki, c->tls_spki_size};
	m.enroll.hostname = c->hostname;
	m.enroll.pcrs.mask = ENROLL_PCRS;
	memcpy(m.enroll.pcrs.values, c->pcrs, sizeof(m.enroll.pcrs.values));
	m.enroll.epoch = c->epoch;
	r = send_msg(t, &m);
	if (r < 0) {
		log_error_errno(r, "Sending the enrollment request failed: %m");
		goto out;
	}

	r = recv_msg(t, buf, &len, &in, &why);
	if (r < 0) {
		log_error_errno(r, "No valid answer to the enrollment request (%s): %m", strna(why));
		goto out;
	}
	ret = expect(&in, PROTO_CREDENTIAL);
	if (ret != EXIT_OK)
		goto out;
	ret = EXIT_FAIL;
	/* Only the TPM that holds the EK the server checked, with this AK loaded, can do this. */
	r = privsep_activate(privsep_fd, in.credential.id_object.data, in.credential.id_object.size,
			     in.credential.encrypted_secret.data, in.credential.encrypted_secret.size, &secret,
			     &secret_size);
	proto_message_done(&in);
	if (r < 0) {
		log_error_errno(r, "Credential activation failed: %m");
		goto out;
	}
	m = (ProtoMessage){.type = PROTO_ACTIVATE};
	m.activate.secret = (ProtoBytes){secret, secret_size};
	r = send_msg(t, &m);
	if (r < 0) {
		log_error_errno(r, "Sending the activation proof failed: %m");
		goto out;
	}
	r = recv_msg(t, buf, &len, &in, &why);
	if (r < 0) {
		log_error_errno(r, "No valid answer to the activation proof (%s): %m", strna(why));
		goto out;
	}
	ret = expect(&in, PROTO_ENROLLED);
	if (ret == EXIT_OK)
		ret = store_enrollment(c, privsep_fd, &in);
	if (ret == EXIT_OK)
		log_info("Enrolled as device %s. Start the agent: trustpcd run --server %s:<device port>",
			 in.enrolled.device_id, c->host);
	proto_message_done(&in);
out:
	t = tls_conn_free(t);
	tls_config_free(cfg);
	return ret;
}

int verb_enroll(const Args *a)
{
	const char *dir = a->state_dir ?: STATE_DIR_DEFAULT;
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	EnrollCtx c = {0};
	PrivsepUser user = {0};
	size_t n;
	pid_t pid;
	int r, fd, ret = EXIT_USAGE;

	if (!a->server || server_address_split(a->server, &c.host, &c.port) < 0) {
		log_error("--server HOST:PORT (the server's enroll port) is required.");
		goto out;
	}
	if (!a->ca) {
		log_error("--ca FLEET_CA.pem is required: it pins the server (the fleet builder has it).");
		goto out;
	}
	r = read_full_file(a->ca, STATE_FILE_MAX, false, &c.ca_pem, &n);
	if (r < 0) {
		log_error_errno(r, "Cannot read --ca '%s': %m", a->ca);
		goto out;
	}
	if (acquire_token(a, &c) < 0)
		goto out;
	r = privsep_user_lookup(a->user ?: "nobody", &user);
	if (r < 0) {
		log_error_errno(r, "Unknown user '%s' for the network process (--user): %m", a->user ?: "nobody");
		goto out;
	}
	ret = EXIT_FAIL;
	r = state_dir_prepare(dir);
	if (r < 0) {
		log_error_errno(r, "Cannot use state dir '%s' (it must be a directory owned by us, mode 0700): %m", dir);
		goto out;
	}
	r = enroll_prepare(a, &c);
	if (r < 0) {
		ret = r == -ENODEV ? EXIT_NO_TPM : EXIT_FAIL;
		goto out;
	}

	r = privsep_fork(&pid, &fd);
	if (r < 0) {
		log_error_errno(r, "Cannot start the network process: %m");
		goto out;
	}
	if (r == 0) {
		/* The TLS private key is not needed for the enroll port (no client certificate). */
		memory_erase(c.tls_key_pem, strlen(c.tls_key_pem));
		if (privsep_drop_privileges(&user) < 0)
			_exit(EXIT_FAIL);
		_exit(enroll_network(&c, fd));
	}

	r = agent_tpm_open(a, &tpm);
	if (r < 0) {
		privsep_kill_child(pid);
		ret = EXIT_NO_TPM;
		goto out;
	}
	Executor e = {
		.fd = fd,
		.enroll = true,
		.tpm = tpm,
		.ak = &c.ak,
		.state_dir = dir,
		.tls_key_pem = c.tls_key_pem,
		.ak_blob = c.ak_blob,
		.ak_blob_size = c.ak_blob_size,
	};
	r = executor_run(&e);
	close(fd);
	if (r < 0) {
		privsep_kill_child(pid);
		ret = r == -EPROTO ? EXIT_PRIVSEP : EXIT_FAIL;
		goto out;
	}
	ret = privsep_wait_child(pid);
	if (ret == EXIT_OK && !e.stored) {
		log_error("The network process ended without storing an enrollment.");
		ret = EXIT_FAIL;
	}
out:
	enroll_ctx_done(&c);
	privsep_user_done(&user);
	return ret;
}
