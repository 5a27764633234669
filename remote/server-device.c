/* SPDX-License-Identifier: Apache-2.0 */
/* The device port (docs/PROTOCOL.md "Attestation (every connection)"): mutual TLS, then
 * challenge → attest → attest-result, then heartbeats and escrow uploads.
 *
 * The quote's qualifying data is SHA-256(nonce ‖ TLS exporter of this connection), computed here
 * from our own nonce and our own view of the connection. That binds the TPM's statement to this
 * TLS session: a quote replayed from an earlier challenge (stale nonce) or relayed from another
 * TLS session (a machine-in-the-middle with a stolen device key forwarding challenges to the real
 * device) carries other qualifying data and fails. Any failure quarantines the device: it stays
 * connected, recorded with the reason, and only lock/unlock/wipe reach it (issue 4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "server.h"
#include "tpm2/tpm2-attest.h"

#define REASON_MAX 512

typedef enum DevicePhase {
	DEVICE_AWAIT_ATTEST,
	DEVICE_ATTESTED, /* trusted or quarantined: heartbeats, escrow */
} DevicePhase;

typedef struct DeviceSession {
	DeviceEntry entry; /* first: the device table's key */
	bool registered;
	DevicePhase phase;
	uint8_t nonce[PROTO_NONCE_SIZE];
	uint32_t pcr_mask; /* what the challenge asked for */
	uint8_t ak_point[65];
	char *image;	    /* the device's image, may be NULL */
	DeviceState state;  /* the attestation's verdict (DEVICE_ATTESTED) */
	uint64_t sent_seq;  /* highest command seq sent on this connection */
	EcKey *tls_key;	    /* the registered TLS key: verifies command results */
	uint64_t serial;    /* Server.n_sessions when it was opened */
	bool verifying;	    /* a result of this session is with the worker threads */
	unsigned acks_held; /* acks that wait for that result's commit */
} DeviceSession;

static void device_reject(ServerConn *c, const char *code, const char *reason)
{
	DeviceSession *d = c->session;
	const char *subject = d && d->entry.device_id[0] ? d->entry.device_id : c->peer;

	log_notice("Device port: %s (%s) refused (%s): %s.", subject, c->peer, code, reason);
	(void)server_audit(c->server, "device.rejected", subject,
			   json_pack("{s:s,s:s,s:s}", "code", code, "reason", reason, "peer", c->peer));
	conn_send_error(c, code, reason);
}

/* After the mTLS handshake (the chain to the fleet CA is checked by lib/tls): the certificate's
 * CN names the device, and its key must be the one registered at the last enrollment — a
 * re-enrolled (re-imaged) device's old certificate still chains to the CA but is dead. */
static int device_established(ServerConn *c)
{
	Server *s = c->server;
	_cleanup_(device_record_done) DeviceRecord rec = {};
	_cleanup_(image_record_done) ImageRecord img = {};
	_cleanup_free_ char *cn = NULL;
	_cleanup_free_ uint8_t *spki = NULL;
	uint8_t id[DEVICE_ID_SIZE], ak_name[TPM2_NAME_SIZE];
	const char *why = NULL;
	DeviceSession *d;
	char msg[256];
	size_t spki_size;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return log_oom();
	c->session = d;
	d->entry.conn = c;
	d->serial = ++c->server->n_sessions;

	r = tls_peer_common_name(c->tls, &cn);
	if (r < 0 || device_id_parse(cn, id) < 0 || strlen(cn) != DEVICE_ID_STRING_SIZE - 1) {
		device_reject(c, "not-enrolled", "client certificate does not name a device id");
		return -EPERM;
	}
	memcpy(d->entry.device_id, cn, DEVICE_ID_STRING_SIZE);
	r = store_device_get(s->store, cn, &rec);
	if (r == -ENOENT) {
		device_reject(c, "not-enrolled", "device is not enrolled on this server");
		return r;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read device %s: %m.", cn);
		device_reject(c, "internal", "server error; try again later");
		return r;
	}
	r = tls_peer_public_key(c->tls, &spki, &spki_size);
	if (r < 0 || spki_size != rec.tls_public_size || memcmp(spki, rec.tls_public, spki_size) != 0) {
		device_reject(
		    c, "not-enrolled",
		    "client certificate key is not the one registered for this device (re-enrolled since?)");
		return -EPERM;
	}
	r = ec_key_from_spki_der(rec.tls_public, rec.tls_public_size, &d->tls_key);
	if (r < 0) {
		log_error_errno(r, "Device %s: its registered TLS key is unusable: %m.", cn);
		device_reject(c, "internal", "registered TLS key is unusable; enroll again");
		return r;
	}
	r = tpm2_ak_public_check(rec.ak_public, rec.ak_public_size, ak_name, d->ak_point, &why);
	if (r < 0) {
		log_error("Device %s: its registered AK is unusable: %s.", cn, strna(why));
		device_reject(c, "internal", "registered attestation key is unusable; enroll again");
		return r;
	}
	if (rec.image) {
		d->image = strdup(rec.image);
		if (!d->image)
			return log_oom();
	}

	/* Quote what the config asks for and everything the image has expected values for. */
	d->pcr_mask = s->config.attest_pcrs;
	if (d->image && store_image_get(s->store, d->image, &img) >= 0)
		d->pcr_mask |= img.pcr_mask;

	r = server_device_register(s, &d->entry);
	if (r < 0)
		return log_oom();
	d->registered = true;

	r = crypto_random_bytes(d->nonce, sizeof(d->nonce));
	if (r < 0) {
		log_error_errno(r, "No random bytes: %m.");
		device_reject(c, "internal", "server error; try again later");
		return r;
	}
	ProtoMessage m = {.type = PROTO_CHALLENGE, .challenge = {.pcr_mask = d->pcr_mask}};
	memcpy(m.challenge.nonce, d->nonce, sizeof(d->nonce));
	r = conn_send(c, &m);
	if (r < 0)
		return r;
	snprintf(msg, sizeof(msg), "%s", tls_resumed(c->tls) ? " (resumed session)" : "");
	log_debug("Device %s connected from %s%s; challenge sent.", cn, c->peer, msg);
	/* The deadline armed at accept stays: handshake + attestation within attest_timeout. */
	return 0;
}

static json_t *posture_to_json(const ProtoPosture *p)
{
	json_t *o =
	    json_pack("{s:b,s:b,s:I,s:I}", "locked", p->locked, "disk_encrypted", p->disk_encrypted,
		      "uptime", (json_int_t)p->uptime, "policy_version", (json_int_t)p->policy_version);
	if (!o)
		return NULL;
	if (p->image_version)
		json_object_set_new(o, "image_version", json_string(p->image_version));
	if (p->agent_version)
		json_object_set_new(o, "agent_version", json_string(p->agent_version));
	if (p->has_epoch)
		json_object_set_new(o, "epoch", json_integer((json_int_t)p->epoch));
	return o;
}

static int device_seen(ServerConn *c, const ProtoPosture *p)
{
	DeviceSession *d = c->session;
	_cleanup_free_ char *text = NULL;
	json_t *o = posture_to_json(p);
	int r;

	if (o) {
		text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(o);
	}
	r = store_device_seen(c->server->store, d->entry.device_id, time(NULL), text);
	if (r < 0)
		log_warning_errno(r, "Cannot record the posture of %s: %m.", d->entry.device_id);
	return r;
}

static void hex_prefix(const uint8_t v[32], char out[17])
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < 8; i++) {
		out[2 * i] = hx[v[i] >> 4];
		out[2 * i + 1] = hx[v[i] & 15];
	}
	out[16] = 0;
}

/* Checks the attest message. 0: trusted; 1: quarantined with reason; < 0: server failure. */
static int attest_verify(ServerConn *c, const ProtoMessage *m, char reason[REASON_MAX])
{
	Server *s = c->server;
	DeviceSession *d = c->session;
	_cleanup_(image_record_done) ImageRecord img = {};
	uint8_t exporter[TLS_EXPORTER_SIZE], qualifying[SHA256_SIZE],
	    replay[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
	const ProtoPcrs *q = &m->attest.pcrs;
	const char *why = NULL;
	char a[17], b[17];
	uint32_t log_mask;
	int r;

	if (q->mask != d->pcr_mask) {
		snprintf(reason, REASON_MAX, "attest carries PCRs 0x%06x, the challenge asked for 0x%06x",
			 q->mask, d->pcr_mask);
		return 1;
	}
	/* Our nonce, our exporter: never anything the device sent. */
	r = tls_exporter(c->tls, exporter);
	if (r < 0)
		return log_error_errno(r, "Cannot derive the TLS exporter for %s: %m.", c->peer);
	r = sha256_many(qualifying, d->nonce, sizeof(d->nonce), exporter, sizeof(exporter), NULL);
	if (r < 0)
		return r;
	r = tpm2_quote_verify(d->ak_point, m->attest.quote.data, m->attest.quote.size,
			      m->attest.signature.data, qualifying, sizeof(qualifying), d->pcr_mask,
			      q->values, &why);
	if (r == -ESTALE) {
		snprintf(
		    reason, REASON_MAX,
		    "quote is not bound to this connection: its qualifying data is not "
		    "SHA-256(nonce || TLS exporter) of this session (stale nonce or another TLS session)");
		return 1;
	}
	if (r == -EPERM) {
		snprintf(reason, REASON_MAX, "PCR values sent do not match the quoted PCR digest");
		return 1;
	}
	if (r < 0) {
		snprintf(reason, REASON_MAX, "quote rejected: %s", why ?: "malformed or bad signature");
		return 1;
	}

	/* The log must explain every quoted PCR it has events for: values that the log does not
	 * reproduce mean events the server cannot see (or a log edited to hide them). */
	if (m->attest.event_log.size > 0) {
		r = tpm2_eventlog_replay(m->attest.event_log.data, m->attest.event_log.size, replay,
					 &log_mask, &why);
		if (r < 0) {
			snprintf(reason, REASON_MAX, "event log rejected: %s", why ?: "malformed");
			return 1;
		}
		for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
			if (!(log_mask & d->pcr_mask & (UINT32_C(1) << i)))
				continue;
			if (memcmp(replay[i], q->values[i], TPM2_SHA256_SIZE) != 0) {
				hex_prefix(replay[i], a);
				hex_prefix(q->values[i], b);
				snprintf(reason, REASON_MAX,
					 "PCR %u does not match the event log (replay %s…, quoted %s…)", i,
					 a, b);
				return 1;
			}
		}
	}

	if (!d->image) {
		snprintf(reason, REASON_MAX,
			 "no expected values registered: the device has no image (enroll it "
			 "with a token that names one, or set default_image)");
		return 1;
	}
	r = store_image_get(s->store, d->image, &img);
	if (r == -ENOENT) {
		snprintf(reason, REASON_MAX, "no expected values registered for image %s", d->image);
		return 1;
	}
	if (r < 0)
		return log_error_errno(r, "Cannot read image %s: %m.", d->image);
	if (img.pcr_mask == 0) {
		snprintf(reason, REASON_MAX, "no expected values registered for image %s", d->image);
		return 1;
	}
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
		if (!(img.pcr_mask & (UINT32_C(1) << i)))
			continue;
		if (!(d->pcr_mask & (UINT32_C(1) << i))) {
			/* The image changed since the challenge was sent. */
			snprintf(reason, REASON_MAX, "image %s expects PCR %u, which was not quoted",
				 d->image, i);
			return 1;
		}
		if (memcmp(img.pcr_values[i], q->values[i], TPM2_SHA256_SIZE) != 0) {
			hex_prefix(q->values[i], a);
			hex_prefix(img.pcr_values[i], b);
			snprintf(reason, REASON_MAX, "PCR %u is %s…, image %s expects %s…", i, a, d->image,
				 b);
			return 1;
		}
	}
	return 0;
}

static int on_attest(ServerConn *c, const ProtoMessage *m)
{
	Server *s = c->server;
	DeviceSession *d = c->session;
	char reason[REASON_MAX] = "";
	DeviceState state;
	bool resumed = tls_resumed(c->tls);
	int r;

	r = attest_verify(c, m, reason);
	if (r < 0) {
		device_reject(c, "internal", "server error; try again later");
		return r;
	}
	state = r == 0 ? DEVICE_TRUSTED : DEVICE_QUARANTINED;

	/* Recorded before the device is told (brief point 8). */
	r = store_device_set_state(s->store, d->entry.device_id, state, r == 0 ? NULL : reason, time(NULL));
	if (r >= 0)
		r = server_audit(s, state == DEVICE_TRUSTED ? "attest.trusted" : "attest.quarantined",
				 d->entry.device_id,
				 json_pack("{s:s,s:s,s:b,s:s?}", "reason", reason, "peer", c->peer,
					   "resumed", resumed, "image", d->image));
	if (r < 0) {
		log_error_errno(r, "Cannot record the attestation of %s: %m.", d->entry.device_id);
		device_reject(c, "internal", "server error; try again later");
		return r;
	}
	(void)device_seen(c, &m->attest.posture);
	if (state == DEVICE_TRUSTED)
		log_info("Device %s attested from %s: trusted%s.", d->entry.device_id, c->peer,
			 resumed ? " (resumed session)" : "");
	else
		log_notice("Device %s attested from %s: quarantined: %s.", d->entry.device_id, c->peer,
			   reason);

	r = conn_send(c, &(ProtoMessage){.type = PROTO_ATTEST_RESULT,
					 .attest_result = {.state = device_state_name(state),
							   .reason = reason,
							   .heartbeat = s->config.heartbeat}});
	if (r < 0)
		return r;
	d->phase = DEVICE_ATTESTED;
	d->state = state;
	r = conn_set_deadline(c, 3 * (uint64_t)s->config.heartbeat);
	if (r < 0)
		return r;
	/* Commands that waited for this device, after the verdict it must know first. */
	return server_commands_deliver(c, d->entry.device_id, d->state, &d->sent_seq);
}

void server_device_command_queued(void *userdata, const char *device_id)
{
	Server *s = userdata;
	ServerConn *c = server_device_find(s, device_id);
	DeviceSession *d = c ? c->session : NULL;

	/* Not connected, or still attesting: on_attest delivers it. */
	if (!d || d->phase != DEVICE_ATTESTED || c->closing || c->dead)
		return;
	if (server_commands_deliver(c, device_id, d->state, &d->sent_seq) < 0) {
		conn_close(c);
		return;
	}
	conn_kick(c);
}

static int on_result(ServerConn *c, const ProtoMessage *m)
{
	DeviceSession *d = c->session;
	DeviceCommandPeer peer = {
	    .device_id = d->entry.device_id,
	    .tls_key = d->tls_key,
	    .ak_point = d->ak_point,
	    .sent_seq = d->sent_seq,
	    .session = d->serial,
	};
	int r;

	/* One command in flight, so one result: a second one before the first is recorded is not
	 * the protocol (at most one job per connection also bounds the workers' queue). The device
	 * sends its stored result again when the command is delivered again. */
	if (d->verifying) {
		log_warning("Device %s (%s): result refused: the previous result is still being "
			    "verified.",
			    d->entry.device_id, c->peer);
		return 0;
	}
	r = server_command_result(c, &peer, m);
	if (r > 0)
		d->verifying = true;
	return r < 0 ? r : 0;
}

void server_device_result_done(Server *s, const char *device_id, uint64_t session, bool deliver)
{
	ServerConn *c = server_device_find(s, device_id);
	DeviceSession *d = c ? c->session : NULL;
	bool kick = false;

	if (d && d->serial == session) {
		d->verifying = false;
		for (; d->acks_held > 0; d->acks_held--)
			if (conn_send(c, &(ProtoMessage){.type = PROTO_ACK}) < 0) {
				conn_close(c);
				return;
			}
		kick = true;
	}
	/* The next one, now that this one is answered (on whichever connection is the device's
	 * now). */
	if (deliver)
		server_device_command_queued(s, device_id);
	/* The acks (server_device_command_queued's write may have closed the connection). */
	c = kick ? server_device_find(s, device_id) : NULL;
	d = c ? c->session : NULL;
	if (d && d->serial == session)
		conn_kick(c);
}

static bool luks_uuid_valid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char ch = s[i];
		if (dash ? ch != '-'
			 : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
			     (ch >= 'A' && ch <= 'F')))
			return false;
	}
	return true;
}

/* The blob must be encrypted to our escrow key and bound to this device and volume: a blob for
 * another key or device would be useless on the day the helpdesk needs it. It is not opened
 * here: the recovery key is never decrypted on the network path. */
static int escrow_check(ServerConn *c, const char *uuid, const char *blob, const char **ret_why)
{
	DeviceSession *d = c->session;
	_cleanup_free_ char *kid = NULL, *context = NULL;
	json_t *o;
	const char *k, *ctx;
	bool ok;

	if (!luks_uuid_valid(uuid)) {
		*ret_why = "luks_uuid is not a UUID";
		return -EBADMSG;
	}
	o = json_loads(blob, JSON_REJECT_DUPLICATES, NULL);
	k = json_string_value(json_object_get(o, "kid"));
	ctx = json_string_value(json_object_get(o, "context"));
	kid = hex_encode(c->server->keys.escrow_kid, SHA256_SIZE);
	if (asprintf(&context, "recovery-key:%s:%s", d->entry.device_id, uuid) < 0)
		context = NULL;
	ok = o && k && ctx && kid && context && streq(k, kid) && streq(ctx, context);
	if (!ok)
		*ret_why = !o ? "escrow blob is not JSON"
			   : !k || !kid || !streq(k, kid)
			       ? "escrow blob is not encrypted to this server's escrow key"
			       : "escrow blob context is not recovery-key:<device id>:<luks_uuid>";
	json_decref(o);
	return ok ? 0 : -EBADMSG;
}

/* Frames are answered in order: an `ack` after a result means that result is committed (the agent
 * powers off on it after a lock with poweroff, PROTOCOL.md). While a result is with the workers,
 * acks wait for it (server_device_result_done sends them). */
static int device_ack(ServerConn *c)
{
	DeviceSession *d = c->session;

	if (d->verifying) {
		d->acks_held++;
		return 0;
	}
	return conn_send(c, &(ProtoMessage){.type = PROTO_ACK});
}

static int on_escrow(ServerConn *c, const ProtoMessage *m)
{
	Server *s = c->server;
	DeviceSession *d = c->session;
	const char *why = NULL;
	int r;

	r = escrow_check(c, m->escrow.luks_uuid, m->escrow.blob, &why);
	if (r < 0) {
		device_reject(c, "bad-message", why);
		return r;
	}
	r = store_device_set_escrow(s->store, d->entry.device_id, m->escrow.blob);
	if (r >= 0)
		r = server_audit(s, "escrow.stored", d->entry.device_id,
				 json_pack("{s:s,s:s}", "luks_uuid", m->escrow.luks_uuid, "peer", c->peer));
	if (r < 0) {
		log_error_errno(r, "Cannot store the escrowed recovery key of %s: %m.", d->entry.device_id);
		device_reject(c, "internal", "server error; try again later");
		return r;
	}
	log_info("Device %s escrowed the recovery key of LUKS volume %s.", d->entry.device_id,
		 m->escrow.luks_uuid);
	return device_ack(c);
}

static int device_message(ServerConn *c, const ProtoMessage *m)
{
	Server *s = c->server;
	DeviceSession *d = c->session;
	char msg[128];
	int r;

	if (d->phase == DEVICE_AWAIT_ATTEST) {
		if (m->type == PROTO_ATTEST)
			return on_attest(c, m);
		snprintf(msg, sizeof(msg), "expected 'attest', got '%s'", proto_type_name(m->type));
		device_reject(c, "bad-message", msg);
		return -EBADMSG;
	}
	switch (m->type) {
	case PROTO_HEARTBEAT:
		(void)device_seen(c, &m->heartbeat.posture);
		r = device_ack(c);
		if (r >= 0)
			r = conn_set_deadline(c, 3 * (uint64_t)s->config.heartbeat);
		return r;
	case PROTO_ESCROW:
		return on_escrow(c, m);
	case PROTO_RESULT:
		return on_result(c, m);
	default:
		snprintf(msg, sizeof(msg), "unexpected '%s' message", proto_type_name(m->type));
		device_reject(c, "bad-message", msg);
		return -EBADMSG;
	}
}

static void device_timeout(ServerConn *c)
{
	DeviceSession *d = c->session;
	char msg[128];

	if (d && d->phase == DEVICE_ATTESTED) {
		log_info("Device %s (%s): no heartbeat for %u s; closing.", d->entry.device_id, c->peer,
			 3 * c->server->config.heartbeat);
		return;
	}
	snprintf(msg, sizeof(msg), "no attestation within %u s", c->server->config.attest_timeout);
	device_reject(c, "bad-message", msg);
}

static void device_closed(ServerConn *c)
{
	DeviceSession *d = c->session;

	if (!d)
		return;
	if (d->registered)
		server_device_unregister(c->server, &d->entry);
	free(d->image);
	ec_key_free(d->tls_key);
	free(d);
	c->session = NULL;
}

const ConnHandler device_handler = {
    .established = device_established,
    .message = device_message,
    .fail = device_reject,
    .timeout = device_timeout,
    .closed = device_closed,
};
