/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "memory-secure.h"

void memory_erase(void *p, size_t n)
{
	if (!p || n == 0)
		return;
	explicit_bzero(p, n);
}

/* Layout: [size_t size][padding to 16][payload]. */
#define HDR 16

void *secure_alloc(size_t n)
{
	if (n > SIZE_MAX - HDR)
		return NULL;
	uint8_t *b = calloc(1, HDR + n);
	if (!b)
		return NULL;
	memcpy(b, &n, sizeof(n));
	/* Best effort: a failing mlock (RLIMIT_MEMLOCK) must not stop us, the wipe still happens. */
	(void)mlock(b, HDR + n);
	return b + HDR;
}

size_t secure_size(const void *p)
{
	size_t n;
	if (!p)
		return 0;
	memcpy(&n, (const uint8_t *)p - HDR, sizeof(n));
	return n;
}

void *secure_free(void *p)
{
	if (!p)
		return NULL;
	uint8_t *b = (uint8_t *)p - HDR;
	size_t n = secure_size(p);
	explicit_bzero(b, HDR + n);
	(void)munlock(b, HDR + n);
	free(b);
	return NULL;
}

void *secure_memdup(const void *p, size_t n)
{
	void *q = secure_alloc(n);
	if (q && n > 0)
		memcpy(q, p, n);
	return q;
}

char *secure_strdup(const char *s)
{
	return secure_memdup(s, strlen(s) + 1);
}

void *erase_and_free(void *p)
{
	if (!p)
		return NULL;
	explicit_bzero(p, strlen(p));
	free(p);
	return NULL;
}

int memcmp_const(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}
