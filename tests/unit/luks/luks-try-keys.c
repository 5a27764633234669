/* SPDX-License-Identifier: Apache-2.0 */
/* luks-try-keys IMAGE KEYSLOT CAPTUREFILE
 *
 * Tries every 32-byte window of CAPTUREFILE (a bus or network capture) as the passphrase of
 * KEYSLOT ("any" or a number) of the LUKS2 volume IMAGE. Prints "FOUND at offset N" and exits 0
 * if one opens it; exits 1 if none does (saying on stderr how many distinct windows it tried),
 * 2 on usage or I/O errors. The integration tests use it to show that the disk key never
 * appears on the wire.
 *
 * Speed: one attempt costs ~8 ms even with PBKDF2 at 1000 iterations — libcryptsetup 2.6 on
 * OpenSSL 3 spends it in the anti-forensic merge (a hash context per stripe, 4000 stripes). So:
 * each distinct window is tried once (TPM traffic repeats headers, handles and padding a lot),
 * and the windows are shared out to one worker process per CPU (TRUSTPC_TRY_KEYS_JOBS
 * overrides), each with one LuksVolume for all of its windows (no header re-reads). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
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
	const size_t *offsets; /* of the distinct windows, ascending */
} Search;

/* What a worker reports through the pipe: one record, written at once (< PIPE_BUF, so atomic). */
typedef struct Report {
	size_t tried;
	size_t offset;
	uint8_t found;
} Report;

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

static int cmp_window(const void *a, const void *b, void *userdata)
{
	const uint8_t *capture = userdata;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int r = memcmp(capture + x, capture + y, WINDOW_SIZE);

	return r != 0 ? r : (x > y) - (x < y);
}

static int cmp_offset(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

/* The offsets of the distinct windows (the first occurrence of each), ascending. */
static int distinct_windows(const uint8_t *capture, size_t size, size_t **ret, size_t *ret_n)
{
	size_t n = size >= WINDOW_SIZE ? size - WINDOW_SIZE + 1 : 0, k = 0;
	size_t *offsets = calloc(MAX(n, (size_t)1), sizeof(size_t));

	if (!offsets)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		offsets[i] = i;
	qsort_r(offsets, n, sizeof(size_t), cmp_window, (void *)capture);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || memcmp(capture + offsets[k - 1], capture + offsets[i], WINDOW_SIZE) != 0)
			offsets[k++] = offsets[i];
	qsort(offsets, k, sizeof(size_t), cmp_offset);
	*ret = offsets;
	*ret_n = k;
	return 0;
}

/* Tries the windows offsets[first..end) with one handle; 0 with *report filled in, or a negative
 * errno. */
static int search_range(const Search *s, size_t first, size_t end, Report *report)
{
	_cleanup_(luks_closep) LuksVolume *v = NULL;
	int r;

	r = luks_open(s->image, &v);
	if (r < 0)
		return log_error_errno(r, "Failed to open LUKS2 volume %s: %m", s->image);

	for (size_t i = first; i < end; i++) {
		size_t off = s->offsets[i];

		report->tried++;
		r = luks_test_passphrase(v, s->slot, s->capture + off, WINDOW_SIZE);
		if (r >= 0) {
			report->found = 1;
			report->offset = off;
			return 0;
		}
		if (r != -EPERM)
			return log_error_errno(r, "Failed to test a passphrase on %s: %m", s->image);
	}
	return 0;
}

static _Noreturn void worker(const Search *s, size_t first, size_t end, int fd)
{
	Report report = {};

	if (search_range(s, first, end, &report) < 0)
		_exit(EXIT_ERROR);
	if (write(fd, &report, sizeof(report)) != (ssize_t)sizeof(report))
		_exit(EXIT_ERROR);
	_exit(report.found ? EXIT_FOUND : EXIT_NOT_FOUND);
}

static int run_workers(const Search *s, unsigned jobs, size_t n_windows, size_t *ret_offset,
		       size_t *ret_tried)
{
	pid_t pids[JOBS_MAX] = {};
	int fds[2], result = EXIT_NOT_FOUND;
	size_t tried = 0, offset = SIZE_MAX;
	unsigned running = 0;
	Report report;

	if (pipe(fds) < 0) {
		log_error_errno(errno, "pipe: %m");
		return EXIT_ERROR;
	}

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
		result = WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FOUND ? EXIT_FOUND : EXIT_ERROR;

		/* Found or failed: the other workers' answers no longer matter. */
		for (unsigned i = 0; i < jobs; i++)
			if (pids[i] > 0)
				(void)kill(pids[i], SIGTERM);
	}

	/* Every worker is gone: the pipe holds one record per worker that finished its range. */
	while (read(fds[0], &report, sizeof(report)) == (ssize_t)sizeof(report)) {
		tried += report.tried;
		if (report.found)
			offset = MIN(offset, report.offset);
	}
	close(fds[0]);

	if (result == EXIT_FOUND && offset == SIZE_MAX)
		result = EXIT_ERROR;
	if (result == EXIT_FOUND)
		*ret_offset = offset;
	*ret_tried = tried;
	return result;
}

int main(int argc, char *argv[])
{
	_cleanup_(luks_closep) LuksVolume *v = NULL;
	_cleanup_free_ char *capture = NULL;
	_cleanup_free_ size_t *offsets = NULL;
	size_t size = 0, n_windows = 0, offset = 0, tried = 0;
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
	r = distinct_windows((const uint8_t *)capture, size, &offsets, &n_windows);
	if (r < 0) {
		log_oom();
		return EXIT_ERROR;
	}

	jobs = n_jobs(n_windows);
	s = (Search){
	    .image = argv[1], .slot = slot, .capture = (const uint8_t *)capture, .offsets = offsets};
	r = run_workers(&s, jobs, n_windows, &offset, &tried);
	if (r == EXIT_FOUND)
		printf("FOUND at offset %zu\n", offset);
	else if (r == EXIT_NOT_FOUND)
		log_info("No %d-byte window of %s (%zu bytes, %zu distinct windows tried) opens keyslot %s.",
			 WINDOW_SIZE, argv[3], size, tried, argv[2]);
	return r;
}
