/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "macro.h"

char *hex_encode(const void *p, size_t n)
{
	static const char d[] = "0123456789abcdef";
	const uint8_t *b = p;
	char *s = malloc(n * 2 + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = d[b[i] >> 4];
		s[2 * i + 1] = d[b[i] & 15];
	}
	s[2 * n] = 0;
	return s;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size)
{
	uint8_t *b;

	if (len % 2)
		return -EINVAL;
	b = malloc(len / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < len / 2; i++) {
		int h = unhex(s[2 * i]), l = unhex(s[2 * i + 1]);
		if (h < 0 || l < 0) {
			free(b);
			return -EINVAL;
		}
		b[i] = (uint8_t)(h << 4 | l);
	}
	*ret = b;
	*ret_size = len / 2;
	return 0;
}

int hex_decode_exact(const char *s, void *buf, size_t n)
{
	uint8_t *b = buf;

	if (strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int h = unhex(s[2 * i]), l = unhex(s[2 * i + 1]);
		if (h < 0 || l < 0)
			return -EINVAL;
		b[i] = (uint8_t)(h << 4 | l);
	}
	return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *p, size_t n)
{
	const uint8_t *b = p;
	char *s = malloc((n + 2) / 3 * 4 + 1), *o = s;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)b[i + 1] << 8;
		if (i + 2 < n)
			v |= b[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64[v & 63] : '=';
	}
	*o = 0;
	return s;
}

static int unb64(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size)
{
	uint8_t *b, *o;

	if (len % 4)
		return -EINVAL;
	o = b = malloc(len / 4 * 3 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after padding */
				goto bad;
			v[j] = unb64(s[i + j]);
			if (v[j] < 0)
				goto bad;
		}
		if (pad == 1 && s[i + 2] == '=')
			goto bad;
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* Non-canonical encodings (unused bits set) are rejected. */
		if ((pad == 2 && (w & 0xffff)) || (pad == 1 && (w & 0xff)))
			goto bad;
		*o++ = (uint8_t)(w >> 16);
		if (pad < 2)
			*o++ = (uint8_t)(w >> 8);
		if (pad < 1)
			*o++ = (uint8_t)w;
	}
	*ret = b;
	*ret_size = (size_t)(o - b);
	return 0;
bad:
	free(b);
	return -EINVAL;
}

/* Only "[0-9]+" or "0[xX][0-9a-fA-F]+": strtoull() alone would also take leading whitespace, a sign
 * (and negate!), and read a leading 0 as octal, so "010" would be 8 and "-1" UINT64_MAX. */
int parse_uint64(const char *s, uint64_t max, uint64_t *ret)
{
	const char *digits;
	unsigned base = 10;
	uint64_t v = 0;

	if (!s)
		return -EINVAL;
	digits = s;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		digits = s + 2;
	}
	if (!*digits)
		return -EINVAL;
	for (const char *p = digits; *p; p++) {
		int d = base == 16 ? unhex(*p) : (*p >= '0' && *p <= '9' ? *p - '0' : -1);
		if (d < 0)
			return -EINVAL;
	}
	for (const char *p = digits; *p; p++) {
		unsigned d = (unsigned)(base == 16 ? unhex(*p) : *p - '0');
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}
