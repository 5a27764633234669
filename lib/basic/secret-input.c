/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "macro.h"
#include "memory-secure.h"
#include "secret-input.h"

void env_wipe(const char *name)
{
	char *v = getenv(name);
	if (v)
		explicit_bzero(v, strlen(v));
	unsetenv(name);
}

static int tty_read_line(int fd, const char *prompt, char **ret)
{
	struct termios old, new;
	char *buf = secure_alloc(1024);
	size_t n = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	if (tcgetattr(fd, &old) < 0) {
		secure_free(buf);
		return -ENXIO;
	}
	new = old;
	new.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	new.c_lflag |= ICANON;
	(void)!write(fd, prompt, strlen(prompt));
	if (tcsetattr(fd, TCSANOW, &new) < 0) {
		secure_free(buf);
		return -errno;
	}
	for (;;) {
		char c;
		ssize_t k = read(fd, &c, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = n > 0 ? 0 : -ECANCELED;
			break;
		}
		if (c == '\n' || c == '\r')
			break;
		if (n + 1 >= 1024) {
			r = -E2BIG;
			break;
		}
		buf[n++] = c;
	}
	(void)tcsetattr(fd, TCSANOW, &old);
	(void)!write(fd, "\n", 1);
	buf[n] = 0;
	if (r >= 0 && n == 0)
		r = -ECANCELED;
	if (r < 0) {
		secure_free(buf);
		return r;
	}
	*ret = buf;
	return 0;
}

int secret_acquire(const char *env_name, const char *prompt, bool confirm, char **ret)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_secure_ char *a = NULL, *b = NULL;
	const char *e = env_name ? getenv(env_name) : NULL;
	int r;

	if (e) {
		char *s = secure_strdup(e);
		env_wipe(env_name);
		if (!s)
			return -ENOMEM;
		if (!*s) {
			secure_free(s);
			return -ECANCELED;
		}
		*ret = s;
		return 0;
	}

	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -ENXIO;
	r = tty_read_line(fd, prompt, &a);
	if (r < 0)
		return r;
	if (confirm) {
		r = tty_read_line(fd, "Repeat: ", &b);
		if (r < 0)
			return r;
		if (strlen(a) != strlen(b) || memcmp_const(a, b, strlen(a)) != 0)
			return -EBADMSG;
	}
	*ret = TAKE_PTR(a);
	return 0;
}
