/* SPDX-License-Identifier: Apache-2.0 */
/* Strict, bounded decoding of device-protocol messages (docs/PROTOCOL.md "Framing").
 *
 * Two passes over the payload, neither of which allocates per item:
 *   1. find "t": walk the top-level map until the "t" key (our encoder puts it first, so this is
 *      usually one key); values before it are skipped with a depth bound;
 *   2. decode every pair against that type's schema: unknown key, duplicate key, wrong type,
 *      wrong size, bad text are refused at the first offending item, naming the field; then
 *      required keys, then no trailing bytes.
 * Text and byte strings are copied into one block owned by the message (_storage). */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "proto/proto-internal.h"

typedef struct Storage {
	size_t size, used;
	uint8_t data[];
} Storage;

typedef struct Decoder {
	ProtoCborReader r;
	Storage *st;
	const char *reason;
} Decoder;

static int fail(Decoder *d, const char *reason)
{
	d->reason = reason;
	return -EBADMSG;
}

static int fail_status(Decoder *d, const ProtoFieldReasons *r, ProtoCborStatus s)
{
	switch (s) {
	case PROTO_CBOR_TRUNCATED:
		return fail(d, r->truncated);
	case PROTO_CBOR_INDEFINITE:
		return fail(d, r->indefinite);
	default:
		return fail(d, r->malformed);
	}
}

/* Every string is copied once and never grows, and each one takes at least its head byte on the
 * wire, so the storage (payload size + 1) always has room for its bytes plus a NUL. */
static void *storage_copy(Storage *st, const uint8_t *p, size_t n, bool nul)
{
	uint8_t *q;

	if (n + nul > st->size - st->used)
		return NULL;
	q = st->data + st->used;
	if (n > 0)
		memcpy(q, p, n);
	if (nul)
		q[n] = 0;
	st->used += n + nul;
	return q;
}

static int read_item(Decoder *d, const ProtoFieldReasons *r, ProtoCborItem *ret)
{
	ProtoCborStatus s = proto_cbor_read(&d->r, ret);
	return s == PROTO_CBOR_OK ? 0 : fail_status(d, r, s);
}

static int check_text(Decoder *d, const ProtoField *f, const ProtoCborItem *it)
{
	if (it->kind != PROTO_CBOR_TEXT)
		return fail(d, f->r.type);
	if (it->len < f->min || it->len > f->max)
		return fail(d, f->r.size);
	/* An embedded NUL would make the C string differ from what was signed, logged or compared
	 * elsewhere ("tok\0en" reads as "tok"). */
	if (memchr(it->data, 0, it->len))
		return fail(d, f->r.nul);
	if (!proto_utf8_valid(it->data, it->len))
		return fail(d, f->r.utf8);
	return 0;
}

static int decode_text(Decoder *d, const ProtoField *f, const ProtoCborItem *it, const char **ret)
{
	const char *s;
	int r;

	r = check_text(d, f, it);
	if (r < 0)
		return r;
	s = storage_copy(d->st, it->data, it->len, true);
	if (!s)
		return -ENOMEM; /* cannot happen: see storage_copy */
	*ret = s;
	return 0;
}

static int decode_pcr_number(Decoder *d, const ProtoField *f, uint32_t seen, unsigned *ret)
{
	ProtoCborItem it;
	int r;

	r = read_item(d, &f->r, &it);
	if (r < 0)
		return r;
	if (it.kind != PROTO_CBOR_UINT || it.value >= PROTO_PCRS_MAX)
		return fail(d, f->r.pcr);
	if (seen & (UINT32_C(1) << it.value))
		return fail(d, f->r.pcr_dup);
	*ret = (unsigned)it.value;
	return 0;
}

static int decode_pcr_map(Decoder *d, const ProtoField *f, const ProtoCborItem *it, ProtoPcrs *ret)
{
	ProtoPcrs pcrs = {};
	int r;

	if (it->kind != PROTO_CBOR_MAP)
		return fail(d, f->r.type);
	if (it->value > PROTO_PCRS_MAX)
		return fail(d, f->r.size);
	for (uint64_t i = 0; i < it->value; i++) {
		ProtoCborItem v;
		unsigned pcr;

		r = decode_pcr_number(d, f, pcrs.mask, &pcr);
		if (r < 0)
			return r;
		r = read_item(d, &f->r, &v);
		if (r < 0)
			return r;
		if (v.kind != PROTO_CBOR_BYTES)
			return fail(d, f->r.type);
		if (v.len != sizeof(pcrs.values[pcr]))
			return fail(d, f->r.size);
		memcpy(pcrs.values[pcr], v.data, v.len);
		pcrs.mask |= UINT32_C(1) << pcr;
	}
	*ret = pcrs;
	return 0;
}

static int decode_pcr_list(Decoder *d, const ProtoField *f, const ProtoCborItem *it, uint32_t *ret)
{
	uint32_t mask = 0;
	int r;

	if (it->kind != PROTO_CBOR_ARRAY)
		return fail(d, f->r.type);
	if (it->value > PROTO_PCRS_MAX)
		return fail(d, f->r.size);
	for (uint64_t i = 0; i < it->value; i++) {
		unsigned pcr;

		r = decode_pcr_number(d, f, mask, &pcr);
		if (r < 0)
			return r;
		mask |= UINT32_C(1) << pcr;
	}
	*ret = mask;
	return 0;
}

static int decode_map(Decoder *d, const ProtoSchema *schema, uint64_t n_pairs, bool top, void *base);

static int decode_value(Decoder *d, const ProtoField *f, void *base)
{
	void *p = (uint8_t *)base + f->offset;
	ProtoCborItem it;
	int r;

	r = read_item(d, &f->r, &it);
	if (r < 0)
		return r;

	switch (f->kind) {
	case PROTO_FIELD_TEXT_OR_NULL:
		if (it.kind == PROTO_CBOR_NULL) {
			*(const char **)p = NULL;
			return 0;
		}
		__attribute__((fallthrough));
	case PROTO_FIELD_TEXT:
		return decode_text(d, f, &it, (const char **)p);

	case PROTO_FIELD_STATE:
		r = check_text(d, f, &it);
		if (r < 0)
			return r;
		/* The only two states (docs/PROTOCOL.md "Attestation"); anything else would leave the
		 * device guessing whether it is trusted. */
		if (!(it.len == strlen("trusted") && memcmp(it.data, "trusted", it.len) == 0) &&
		    !(it.len == strlen("quarantined") && memcmp(it.data, "quarantined", it.len) == 0))
			return fail(d, f->r.value);
		return decode_text(d, f, &it, (const char **)p);

	case PROTO_FIELD_BYTES: {
		ProtoBytes *b = p;

		if (it.kind != PROTO_CBOR_BYTES)
			return fail(d, f->r.type);
		if (it.len < f->min || it.len > f->max)
			return fail(d, f->r.size);
		b->data = storage_copy(d->st, it.data, it.len, false);
		if (!b->data)
			return -ENOMEM;
		b->size = it.len;
		return 0;
	}

	case PROTO_FIELD_NONCE:
		if (it.kind != PROTO_CBOR_BYTES)
			return fail(d, f->r.type);
		if (it.len != PROTO_NONCE_SIZE)
			return fail(d, f->r.size);
		memcpy(p, it.data, PROTO_NONCE_SIZE);
		return 0;

	case PROTO_FIELD_UINT64:
		if (it.kind != PROTO_CBOR_UINT)
			return fail(d, f->r.type);
		*(uint64_t *)p = it.value;
		return 0;

	case PROTO_FIELD_UINT32:
		if (it.kind != PROTO_CBOR_UINT)
			return fail(d, f->r.type);
		if (it.value > UINT32_MAX)
			return fail(d, f->r.value);
		*(uint32_t *)p = (uint32_t)it.value;
		return 0;

	case PROTO_FIELD_BOOL:
		if (it.kind != PROTO_CBOR_BOOL)
			return fail(d, f->r.type);
		*(bool *)p = it.value != 0;
		return 0;

	case PROTO_FIELD_PCR_MAP:
		return decode_pcr_map(d, f, &it, p);

	case PROTO_FIELD_PCR_LIST:
		return decode_pcr_list(d, f, &it, p);

	case PROTO_FIELD_POSTURE:
		if (it.kind != PROTO_CBOR_MAP)
			return fail(d, f->r.type);
		return decode_map(d, &proto_posture_schema, it.value, false, p);
	}
	return fail(d, f->r.type);
}

static const ProtoFieldReasons t_reasons = {
	.type = "t: wrong type",
	.dup = "t: duplicate key",
	.missing = "t: missing",
	.indefinite = "t: indefinite length",
	.truncated = "t: truncated",
	.malformed = "t: malformed CBOR",
};

static bool key_is(const ProtoCborItem *key, const char *name)
{
	return key->len == strlen(name) && memcmp(key->data, name, key->len) == 0;
}

static int decode_map(Decoder *d, const ProtoSchema *schema, uint64_t n_pairs, bool top, void *base)
{
	const ProtoFieldReasons key_reasons = {
		.type = schema->key_type,
		.indefinite = "message: indefinite length",
		.truncated = "message: truncated",
		.malformed = "message: malformed CBOR",
	};
	uint32_t seen = 0;
	bool seen_t = false;
	int r;

	for (uint64_t i = 0; i < n_pairs; i++) {
		const ProtoField *f = NULL;
		ProtoCborItem key, v;
		size_t k;

		r = read_item(d, &key_reasons, &key);
		if (r < 0)
			return r;
		if (key.kind != PROTO_CBOR_TEXT)
			return fail(d, schema->key_type);

		if (top && key_is(&key, "t")) {
			/* Pass 1 checked the first "t"; a second one could name another type to a
			 * reader that takes the last value. */
			if (seen_t)
				return fail(d, t_reasons.dup);
			seen_t = true;
			r = read_item(d, &t_reasons, &v);
			if (r < 0)
				return r;
			continue;
		}

		for (k = 0; k < schema->n_fields; k++)
			if (key_is(&key, schema->fields[k].key)) {
				f = &schema->fields[k];
				break;
			}
		/* Unknown keys are refused, not skipped: a field the peer thinks we honour and we
		 * silently ignore is how downgrade bugs start. */
		if (!f)
			return fail(d, schema->unknown_key);
		if (seen & (UINT32_C(1) << k))
			return fail(d, f->r.dup);
		seen |= UINT32_C(1) << k;

		r = decode_value(d, f, base);
		if (r < 0)
			return r;
		if (f->present_offset >= 0)
			*(bool *)((uint8_t *)base + f->present_offset) = true;
	}

	for (size_t k = 0; k < schema->n_fields; k++) {
		const ProtoField *f = &schema->fields[k];

		if (seen & (UINT32_C(1) << k))
			continue;
		if (!f->optional)
			return fail(d, f->r.missing);
		/* An optional field whose presence flag another field of its group has set is
		 * required (result.quote without quote_signature proves nothing). */
		if (f->present_offset >= 0 && *(const bool *)((const uint8_t *)base + f->present_offset))
			return fail(d, f->r.missing);
	}
	return 0;
}

static const char *message_reason(ProtoCborStatus s)
{
	switch (s) {
	case PROTO_CBOR_TRUNCATED:
		return "message: truncated";
	case PROTO_CBOR_INDEFINITE:
		return "message: indefinite length";
	case PROTO_CBOR_TOO_DEEP:
		return "message: nesting too deep";
	default:
		return "message: malformed CBOR";
	}
}

/* Pass 1: the message type, from the first "t" key of the top-level map. */
static int find_type(Decoder *d, ProtoType *ret)
{
	ProtoCborItem top, key, v;
	ProtoCborStatus s;
	ProtoType t;
	int r;

	s = proto_cbor_read(&d->r, &top);
	if (s != PROTO_CBOR_OK)
		return fail(d, message_reason(s));
	if (top.kind != PROTO_CBOR_MAP)
		return fail(d, "message: not a map");

	for (uint64_t i = 0; i < top.value; i++) {
		s = proto_cbor_read(&d->r, &key);
		if (s != PROTO_CBOR_OK)
			return fail(d, message_reason(s));
		if (key.kind != PROTO_CBOR_TEXT)
			return fail(d, "message: key not a text string");
		if (!key_is(&key, "t")) {
			s = proto_cbor_skip(&d->r, 1);
			if (s != PROTO_CBOR_OK)
				return fail(d, message_reason(s));
			continue;
		}
		r = read_item(d, &t_reasons, &v);
		if (r < 0)
			return r;
		if (v.kind != PROTO_CBOR_TEXT)
			return fail(d, t_reasons.type);
		t = proto_type_from_name(v.data, v.len);
		if (t == 0)
			return fail(d, "t: unknown message type");
		*ret = t;
		return 0;
	}
	return fail(d, t_reasons.missing);
}

int proto_decode(const uint8_t *buf, size_t n, ProtoMessage *ret, const char **ret_reason)
{
	ProtoMessage m = {};
	Decoder d = {};
	ProtoCborItem top;
	ProtoType t = 0;
	int r;

	assert(ret);
	assert(buf || n == 0);

	if (n == 0)
		r = fail(&d, "message: empty");
	else if (n > PROTO_FRAME_MAX)
		r = fail(&d, "message: larger than PROTO_FRAME_MAX");
	else {
		d.r = (ProtoCborReader){.buf = buf, .size = n};
		r = find_type(&d, &t);
	}
	if (r < 0)
		goto out;

	d.st = malloc(sizeof(Storage) + n + 1);
	if (!d.st) {
		r = -ENOMEM;
		goto out;
	}
	*d.st = (Storage){.size = n + 1};

	m.type = t;
	d.r = (ProtoCborReader){.buf = buf, .size = n};
	if (proto_cbor_read(&d.r, &top) != PROTO_CBOR_OK || top.kind != PROTO_CBOR_MAP) {
		r = fail(&d, "message: not a map"); /* pass 1 read it: cannot happen */
		goto out;
	}
	r = decode_map(&d, proto_schema(t), top.value, true, &m);
	if (r < 0)
		goto out;
	/* One frame is one map: bytes after it would be read by nobody, or by a different parser
	 * differently. */
	if (d.r.pos != n) {
		r = fail(&d, "message: trailing bytes");
		goto out;
	}

	m._storage = TAKE_PTR(d.st);
	*ret = m;
	return 0;

out:
	if (d.st) {
		memory_erase(d.st, sizeof(Storage) + d.st->size);
		free(d.st);
	}
	if (r == -EBADMSG) {
		log_debug("Refusing %s message: %s", t > 0 ? proto_type_name(t) : "a", d.reason);
		if (ret_reason)
			*ret_reason = d.reason;
	}
	return r;
}

void proto_message_done(ProtoMessage *m)
{
	Storage *st;

	if (!m)
		return;
	st = m->_storage;
	if (st) {
		memory_erase(st, sizeof(Storage) + st->size);
		free(st);
	}
	*m = (ProtoMessage){};
}
