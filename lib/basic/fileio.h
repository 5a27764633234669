/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Reads a whole file (or "-" for stdin) into a NUL-terminated buffer. Fails with -EFBIG when it is
 * larger than max_size (SIZE_MAX: no limit), -ENOENT/-EACCES/… from open(). With secure, the buffer is secure_alloc()ed
 * (free with secure_free) and intermediate copies are wiped. */
int read_full_file(const char *path, size_t max_size, bool secure, char **ret, size_t *ret_size);

/* Writes data to path atomically: temporary file in the same directory → fsync → rename →
 * fsync of the directory. A crash leaves either the old or the new content, never a mix.
 * mode is applied to the new file (e.g. 0600 for keys). */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* fsync of the directory that contains path. */
int fsync_parent_dir(const char *path);
