/* SPDX-License-Identifier: Apache-2.0 */
/* lib/luks on real LUKS2 image files (16 MiB, sparse) in a private directory under /tmp that is
 * removed after each test. Needs no device-mapper; luks_activate is checked to say so. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "luks/luks.h"

#define IMAGE_SIZE (16 * 1024 * 1024)

static const char pass1[] = "first passphrase: 0123456789abcdef0123456789abcdef";
static const char pass2[] = "second passphrase: fedcba9876543210fedcba9876543210";

typedef struct Fixture {
	char dir[64];
	char image[128];
	LuksVolume *v;
	int slot;
} Fixture;

/* ---- helpers ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void make_file(const char *path, off_t size)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
}

static void write_at(const char *path, off_t offset, const void *data, size_t n)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, data, n, offset), (ssize_t)n);
}

static void read_at(const char *path, off_t offset, void *data, size_t n)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, data, n, offset), (ssize_t)n);
}

static void write_random_at(const char *path, off_t offset, size_t n)
{
	_cleanup_free_ uint8_t *buf = malloc(n);

	assert_non_null(buf);
	assert_int_equal(getrandom(buf, n, 0), (ssize_t)n);
	write_at(path, offset, buf, n);
}

static void path_in(const Fixture *f, const char *name, char *buf, size_t n)
{
	assert_true((size_t)snprintf(buf, n, "%s/%s", f->dir, name) < n);
}

/* Closes and re-opens the fixture's volume: checks that what we assert is on disk, not only in
 * the handle's cached metadata. */
static void reopen(Fixture *f)
{
	f->v = luks_close(f->v);
	assert_int_equal(luks_open(f->image, &f->v), 0);
}

static void assert_pbkdf2_1000(LuksVolume *v, int slot)
{
	LuksKeyslotPbkdf p;

	assert_int_equal(luks_keyslot_get_pbkdf(v, slot, &p), 0);
	assert_string_equal(p.type, "pbkdf2");
	assert_string_equal(p.hash, "sha256");
	assert_int_equal(p.iterations, LUKS_PBKDF2_ITERATIONS);
}

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/trustpc-test-luks.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f; /* from here on teardown removes the directory, even if setup fails */
	path_in(f, "disk.img", f->image, sizeof(f->image));
	make_file(f->image, IMAGE_SIZE);
	f->slot = -1;
	assert_int_equal(luks_format(f->image, pass1, strlen(pass1), &f->slot), 0);
	assert_int_equal(luks_open(f->image, &f->v), 0);
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;

	if (!f)
		return 0;
	luks_close(f->v);
	(void)nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- format / open ---- */

static void test_format_and_open(void **state)
{
	Fixture *f = *state;
	const char *uuid;
	struct stat st;

	assert_int_equal(f->slot, 0);
	assert_string_equal(luks_path(f->v), f->image);
	uuid = luks_uuid(f->v);
	assert_non_null(uuid);
	assert_int_equal(strlen(uuid), 36);
	assert_int_equal(uuid[8], '-');
	assert_int_equal(luks_volume_key_size(f->v), 64);

	assert_true(luks_keyslot_active(f->v, 0));
	assert_false(luks_keyslot_active(f->v, 1));
	assert_false(luks_keyslot_active(f->v, -1));
	assert_false(luks_keyslot_active(f->v, 100000));
	assert_pbkdf2_1000(f->v, 0);

	/* Formatting must not have grown the file or filled it: the small header is all we write. */
	assert_int_equal(stat(f->image, &st), 0);
	assert_int_equal(st.st_size, IMAGE_SIZE);
	assert_true(st.st_blocks * 512 < IMAGE_SIZE);
}

static void test_format_rejects(void **state)
{
	Fixture *f = *state;
	char small[192], missing[192];
	int slot = 12345;

	path_in(f, "small.img", small, sizeof(small));
	path_in(f, "missing.img", missing, sizeof(missing));
	make_file(small, 1024 * 1024);

	assert_int_equal(luks_format(small, pass1, strlen(pass1), &slot), -ENOSPC);
	assert_int_equal(luks_format(missing, pass1, strlen(pass1), &slot), -ENOENT);
	assert_int_equal(luks_format(f->dir, pass1, strlen(pass1), &slot), -EINVAL);
	assert_int_equal(luks_format(f->image, NULL, 5, &slot), -EINVAL);
	assert_int_equal(slot, 12345); /* ret_* untouched on failure */
}

static void test_open_errors(void **state)
{
	Fixture *f = *state;
	char zeros[192], garbage[192], missing[192];
	LuksVolume *v = (LuksVolume *)0x1;

	path_in(f, "zeros.img", zeros, sizeof(zeros));
	path_in(f, "garbage.img", garbage, sizeof(garbage));
	path_in(f, "missing.img", missing, sizeof(missing));
	make_file(zeros, IMAGE_SIZE);
	make_file(garbage, IMAGE_SIZE);
	write_random_at(garbage, 0, 32 * 1024);

	assert_int_equal(luks_open(zeros, &v), -EINVAL);
	assert_int_equal(luks_open(garbage, &v), -EINVAL);
	assert_int_equal(luks_open(missing, &v), -ENOENT);
	assert_int_equal(luks_open(f->dir, &v), -EINVAL);
	assert_int_equal(luks_open("", &v), -EINVAL);
	assert_int_equal(luks_open(NULL, &v), -EINVAL);
	assert_ptr_equal(v, (LuksVolume *)0x1);
	assert_null(luks_close(NULL));
}

/* LUKS2 keeps a second header copy right after the first (here at 64 KiB): garbage over the first
 * 32 KiB of a formatted volume does not stop it from opening, garbage over both copies does. */
static void test_open_damaged_header(void **state)
{
	Fixture *f = *state;
	LuksVolume *v = NULL;

	f->v = luks_close(f->v);
	write_random_at(f->image, 0, 32 * 1024);
	assert_int_equal(luks_open(f->image, &v), 0);
	assert_int_equal(luks_test_passphrase(v, LUKS_ANY_SLOT, pass1, strlen(pass1)), 0);
	v = luks_close(v);

	write_random_at(f->image, 0, 256 * 1024);
	assert_int_equal(luks_open(f->image, &v), -EINVAL);
	assert_null(v);
}

/* ---- passphrases, volume key, keyslots ---- */

static void test_passphrase(void **state)
{
	Fixture *f = *state;

	assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, pass1, strlen(pass1)), 0);
	assert_int_equal(luks_test_passphrase(f->v, 0, pass1, strlen(pass1)), 0);
	assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, pass2, strlen(pass2)), -EPERM);
	assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, pass1, strlen(pass1) - 1), -EPERM);
	assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, "", 0), -EPERM);
	assert_int_equal(luks_test_passphrase(f->v, 1, pass1, strlen(pass1)), -EPERM); /* inactive */
	assert_int_equal(luks_test_passphrase(f->v, 100000, pass1, strlen(pass1)), -EINVAL);
	assert_int_equal(luks_test_passphrase(f->v, -7, pass1, strlen(pass1)), -EINVAL);
	assert_int_equal(luks_test_passphrase(f->v, 0, NULL, 3), -EINVAL);
}

static void test_volume_key_and_add_keyslot(void **state)
{
	Fixture *f = *state;
	_cleanup_secure_ uint8_t *vk = NULL, *vk2 = NULL;
	uint8_t *untouched = (uint8_t *)0x1;
	size_t vk_size = 0, vk2_size = 0, untouched_size = 77;
	int slot;

	assert_int_equal(
	    luks_volume_key_get(f->v, LUKS_ANY_SLOT, pass2, strlen(pass2), &untouched, &untouched_size),
	    -EPERM);
	assert_ptr_equal(untouched, (uint8_t *)0x1);
	assert_int_equal(untouched_size, 77);

	assert_int_equal(luks_volume_key_get(f->v, LUKS_ANY_SLOT, pass1, strlen(pass1), &vk, &vk_size), 0);
	assert_int_equal(vk_size, 64);
	assert_int_equal(luks_volume_key_verify(f->v, vk, vk_size), 0);

	/* A key that differs in one bit is not the volume key, and authorises nothing. */
	vk[17] ^= 0x10;
	assert_int_equal(luks_volume_key_verify(f->v, vk, vk_size), -EPERM);
	assert_int_equal(luks_keyslot_add_by_volume_key(f->v, vk, vk_size, pass2, strlen(pass2)), -EPERM);
	assert_int_equal(luks_keyslot_add_by_volume_key(f->v, vk, 32, pass2, strlen(pass2)), -EPERM);
	vk[17] ^= 0x10;
	assert_false(luks_keyslot_active(f->v, 1));

	slot = luks_keyslot_add_by_volume_key(f->v, vk, vk_size, pass2, strlen(pass2));
	assert_int_equal(slot, 1);
	assert_pbkdf2_1000(f->v, slot);

	reopen(f);
	assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, pass2, strlen(pass2)), slot);
	assert_int_equal(luks_test_passphrase(f->v, slot, pass2, strlen(pass2)), slot);
	assert_int_equal(luks_test_passphrase(f->v, 0, pass2, strlen(pass2)), -EPERM);
	assert_int_equal(luks_test_passphrase(f->v, slot, pass1, strlen(pass1)), -EPERM);
	assert_int_equal(luks_test_passphrase(f->v, 0, pass1, strlen(pass1)), 0);

	/* Both slots hold the same volume key. */
	assert_int_equal(luks_volume_key_get(f->v, slot, pass2, strlen(pass2), &vk2, &vk2_size), slot);
	assert_int_equal(vk2_size, vk_size);
	assert_memory_equal(vk, vk2, vk_size);
}

static void test_keyslot_destroy(void **state)
{
	Fixture *f = *state;
	_cleanup_secure_ uint8_t *vk = NULL;
	_cleanup_free_ uint8_t *before = NULL, *after = NULL;
	uint64_t offset, length;
	size_t vk_size;
	int slot;

	assert_int_equal(luks_volume_key_get(f->v, 0, pass1, strlen(pass1), &vk, &vk_size), 0);
	slot = luks_keyslot_add_by_volume_key(f->v, vk, vk_size, pass2, strlen(pass2));
	assert_true(slot > 0);
	assert_int_equal(luks_keyslot_area(f->v, slot, &offset, &length), 0);
	assert_true(length >= 64 * 4000);
	before = malloc(length);
	after = malloc(length);
	assert_non_null(before);
	assert_non_null(after);
	read_at(f->image, (off_t)offset, before, length);

	assert_int_equal(luks_keyslot_destroy(f->v, slot), 0);
	assert_false(luks_keyslot_active(f->v, slot));
	assert_int_equal(luks_keyslot_area(f->v, slot, &offset, &length), -ENOENT);
	/* The slot's key material was overwritten, not just forgotten by the JSON. */
	read_at(f->image, (off_t)offset, after, length);
	assert_memory_not_equal(before, after, length);

	reopen(f);
	assert_false(luks_keyslot_active(f->v, slot));
	assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, pass2, strlen(pass2)), -EPERM);
	assert_int_equal(luks_test_passphrase(f->v, slot, pass2, strlen(pass2)), -EPERM);
	assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, pass1, strlen(pass1)), 0);

	assert_int_equal(luks_keyslot_destroy(f->v, slot), -ENOENT);
	assert_int_equal(luks_keyslot_destroy(f->v, 100000), -EINVAL);
	assert_int_equal(luks_keyslot_destroy(f->v, -1), -EINVAL);
}

static void test_keyslots_full(void **state)
{
	Fixture *f = *state;
	_cleanup_secure_ uint8_t *vk = NULL;
	size_t vk_size;
	int r, n = 1;

	assert_int_equal(luks_volume_key_get(f->v, 0, pass1, strlen(pass1), &vk, &vk_size), 0);
	for (;;) {
		r = luks_keyslot_add_by_volume_key(f->v, vk, vk_size, pass2, strlen(pass2));
		if (r < 0)
			break;
		assert_true(luks_keyslot_active(f->v, r));
		n++;
		assert_true(n <= 64);
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(n >= 8); /* luks_format promises room for several keyslots */
	assert_int_equal(luks_test_passphrase(f->v, 0, pass1, strlen(pass1)), 0);
}

/* ---- tokens ---- */

static void test_tokens(void **state)
{
	Fixture *f = *state;
	_cleanup_free_ char *json = NULL, *json2 = NULL, *json3 = NULL;
	int token = -1, other;

	assert_int_equal(luks_token_find(f->v, "trustpc-tpm2", &token, &json), -ENOENT);
	assert_int_equal(token, -1);
	assert_null(json);

	token = luks_token_write(f->v, LUKS_ANY_TOKEN,
				 "{\"type\":\"trustpc-tpm2\",\"keyslots\":[\"0\"],\"blob\":\"aa11\"}");
	assert_true(token >= 0);
	other = luks_token_write(f->v, LUKS_ANY_TOKEN, "{\"type\":\"trustpc-other\",\"keyslots\":[]}");
	assert_true(other >= 0);
	assert_int_not_equal(other, token);

	reopen(f);
	assert_int_equal(luks_token_find(f->v, "trustpc-tpm2", NULL, &json), token);
	assert_non_null(strstr(json, "\"aa11\""));
	assert_int_equal(luks_token_is_assigned(f->v, token, 0), 1);
	assert_int_equal(luks_token_is_assigned(f->v, token, 1), 0);
	assert_int_equal(luks_token_is_assigned(f->v, other, 0), 0);
	assert_int_equal(luks_token_is_assigned(f->v, 100000, 0), -EINVAL);

	/* Replace in place. */
	assert_int_equal(
	    luks_token_write(f->v, token,
			     "{\"type\":\"trustpc-tpm2\",\"keyslots\":[\"0\"],\"blob\":\"bb22\"}"),
	    token);
	reopen(f);
	assert_int_equal(luks_token_get(f->v, token, &json2), 0);
	assert_null(strstr(json2, "aa11"));
	assert_non_null(strstr(json2, "\"bb22\""));

	/* Rejected by libcryptsetup's validation: nothing is written. */
	assert_int_equal(luks_token_write(f->v, LUKS_ANY_TOKEN, "{\"type\":\"x\",\"keyslots\":[\"5\"]}"),
			 -EINVAL);
	assert_int_equal(luks_token_write(f->v, LUKS_ANY_TOKEN, "{\"type\":\"x\"}"), -EINVAL);
	assert_int_equal(luks_token_write(f->v, LUKS_ANY_TOKEN, "{\"keyslots\":[]}"), -EINVAL);
	assert_int_equal(luks_token_write(f->v, LUKS_ANY_TOKEN, "{\"type\":\"x\",\"keyslots\":["), -EINVAL);
	assert_int_equal(luks_token_write(f->v, 100000, "{\"type\":\"x\",\"keyslots\":[]}"), -EINVAL);
	assert_int_equal(luks_token_find(f->v, "x", NULL, NULL), -ENOENT);

	assert_int_equal(luks_token_remove(f->v, token), 0);
	assert_int_equal(luks_token_remove(f->v, token), -ENOENT);
	assert_int_equal(luks_token_remove(f->v, 100000), -EINVAL);
	reopen(f);
	assert_int_equal(luks_token_find(f->v, "trustpc-tpm2", NULL, NULL), -ENOENT);
	assert_int_equal(luks_token_get(f->v, token, &json3), -ENOENT);
	assert_null(json3);
	assert_int_equal(luks_token_find(f->v, "trustpc-other", NULL, NULL), other);
}

/* The JSON area (60 KiB here) fills up before the 32 token ids run out. */
static void test_tokens_full(void **state)
{
	Fixture *f = *state;
	size_t blob = 8 * 1024;
	_cleanup_free_ char *json = malloc(blob + 64);
	size_t prefix;
	int r, n = 0;

	assert_non_null(json);
	strcpy(json, "{\"type\":\"trustpc-big\",\"keyslots\":[],\"blob\":\"");
	prefix = strlen(json);
	memset(json + prefix, 'a', blob);
	strcpy(json + prefix + blob, "\"}");
	for (;;) {
		r = luks_token_write(f->v, LUKS_ANY_TOKEN, json);
		if (r < 0)
			break;
		n++;
		assert_true(n <= 32);
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(n >= 3);
	reopen(f);
	assert_int_equal(luks_token_find(f->v, "trustpc-big", NULL, NULL), 0);
	assert_int_equal(luks_test_passphrase(f->v, 0, pass1, strlen(pass1)), 0);
}

/* Destroying a keyslot drops it from the tokens that named it. */
static void test_token_follows_keyslot(void **state)
{
	Fixture *f = *state;
	_cleanup_secure_ uint8_t *vk = NULL;
	size_t vk_size;
	int slot, token;
	char json[128];

	assert_int_equal(luks_volume_key_get(f->v, 0, pass1, strlen(pass1), &vk, &vk_size), 0);
	slot = luks_keyslot_add_by_volume_key(f->v, vk, vk_size, pass2, strlen(pass2));
	assert_true(slot > 0);
	snprintf(json, sizeof(json), "{\"type\":\"trustpc-tpm2\",\"keyslots\":[\"%i\"]}", slot);
	token = luks_token_write(f->v, LUKS_ANY_TOKEN, json);
	assert_true(token >= 0);
	assert_int_equal(luks_token_is_assigned(f->v, token, slot), 1);
	assert_int_equal(luks_token_is_assigned(f->v, token, 0), 0);

	assert_int_equal(luks_keyslot_destroy(f->v, slot), 0);
	reopen(f);
	assert_int_equal(luks_token_is_assigned(f->v, token, slot), 0);
}

/* ---- erase ---- */

static void test_erase(void **state)
{
	Fixture *f = *state;
	_cleanup_secure_ uint8_t *vk = NULL;
	_cleanup_free_ uint8_t *before = NULL, *after = NULL;
	uint64_t offset, length;
	size_t vk_size;
	int slot;

	assert_int_equal(luks_volume_key_get(f->v, 0, pass1, strlen(pass1), &vk, &vk_size), 0);
	slot = luks_keyslot_add_by_volume_key(f->v, vk, vk_size, pass2, strlen(pass2));
	assert_true(slot > 0);
	assert_true(
	    luks_token_write(f->v, LUKS_ANY_TOKEN, "{\"type\":\"trustpc-tpm2\",\"keyslots\":[\"0\"]}") >= 0);
	assert_true(
	    luks_token_write(f->v, LUKS_ANY_TOKEN, "{\"type\":\"trustpc-recovery\",\"keyslots\":[]}") >= 0);

	assert_int_equal(luks_keyslot_area(f->v, 0, &offset, &length), 0);
	before = malloc(length);
	after = malloc(length);
	assert_non_null(before);
	assert_non_null(after);
	read_at(f->image, (off_t)offset, before, length);

	assert_int_equal(luks_erase(f->v), 0);

	for (int pass = 0; pass < 2; pass++) { /* the open handle, then fresh from disk */
		for (int s = 0; s < 32; s++)
			assert_false(luks_keyslot_active(f->v, s));
		assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, pass1, strlen(pass1)), -EPERM);
		assert_int_equal(luks_test_passphrase(f->v, LUKS_ANY_SLOT, pass2, strlen(pass2)), -EPERM);
		assert_int_equal(luks_test_passphrase(f->v, 0, pass1, strlen(pass1)), -EPERM);
		assert_int_equal(luks_volume_key_verify(f->v, vk, vk_size), -EPERM);
		assert_int_equal(luks_keyslot_add_by_volume_key(f->v, vk, vk_size, pass1, strlen(pass1)),
				 -EPERM);
		assert_int_equal(luks_token_find(f->v, "trustpc-tpm2", NULL, NULL), -ENOENT);
		assert_int_equal(luks_token_find(f->v, "trustpc-recovery", NULL, NULL), -ENOENT);
		assert_int_equal(luks_volume_key_size(f->v), 0);
		for (int t = 0; t < 32; t++)
			assert_int_equal(luks_token_remove(f->v, t), -ENOENT);
		reopen(f);
	}

	read_at(f->image, (off_t)offset, after, length);
	assert_memory_not_equal(before, after, length);
}

/* ---- activation ---- */

static void test_activate(void **state)
{
	Fixture *f = *state;
	_cleanup_close_ int fd = -EBADF;

	assert_int_equal(luks_activate(f->v, NULL, LUKS_ANY_SLOT, pass1, strlen(pass1)), -EINVAL);
	assert_int_equal(luks_activate(f->v, "trustpc-test", 100000, pass1, strlen(pass1)), -EINVAL);
	/* Only a control node that opens means device-mapper: libdevmapper creates the node itself
	 * (10:236) even where the kernel has no driver for it, as on the build host. */
	fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		skip(); /* a host with device-mapper: activation would really happen */
	assert_int_equal(luks_activate(f->v, "trustpc-test", LUKS_ANY_SLOT, pass1, strlen(pass1)), -ENOTSUP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_format_and_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_rejects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_damaged_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_passphrase, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_volume_key_and_add_keyslot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyslot_destroy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keyslots_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tokens_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_follows_keyslot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_erase, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_activate, setup, teardown),
	};

	log_parse_environment();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
