/* SPDX-License-Identifier: Apache-2.0 */
/* luks-try-keys IMAGE KEYSLOT CAPTUREFILE
 *
 * Tries every 32-byte window of CAPTUREFILE (a bus or network capture) as the passphrase of
 * KEYSLOT ("any" or a number) of the LUKS2 volume IMAGE. Prints "FOUND at offset N" and exits 0
 * if one opens it; exits 1 if none does, 2 on usage or I/O errors. The integration tests use it
 * to show that the disk key never appears on the wire.
 *
 * Speed: one attempt costs ~10 ms even with PBKDF2 at 1000 iterations — libcryptsetup 2.6 on
 * OpenSSL 3 spends it in the anti-forensic merge (a hash context per stripe, 4000 stripes). So
 * the windows are shared out to one worker process per CPU (TRUSTPC_TRY_KEYS_JOBS overrides),
 * each with its own LuksVolume for all of its windows (no header re-reads), and a window equal
 * to the one before it (runs of one byte, zero padding) is not tried twice. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "luks/luks.h"

#define WINDOW_SIZE 32
#define CAPTURE_MAX_SIZE (UINT64_C(1) << 30)
#define JOBS_MAX 64

enum {
	EXIT_FOUND = 0,
	EXIT_NOT_FOUND = 1,
	EXIT_ERROR = 2,
};

typedef struct Search {
	const char *image;
	int slot;
	const uint8_t *capture;
	size_t size;
} Search;

static inline void luks_closep(LuksVolume **v)
{
	luks_close(*v);
}

static int parse_slot(const char *s, int *ret)
{
	char *end;
	long l;

	if (streq(s, "any")) {
		*ret = LUKS_ANY_SLOT;
		return 0;
	}
	errno = 0;
	l = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end || l < 0 || l > 1024)
		return -EINVAL;
	*ret = (int)l;
	return 0;
}

static unsigned n_jobs(size_t n_windows)
{
	const char *e = getenv("TRUSTPC_TRY_KEYS_JOBS");
	long n = e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);

	n = MAX(n, 1L);
	n = MIN(n, (long)JOBS_MAX);
	n = MIN(n, (long)MAX(n_windows, (size_t)1));
	return (unsigned)n;
}

/* Tries windows [first, end) with their own handle. Returns the offset that opens the slot, or
 * -EPERM when none does, or another negative errno. */
static ssize_t search_range(const Search *s, size_t first, size_t end)
{
	_cleanup_(luks_closep) LuksVolume *v = NULL;
	int r;

	r = luks_open(s->image, &v);
	if (r < 0)
		return log_error_errno(r, "Failed to open LUKS2 volume %s: %m", s->image);

	for (size_t off = first; off < end; off++) {
		if (off > 0 && memcmp(s->capture + off - 1, s->capture + off, WINDOW_SIZE) == 0)
			continue;
		r = luks_test_passphrase(v, s->slot, s->capture + off, WINDOW_SIZE);
		if (r >= 0)
			return (ssize_t)off;
		if (r != -EPERM)
			return log_error_errno(r, "Failed to test a passphrase on %s: %m", s->image);
	}
	return -EPERM;
}

/* Worker: reports a found offset through fd, answers with its exit status. */
static _Noreturn void worker(const Search *s, size_t first, size_t end, int fd)
{
	ssize_t off = search_range(s, first, end);

	if (off >= 0) {
		size_t o = (size_t)off;
		_exit(write(fd, &o, sizeof(o)) == (ssize_t)sizeof(o) ? EXIT_FOUND : EXIT_ERROR);
	}
	_exit(off == -EPERM ? EXIT_NOT_FOUND : EXIT_ERROR);
}

static int run_workers(const Search *s, unsigned jobs, size_t n_windows, size_t *ret_offset)
{
	pid_t pids[JOBS_MAX] = {};
	int fds[2], result = EXIT_NOT_FOUND;
	size_t found = 0;
	unsigned running = 0;

	if (pipe(fds) < 0) {
		log_error_errno(errno, "pipe: %m");
		return EXIT_ERROR;
	}

	/* Contiguous ranges: a window's predecessor check reads the byte before it, which is in
	 * the capture for every window but the first. */
	for (unsigned i = 0; i < jobs; i++) {
		size_t first = n_windows * i / jobs, end = n_windows * (i + 1) / jobs;
		pid_t pid = fork();

		if (pid < 0) {
			log_error_errno(errno, "fork: %m");
			result = EXIT_ERROR;
			for (unsigned j = 0; j < i; j++)
				(void)kill(pids[j], SIGTERM);
			break;
		}
		if (pid == 0) {
			close(fds[0]);
			worker(s, first, end, fds[1]);
		}
		pids[i] = pid;
		running++;
	}
	close(fds[1]);

	while (running > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);

		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (unsigned i = 0; i < jobs; i++)
			if (pids[i] == pid)
				pids[i] = 0;
		running--;

		if (result != EXIT_NOT_FOUND)
			continue; /* decided already: only reaping the workers killed below */
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_NOT_FOUND)
			continue;
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FOUND &&
		    read(fds[0], &found, sizeof(found)) == (ssize_t)sizeof(found))
			result = EXIT_FOUND;
		else
			result = EXIT_ERROR;

		/* Found or failed: the other workers' answers no longer matter. */
		for (unsigned i = 0; i < jobs; i++)
			if (pids[i] > 0)
				(void)kill(pids[i], SIGTERM);
	}
	close(fds[0]);

	if (result == EXIT_FOUND)
		*ret_offset = found;
	return result;
}

int main(int argc, char *argv[])
{
	_cleanup_(luks_closep) LuksVolume *v = NULL;
	_cleanup_free_ char *capture = NULL;
	size_t size = 0, n_windows, offset = 0;
	unsigned jobs;
	Search s;
	int slot, r;

	log_set_program("luks-try-keys");
	log_parse_environment();

	if (argc != 4 || parse_slot(argv[2], &slot) < 0) {
		fprintf(stderr, "Usage: %s IMAGE KEYSLOT|any CAPTUREFILE\n", argv[0]);
		return EXIT_ERROR;
	}

	r = luks_open(argv[1], &v);
	if (r < 0) {
		log_error_errno(r, "Failed to open LUKS2 volume %s: %m", argv[1]);
		return EXIT_ERROR;
	}
	if (slot != LUKS_ANY_SLOT && !luks_keyslot_active(v, slot)) {
		log_error("Keyslot %i of %s is not in use.", slot, argv[1]);
		return EXIT_ERROR;
	}
	v = luks_close(v); /* each worker opens its own; a libcryptsetup handle is not fork-safe */

	r = read_full_file(argv[3], CAPTURE_MAX_SIZE, false, &capture, &size);
	if (r < 0) {
		log_error_errno(r, "Failed to read %s: %m", argv[3]);
		return EXIT_ERROR;
	}

	n_windows = size >= WINDOW_SIZE ? size - WINDOW_SIZE + 1 : 0;
	jobs = n_jobs(n_windows);
	s = (Search){.image = argv[1], .slot = slot, .capture = (const uint8_t *)capture, .size = size};

	r = run_workers(&s, jobs, n_windows, &offset);
	if (r == EXIT_FOUND)
		printf("FOUND at offset %zu\n", offset);
	else if (r == EXIT_NOT_FOUND)
		log_info("No %d-byte window of %s (%zu bytes) opens keyslot %s.", WINDOW_SIZE, argv[3], size,
			 argv[2]);
	return r;
}
