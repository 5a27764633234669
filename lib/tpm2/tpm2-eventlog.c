/* SPDX-License-Identifier: Apache-2.0 */
/* The TCG crypto-agile event log (TCG PC Client Platform Firmware Profile 2.0, section 10): parsed
 * and replayed on the server, where it arrives from the network; built by tests and the agent.
 *
 * Layout (all integers little-endian):
 *   TCG_PCR_EVENT   pcrIndex u32, eventType u32, digest[20] (SHA-1 format), eventSize u32, event
 *                   — only the first record, EV_NO_ACTION with the TCG_EfiSpecIDEvent
 *                   ("Spec ID Event03", the digest sizes of every algorithm in the log, 10.4.5.1)
 *   TCG_PCR_EVENT2  pcrIndex u32, eventType u32, TPML_DIGEST_VALUES (count u32, then count ×
 *                   {algId u16, digest of the size the Spec ID event gives}), eventSize u32, event
 *
 * The digest sizes come from the log itself, so an algorithm missing from the table cannot be
 * skipped: the parse stops there. Each length is checked against what remains before it is used. */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-attest.h"

#define EV_NO_ACTION UINT32_C(0x00000003)
#define EVENTLOG_MAX_EVENTS 4096
#define EVENTLOG_MAX_ALGS 8 /* TPML_DIGEST_VALUES holds at most HASH_COUNT digests */
#define ALG_SHA1 UINT16_C(0x0004)
#define ALG_SHA256 UINT16_C(0x000b)
#define DIGEST_SIZE_MAX 64 /* SHA-512, the largest TPMU_HA member */

static const char spec_id_signature[16] = "Spec ID Event03"; /* with its NUL: 16 bytes */
static const char startup_locality_signature[16] = "StartupLocality";

typedef struct Cursor {
	const uint8_t *p;
	size_t n;
} Cursor;

static bool get_u8(Cursor *c, uint8_t *ret)
{
	if (c->n < 1)
		return false;
	*ret = c->p[0];
	c->p++, c->n--;
	return true;
}

static bool get_u16(Cursor *c, uint16_t *ret)
{
	if (c->n < 2)
		return false;
	*ret = (uint16_t)(c->p[0] | c->p[1] << 8);
	c->p += 2, c->n -= 2;
	return true;
}

static bool get_u32(Cursor *c, uint32_t *ret)
{
	if (c->n < 4)
		return false;
	*ret = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 | (uint32_t)c->p[3] << 24;
	c->p += 4, c->n -= 4;
	return true;
}

static bool get_bytes(Cursor *c, size_t len, const uint8_t **ret)
{
	if (len > c->n)
		return false;
	*ret = c->p;
	c->p += len, c->n -= len;
	return true;
}

typedef struct AlgTable {
	uint16_t alg[EVENTLOG_MAX_ALGS];
	uint16_t size[EVENTLOG_MAX_ALGS];
	uint32_t count;
} AlgTable;

static int fail(const char **ret_reason, const char *reason)
{
	log_debug("Event log: %s", reason);
	if (ret_reason)
		*ret_reason = reason;
	return -EBADMSG;
}

/* The TCG_EfiSpecIDEvent inside the first record's event data (10.4.5.1). */
static int spec_id_parse(Cursor ev, AlgTable *t, const char **ret_reason)
{
	const uint8_t *sig, *vendor;
	uint32_t platform_class, count;
	uint8_t minor, major, errata, uintn, vendor_size;
	bool sha256 = false;

	if (!get_bytes(&ev, 16, &sig) || memcmp(sig, spec_id_signature, 16) != 0)
		return fail(ret_reason, "first event is not the Spec ID Event03");
	if (!get_u32(&ev, &platform_class) || !get_u8(&ev, &minor) || !get_u8(&ev, &major) ||
	    !get_u8(&ev, &errata) || !get_u8(&ev, &uintn) || !get_u32(&ev, &count))
		return fail(ret_reason, "Spec ID event truncated");
	if (major != 2)
		return fail(ret_reason, "Spec ID event: not a version 2 (crypto-agile) log");
	if (count == 0 || count > EVENTLOG_MAX_ALGS)
		return fail(ret_reason, "Spec ID event: bad number of algorithms");
	t->count = count;
	for (uint32_t i = 0; i < count; i++) {
		if (!get_u16(&ev, &t->alg[i]) || !get_u16(&ev, &t->size[i]))
			return fail(ret_reason, "Spec ID event: digest sizes truncated");
		if (t->size[i] == 0 || t->size[i] > DIGEST_SIZE_MAX)
			return fail(ret_reason, "Spec ID event: bad digest size");
		for (uint32_t j = 0; j < i; j++)
			if (t->alg[j] == t->alg[i])
				return fail(ret_reason, "Spec ID event: algorithm listed twice");
		/* A wrong size for a known algorithm would shift every following record. */
		if ((t->alg[i] == ALG_SHA256 && t->size[i] != 32) || (t->alg[i] == ALG_SHA1 && t->size[i] != 20))
			return fail(ret_reason, "Spec ID event: wrong digest size for SHA-1 or SHA-256");
		if (t->alg[i] == ALG_SHA256)
			sha256 = true;
	}
	if (!sha256)
		return fail(ret_reason, "Spec ID event: the log has no SHA-256 digests");
	if (!get_u8(&ev, &vendor_size) || !get_bytes(&ev, vendor_size, &vendor))
		return fail(ret_reason, "Spec ID event: vendor info truncated");
	if (ev.n != 0)
		return fail(ret_reason, "Spec ID event: trailing bytes");
	return 0;
}

/* The first record, in the SHA-1 TCG_PCR_EVENT format. */
static int header_parse(Cursor *c, AlgTable *t, const char **ret_reason)
{
	static const uint8_t zero[20] = {};
	uint32_t pcr, type, size;
	const uint8_t *digest, *data;

	if (!get_u32(c, &pcr) || !get_u32(c, &type) || !get_bytes(c, 20, &digest) || !get_u32(c, &size))
		return fail(ret_reason, "missing Spec ID event (log too short)");
	if (pcr != 0 || type != EV_NO_ACTION || memcmp(digest, zero, 20) != 0)
		return fail(ret_reason, "first event is not the Spec ID event (EV_NO_ACTION, PCR 0)");
	if (!get_bytes(c, size, &data))
		return fail(ret_reason, "Spec ID event size beyond the log");
	return spec_id_parse((Cursor){data, size}, t, ret_reason);
}

static int extend(uint8_t pcr[TPM2_SHA256_SIZE], const uint8_t digest[TPM2_SHA256_SIZE])
{
	return sha256_many(pcr, pcr, (size_t)TPM2_SHA256_SIZE, digest, (size_t)TPM2_SHA256_SIZE, NULL);
}

int tpm2_eventlog_replay(const uint8_t *log, size_t n, uint8_t ret_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE],
			 uint32_t *ret_mask, const char **ret_reason)
{
	uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE] = {};
	Cursor c = {log, n};
	AlgTable t = {};
	uint32_t mask = 0;
	unsigned events = 1;
	int r;

	if (!log && n > 0)
		return -EINVAL;
	if (!ret_values)
		return -EINVAL;
	r = header_parse(&c, &t, ret_reason);
	if (r < 0)
		return r;

	while (c.n > 0) {
		uint32_t pcr, type, count, size;
		const uint8_t *sha256_digest = NULL, *data;

		if (++events > EVENTLOG_MAX_EVENTS)
			return fail(ret_reason, "more than 4096 events");
		if (!get_u32(&c, &pcr) || !get_u32(&c, &type) || !get_u32(&c, &count))
			return fail(ret_reason, "event truncated");
		if (pcr >= TPM2_PCRS_MAX)
			return fail(ret_reason, "event for a PCR above 23");
		if (count == 0 || count > EVENTLOG_MAX_ALGS)
			return fail(ret_reason, "event digest count is 0 or more than 8");
		for (uint32_t i = 0; i < count; i++) {
			uint16_t alg;
			uint32_t k;
			const uint8_t *d;

			if (!get_u16(&c, &alg))
				return fail(ret_reason, "event digest truncated");
			for (k = 0; k < t.count && t.alg[k] != alg; k++)
				;
			if (k == t.count)
				return fail(ret_reason, "event digest of an algorithm the Spec ID event has no size for");
			if (!get_bytes(&c, t.size[k], &d))
				return fail(ret_reason, "event digest truncated");
			if (alg == ALG_SHA256) {
				if (sha256_digest)
					return fail(ret_reason, "event has two SHA-256 digests");
				sha256_digest = d;
			}
		}
		if (!get_u32(&c, &size) || !get_bytes(&c, size, &data))
			return fail(ret_reason, "event size beyond the log");
		if (!sha256_digest)
			return fail(ret_reason, "event without a SHA-256 digest");

		if (type == EV_NO_ACTION) {
			/* 10.4.5.3 StartupLocality: the TPM was started from this locality, so PCR 0
			 * starts as 0…0 || locality instead of zero. Only before PCR 0 was extended. */
			if (size >= 16 && memcmp(data, startup_locality_signature, 16) == 0) {
				if (size != 17 || pcr != 0)
					return fail(ret_reason, "malformed StartupLocality event");
				if (mask & 1u)
					return fail(ret_reason, "StartupLocality event after PCR 0 was extended");
				memset(values[0], 0, TPM2_SHA256_SIZE);
				values[0][TPM2_SHA256_SIZE - 1] = data[16];
			}
			/* EV_NO_ACTION records are informational: never extended (10.4.1). */
			continue;
		}
		r = extend(values[pcr], sha256_digest);
		if (r < 0)
			return r;
		mask |= UINT32_C(1) << pcr;
	}

	memcpy(ret_values, values, sizeof(values));
	if (ret_mask)
		*ret_mask = mask;
	return 0;
}

static void put_u32(uint8_t **p, uint32_t v)
{
	(*p)[0] = (uint8_t)v;
	(*p)[1] = (uint8_t)(v >> 8);
	(*p)[2] = (uint8_t)(v >> 16);
	(*p)[3] = (uint8_t)(v >> 24);
	*p += 4;
}

static void put_u16(uint8_t **p, uint16_t v)
{
	(*p)[0] = (uint8_t)v;
	(*p)[1] = (uint8_t)(v >> 8);
	*p += 2;
}

static void put_bytes(uint8_t **p, const void *b, size_t n)
{
	if (n)
		memcpy(*p, b, n);
	*p += n;
}

#define SPEC_ID_EVENT_SIZE (16 + 4 + 4 + 4 + 4 + 1)          /* one algorithm, no vendor info */
#define HEADER_SIZE (4 + 4 + 20 + 4 + SPEC_ID_EVENT_SIZE)
#define EVENT2_FIXED_SIZE (4 + 4 + 4 + 2 + TPM2_SHA256_SIZE + 4)
#define EVENT_DATA_MAX (1024 * 1024)

int tpm2_eventlog_build(const Tpm2Event *events, size_t n, uint8_t **ret, size_t *ret_size)
{
	static const uint8_t zero[20] = {};
	size_t total = HEADER_SIZE;
	uint8_t *buf, *p;

	if ((!events && n > 0) || !ret || !ret_size)
		return -EINVAL;
	/* What we build must replay: the header counts as one of the 4096 events. */
	if (n > EVENTLOG_MAX_EVENTS - 1)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		size_t len = events[i].data ? strlen(events[i].data) : 0;
		if (events[i].pcr >= TPM2_PCRS_MAX || len > EVENT_DATA_MAX)
			return -EINVAL;
		total += EVENT2_FIXED_SIZE + len;
	}

	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	p = buf;
	/* TCG_PCR_EVENT with the Spec ID event: platformClass 0 (client), spec 2.0 errata 0,
	 * uintnSize 2 (UINT64), one algorithm: SHA-256 with 32-byte digests, no vendor info. */
	put_u32(&p, 0);
	put_u32(&p, EV_NO_ACTION);
	put_bytes(&p, zero, sizeof(zero));
	put_u32(&p, SPEC_ID_EVENT_SIZE);
	put_bytes(&p, spec_id_signature, sizeof(spec_id_signature));
	put_u32(&p, 0);
	*p++ = 0; /* specVersionMinor */
	*p++ = 2; /* specVersionMajor */
	*p++ = 0; /* specErrata */
	*p++ = 2; /* uintnSize */
	put_u32(&p, 1);
	put_u16(&p, ALG_SHA256);
	put_u16(&p, TPM2_SHA256_SIZE);
	*p++ = 0; /* vendorInfoSize */

	for (size_t i = 0; i < n; i++) {
		size_t len = events[i].data ? strlen(events[i].data) : 0;

		put_u32(&p, events[i].pcr);
		put_u32(&p, events[i].type);
		put_u32(&p, 1);
		put_u16(&p, ALG_SHA256);
		put_bytes(&p, events[i].digest, TPM2_SHA256_SIZE);
		put_u32(&p, (uint32_t)len);
		put_bytes(&p, events[i].data, len);
	}
	*ret = buf;
	*ret_size = (size_t)(p - buf);
	return 0;
}
