/* SPDX-License-Identifier: Apache-2.0 */
/* Encoding of device-protocol messages, the frame header, and message comparison. The encoder
 * applies the decoder's rules to its input, so that we never send what a peer must refuse. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "basic/macro.h"
#include "proto/proto-internal.h"

static size_t popcount24(uint32_t mask)
{
	return (size_t)__builtin_popcount(mask & ((UINT32_C(1) << PROTO_PCRS_MAX) - 1));
}

static bool field_present(const ProtoField *f, const void *base)
{
	const void *p = (const uint8_t *)base + f->offset;

	if (!f->optional)
		return true;
	if (f->present_offset >= 0)
		return *(const bool *)((const uint8_t *)base + f->present_offset);
	if (f->kind == PROTO_FIELD_TEXT)
		return *(const char *const *)p != NULL;
	return true; /* optional numbers and booleans are always sent */
}

static int check_text(const ProtoField *f, const char *s)
{
	size_t n;

	if (!s)
		return -EINVAL;
	n = strlen(s);
	if (n < f->min || n > f->max || !proto_utf8_valid((const uint8_t *)s, n))
		return -EINVAL;
	return 0;
}

static int encode_map(ProtoCborWriter *w, const ProtoSchema *schema, const void *base, const char *t);

static int encode_value(ProtoCborWriter *w, const ProtoField *f, const void *base)
{
	const void *p = (const uint8_t *)base + f->offset;
	int r;

	switch (f->kind) {
	case PROTO_FIELD_TEXT_OR_NULL:
		if (!*(const char *const *)p) {
			proto_cbor_put_null(w);
			return 0;
		}
		__attribute__((fallthrough));
	case PROTO_FIELD_TEXT:
	case PROTO_FIELD_STATE: {
		const char *s = *(const char *const *)p;

		r = check_text(f, s);
		if (r < 0)
			return r;
		if (f->kind == PROTO_FIELD_STATE && !streq(s, "trusted") && !streq(s, "quarantined"))
			return -EINVAL;
		proto_cbor_put_text(w, s, strlen(s));
		return 0;
	}

	case PROTO_FIELD_BYTES: {
		const ProtoBytes *b = p;

		if ((!b->data && b->size > 0) || b->size < f->min || b->size > f->max)
			return -EINVAL;
		proto_cbor_put_bytes(w, b->data, b->size);
		return 0;
	}

	case PROTO_FIELD_NONCE:
		proto_cbor_put_bytes(w, p, PROTO_NONCE_SIZE);
		return 0;

	case PROTO_FIELD_UINT64:
		proto_cbor_put_uint(w, *(const uint64_t *)p);
		return 0;

	case PROTO_FIELD_UINT32:
		proto_cbor_put_uint(w, *(const uint32_t *)p);
		return 0;

	case PROTO_FIELD_BOOL:
		proto_cbor_put_bool(w, *(const bool *)p);
		return 0;

	case PROTO_FIELD_PCR_MAP: {
		const ProtoPcrs *pcrs = p;

		if (pcrs->mask >> PROTO_PCRS_MAX)
			return -EINVAL;
		proto_cbor_put_map(w, popcount24(pcrs->mask));
		for (unsigned i = 0; i < PROTO_PCRS_MAX; i++)
			if (pcrs->mask & (UINT32_C(1) << i)) {
				proto_cbor_put_uint(w, i);
				proto_cbor_put_bytes(w, pcrs->values[i], sizeof(pcrs->values[i]));
			}
		return 0;
	}

	case PROTO_FIELD_PCR_LIST: {
		uint32_t mask = *(const uint32_t *)p;

		if (mask >> PROTO_PCRS_MAX)
			return -EINVAL;
		proto_cbor_put_array(w, popcount24(mask));
		for (unsigned i = 0; i < PROTO_PCRS_MAX; i++)
			if (mask & (UINT32_C(1) << i))
				proto_cbor_put_uint(w, i);
		return 0;
	}

	case PROTO_FIELD_POSTURE:
		return encode_map(w, &proto_posture_schema, p, NULL);
	}
	return -EINVAL;
}

/* t: the message type for the top-level map ("t" goes first, so that a reader finds it at
 * once), NULL for nested maps. */
static int encode_map(ProtoCborWriter *w, const ProtoSchema *schema, const void *base, const char *t)
{
	size_t n = t ? 1 : 0;
	int r;

	for (size_t k = 0; k < schema->n_fields; k++)
		n += field_present(&schema->fields[k], base);

	proto_cbor_put_map(w, n);
	if (t) {
		proto_cbor_put_text(w, "t", 1);
		proto_cbor_put_text(w, t, strlen(t));
	}
	for (size_t k = 0; k < schema->n_fields; k++) {
		const ProtoField *f = &schema->fields[k];

		if (!field_present(f, base))
			continue;
		proto_cbor_put_text(w, f->key, strlen(f->key));
		r = encode_value(w, f, base);
		if (r < 0)
			return r;
	}
	return 0;
}

int proto_encode(const ProtoMessage *m, uint8_t **ret, size_t *ret_size)
{
	ProtoCborWriter w = {.max = 4 + PROTO_FRAME_MAX};
	const ProtoSchema *schema;
	static const uint8_t zero[4] = {};
	size_t payload;
	int r;

	assert(m);
	assert(ret);
	assert(ret_size);

	schema = proto_schema(m->type);
	if (!schema)
		return -EINVAL;

	proto_cbor_put_raw(&w, zero, sizeof(zero)); /* the length, filled in below */
	r = encode_map(&w, schema, m, schema->name);
	if (r >= 0 && w.error < 0)
		r = w.error;
	if (r < 0) {
		proto_cbor_writer_done(&w);
		return r;
	}

	payload = w.size - 4;
	assert(payload > 0 && payload <= PROTO_FRAME_MAX);
	w.buf[0] = (uint8_t)(payload >> 24);
	w.buf[1] = (uint8_t)(payload >> 16);
	w.buf[2] = (uint8_t)(payload >> 8);
	w.buf[3] = (uint8_t)payload;

	*ret_size = w.size;
	*ret = TAKE_PTR(w.buf);
	return 0;
}

int proto_frame_size(const uint8_t *buf, size_t n, size_t *ret_payload)
{
	uint32_t len;

	assert(buf || n == 0);

	if (n < 4)
		return 0;
	len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	/* Checked before the reader buffers anything: the announced length is what a peer would use
	 * to make us allocate. */
	if (len == 0 || len > PROTO_FRAME_MAX)
		return -EMSGSIZE;
	if (ret_payload)
		*ret_payload = len;
	return (int)len;
}

static bool bytes_equal(const ProtoBytes *a, const ProtoBytes *b)
{
	return a->size == b->size && (a->size == 0 || memcmp(a->data, b->data, a->size) == 0);
}

static bool pcrs_equal(const ProtoPcrs *a, const ProtoPcrs *b)
{
	if (a->mask != b->mask)
		return false;
	for (unsigned i = 0; i < PROTO_PCRS_MAX; i++)
		if ((a->mask & (UINT32_C(1) << i)) && memcmp(a->values[i], b->values[i], sizeof(a->values[i])) != 0)
			return false;
	return true;
}

static bool fields_equal(const ProtoSchema *schema, const void *a, const void *b)
{
	for (size_t k = 0; k < schema->n_fields; k++) {
		const ProtoField *f = &schema->fields[k];
		const void *pa = (const uint8_t *)a + f->offset, *pb = (const uint8_t *)b + f->offset;
		bool eq;

		if (f->present_offset >= 0) {
			bool ha = *(const bool *)((const uint8_t *)a + f->present_offset);
			bool hb = *(const bool *)((const uint8_t *)b + f->present_offset);
			if (ha != hb)
				return false;
			if (!ha)
				continue;
		}

		switch (f->kind) {
		case PROTO_FIELD_TEXT:
		case PROTO_FIELD_TEXT_OR_NULL:
		case PROTO_FIELD_STATE:
			eq = streq_ptr(*(const char *const *)pa, *(const char *const *)pb);
			break;
		case PROTO_FIELD_BYTES:
			eq = bytes_equal(pa, pb);
			break;
		case PROTO_FIELD_NONCE:
			eq = memcmp(pa, pb, PROTO_NONCE_SIZE) == 0;
			break;
		case PROTO_FIELD_UINT64:
			eq = *(const uint64_t *)pa == *(const uint64_t *)pb;
			break;
		case PROTO_FIELD_UINT32:
		case PROTO_FIELD_PCR_LIST:
			eq = *(const uint32_t *)pa == *(const uint32_t *)pb;
			break;
		case PROTO_FIELD_BOOL:
			eq = *(const bool *)pa == *(const bool *)pb;
			break;
		case PROTO_FIELD_PCR_MAP:
			eq = pcrs_equal(pa, pb);
			break;
		case PROTO_FIELD_POSTURE:
			eq = fields_equal(&proto_posture_schema, pa, pb);
			break;
		default:
			eq = false;
		}
		if (!eq)
			return false;
	}
	return true;
}

bool proto_message_equal(const ProtoMessage *a, const ProtoMessage *b)
{
	const ProtoSchema *schema;

	if (!a || !b)
		return a == b;
	if (a->type != b->type)
		return false;
	schema = proto_schema(a->type);
	if (!schema)
		return false;
	return fields_equal(schema, a, b);
}
