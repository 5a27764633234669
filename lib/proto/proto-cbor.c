/* SPDX-License-Identifier: Apache-2.0 */
/* A zero-copy CBOR item reader (libcbor's streaming decoder, one item head at a time) and a writer
 * that emits the preferred (shortest) serialization of RFC 8949 §4.1 through libcbor's encoders. */
#include <errno.h>
#include <string.h>

#include <cbor.h>

#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "proto/proto-internal.h"

typedef struct ReadContext {
	ProtoCborItem *item;
	bool indefinite;
} ReadContext;

#define CTX ReadContext *c = ctx

static void on_uint8(void *ctx, uint8_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_UINT, .value = v};
}
static void on_uint16(void *ctx, uint16_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_UINT, .value = v};
}
static void on_uint32(void *ctx, uint32_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_UINT, .value = v};
}
static void on_uint64(void *ctx, uint64_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_UINT, .value = v};
}
static void on_negint8(void *ctx, uint8_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_NEGINT, .value = v};
}
static void on_negint16(void *ctx, uint16_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_NEGINT, .value = v};
}
static void on_negint32(void *ctx, uint32_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_NEGINT, .value = v};
}
static void on_negint64(void *ctx, uint64_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_NEGINT, .value = v};
}
static void on_bytes(void *ctx, cbor_data data, size_t len)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_BYTES, .data = data, .len = len};
}
static void on_text(void *ctx, cbor_data data, size_t len)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_TEXT, .data = data, .len = len};
}
static void on_array(void *ctx, size_t count)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_ARRAY, .value = count};
}
static void on_map(void *ctx, size_t count)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_MAP, .value = count};
}
static void on_tag(void *ctx, uint64_t v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_TAG, .value = v};
}
static void on_float(void *ctx, float v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_FLOAT};
}
static void on_double(void *ctx, double v)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_FLOAT};
}
static void on_null(void *ctx)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_NULL};
}
static void on_undefined(void *ctx)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_UNDEFINED};
}
static void on_bool(void *ctx, bool b)
{
	CTX;
	*c->item = (ProtoCborItem){.kind = PROTO_CBOR_BOOL, .value = b};
}
/* Indefinite-length strings, arrays and maps, and the break that ends them: refused everywhere
 * (docs/PROTOCOL.md "Framing"): their size is unknown until the end, and chunked strings are a
 * classic source of parser differentials. */
static void on_indefinite(void *ctx)
{
	CTX;
	c->indefinite = true;
}

static const struct cbor_callbacks read_callbacks = {
	.uint8 = on_uint8,
	.uint16 = on_uint16,
	.uint32 = on_uint32,
	.uint64 = on_uint64,
	.negint8 = on_negint8,
	.negint16 = on_negint16,
	.negint32 = on_negint32,
	.negint64 = on_negint64,
	.byte_string = on_bytes,
	.byte_string_start = on_indefinite,
	.string = on_text,
	.string_start = on_indefinite,
	.array_start = on_array,
	.indef_array_start = on_indefinite,
	.map_start = on_map,
	.indef_map_start = on_indefinite,
	.tag = on_tag,
	.float2 = on_float,
	.float4 = on_float,
	.float8 = on_double,
	.undefined = on_undefined,
	.null = on_null,
	.boolean = on_bool,
	.indef_break = on_indefinite,
};

/* Tag heads (major type 6) are decoded here: libcbor 0.8's streaming decoder refuses the one-byte
 * heads 0xc6..0xd4 as "unassigned", among them 0xd2 = tag 18, the COSE_Sign1 tag (RFC 9052 §4.2). */
static ProtoCborStatus read_tag(ProtoCborReader *r, ProtoCborItem *ret)
{
	const uint8_t *p = r->buf + r->pos;
	size_t avail = proto_cbor_remaining(r), len;
	uint8_t ai = p[0] & 0x1f;
	uint64_t v = 0;

	if (ai < 24) {
		v = ai;
		len = 0;
	} else if (ai <= 27)
		len = (size_t)1 << (ai - 24);
	else
		return ai == 31 ? PROTO_CBOR_INDEFINITE : PROTO_CBOR_MALFORMED;
	if (avail < 1 + len)
		return PROTO_CBOR_TRUNCATED;
	for (size_t i = 0; i < len; i++)
		v = (v << 8) | p[1 + i];

	*ret = (ProtoCborItem){.kind = PROTO_CBOR_TAG, .value = v};
	r->pos += 1 + len;
	return PROTO_CBOR_OK;
}

ProtoCborStatus proto_cbor_read(ProtoCborReader *r, ProtoCborItem *ret)
{
	ProtoCborItem item = {};
	ReadContext c = {.item = &item};
	struct cbor_decoder_result res;

	if (r->pos >= r->size)
		return PROTO_CBOR_TRUNCATED;
	if ((r->buf[r->pos] >> 5) == 6)
		return read_tag(r, ret);

	res = cbor_stream_decode(r->buf + r->pos, r->size - r->pos, &read_callbacks, &c);
	switch (res.status) {
	case CBOR_DECODER_FINISHED:
		break;
	case CBOR_DECODER_NEDATA:
		return PROTO_CBOR_TRUNCATED;
	default:
		return PROTO_CBOR_MALFORMED;
	}
	if (c.indefinite)
		return PROTO_CBOR_INDEFINITE;
	if (res.read == 0 || res.read > r->size - r->pos)
		return PROTO_CBOR_MALFORMED;
	/* A container announcing more elements than there are bytes left cannot be complete (each
	 * element takes at least one byte): say so now rather than after reading them all. */
	if ((item.kind == PROTO_CBOR_ARRAY && item.value > r->size - r->pos - res.read) ||
	    (item.kind == PROTO_CBOR_MAP && item.value > (r->size - r->pos - res.read) / 2))
		return PROTO_CBOR_TRUNCATED;

	r->pos += res.read;
	*ret = item;
	return PROTO_CBOR_OK;
}

ProtoCborStatus proto_cbor_skip(ProtoCborReader *r, unsigned depth)
{
	ProtoCborItem item;
	ProtoCborStatus s;
	uint64_t n;

	if (depth >= PROTO_CBOR_DEPTH_MAX)
		return PROTO_CBOR_TOO_DEEP;
	s = proto_cbor_read(r, &item);
	if (s != PROTO_CBOR_OK)
		return s;
	switch (item.kind) {
	case PROTO_CBOR_ARRAY:
	case PROTO_CBOR_MAP:
		n = item.kind == PROTO_CBOR_MAP ? item.value * 2 : item.value; /* bounded by the check in read */
		for (uint64_t i = 0; i < n; i++) {
			s = proto_cbor_skip(r, depth + 1);
			if (s != PROTO_CBOR_OK)
				return s;
		}
		return PROTO_CBOR_OK;
	case PROTO_CBOR_TAG:
		return proto_cbor_skip(r, depth + 1);
	default:
		return PROTO_CBOR_OK;
	}
}

bool proto_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t b = s[i];
		uint32_t cp;
		size_t len;

		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf) {
			len = 2;
			cp = b & 0x1f;
		} else if (b >= 0xe0 && b <= 0xef) {
			len = 3;
			cp = b & 0x0f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			len = 4;
			cp = b & 0x07;
		} else
			return false; /* continuation byte, 0xc0/0xc1 (always overlong), > 0xf4 */
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false; /* overlong, beyond Unicode, or a UTF-16 surrogate */
		i += len;
	}
	return true;
}

/* ---- writer ---- */

static bool writer_reserve(ProtoCborWriter *w, size_t n)
{
	uint8_t *nb;
	size_t want;

	if (w->error < 0)
		return false;
	if (n > w->max || w->size > w->max - n) {
		w->error = -EMSGSIZE;
		return false;
	}
	if (w->size + n <= w->allocated)
		return true;

	want = MAX(w->size + n, MIN(w->max, MAX((size_t)256, w->allocated * 2)));
	/* Grow by hand rather than realloc(): the old block may hold a token or a secret and is
	 * wiped before it goes back to the allocator. */
	nb = malloc(want);
	if (!nb) {
		w->error = -ENOMEM;
		return false;
	}
	if (w->size > 0)
		memcpy(nb, w->buf, w->size);
	memory_erase(w->buf, w->allocated);
	free(w->buf);
	w->buf = nb;
	w->allocated = want;
	return true;
}

void proto_cbor_put_raw(ProtoCborWriter *w, const void *p, size_t n)
{
	if (n == 0 || !writer_reserve(w, n))
		return;
	memcpy(w->buf + w->size, p, n);
	w->size += n;
}

/* The head encoders of libcbor pick the shortest argument form (RFC 8949 §4.2.1). */
#define PUT_HEAD(w, call)                                                                            \
	do {                                                                                         \
		unsigned char _h[9];                                                                 \
		size_t _n = call;                                                                    \
		if (_n == 0) {                                                                       \
			if ((w)->error >= 0)                                                         \
				(w)->error = -EINVAL;                                                \
		} else                                                                               \
			proto_cbor_put_raw((w), _h, _n);                                             \
	} while (0)

void proto_cbor_put_uint(ProtoCborWriter *w, uint64_t v)
{
	PUT_HEAD(w, cbor_encode_uint(v, _h, sizeof(_h)));
}

void proto_cbor_put_negint(ProtoCborWriter *w, uint64_t v)
{
	PUT_HEAD(w, cbor_encode_negint(v, _h, sizeof(_h)));
}

void proto_cbor_put_bytes(ProtoCborWriter *w, const void *p, size_t n)
{
	PUT_HEAD(w, cbor_encode_bytestring_start(n, _h, sizeof(_h)));
	proto_cbor_put_raw(w, p, n);
}

void proto_cbor_put_text(ProtoCborWriter *w, const char *s, size_t n)
{
	PUT_HEAD(w, cbor_encode_string_start(n, _h, sizeof(_h)));
	proto_cbor_put_raw(w, s, n);
}

void proto_cbor_put_array(ProtoCborWriter *w, size_t count)
{
	PUT_HEAD(w, cbor_encode_array_start(count, _h, sizeof(_h)));
}

void proto_cbor_put_map(ProtoCborWriter *w, size_t count)
{
	PUT_HEAD(w, cbor_encode_map_start(count, _h, sizeof(_h)));
}

void proto_cbor_put_tag(ProtoCborWriter *w, uint64_t tag)
{
	PUT_HEAD(w, cbor_encode_tag(tag, _h, sizeof(_h)));
}

void proto_cbor_put_bool(ProtoCborWriter *w, bool b)
{
	PUT_HEAD(w, cbor_encode_bool(b, _h, sizeof(_h)));
}

void proto_cbor_put_null(ProtoCborWriter *w)
{
	PUT_HEAD(w, cbor_encode_null(_h, sizeof(_h)));
}

void proto_cbor_writer_done(ProtoCborWriter *w)
{
	if (!w)
		return;
	memory_erase(w->buf, w->allocated);
	free(w->buf);
	*w = (ProtoCborWriter){};
}
