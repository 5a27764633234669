/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Lower-case hex. hex_encode returns a malloc'ed string, NULL on OOM. */
char *hex_encode(const void *p, size_t n);
/* Strict: even length, [0-9a-fA-F] only. -EINVAL otherwise. *ret is malloc'ed. */
int hex_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size);
/* Decodes into a caller buffer of exactly n bytes; -EINVAL unless the string is 2*n hex digits. */
int hex_decode_exact(const char *s, void *buf, size_t n);

/* RFC 4648 base64 with padding. base64_decode is strict: no whitespace, correct padding. */
char *base64_encode(const void *p, size_t n);
int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size);

/* Parses a decimal ("[0-9]+", a leading 0 is still decimal) or "0x"-hex unsigned integer that
 * must fit max. No sign, no whitespace. -EINVAL on any other text, -ERANGE above max. */
int parse_uint64(const char *s, uint64_t max, uint64_t *ret);
