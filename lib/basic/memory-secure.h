/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Memory for secrets: wiped before it is freed, and locked into RAM (best effort) so that it is
 * not written to swap. Keys, PINs, unsealed secrets and recovery keys live only in such memory. */

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Wipes n bytes at p in a way the compiler cannot elide. NULL is allowed. */
void memory_erase(void *p, size_t n);

/* A heap block that remembers its own size, so that it can be wiped on free. */
void *secure_alloc(size_t n);
void *secure_free(void *p);     /* wipes and frees; accepts NULL; returns NULL */
size_t secure_size(const void *p);
void *secure_memdup(const void *p, size_t n);
char *secure_strdup(const char *s);

/* erase_and_free: for strings that hold secrets and were allocated with malloc. */
void *erase_and_free(void *p);

static inline void secure_freep(void *p)
{
	secure_free(*(void **)p);
}
#define _cleanup_secure_ _cleanup_(secure_freep)

static inline void erase_and_freep(void *p)
{
	erase_and_free(*(void **)p);
}
#define _cleanup_erase_ _cleanup_(erase_and_freep)

/* Constant-time comparison of two buffers of the same length: 0 when equal. */
int memcmp_const(const void *a, const void *b, size_t n);

/* Wipes the buffer on scope exit (for stack arrays holding secrets). */
struct erase_on_exit {
	void *p;
	size_t n;
};
static inline void erase_on_exitp(struct erase_on_exit *e)
{
	memory_erase(e->p, e->n);
}
#define ERASE_ON_EXIT(buf)                                                                           \
	_cleanup_(erase_on_exitp) _unused_ struct erase_on_exit _erase_##buf = {(buf), sizeof(buf)}
