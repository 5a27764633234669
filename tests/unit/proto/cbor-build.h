/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A few lines of CBOR writing for the tests, written from RFC 8949 §3 independently of lib/proto
 * and of libcbor, so that the tests can build any input (valid, oversized, indefinite, duplicate
 * keys…) and cross-check the library's encoder. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CBOR_BUILD_MAX (128 * 1024)

typedef struct CborBuild {
	uint8_t b[CBOR_BUILD_MAX];
	size_t n;
} CborBuild;

static inline CborBuild *cb_new(void)
{
	CborBuild *c = calloc(1, sizeof(CborBuild));
	if (!c)
		abort();
	return c;
}

static inline void cb_raw(CborBuild *c, const void *p, size_t n)
{
	if (c->n + n > sizeof(c->b))
		abort();
	memcpy(c->b + c->n, p, n);
	c->n += n;
}

static inline void cb_byte(CborBuild *c, uint8_t v)
{
	cb_raw(c, &v, 1);
}

/* Shortest head for major type 0..7 (§3.1 and §4.2.1). */
static inline void cb_head(CborBuild *c, unsigned major, uint64_t v)
{
	uint8_t m = (uint8_t)(major << 5);
	int bytes;

	if (v < 24) {
		cb_byte(c, m | (uint8_t)v);
		return;
	} else if (v <= 0xff) {
		cb_byte(c, m | 24);
		bytes = 1;
	} else if (v <= 0xffff) {
		cb_byte(c, m | 25);
		bytes = 2;
	} else if (v <= 0xffffffff) {
		cb_byte(c, m | 26);
		bytes = 4;
	} else {
		cb_byte(c, m | 27);
		bytes = 8;
	}
	for (int i = bytes - 1; i >= 0; i--)
		cb_byte(c, (uint8_t)(v >> (8 * i)));
}

static inline void cb_uint(CborBuild *c, uint64_t v)
{
	cb_head(c, 0, v);
}
static inline void cb_nint(CborBuild *c, int64_t v) /* v < 0 */
{
	cb_head(c, 1, (uint64_t)(-1 - v));
}
static inline void cb_bytes(CborBuild *c, const void *p, size_t n)
{
	cb_head(c, 2, n);
	cb_raw(c, p, n);
}
/* n bytes of value v */
static inline void cb_bytes_fill(CborBuild *c, uint8_t v, size_t n)
{
	cb_head(c, 2, n);
	if (c->n + n > sizeof(c->b))
		abort();
	memset(c->b + c->n, v, n);
	c->n += n;
}
static inline void cb_textn(CborBuild *c, const char *s, size_t n)
{
	cb_head(c, 3, n);
	cb_raw(c, s, n);
}
static inline void cb_text(CborBuild *c, const char *s)
{
	cb_textn(c, s, strlen(s));
}
static inline void cb_text_fill(CborBuild *c, char v, size_t n)
{
	cb_head(c, 3, n);
	if (c->n + n > sizeof(c->b))
		abort();
	memset(c->b + c->n, v, n);
	c->n += n;
}
static inline void cb_array(CborBuild *c, uint64_t n)
{
	cb_head(c, 4, n);
}
static inline void cb_map(CborBuild *c, uint64_t n)
{
	cb_head(c, 5, n);
}
static inline void cb_tag(CborBuild *c, uint64_t t)
{
	cb_head(c, 6, t);
}
static inline void cb_bool(CborBuild *c, int b)
{
	cb_byte(c, b ? 0xf5 : 0xf4);
}
static inline void cb_null(CborBuild *c)
{
	cb_byte(c, 0xf6);
}
/* "t": type, as the first pair of a map */
static inline void cb_t(CborBuild *c, const char *type)
{
	cb_text(c, "t");
	cb_text(c, type);
}
