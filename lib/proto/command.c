/* SPDX-License-Identifier: Apache-2.0 */
/* Signed remote commands and their results (command.h; docs/PROTOCOL.md "Commands").
 *
 * The payloads are decoded as strictly as the protocol messages (proto-decode.c): definite
 * lengths, text keys, each key once, no unknown key, exact types, bounded and NUL-free UTF-8
 * text. A command is checked in a fixed order — size, signature (kid first), payload, device,
 * sequence, time, type — so that the errno a device reports says the first thing that is wrong,
 * and so that nothing of an unsigned payload is looked at. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "proto/command-internal.h"
#include "proto/cose.h"
#include "proto/proto-internal.h"

/* external_aad of each envelope (RFC 9052 §4.3): a result can never pass as a command, nor a
 * command as a result, even when one key signed both. */
#define COMMAND_AAD "trustpc-command"
#define RESULT_AAD "trustpc-result"

#define WIPE_CLASS_MAX 64

static const char *const type_names[] = {
    [COMMAND_LOCK] = "lock",
    [COMMAND_UNLOCK] = "unlock",
    [COMMAND_WIPE] = "wipe",
    [COMMAND_POLICY] = "policy",
};

static const char *const status_names[] = {
    [RESULT_DONE] = "done",
    [RESULT_REJECTED] = "rejected",
    [RESULT_FAILED] = "failed",
};

const char *command_type_name(CommandType t)
{
	if (t <= 0 || (size_t)t >= ELEMENTSOF(type_names))
		return NULL;
	return type_names[t];
}

static CommandType type_from_bytes(const uint8_t *s, size_t n)
{
	for (size_t t = 1; t < ELEMENTSOF(type_names); t++)
		if (strlen(type_names[t]) == n && memcmp(type_names[t], s, n) == 0)
			return (CommandType)t;
	return 0;
}

int command_type_from_name(const char *s, CommandType *ret)
{
	CommandType t;

	assert(s);
	t = type_from_bytes((const uint8_t *)s, strlen(s));
	if (t == 0)
		return -EINVAL;
	if (ret)
		*ret = t;
	return 0;
}

const char *result_status_name(ResultStatus s)
{
	if (s <= 0 || (size_t)s >= ELEMENTSOF(status_names))
		return NULL;
	return status_names[s];
}

static ResultStatus status_from_bytes(const uint8_t *s, size_t n)
{
	for (size_t t = 1; t < ELEMENTSOF(status_names); t++)
		if (strlen(status_names[t]) == n && memcmp(status_names[t], s, n) == 0)
			return (ResultStatus)t;
	return 0;
}

void command_done(Command *c)
{
	if (!c)
		return;
	free(c->issuer);
	switch (c->type) {
	case COMMAND_LOCK:
		free(c->args.lock.reason);
		break;
	case COMMAND_UNLOCK:
		free(c->args.unlock.policy);
		break;
	case COMMAND_WIPE:
		free(c->args.wipe.class_name);
		break;
	default:
		break;
	}
	*c = (Command){};
}

void command_result_done(CommandResult *r)
{
	if (!r)
		return;
	free(r->reason);
	*r = (CommandResult){};
}

/* ---- value rules, shared by the encoders (-EINVAL) and the decoders (-EBADMSG) ---- */

static bool text_ok(const uint8_t *s, size_t n, size_t min, size_t max)
{
	return n >= min && n <= max && !memchr(s, 0, n) && proto_utf8_valid(s, n);
}

/* Ids are 32 lower-case hex digits: one spelling per id, so that the server's "same id"
 * comparison and the device's agree (upper-case would be a second name for the same bytes). */
static bool id_ok(const uint8_t *s, size_t n)
{
	if (n != COMMAND_ID_SIZE * 2)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A data class names a group of volumes in the device's config and may end up in a log line or
 * a path: a plain word, never "..", "/" or a control character. */
static bool class_ok(const uint8_t *s, size_t n)
{
	if (n == 0 || n > WIPE_CLASS_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

static bool ctext_ok(const char *s, size_t min, size_t max)
{
	return s && text_ok((const uint8_t *)s, strlen(s), min, max);
}

static bool cid_ok(const char *s)
{
	return id_ok((const uint8_t *)s, strlen(s));
}

/* ---- decoding ---- */

typedef struct Reasons {
	const char *type, *size, *value, *dup, *missing;
} Reasons;

#define REASONS(name)                                                                                       \
	{                                                                                                   \
		.type = name ": wrong type", .size = name ": wrong size", .value = name ": bad value",      \
		.dup = name ": duplicate key", .missing = name ": missing",                                 \
	}

/* One map of a document: its keys and the reasons for the map as a whole. */
typedef struct MapSpec {
	const char *const *keys;
	const Reasons *r; /* per key */
	size_t n_keys;
	const char *not_map, *unknown_key, *key_type, *truncated, *indefinite, *malformed;
} MapSpec;

#define MAP_SPEC(name, keys_, reasons_)                                                                     \
	{                                                                                                   \
		.keys = keys_, .r = reasons_, .n_keys = ELEMENTSOF(keys_), .not_map = name ": wrong type",  \
		.unknown_key = name ": unknown key", .key_type = name ": key not a text string",            \
		.truncated = name ": truncated", .indefinite = name ": indefinite length",                  \
		.malformed = name ": malformed CBOR",                                                       \
	}

typedef struct Dec {
	ProtoCborReader r;
	const MapSpec *spec;
	const char *reason;
} Dec;

static int dec_fail(Dec *d, const char *reason)
{
	d->reason = reason;
	return -EBADMSG;
}

static int dec_read(Dec *d, ProtoCborItem *ret)
{
	switch (proto_cbor_read(&d->r, ret)) {
	case PROTO_CBOR_OK:
		return 0;
	case PROTO_CBOR_TRUNCATED:
		return dec_fail(d, d->spec->truncated);
	case PROTO_CBOR_INDEFINITE:
		return dec_fail(d, d->spec->indefinite);
	default:
		return dec_fail(d, d->spec->malformed);
	}
}

/* Reads the map head of d->spec; *ret_pairs its pair count. */
static int dec_map(Dec *d, uint64_t *ret_pairs)
{
	ProtoCborItem it;
	int r;

	r = dec_read(d, &it);
	if (r < 0)
		return r;
	if (it.kind != PROTO_CBOR_MAP)
		return dec_fail(d, d->spec->not_map);
	*ret_pairs = it.value;
	return 0;
}

/* Reads a key of d->spec: its index; refuses unknown and repeated keys (a second value for a key
 * is how two parsers come to disagree on what was signed). */
static int dec_key(Dec *d, uint32_t *seen, size_t *ret)
{
	ProtoCborItem it;
	int r;

	r = dec_read(d, &it);
	if (r < 0)
		return r;
	if (it.kind != PROTO_CBOR_TEXT)
		return dec_fail(d, d->spec->key_type);
	for (size_t k = 0; k < d->spec->n_keys; k++) {
		const char *key = d->spec->keys[k];

		if (strlen(key) != it.len || memcmp(key, it.data, it.len) != 0)
			continue;
		if (*seen & (UINT32_C(1) << k))
			return dec_fail(d, d->spec->r[k].dup);
		*seen |= UINT32_C(1) << k;
		*ret = k;
		return 0;
	}
	return dec_fail(d, d->spec->unknown_key);
}

static int dec_missing(Dec *d, uint32_t seen, uint32_t optional)
{
	for (size_t k = 0; k < d->spec->n_keys; k++)
		if (!(seen & (UINT32_C(1) << k)) && !(optional & (UINT32_C(1) << k)))
			return dec_fail(d, d->spec->r[k].missing);
	return 0;
}

static int dec_uint(Dec *d, size_t k, uint64_t max, uint64_t *ret)
{
	ProtoCborItem it;
	int r;

	r = dec_read(d, &it);
	if (r < 0)
		return r;
	if (it.kind != PROTO_CBOR_UINT)
		return dec_fail(d, d->spec->r[k].type);
	if (it.value > max)
		return dec_fail(d, d->spec->r[k].value);
	*ret = it.value;
	return 0;
}

static int dec_bool(Dec *d, size_t k, bool *ret)
{
	ProtoCborItem it;
	int r;

	r = dec_read(d, &it);
	if (r < 0)
		return r;
	if (it.kind != PROTO_CBOR_BOOL)
		return dec_fail(d, d->spec->r[k].type);
	*ret = it.value != 0;
	return 0;
}

/* A text item, checked (min..max bytes, no NUL, UTF-8) but not copied. */
static int dec_text_item(Dec *d, size_t k, size_t min, size_t max, ProtoCborItem *ret)
{
	int r;

	r = dec_read(d, ret);
	if (r < 0)
		return r;
	if (ret->kind != PROTO_CBOR_TEXT)
		return dec_fail(d, d->spec->r[k].type);
	if (ret->len < min || ret->len > max)
		return dec_fail(d, d->spec->r[k].size);
	if (!text_ok(ret->data, ret->len, min, max))
		return dec_fail(d, d->spec->r[k].value);
	return 0;
}

static int dec_text(Dec *d, size_t k, size_t min, size_t max, char **ret)
{
	ProtoCborItem it;
	char *s;
	int r;

	r = dec_text_item(d, k, min, max, &it);
	if (r < 0)
		return r;
	s = memdup_str(it.data, it.len);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

/* id/device: 32 lower-case hex; allow_empty for a result's id of an unparsable command. */
static int dec_id(Dec *d, size_t k, bool allow_empty, char out[static COMMAND_ID_SIZE * 2 + 1])
{
	ProtoCborItem it;
	int r;

	r = dec_text_item(d, k, 0, COMMAND_ID_SIZE * 2, &it);
	if (r < 0)
		return r;
	if (!(allow_empty && it.len == 0) && !id_ok(it.data, it.len))
		return dec_fail(d, d->spec->r[k].value);
	memcpy(out, it.data, it.len);
	out[it.len] = 0;
	return 0;
}

/* ---- command arguments ---- */

static const char *const lock_keys[] = {"reason", "poweroff"};
static const Reasons lock_reasons[] = {REASONS("command.args.reason"), REASONS("command.args.poweroff")};
static const MapSpec lock_spec = MAP_SPEC("command.args", lock_keys, lock_reasons);

static const char *const unlock_keys[] = {"policy"};
static const Reasons unlock_reasons[] = {REASONS("command.args.policy")};
static const MapSpec unlock_spec = MAP_SPEC("command.args", unlock_keys, unlock_reasons);

static const char *const wipe_keys[] = {"class"};
static const Reasons wipe_reasons[] = {REASONS("command.args.class")};
static const MapSpec wipe_spec = MAP_SPEC("command.args", wipe_keys, wipe_reasons);

static const char *const policy_keys[] = {"version", "heartbeat", "offline_lease", "usb_storage",
					  "screen_lock"};
static const Reasons policy_reasons[] = {
    REASONS("command.args.version"),	   REASONS("command.args.heartbeat"),
    REASONS("command.args.offline_lease"), REASONS("command.args.usb_storage"),
    REASONS("command.args.screen_lock"),
};
static const MapSpec policy_spec = MAP_SPEC("command.args", policy_keys, policy_reasons);

static const MapSpec *const args_specs[] = {
    [COMMAND_LOCK] = &lock_spec,
    [COMMAND_UNLOCK] = &unlock_spec,
    [COMMAND_WIPE] = &wipe_spec,
    [COMMAND_POLICY] = &policy_spec,
};

static int dec_arg(Dec *d, Command *c, size_t k)
{
	uint64_t v;
	int r;

	switch (c->type) {
	case COMMAND_LOCK:
		if (k == 0)
			return dec_text(d, k, 0, PROTO_TEXT_MAX, &c->args.lock.reason);
		return dec_bool(d, k, &c->args.lock.poweroff);

	case COMMAND_UNLOCK:
		/* a signed disk policy is a document, bounded like the protocol's blobs */
		return dec_text(d, k, 1, PROTO_BLOB_MAX, &c->args.unlock.policy);

	case COMMAND_WIPE: {
		ProtoCborItem it;

		r = dec_text_item(d, k, 1, WIPE_CLASS_MAX, &it);
		if (r < 0)
			return r;
		if (!class_ok(it.data, it.len))
			return dec_fail(d, d->spec->r[k].value);
		c->args.wipe.class_name = memdup_str(it.data, it.len);
		return c->args.wipe.class_name ? 0 : -ENOMEM;
	}

	case COMMAND_POLICY: {
		DevicePolicy *p = &c->args.policy;

		switch (k) {
		case 0:
			return dec_uint(d, k, UINT64_MAX, &p->version);
		case 1:
			r = dec_uint(d, k, UINT32_MAX, &v);
			p->heartbeat = (uint32_t)v;
			return r;
		case 2:
			return dec_uint(d, k, UINT64_MAX, &p->offline_lease);
		case 3:
			return dec_bool(d, k, &p->usb_storage);
		default:
			r = dec_uint(d, k, UINT32_MAX, &v);
			p->screen_lock = (uint32_t)v;
			return r;
		}
	}
	}
	return -EINVAL; /* cannot happen: called for known types only */
}

/* The args map, exactly the keys of c->type. */
static int dec_args(Dec *d, Command *c)
{
	uint32_t seen = 0;
	uint64_t pairs;
	int r;

	d->spec = args_specs[c->type];
	r = dec_map(d, &pairs);
	if (r < 0)
		return r;
	for (uint64_t i = 0; i < pairs; i++) {
		size_t k;

		r = dec_key(d, &seen, &k);
		if (r < 0)
			return r;
		r = dec_arg(d, c, k);
		if (r < 0)
			return r;
	}
	r = dec_missing(d, seen, 0);
	if (r < 0)
		return r;
	if (c->type == COMMAND_POLICY)
		return device_policy_check(&c->args.policy, false, &d->reason);
	return 0;
}

/* ---- the command payload ---- */

enum { CK_ID, CK_DEVICE, CK_SEQ, CK_IAT, CK_EXP, CK_TYPE, CK_ARGS, CK_ISSUER };
static const char *const command_keys[] = {"id", "device", "seq", "iat", "exp", "type", "args", "issuer"};
static const Reasons command_reasons[] = {
    REASONS("command.id"),  REASONS("command.device"), REASONS("command.seq"),	REASONS("command.iat"),
    REASONS("command.exp"), REASONS("command.type"),   REASONS("command.args"), REASONS("command.issuer"),
};
static const MapSpec command_spec = MAP_SPEC("command", command_keys, command_reasons);

/* Decodes a verified payload into *ret (type 0 for a type we do not know: its args are then only
 * skipped, and the caller reports -EOPNOTSUPP after the device, sequence and time checks). */
static int command_decode(const uint8_t *p, size_t n, Command *ret, const char **reason)
{
	Dec d = {.r = {.buf = p, .size = n}, .spec = &command_spec};
	_cleanup_(command_done) Command c = {};
	size_t args_pos = 0;
	uint32_t seen = 0;
	uint64_t pairs;
	int r;

	r = dec_map(&d, &pairs);
	if (r < 0) {
		if (d.reason == command_spec.not_map)
			d.reason = "command: payload not a map";
		goto out;
	}
	for (uint64_t i = 0; i < pairs; i++) {
		ProtoCborItem it;
		size_t k;

		r = dec_key(&d, &seen, &k);
		if (r < 0)
			goto out;
		switch (k) {
		case CK_ID:
			r = dec_id(&d, k, false, c.id);
			break;
		case CK_DEVICE:
			r = dec_id(&d, k, false, c.device_id);
			break;
		case CK_SEQ:
			r = dec_uint(&d, k, UINT64_MAX, &c.seq);
			/* 0 is "nothing executed yet" on the device: a command must come after it */
			if (r >= 0 && c.seq == 0)
				r = dec_fail(&d, command_reasons[k].value);
			break;
		case CK_IAT:
			r = dec_uint(&d, k, UINT64_MAX, &c.iat);
			break;
		case CK_EXP:
			r = dec_uint(&d, k, UINT64_MAX, &c.exp);
			break;
		case CK_TYPE:
			r = dec_text_item(&d, k, 1, PROTO_TEXT_MAX, &it);
			if (r >= 0)
				c.type = type_from_bytes(it.data, it.len);
			break;
		case CK_ARGS:
			/* read once the type is known (it may come after args) */
			args_pos = d.r.pos;
			if (proto_cbor_skip(&d.r, 1) != PROTO_CBOR_OK)
				r = dec_fail(&d, "command.args: malformed, truncated or nested too deep");
			break;
		default:
			r = dec_text(&d, k, 1, PROTO_TEXT_MAX, &c.issuer);
		}
		if (r < 0)
			goto out;
	}
	r = dec_missing(&d, seen, 0);
	if (r < 0)
		goto out;
	if (d.r.pos != n) {
		r = dec_fail(&d, "command: trailing bytes");
		goto out;
	}
	if (c.exp <= c.iat) {
		r = dec_fail(&d, "command.exp: not after iat");
		goto out;
	}
	if (c.type != 0) {
		Dec a = {.r = {.buf = p, .size = d.r.pos, .pos = args_pos}};

		r = dec_args(&a, &c);
		if (r < 0) {
			d.reason = a.reason;
			goto out;
		}
	}
	*ret = c;
	c = (Command){};
	return 0;

out:
	if (r == -EBADMSG)
		*reason = d.reason;
	return r;
}

/* ---- encoding ---- */

static void put_text(ProtoCborWriter *w, const char *s)
{
	proto_cbor_put_text(w, s, strlen(s));
}

static int command_check(const Command *c)
{
	if (!cid_ok(c->id) || !cid_ok(c->device_id) || c->seq == 0 || c->exp <= c->iat ||
	    !command_type_name(c->type) || !ctext_ok(c->issuer, 1, PROTO_TEXT_MAX))
		return -EINVAL;
	switch (c->type) {
	case COMMAND_LOCK:
		return ctext_ok(c->args.lock.reason, 0, PROTO_TEXT_MAX) ? 0 : -EINVAL;
	case COMMAND_UNLOCK:
		return ctext_ok(c->args.unlock.policy, 1, PROTO_BLOB_MAX) ? 0 : -EINVAL;
	case COMMAND_WIPE:
		return c->args.wipe.class_name && class_ok((const uint8_t *)c->args.wipe.class_name,
							   strlen(c->args.wipe.class_name))
			   ? 0
			   : -EINVAL;
	case COMMAND_POLICY:
		return device_policy_check(&c->args.policy, false, NULL) < 0 ? -EINVAL : 0;
	}
	return -EINVAL;
}

static void put_args(ProtoCborWriter *w, const Command *c)
{
	const DevicePolicy *p = &c->args.policy;

	switch (c->type) {
	case COMMAND_LOCK:
		proto_cbor_put_map(w, 2);
		put_text(w, "reason");
		put_text(w, c->args.lock.reason);
		put_text(w, "poweroff");
		proto_cbor_put_bool(w, c->args.lock.poweroff);
		break;
	case COMMAND_UNLOCK:
		proto_cbor_put_map(w, 1);
		put_text(w, "policy");
		put_text(w, c->args.unlock.policy);
		break;
	case COMMAND_WIPE:
		proto_cbor_put_map(w, 1);
		put_text(w, "class");
		put_text(w, c->args.wipe.class_name);
		break;
	case COMMAND_POLICY:
		proto_cbor_put_map(w, 5);
		put_text(w, "version");
		proto_cbor_put_uint(w, p->version);
		put_text(w, "heartbeat");
		proto_cbor_put_uint(w, p->heartbeat);
		put_text(w, "offline_lease");
		proto_cbor_put_uint(w, p->offline_lease);
		put_text(w, "usb_storage");
		proto_cbor_put_bool(w, p->usb_storage);
		put_text(w, "screen_lock");
		proto_cbor_put_uint(w, p->screen_lock);
		break;
	}
}

/* Signs the payload in w (or returns its error); the envelope can never be larger than a verifier
 * takes: cose_sign1_sign says -EFBIG. */
static int sign_payload(const EcKey *key, const char *aad, ProtoCborWriter *w, uint8_t **ret_cose,
			size_t *ret_size)
{
	int r;

	if (w->error < 0)
		r = w->error == -EMSGSIZE ? -EFBIG : w->error;
	else
		r = cose_sign1_sign(key, aad, strlen(aad), w->buf, w->size, ret_cose, ret_size);
	proto_cbor_writer_done(w);
	return r;
}

int command_sign(const EcKey *command_key, Command *c, uint8_t **ret_cose, size_t *ret_size)
{
	ProtoCborWriter w = {.max = COSE_MAX_SIZE};
	int r;

	assert(command_key);
	assert(c);
	assert(ret_cose);
	assert(ret_size);

	if (c->id[0] == 0) {
		uint8_t id[COMMAND_ID_SIZE];
		_cleanup_free_ char *hex = NULL;

		r = crypto_random_bytes(id, sizeof(id));
		if (r < 0)
			return r;
		hex = hex_encode(id, sizeof(id));
		if (!hex)
			return -ENOMEM;
		memcpy(c->id, hex, sizeof(c->id));
	}
	r = command_check(c);
	if (r < 0)
		return r;

	/* keys in the order of command.h (the preferred serialization of RFC 8949 §4.2.1 for heads) */
	proto_cbor_put_map(&w, ELEMENTSOF(command_keys));
	put_text(&w, "id");
	put_text(&w, c->id);
	put_text(&w, "device");
	put_text(&w, c->device_id);
	put_text(&w, "seq");
	proto_cbor_put_uint(&w, c->seq);
	put_text(&w, "iat");
	proto_cbor_put_uint(&w, c->iat);
	put_text(&w, "exp");
	proto_cbor_put_uint(&w, c->exp);
	put_text(&w, "type");
	put_text(&w, command_type_name(c->type));
	put_text(&w, "args");
	put_args(&w, c);
	put_text(&w, "issuer");
	put_text(&w, c->issuer);
	return sign_payload(command_key, COMMAND_AAD, &w, ret_cose, ret_size);
}

int command_verify(const EcKey *command_key, const char *device_id, uint64_t last_seq, uint64_t now,
		   const uint8_t *cose, size_t n, Command *ret, const char **ret_reason)
{
	_cleanup_(command_done) Command c = {};
	_cleanup_free_ uint8_t *payload = NULL;
	const char *reason = NULL;
	size_t payload_size = 0;
	int r;

	assert(command_key);
	assert(device_id);
	assert(cose || n == 0);
	assert(ret);

	/* 1. size, before anything is parsed */
	if (n > COSE_MAX_SIZE) {
		reason = "command: larger than COSE_MAX_SIZE";
		r = -EFBIG;
		goto fail;
	}
	/* 2. signature: kid (-ENOKEY), then ES256 over the payload and our external_aad */
	r = cose_sign1_verify(command_key, COMMAND_AAD, strlen(COMMAND_AAD), cose, n, &payload,
			      &payload_size, &reason);
	if (r < 0)
		goto fail;
	/* 3. the payload, now that it is known to come from the command key */
	r = command_decode(payload, payload_size, &c, &reason);
	if (r < 0)
		goto fail;
	/* 4. a command signed for another device must not run here (the server's key signs for all) */
	if (!streq(c.device_id, device_id)) {
		reason = "command: for another device";
		r = -EXDEV;
		goto fail;
	}
	/* 5. replay and rollback: only a sequence above the last executed one runs; the caller
	 * answers a redelivery of the last one (same id) with the result it stored. */
	if (c.seq <= last_seq) {
		reason = "command: sequence not above the last executed one (replayed or old)";
		log_debug("Refusing command %s: %s (seq %" PRIu64 " <= %" PRIu64 ")", c.id, reason, c.seq,
			  last_seq);
		if (ret_reason)
			*ret_reason = reason;
		*ret = c;
		c = (Command){};
		return -ESTALE;
	}
	/* 6. time: a command held back until its moment has passed, or dated ahead to outlive its
	 * expiry, does not run */
	if (now > c.exp) {
		reason = "command: expired";
		r = -ETIME;
		goto fail;
	}
	if (c.iat > now && c.iat - now > COMMAND_CLOCK_SKEW) {
		reason = "command: issued in the future";
		r = -ETIME;
		goto fail;
	}
	/* 7. a type from a newer server: signed and meant for us, but we cannot do it */
	if (c.type == 0) {
		reason = "command: unknown type";
		r = -EOPNOTSUPP;
		goto fail;
	}
	*ret = c;
	c = (Command){};
	return 0;

fail:
	if (reason) {
		log_debug("Refusing command: %s", reason);
		if (ret_reason)
			*ret_reason = reason;
	}
	return r;
}

/* ---- results ---- */

enum { RK_ID, RK_DEVICE, RK_SEQ, RK_TYPE, RK_STATUS, RK_REASON, RK_TIME, RK_EPOCH };
static const char *const result_keys[] = {"id",	    "device", "seq",  "type",
					  "status", "reason", "time", "epoch"};
static const Reasons result_reasons[] = {
    REASONS("result.id"),     REASONS("result.device"), REASONS("result.seq"),	REASONS("result.type"),
    REASONS("result.status"), REASONS("result.reason"), REASONS("result.time"), REASONS("result.epoch"),
};
static const MapSpec result_spec = MAP_SPEC("result", result_keys, result_reasons);

static int result_check(const CommandResult *r)
{
	if ((r->id[0] != 0 && !cid_ok(r->id)) || !cid_ok(r->device_id) || !result_status_name(r->status) ||
	    (r->type != 0 && !command_type_name(r->type)) || !ctext_ok(r->reason, 0, PROTO_TEXT_MAX))
		return -EINVAL;
	return 0;
}

int command_result_sign(const EcKey *device_key, const CommandResult *r, uint8_t **ret_cose,
			size_t *ret_size)
{
	ProtoCborWriter w = {.max = COSE_MAX_SIZE};
	int k;

	assert(device_key);
	assert(r);
	assert(ret_cose);
	assert(ret_size);

	k = result_check(r);
	if (k < 0)
		return k;

	proto_cbor_put_map(&w, ELEMENTSOF(result_keys) - !r->has_epoch);
	put_text(&w, "id");
	put_text(&w, r->id);
	put_text(&w, "device");
	put_text(&w, r->device_id);
	put_text(&w, "seq");
	proto_cbor_put_uint(&w, r->seq);
	put_text(&w, "type");
	if (r->type == 0)
		proto_cbor_put_null(&w);
	else
		put_text(&w, command_type_name(r->type));
	put_text(&w, "status");
	put_text(&w, result_status_name(r->status));
	put_text(&w, "reason");
	put_text(&w, r->reason);
	put_text(&w, "time");
	proto_cbor_put_uint(&w, r->time);
	if (r->has_epoch) {
		put_text(&w, "epoch");
		proto_cbor_put_uint(&w, r->epoch);
	}
	return sign_payload(device_key, RESULT_AAD, &w, ret_cose, ret_size);
}

static int result_decode(const uint8_t *p, size_t n, CommandResult *ret, const char **reason)
{
	Dec d = {.r = {.buf = p, .size = n}, .spec = &result_spec};
	_cleanup_(command_result_done) CommandResult res = {};
	uint32_t seen = 0;
	uint64_t pairs;
	int r;

	r = dec_map(&d, &pairs);
	if (r < 0) {
		if (d.reason == result_spec.not_map)
			d.reason = "result: payload not a map";
		goto out;
	}
	for (uint64_t i = 0; i < pairs; i++) {
		ProtoCborItem it;
		size_t k;

		r = dec_key(&d, &seen, &k);
		if (r < 0)
			goto out;
		switch (k) {
		case RK_ID:
			r = dec_id(&d, k, true, res.id);
			break;
		case RK_DEVICE:
			r = dec_id(&d, k, false, res.device_id);
			break;
		case RK_SEQ:
			r = dec_uint(&d, k, UINT64_MAX, &res.seq);
			break;
		case RK_TYPE:
			/* null: the command could not be parsed, or its type is unknown to the device */
			r = dec_read(&d, &it);
			if (r < 0 || it.kind == PROTO_CBOR_NULL)
				break;
			if (it.kind != PROTO_CBOR_TEXT)
				r = dec_fail(&d, result_reasons[k].type);
			else if ((res.type = type_from_bytes(it.data, it.len)) == 0)
				r = dec_fail(&d, result_reasons[k].value);
			break;
		case RK_STATUS:
			r = dec_text_item(&d, k, 1, PROTO_TEXT_MAX, &it);
			if (r >= 0 && (res.status = status_from_bytes(it.data, it.len)) == 0)
				r = dec_fail(&d, result_reasons[k].value);
			break;
		case RK_REASON:
			r = dec_text(&d, k, 0, PROTO_TEXT_MAX, &res.reason);
			break;
		case RK_TIME:
			r = dec_uint(&d, k, UINT64_MAX, &res.time);
			break;
		default:
			r = dec_uint(&d, k, UINT64_MAX, &res.epoch);
			res.has_epoch = r >= 0;
		}
		if (r < 0)
			goto out;
	}
	r = dec_missing(&d, seen, UINT32_C(1) << RK_EPOCH);
	if (r < 0)
		goto out;
	if (d.r.pos != n) {
		r = dec_fail(&d, "result: trailing bytes");
		goto out;
	}
	*ret = res;
	res = (CommandResult){};
	return 0;

out:
	if (r == -EBADMSG)
		*reason = d.reason;
	return r;
}

int command_result_verify(const EcKey *device_key, const uint8_t *cose, size_t n, CommandResult *ret,
			  const char **ret_reason)
{
	_cleanup_free_ uint8_t *payload = NULL;
	const char *reason = NULL;
	size_t payload_size = 0;
	int r;

	assert(device_key);
	assert(cose || n == 0);
	assert(ret);

	if (n > COSE_MAX_SIZE) {
		reason = "result: larger than COSE_MAX_SIZE";
		r = -EFBIG;
		goto fail;
	}
	r = cose_sign1_verify(device_key, RESULT_AAD, strlen(RESULT_AAD), cose, n, &payload, &payload_size,
			      &reason);
	if (r < 0)
		goto fail;
	r = result_decode(payload, payload_size, ret, &reason);
	if (r < 0)
		goto fail;
	return 0;

fail:
	if (reason) {
		log_debug("Refusing command result: %s", reason);
		if (ret_reason)
			*ret_reason = reason;
	}
	return r;
}
