/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "memory-secure.h"

int read_full_file(const char *path, size_t max_size, bool secure, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	char *buf = NULL;
	size_t size = 0, alloc = 0;
	int r;

	if (streq(path, "-"))
		fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	else
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;

	/* Room for max_size bytes, the NUL, and one more byte to notice a file that is too big;
	 * saturating, so that SIZE_MAX ("no limit") does not wrap around to a 1-byte cap. */
	size_t cap = max_size > SIZE_MAX - 2 ? SIZE_MAX : max_size + 2;

	for (;;) {
		if (size + 1 >= alloc) {
			size_t n = alloc == 0 ? 4096 : (alloc > SIZE_MAX / 2 ? SIZE_MAX : alloc * 2);
			if (n > cap)
				n = cap;
			if (n <= size + 1) {
				r = -EFBIG;
				goto fail;
			}
			char *nb = secure ? secure_alloc(n) : malloc(n);
			if (!nb) {
				r = -ENOMEM;
				goto fail;
			}
			if (buf)
				memcpy(nb, buf, size);
			if (secure)
				secure_free(buf);
			else
				free(buf);
			buf = nb;
			alloc = n;
		}
		ssize_t k = read(fd, buf + size, alloc - size - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		if (k == 0)
			break;
		size += (size_t)k;
		if (size > max_size) {
			r = -EFBIG;
			goto fail;
		}
	}
	if (!buf) {
		buf = secure ? secure_alloc(1) : malloc(1);
		if (!buf)
			return -ENOMEM;
	}
	buf[size] = 0;
	*ret = buf;
	if (ret_size)
		*ret_size = size;
	return 0;

fail:
	if (secure)
		secure_free(buf);
	else
		free(buf);
	return r;
}

int fsync_parent_dir(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_close_ int dfd = -EBADF;

	if (!copy)
		return -ENOMEM;
	dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (fsync(dfd) < 0)
		return -errno;
	return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	const uint8_t *p = data;
	int r;

	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		goto fail;
	}
	while (size > 0) {
		ssize_t k = write(fd, p, size);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		p += k;
		size -= (size_t)k;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto fail;
	}
	return fsync_parent_dir(path);

fail:
	(void)unlink(tmp);
	return r;
}
