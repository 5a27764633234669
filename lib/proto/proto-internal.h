/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* lib/proto internals: a zero-copy CBOR item reader and a canonical writer on top of libcbor's
 * streaming decoder and encoding primitives, and the message schema shared by the encoder and the
 * decoder (so that what one writes, the other accepts, field for field).
 *
 * Why not cbor_load(): libcbor 0.8 allocates a definite array or map of the announced size before
 * reading any element (a 5-byte header can ask for gigabytes, and nested headers multiply it), copies
 * every string, recurses on free, and reports failures without saying where. Reading item by item
 * with cbor_stream_decode() allocates nothing, points into the caller's buffer, and lets each
 * rejection name the field it happened in. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/proto.h"

/* Nesting allowed by the generic skipper (used before the message type is known): the schema
 * itself never goes deeper than message map -> posture/pcrs map -> scalar. */
#define PROTO_CBOR_DEPTH_MAX 4

typedef enum ProtoCborKind {
	PROTO_CBOR_UINT,
	PROTO_CBOR_NEGINT, /* value v means -1 - v */
	PROTO_CBOR_BYTES,
	PROTO_CBOR_TEXT,
	PROTO_CBOR_ARRAY, /* value = element count */
	PROTO_CBOR_MAP,   /* value = pair count */
	PROTO_CBOR_TAG,   /* value = tag number; the tagged item follows */
	PROTO_CBOR_BOOL,  /* value = 0 or 1 */
	PROTO_CBOR_NULL,
	PROTO_CBOR_UNDEFINED,
	PROTO_CBOR_FLOAT,
} ProtoCborKind;

typedef struct ProtoCborItem {
	ProtoCborKind kind;
	uint64_t value;
	const uint8_t *data; /* BYTES/TEXT: points into the reader's buffer */
	size_t len;
} ProtoCborItem;

typedef enum ProtoCborStatus {
	PROTO_CBOR_OK = 0,
	PROTO_CBOR_TRUNCATED,  /* the buffer ends inside the item */
	PROTO_CBOR_MALFORMED,  /* reserved additional info, unassigned simple value, stray break */
	PROTO_CBOR_INDEFINITE, /* indefinite-length string, array or map */
	PROTO_CBOR_TOO_DEEP,   /* proto_cbor_skip only */
} ProtoCborStatus;

typedef struct ProtoCborReader {
	const uint8_t *buf;
	size_t size, pos;
} ProtoCborReader;

static inline size_t proto_cbor_remaining(const ProtoCborReader *r)
{
	return r->size - r->pos;
}

/* Reads the head of the next item (for strings: the whole string). Containers are not entered:
 * the caller reads value (or 2 * value) items next. */
ProtoCborStatus proto_cbor_read(ProtoCborReader *r, ProtoCborItem *ret);
/* Skips one complete item, containers included, at most PROTO_CBOR_DEPTH_MAX - depth levels deep. */
ProtoCborStatus proto_cbor_skip(ProtoCborReader *r, unsigned depth);

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool proto_utf8_valid(const uint8_t *s, size_t n);

typedef struct ProtoCborWriter {
	uint8_t *buf;
	size_t size, allocated;
	size_t max; /* refuse to grow beyond this many bytes */
	int error;  /* first error: -ENOMEM or -EMSGSIZE; later writes are ignored */
} ProtoCborWriter;

void proto_cbor_put_raw(ProtoCborWriter *w, const void *p, size_t n);
void proto_cbor_put_uint(ProtoCborWriter *w, uint64_t v);
void proto_cbor_put_negint(ProtoCborWriter *w, uint64_t v); /* encodes -1 - v */
void proto_cbor_put_bytes(ProtoCborWriter *w, const void *p, size_t n);
void proto_cbor_put_text(ProtoCborWriter *w, const char *s, size_t n);
void proto_cbor_put_array(ProtoCborWriter *w, size_t count);
void proto_cbor_put_map(ProtoCborWriter *w, size_t count);
void proto_cbor_put_tag(ProtoCborWriter *w, uint64_t tag);
void proto_cbor_put_bool(ProtoCborWriter *w, bool b);
void proto_cbor_put_null(ProtoCborWriter *w);
/* Wipes and frees the buffer (messages carry enrollment tokens and activation secrets). */
void proto_cbor_writer_done(ProtoCborWriter *w);

/* ---- message schema ---- */

typedef enum ProtoFieldKind {
	PROTO_FIELD_TEXT,         /* const char *, NUL-free UTF-8, <= max bytes */
	PROTO_FIELD_TEXT_OR_NULL, /* the same, CBOR null <-> NULL (the key is always present) */
	PROTO_FIELD_STATE,        /* text: "trusted" or "quarantined" */
	PROTO_FIELD_BYTES,        /* ProtoBytes, min..max bytes */
	PROTO_FIELD_NONCE,        /* uint8_t[PROTO_NONCE_SIZE] */
	PROTO_FIELD_UINT64,
	PROTO_FIELD_UINT32,
	PROTO_FIELD_BOOL,
	PROTO_FIELD_PCR_MAP,  /* ProtoPcrs <-> map{uint 0..23 -> bstr(32)} */
	PROTO_FIELD_PCR_LIST, /* uint32_t mask <-> array of distinct uint 0..23 */
	PROTO_FIELD_POSTURE,  /* ProtoPosture <-> map (PROTO_POSTURE_FIELDS) */
} ProtoFieldKind;

/* Static rejection reasons, one set per field, each naming it ("enroll.hostname: …"). */
typedef struct ProtoFieldReasons {
	const char *type, *size, *utf8, *nul, *value, *dup, *missing, *indefinite, *truncated,
		*malformed, *pcr, *pcr_dup;
} ProtoFieldReasons;

typedef struct ProtoField {
	const char *key;
	ProtoFieldKind kind;
	size_t offset;          /* of the member in the struct the table describes */
	size_t min, max;        /* length bounds of TEXT/BYTES */
	bool optional;          /* may be absent on the wire (posture) */
	ssize_t present_offset; /* >= 0: a bool set when the field is present (posture.epoch) */
	ProtoFieldReasons r;
} ProtoField;

typedef struct ProtoSchema {
	const char *name; /* the "t" value */
	const ProtoField *fields;
	size_t n_fields;
	const char *unknown_key; /* "<name>: unknown key" */
	const char *key_type;    /* "<name>: key not a text string" */
} ProtoSchema;

const ProtoSchema *proto_schema(ProtoType t);
ProtoType proto_type_from_name(const uint8_t *s, size_t n); /* 0 when unknown */
extern const ProtoSchema proto_posture_schema;
