/* SPDX-License-Identifier: Apache-2.0 */
/* lib/basic/fileio: read_full_file limits and write_file_atomic's all-or-nothing promise. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"

static char dir[256];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)chmod(p, 0700);
	return remove(p);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/trustpc-test-fileio.XXXXXX", getenv("TMPDIR") ?: "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)chmod(dir, 0700);
	return nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char *path_in_dir(const char *name)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static void put(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* Names in the directory other than keep: a leftover temporary file shows up here. */
static unsigned count_other_entries(const char *keep)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..") && !streq_ptr(de->d_name, keep)) {
			print_message("unexpected entry: %s\n", de->d_name);
			n++;
		}
	closedir(d);
	return n;
}

static void test_read_full_file(void **state)
{
	_cleanup_free_ char *p = path_in_dir("f"), *buf = NULL;
	size_t n = 0;

	put(p, "hello\0world", 11);
	assert_int_equal(read_full_file(p, 100, false, &buf, &n), 0);
	assert_int_equal(n, 11);
	assert_memory_equal(buf, "hello\0world", 12); /* NUL-terminated */
}

static void test_read_full_file_limits(void **state)
{
	_cleanup_free_ char *p = path_in_dir("f"), *buf = NULL, *big = malloc(10000);
	char *untouched = (char *)0x1;
	size_t n = 0;

	memset(big, 'x', 10000);
	put(p, big, 10000);
	/* exactly max: fine; one byte over: -EFBIG, whatever the buffer growth steps are */
	assert_int_equal(read_full_file(p, 10000, false, &buf, &n), 0);
	assert_int_equal(n, 10000);
	assert_int_equal(read_full_file(p, 9999, false, &untouched, &n), -EFBIG);
	assert_ptr_equal(untouched, (char *)0x1);
	assert_int_equal(read_full_file(p, 4095, false, &untouched, &n), -EFBIG);
	assert_int_equal(read_full_file(p, 4096, false, &untouched, &n), -EFBIG);
	assert_int_equal(read_full_file(p, 0, false, &untouched, &n), -EFBIG);
	assert_int_equal(read_full_file(p, 9999, true, &untouched, &n), -EFBIG);
	assert_ptr_equal(untouched, (char *)0x1);
	free(TAKE_PTR(buf));
	/* "no limit" must not overflow the size arithmetic */
	assert_int_equal(read_full_file(p, SIZE_MAX, false, &buf, &n), 0);
	assert_int_equal(n, 10000);
}

static void test_read_full_file_empty_and_missing(void **state)
{
	_cleanup_free_ char *p = path_in_dir("empty"), *q = path_in_dir("missing"), *buf = NULL;
	char *untouched = (char *)0x1;
	size_t n = 99;

	put(p, "", 0);
	assert_int_equal(read_full_file(p, 0, false, &buf, &n), 0);
	assert_int_equal(n, 0);
	assert_string_equal(buf, "");
	assert_int_equal(read_full_file(q, 100, false, &untouched, NULL), -ENOENT);
	assert_int_equal(read_full_file(dir, 100, false, &untouched, NULL), -EISDIR);
	assert_ptr_equal(untouched, (char *)0x1);
}

static void test_read_full_file_secure(void **state)
{
	_cleanup_free_ char *p = path_in_dir("key");
	_cleanup_secure_ char *buf = NULL;
	char data[9000];
	size_t n;

	memset(data, 'k', sizeof(data));
	put(p, data, sizeof(data));
	assert_int_equal(read_full_file(p, sizeof(data), true, &buf, &n), 0);
	assert_int_equal(n, sizeof(data));
	assert_true(secure_size(buf) > n); /* secure memory: room for the NUL too */
	assert_memory_equal(buf, data, sizeof(data));
}

static void test_write_file_atomic(void **state)
{
	_cleanup_free_ char *p = path_in_dir("state"), *buf = NULL;
	struct stat st;
	size_t n;
	mode_t old = umask(0077);

	assert_int_equal(write_file_atomic(p, "first", 5, 0644), 0);
	umask(old);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644); /* the mode asked for, not the umask's */
	assert_int_equal(read_full_file(p, 100, false, &buf, &n), 0);
	assert_string_equal(buf, "first");
	free(TAKE_PTR(buf));

	assert_int_equal(write_file_atomic(p, "second, longer", 14, 0600), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(read_full_file(p, 100, false, &buf, &n), 0);
	assert_string_equal(buf, "second, longer");
	free(TAKE_PTR(buf));

	/* shorter content fully replaces the old one: no tail of the old file survives */
	assert_int_equal(write_file_atomic(p, "3", 1, 0600), 0);
	assert_int_equal(read_full_file(p, 100, false, &buf, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(write_file_atomic(p, "", 0, 0600), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(count_other_entries("state"), 0);
}

static void test_write_file_atomic_rename_fails(void **state)
{
	_cleanup_free_ char *p = path_in_dir("adir"), *inner = path_in_dir("adir/x");
	struct stat st;

	/* target is a non-empty directory: rename fails after the temp file was written */
	assert_int_equal(mkdir(p, 0700), 0);
	put(inner, "x", 1);
	int r = write_file_atomic(p, "data", 4, 0600);
	assert_true(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);
	assert_int_equal(stat(inner, &st), 0);
	assert_int_equal(count_other_entries("adir"), 0); /* the temp file was removed */
}

/* In a read-only directory the write fails and the old content stays. Root ignores directory
 * permissions, so as root the write runs in a child that dropped to an unprivileged uid. */
static void test_write_file_atomic_readonly_dir(void **state)
{
	_cleanup_free_ char *p = path_in_dir("state"), *buf = NULL;
	size_t n;
	pid_t pid;
	int status, r;

	assert_int_equal(write_file_atomic(p, "old", 3, 0644), 0);
	assert_int_equal(chmod(dir, 0555), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(99);
		r = write_file_atomic(p, "new", 3, 0644);
		_exit(r == -EACCES ? 0 : 100 + (-r & 0x7f));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("write_file_atomic in a read-only dir: child status %d (99: cannot drop root; "
			 "100+errno: wrong error)", WEXITSTATUS(status));
	assert_int_equal(read_full_file(p, 100, false, &buf, &n), 0);
	assert_string_equal(buf, "old");
	assert_int_equal(count_other_entries("state"), 0);
}

static void test_write_file_atomic_missing_dir(void **state)
{
	_cleanup_free_ char *p = path_in_dir("nodir/state");
	assert_int_equal(write_file_atomic(p, "x", 1, 0600), -ENOENT);
}

static void test_fsync_parent_dir(void **state)
{
	_cleanup_free_ char *p = path_in_dir("f"), *q = path_in_dir("missing/f");

	put(p, "x", 1);
	assert_int_equal(fsync_parent_dir(p), 0);
	assert_int_equal(fsync_parent_dir("relative-name"), 0); /* its directory is "." */
	assert_int_equal(fsync_parent_dir(q), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_full_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_full_file_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_full_file_empty_and_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_full_file_secure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_file_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_file_atomic_rename_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_file_atomic_readonly_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_file_atomic_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_parent_dir, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
