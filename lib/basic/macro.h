/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Take ownership of a pointer: returns it and sets the variable to NULL so that its cleanup
 * handler does nothing. */
#define TAKE_PTR(p)                                                                                  \
	({                                                                                           \
		typeof(p) _p_ = (p);                                                                 \
		(p) = NULL;                                                                          \
		_p_;                                                                                 \
	})

#define TAKE_FD(fd)                                                                                  \
	({                                                                                           \
		int _fd_ = (fd);                                                                     \
		(fd) = -EBADF;                                                                       \
		_fd_;                                                                                \
	})

/* Define a cleanup function for pointers to a type whose destructor takes the pointer. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                      \
	static inline void func##p(type *p)                                                          \
	{                                                                                            \
		if (*p)                                                                              \
			func(*p);                                                                    \
	}

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		(void)close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(closep)

/* Convert a return value that may be a positive errno into a negative one. */
static inline int negative_errno(int r)
{
	return r > 0 ? -r : (r == 0 ? -EIO : r);
}

static inline int errno_or_else(int fallback)
{
	return errno > 0 ? -errno : -abs(fallback);
}

static inline int streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static inline int streq_ptr(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static inline const char *strna(const char *s)
{
	return s ?: "n/a";
}

/* A NUL-terminated copy of n bytes that need not be NUL-terminated themselves (strndup may read
 * on until a NUL; ASan's strict_string_checks rightly flags that on raw buffers). */
static inline char *memdup_str(const void *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static inline const char *startswith(const char *s, const char *prefix)
{
	size_t l = strlen(prefix);
	return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}
