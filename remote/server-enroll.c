/* SPDX-License-Identifier: Apache-2.0 */
/* The enrollment port (docs/PROTOCOL.md "Enrollment"): enroll → credential → activate → enrolled.
 *
 * What each step stops:
 *   EK certificate chains to the TPM manufacturer CA  a software "TPM" (no EK cert from a vendor)
 *   device id from the EK, never from the client     a device claiming another's identity
 *   AK public area checked (restricted, fixedTPM)     a key that could sign a forged quote
 *   MakeCredential to (EK, name(AK))                   an AK that does not live in that EK's TPM:
 *                                                     only that TPM can decrypt the secret, and
 *                                                     only for an object with that exact name
 *   one-time token, consumed in the transaction      enrollment by anyone who reaches the port;
 *   that creates the device                           two enrollments racing with one token
 * Every failure: an `error` message with its code, an audit record, close. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-x509.h"
#include "server.h"
#include "tpm2/tpm2-attest.h"
#include "tpm2/tpm2-policy-file.h"

#define ENROLL_SECRET_SIZE 32

typedef enum EnrollPhase {
	ENROLL_AWAIT_ENROLL,
	ENROLL_AWAIT_ACTIVATE,
	ENROLL_DONE,
} EnrollPhase;

typedef struct EnrollSession {
	EnrollPhase phase;
	char device_id[DEVICE_ID_STRING_SIZE]; /* empty until the EK certificate verified */
	char *token; /* checked at enroll, consumed with the device record (erase_and_free) */
	char *hostname, *image;
	uint8_t *ek_cert, *ak_public, *tls_public;
	size_t ek_cert_size, ak_public_size, tls_public_size;
	ProtoPcrs pcrs;
	uint64_t epoch;
	uint8_t *secret; /* secure memory: the credential only the EK's TPM can recover */
} EnrollSession;

static EnrollSession *enroll_session_free(EnrollSession *e)
{
	if (!e)
		return NULL;
	erase_and_free(e->token);
	free(e->hostname);
	free(e->image);
	free(e->ek_cert);
	free(e->ak_public);
	free(e->tls_public);
	secure_free(e->secret);
	free(e);
	return NULL;
}

static const char *subject_of(ServerConn *c)
{
	EnrollSession *e = c->session;
	return e && e->device_id[0] ? e->device_id : c->peer;
}

/* Reports a refused enrollment: log, audit, `error`, close. */
static void enroll_fail(ServerConn *c, const char *code, const char *reason)
{
	EnrollSession *e = c->session;
	json_t *d;

	log_notice("Enrollment from %s refused (%s): %s.", c->peer, code, reason);
	d = json_pack("{s:s,s:s,s:s}", "code", code, "reason", reason, "peer", c->peer);
	if (d && e && e->hostname)
		json_object_set_new(d, "hostname", json_string(e->hostname));
	/* Before the EK certificate verified, the peer is anyone on the network: rate limited, so
	 * garbage sent to the open enroll port cannot grow the audit chain without bound. After it,
	 * the peer holds a genuine TPM and every refusal is recorded. */
	if (e && e->device_id[0])
		(void)server_audit(c->server, "enroll.rejected", subject_of(c), d);
	else
		server_audit_rate_limited(c->server, "enroll.rejected", subject_of(c), d);
	conn_send_error(c, code, reason);
}

static int enroll_internal(ServerConn *c, int r, const char *what)
{
	log_error_errno(r, "Enrollment from %s: %s: %m.", c->peer, what);
	enroll_fail(c, "internal", "server error; try again later");
	return r;
}

static int enroll_established(ServerConn *c)
{
	c->session = calloc(1, sizeof(EnrollSession));
	if (!c->session)
		return log_oom();
	return 0;
}

static bool text_printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static void *memdup_(const void *p, size_t n)
{
	void *q = malloc(n ?: 1);
	if (q)
		memcpy(q, p, n);
	return q;
}

/* Step 3 of the protocol: everything about the device, then the token, then the credential. */
static int on_enroll(ServerConn *c, const ProtoMessage *m)
{
	Server *s = c->server;
	EnrollSession *e = c->session;
	_cleanup_free_ uint8_t *spki = NULL, *id_object = NULL, *enc_secret = NULL;
	_cleanup_free_ char *image = NULL;
	_cleanup_ec_key_ EcKey *ek = NULL, *tls_key = NULL;
	uint8_t ek_point[EC_P256_POINT_SIZE], ak_name[TPM2_NAME_SIZE], ak_point[65];
	size_t spki_size, id_object_size, enc_secret_size;
	const char *why = NULL;
	char msg[256];
	int r;

	if (!text_printable(m->enroll.hostname) || !*m->enroll.hostname) {
		enroll_fail(c, "bad-message", "hostname is empty or has control characters");
		return -EBADMSG;
	}
	e->hostname = strdup(m->enroll.hostname);
	if (!e->hostname)
		return log_oom();

	r = x509_verify_der(m->enroll.ek_cert.data, m->enroll.ek_cert.size, s->keys.tpm_ca_pem, &spki,
			    &spki_size, &why);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "EK certificate %s: %s",
			 r == -ETIME	 ? "is expired or not yet valid"
			 : r == -EBADMSG ? "is malformed"
					 : "does not chain to the TPM manufacturer CA bundle",
			 why ?: "rejected");
		enroll_fail(c, "bad-ek-cert", msg);
		return r;
	}
	r = ec_key_from_spki_der(spki, spki_size, &ek);
	if (r >= 0)
		r = ec_key_get_point(ek, ek_point);
	if (r < 0) {
		enroll_fail(c, "bad-ek-cert",
			    "EK certificate key is not ECC P-256 (NV 0x01c0000a, template L-2)");
		return r;
	}
	/* The identity is the EK's: the same id trustpc-disk binds disk policies to. */
	r = device_id_from_spki(spki, spki_size, e->device_id);
	if (r < 0)
		return enroll_internal(c, r, "cannot derive the device id");

	r = tpm2_ak_public_check(m->enroll.ak_public.data, m->enroll.ak_public.size, ak_name, ak_point,
				 &why);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "AK is not a restricted fixedTPM P-256 signing key: %s",
			 why ?: "rejected");
		enroll_fail(c, "bad-ak", msg);
		return r;
	}
	r = ec_key_from_spki_der(m->enroll.tls_public.data, m->enroll.tls_public.size, &tls_key);
	if (r < 0) {
		enroll_fail(c, "bad-message", "tls_public is not a P-256 SubjectPublicKeyInfo");
		return r;
	}

	/* Checked here, consumed by store_device_enroll in the transaction that creates the device
	 * (docs/PROTOCOL.md "Enrollment" step 3): a failed activation or a dropped connection leaves
	 * the token usable, and of two enrollments racing with one token only one commits. */
	r = store_token_check(s->store, m->enroll.token, &image);
	if (r == -ENOENT) {
		enroll_fail(c, "bad-token", "unknown enrollment token");
		return r;
	}
	if (r == -ESTALE) {
		enroll_fail(c, "bad-token", "enrollment token already used or expired");
		return r;
	}
	if (r < 0)
		return enroll_internal(c, r, "cannot check the enrollment token");
	e->token = strdup(m->enroll.token);
	if (!e->token)
		return log_oom();
	if (image)
		e->image = TAKE_PTR(image);
	else if (s->config.default_image) {
		_cleanup_(image_record_done) ImageRecord img = {};
		/* The device record may only name a registered image. */
		if (store_image_get(s->store, s->config.default_image, &img) < 0)
			log_warning(
			    "default_image '%s' is not registered: device %s is enrolled without an image.",
			    s->config.default_image, e->device_id);
		else if (!(e->image = strdup(s->config.default_image)))
			return log_oom();
	}

	e->ek_cert = memdup_(m->enroll.ek_cert.data, m->enroll.ek_cert.size);
	e->ak_public = memdup_(m->enroll.ak_public.data, m->enroll.ak_public.size);
	e->tls_public = memdup_(m->enroll.tls_public.data, m->enroll.tls_public.size);
	e->secret = secure_alloc(ENROLL_SECRET_SIZE);
	if (!e->ek_cert || !e->ak_public || !e->tls_public || !e->secret)
		return log_oom();
	e->ek_cert_size = m->enroll.ek_cert.size;
	e->ak_public_size = m->enroll.ak_public.size;
	e->tls_public_size = m->enroll.tls_public.size;
	e->pcrs = m->enroll.pcrs;
	e->epoch = m->enroll.epoch;

	r = crypto_random_bytes(e->secret, ENROLL_SECRET_SIZE);
	if (r < 0)
		return enroll_internal(c, r, "no random bytes");
	r = tpm2_make_credential(ek_point, ak_name, e->secret, ENROLL_SECRET_SIZE, &id_object,
				 &id_object_size, &enc_secret, &enc_secret_size);
	if (r < 0)
		return enroll_internal(c, r, "MakeCredential failed");
	r = conn_send(c, &(ProtoMessage){.type = PROTO_CREDENTIAL,
					 .credential = {.id_object = {id_object, id_object_size},
							.encrypted_secret = {enc_secret, enc_secret_size}}});
	if (r < 0)
		return r;
	e->phase = ENROLL_AWAIT_ACTIVATE;
	(void)conn_set_deadline(c, s->config.attest_timeout);
	log_info("Enrollment of %s (%s) from %s: credential sent.", e->device_id, e->hostname, c->peer);
	return 0;
}

/* The first disk policy: the PCR values the device reported at enrollment, at its current epoch.
 * NULL (no policy) when it did not report every PCR the policy binds. */
static int enroll_sign_policy(ServerConn *c, char **ret)
{
	Server *s = c->server;
	EnrollSession *e = c->session;
	SignedPolicy p = {};
	int r;

	if ((e->pcrs.mask & s->config.policy_pcrs) != s->config.policy_pcrs) {
		log_warning(
		    "Device %s reported PCRs 0x%06x at enrollment, not all of policy_pcrs 0x%06x: no first "
		    "disk policy.",
		    e->device_id, e->pcrs.mask, s->config.policy_pcrs);
		*ret = NULL;
		return 0;
	}
	memcpy(p.device_id, e->device_id, DEVICE_ID_STRING_SIZE);
	p.params.pcr_mask = s->config.policy_pcrs | (UINT32_C(1) << TPM2_PCR_ONE_BOOT);
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
		if (s->config.policy_pcrs & (UINT32_C(1) << i))
			memcpy(p.params.pcr_values[i], e->pcrs.values[i], TPM2_SHA256_SIZE);
	/* PCR 15 must be zero at unlock: one unseal per boot (brief point 4). */
	memset(p.params.pcr_values[TPM2_PCR_ONE_BOOT], 0, TPM2_SHA256_SIZE);
	p.params.nv_index = TPM2_LOCK_COUNTER_NV_INDEX;
	p.params.epoch = e->epoch;
	r = signed_policy_sign(&p, s->keys.policy_key);
	if (r < 0)
		return r;
	return signed_policy_format(&p, ret);
}

/* Step 5: the proof of the TPM, then the certificate, the policy, the record, the answer. */
static int on_activate(ServerConn *c, const ProtoMessage *m)
{
	Server *s = c->server;
	EnrollSession *e = c->session;
	_cleanup_free_ char *cert_pem = NULL, *policy = NULL;
	_cleanup_free_ uint8_t *cert_der = NULL;
	_cleanup_ec_key_ EcKey *tls_key = NULL;
	_cleanup_(device_record_done) DeviceRecord old = {};
	_cleanup_free_ char *details_text = NULL;
	DeviceRecord rec = {};
	json_t *details;
	size_t cert_der_size;
	bool reenroll;
	int r;

	/* Constant time: a timing oracle on the compare would let a client without the TPM learn
	 * the secret byte by byte (it only gets one try per token, but the rule is cheap). */
	if (m->activate.secret.size != ENROLL_SECRET_SIZE ||
	    memcmp_const(m->activate.secret.data, e->secret, ENROLL_SECRET_SIZE) != 0) {
		enroll_fail(c, "bad-credential",
			    "activation proof does not match: the AK is not in the TPM of this EK");
		return -EPERM;
	}
	e->secret = secure_free(e->secret);

	r = ec_key_from_spki_der(e->tls_public, e->tls_public_size, &tls_key);
	if (r >= 0)
		r = x509_issue(&(X509IssueParams){.subject_key = tls_key,
						  .subject_cn = e->device_id,
						  .issuer_key = s->keys.ca_key,
						  .issuer_cert_pem = s->keys.ca_pem,
						  .days = s->config.device_cert_days,
						  .client_auth = 1},
			       &cert_pem);
	if (r >= 0)
		r = x509_pem_to_der(cert_pem, &cert_der, &cert_der_size);
	if (r < 0)
		return enroll_internal(c, r, "cannot issue the device certificate");
	r = enroll_sign_policy(c, &policy);
	if (r < 0)
		return enroll_internal(c, r, "cannot sign the first disk policy");

	r = store_device_get(s->store, e->device_id, &old);
	if (r < 0 && r != -ENOENT)
		return enroll_internal(c, r, "cannot read the device record");
	reenroll = r >= 0;

	memcpy(rec.device_id, e->device_id, DEVICE_ID_STRING_SIZE);
	rec.hostname = e->hostname;
	rec.image = e->image;
	rec.ek_cert = e->ek_cert;
	rec.ek_cert_size = e->ek_cert_size;
	rec.ak_public = e->ak_public;
	rec.ak_public_size = e->ak_public_size;
	rec.tls_public = e->tls_public;
	rec.tls_public_size = e->tls_public_size;
	rec.state = DEVICE_ENROLLED;
	rec.enrolled_at = time(NULL);
	/* Re-imaging keeps the escrowed recovery key until the device uploads a new one. */
	rec.escrow_json = reenroll ? old.escrow_json : NULL;
	details = json_pack("{s:s,s:s?,s:s,s:b}", "hostname", e->hostname, "image", e->image, "peer",
			    c->peer, "policy", policy != NULL);
	details_text = details ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(details);
	/* Token consumed, device stored and audited in one transaction, committed before the device
	 * hears "enrolled" (brief point 8). */
	r = store_device_enroll(s->store, e->token, &rec, details_text);
	if (r == -ENOENT || r == -ESTALE) {
		/* Another enrollment with this token committed first (or it expired meanwhile). */
		enroll_fail(c, "bad-token",
			    r == -ENOENT ? "unknown enrollment token"
					 : "enrollment token already used or expired");
		return r;
	}
	if (r < 0)
		return enroll_internal(c, r, "cannot store the device");
	if (reenroll) {
		/* Its old certificate's key is no longer registered: drop a connection that still
		 * uses it. */
		ServerConn *old_conn = server_device_find(s, e->device_id);
		if (old_conn)
			conn_close(old_conn);
	}

	r = conn_send(
	    c, &(ProtoMessage){.type = PROTO_ENROLLED,
			       .enrolled = {.device_id = e->device_id,
					    .device_cert = {cert_der, cert_der_size},
					    .ca_cert = {s->keys.ca_der, s->keys.ca_der_size},
					    .policy_key = {s->keys.policy_spki, s->keys.policy_spki_size},
					    .escrow_key = {s->keys.escrow_spki, s->keys.escrow_spki_size},
					    .has_command_key = true,
					    .command_key = {s->keys.command_spki, s->keys.command_spki_size},
					    .policy = policy}});
	if (r < 0)
		return r;
	e->phase = ENROLL_DONE;
	log_info("Device %s (%s) %s from %s, image %s.", e->device_id, e->hostname,
		 reenroll ? "re-enrolled" : "enrolled", c->peer, strna(e->image));
	conn_close_after_write(c);
	return 0;
}

static int enroll_message(ServerConn *c, const ProtoMessage *m)
{
	EnrollSession *e = c->session;
	char msg[128];

	if (m->type == PROTO_ENROLL && e->phase == ENROLL_AWAIT_ENROLL)
		return on_enroll(c, m);
	if (m->type == PROTO_ACTIVATE && e->phase == ENROLL_AWAIT_ACTIVATE)
		return on_activate(c, m);
	snprintf(msg, sizeof(msg), "unexpected '%s' message during enrollment", proto_type_name(m->type));
	enroll_fail(c, "bad-message", msg);
	return -EBADMSG;
}

static void enroll_timeout(ServerConn *c)
{
	EnrollSession *e = c->session;

	if (e && e->phase == ENROLL_AWAIT_ACTIVATE)
		enroll_fail(c, "bad-credential", "no activation within the time limit");
	else
		log_info("Enrollment from %s: nothing received in time; closing.", c->peer);
}

static void enroll_closed(ServerConn *c)
{
	c->session = enroll_session_free(c->session);
}

const ConnHandler enroll_handler = {
    .established = enroll_established,
    .message = enroll_message,
    .fail = enroll_fail,
    .timeout = enroll_timeout,
    .closed = enroll_closed,
};
