/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "luks/luks.h"

/* LUKS2 header layout used by luks_format: two 64 KiB metadata copies (4 KiB binary header +
 * 60 KiB JSON, room for a handful of tokens) and a 4 MiB binary keyslot area, which holds 16
 * keyslots of a 512-bit key (4000 anti-forensic stripes = 256000 bytes each, 4 KiB aligned). */
#define LUKS_FORMAT_METADATA_SIZE (UINT64_C(64) * 1024)
#define LUKS_FORMAT_KEYSLOTS_SIZE (UINT64_C(4) * 1024 * 1024)
#define LUKS_FORMAT_MIN_SIZE (UINT64_C(16) * 1024 * 1024)
#define LUKS_VOLUME_KEY_SIZE 64 /* aes-xts-plain64 with two AES-256 keys */

struct LuksVolume {
	struct crypt_device *cd;
	char *path;
};

/* PBKDF2 with a fixed, minimal cost and no benchmark: the secrets we store are high-entropy, so a
 * slow KDF adds nothing but boot time; and without a benchmark the result is deterministic. */
static const struct crypt_pbkdf_type luks_pbkdf = {
    .type = CRYPT_KDF_PBKDF2,
    .hash = "sha256",
    .iterations = LUKS_PBKDF2_ITERATIONS,
    .flags = CRYPT_PBKDF_NO_BENCHMARK,
};

/* libcryptsetup prints errors itself (to stderr by default). lib/ logs at debug only, so forward
 * everything there; the caller logs the errno we return. The messages carry no secrets (paths,
 * keyslot numbers, JSON metadata at most). */
static void luks_log_callback(int level, const char *msg, void *userdata)
{
	size_t n = strlen(msg);

	while (n > 0 && msg[n - 1] == '\n')
		n--;
	log_debug("libcryptsetup[%i]: %.*s", level, (int)n, msg);
}

static void luks_log_setup(struct crypt_device *cd)
{
	/* The default callback (cd == NULL) covers messages from crypt_init() and from calls made
	 * before a handle exists; the per-handle one the rest. Idempotent, so no once-guard. */
	crypt_set_log_callback(NULL, luks_log_callback, NULL);
	if (cd)
		crypt_set_log_callback(cd, luks_log_callback, NULL);
}

static bool luks_slot_in_range(int slot)
{
	return slot >= 0 && slot < crypt_keyslot_max(CRYPT_LUKS2);
}

static bool luks_token_in_range(int token)
{
	return token >= 0 && token < crypt_token_max(CRYPT_LUKS2);
}

static bool luks_keyslot_info_active(crypt_keyslot_info info)
{
	return info == CRYPT_SLOT_ACTIVE || info == CRYPT_SLOT_ACTIVE_LAST || info == CRYPT_SLOT_UNBOUND;
}

/* Checks that path names something libcryptsetup can work on, so that a missing file is -ENOENT
 * and a directory -EINVAL rather than whatever crypt_init makes of them. */
static int luks_check_path(const char *path, struct stat *ret_st)
{
	struct stat st;

	if (!path || !*path)
		return -EINVAL;
	if (stat(path, &st) < 0)
		return log_debug_errno(errno, "Cannot access %s: %m", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return log_debug_errno(EINVAL, "%s is neither a regular file nor a block device.", path);
	if (ret_st)
		*ret_st = st;
	return 0;
}

static int luks_init(const char *path, struct crypt_device **ret)
{
	struct crypt_device *cd = NULL;
	int r;

	luks_log_setup(NULL);
	r = crypt_init(&cd, path);
	if (r < 0)
		return log_debug_errno(r, "crypt_init(%s) failed: %i", path, r);
	luks_log_setup(cd);
	*ret = cd;
	return 0;
}

static inline void crypt_freep(struct crypt_device **cd)
{
	if (*cd)
		crypt_free(*cd);
}

int luks_open(const char *path, LuksVolume **ret)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	_cleanup_free_ char *p = NULL;
	LuksVolume *v;
	int r;

	if (!ret)
		return -EINVAL;
	r = luks_check_path(path, NULL);
	if (r < 0)
		return r;

	r = luks_init(path, &cd);
	if (r < 0)
		return r;

	r = crypt_load(cd, CRYPT_LUKS2, NULL);
	if (r < 0) {
		log_debug_errno(r, "crypt_load(%s, LUKS2) failed: %i", path, r);
		/* crypt_load reports "no (valid) LUKS2 header" in several ways: -EINVAL for no
		 * signature or a different type, -ENOENT/-ENOTBLK-like codes for some damaged
		 * headers. Anything but resource errors means "not a LUKS2 volume" to our callers. */
		if (r == -ENOMEM || r == -EIO || r == -EACCES || r == -EBUSY)
			return r;
		return -EINVAL;
	}

	p = strdup(path);
	v = calloc(1, sizeof(*v));
	if (!p || !v) {
		free(v);
		return -ENOMEM;
	}
	v->cd = TAKE_PTR(cd);
	v->path = TAKE_PTR(p);
	*ret = v;
	return 0;
}

LuksVolume *luks_close(LuksVolume *v)
{
	if (!v)
		return NULL;
	crypt_free(v->cd);
	free(v->path);
	free(v);
	return NULL;
}

const char *luks_path(const LuksVolume *v)
{
	return v ? v->path : NULL;
}

const char *luks_uuid(const LuksVolume *v)
{
	return v ? crypt_get_uuid(v->cd) : NULL;
}

size_t luks_volume_key_size(const LuksVolume *v)
{
	int r;

	if (!v)
		return 0;
	r = crypt_get_volume_key_size(v->cd);
	return r > 0 ? (size_t)r : 0;
}

int luks_format(const char *path, const void *pass, size_t pass_len, int *ret_slot)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	struct crypt_params_luks2 params = {
	    .pbkdf = &luks_pbkdf,
	};
	struct stat st;
	int r, slot;

	if (!pass && pass_len > 0)
		return -EINVAL;
	r = luks_check_path(path, &st);
	if (r < 0)
		return r;
	/* A block device's size is checked by libcryptsetup; a short file would only fail later
	 * with a less clear error (or be silently extended by the header writes). */
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < LUKS_FORMAT_MIN_SIZE)
		return log_debug_errno(ENOSPC, "%s is smaller than 16 MiB.", path);

	r = luks_init(path, &cd);
	if (r < 0)
		return r;

	r = crypt_set_metadata_size(cd, LUKS_FORMAT_METADATA_SIZE, LUKS_FORMAT_KEYSLOTS_SIZE);
	if (r < 0)
		return log_debug_errno(r, "crypt_set_metadata_size failed: %i", r);

	/* volume_key NULL: libcryptsetup draws it from the kernel RNG and keeps it in the handle
	 * (locked, wiped on crypt_free) for the keyslot added below. */
	r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, NULL, LUKS_VOLUME_KEY_SIZE, &params);
	if (r < 0)
		return log_debug_errno(r, "crypt_format(%s) failed: %i", path, r);

	r = crypt_set_pbkdf_type(cd, &luks_pbkdf);
	if (r < 0)
		return log_debug_errno(r, "crypt_set_pbkdf_type failed: %i", r);

	slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 0, pass ?: "", pass_len);
	if (slot < 0)
		return log_debug_errno(slot, "Adding the first keyslot to %s failed: %i", path, slot);

	log_debug("Formatted %s as LUKS2 (uuid %s), passphrase in keyslot %i.", path,
		  strna(crypt_get_uuid(cd)), slot);
	if (ret_slot)
		*ret_slot = slot;
	return 0;
}

/* Keyslot opening errors: -EPERM is "the passphrase opens no (or not that) keyslot"; libcryptsetup
 * says -ENOENT when the slot is inactive or there are no keyslots at all, which to a caller trying
 * a passphrase means the same. */
static int luks_map_open_error(int r)
{
	return r == -ENOENT ? -EPERM : r;
}

static int luks_check_slot_arg(int slot)
{
	if (slot != LUKS_ANY_SLOT && !luks_slot_in_range(slot))
		return log_debug_errno(EINVAL, "Keyslot %i out of range.", slot);
	return 0;
}

int luks_test_passphrase(LuksVolume *v, int slot, const void *pass, size_t pass_len)
{
	int r;

	if (!v || (!pass && pass_len > 0))
		return -EINVAL;
	r = luks_check_slot_arg(slot);
	if (r < 0)
		return r;

	/* name NULL: only unlock the volume key from the keyslot, no device-mapper involved. */
	r = crypt_activate_by_passphrase(v->cd, NULL, slot, pass ?: "", pass_len, 0);
	if (r < 0) {
		log_debug_errno(r, "Passphrase does not open keyslot %i of %s: %i", slot, v->path, r);
		return luks_map_open_error(r);
	}
	return r;
}

int luks_volume_key_get(LuksVolume *v, int slot, const void *pass, size_t pass_len, uint8_t **ret,
			size_t *ret_size)
{
	_cleanup_secure_ uint8_t *vk = NULL;
	size_t vk_size;
	int r;

	if (!v || (!pass && pass_len > 0) || !ret)
		return -EINVAL;
	r = luks_check_slot_arg(slot);
	if (r < 0)
		return r;

	vk_size = luks_volume_key_size(v);
	if (vk_size == 0)
		return -EINVAL;
	vk = secure_alloc(vk_size);
	if (!vk)
		return -ENOMEM;

	r = crypt_volume_key_get(v->cd, slot, (char *)vk, &vk_size, pass ?: "", pass_len);
	if (r < 0) {
		log_debug_errno(r, "Cannot unlock the volume key of %s via keyslot %i: %i", v->path, slot,
				r);
		return luks_map_open_error(r);
	}

	*ret = TAKE_PTR(vk);
	if (ret_size)
		*ret_size = vk_size;
	return r;
}

int luks_volume_key_verify(LuksVolume *v, const void *vk, size_t vk_len)
{
	int r;

	if (!v || !vk || vk_len == 0)
		return -EINVAL;

	/* name NULL: only compare against the header's volume key digest. */
	r = crypt_activate_by_volume_key(v->cd, NULL, vk, vk_len, 0);
	if (r < 0) {
		log_debug_errno(r, "Volume key does not match %s: %i", v->path, r);
		/* -EINVAL here is a key of the wrong size or a header without digest. */
		return r == -EINVAL ? -EPERM : r;
	}
	return 0;
}

static bool luks_has_free_slot(LuksVolume *v)
{
	for (int i = 0; luks_slot_in_range(i); i++)
		if (crypt_keyslot_status(v->cd, i) == CRYPT_SLOT_INACTIVE)
			return true;
	return false;
}

int luks_keyslot_add_by_volume_key(LuksVolume *v, const void *vk, size_t vk_len, const void *new_pass,
				   size_t new_pass_len)
{
	int r;

	if (!v || !vk || vk_len == 0 || (!new_pass && new_pass_len > 0))
		return -EINVAL;
	if (vk_len != luks_volume_key_size(v))
		return log_debug_errno(EPERM, "Volume key of wrong size (%zu bytes) for %s.", vk_len,
				       v->path);
	if (!luks_has_free_slot(v))
		return log_debug_errno(ENOSPC, "No free keyslot in %s.", v->path);

	/* Set per handle: crypt_load resets the PBKDF to the library default (argon2id). */
	r = crypt_set_pbkdf_type(v->cd, &luks_pbkdf);
	if (r < 0)
		return log_debug_errno(r, "crypt_set_pbkdf_type failed: %i", r);

	r = crypt_keyslot_add_by_volume_key(v->cd, CRYPT_ANY_SLOT, vk, vk_len, new_pass ?: "", new_pass_len);
	if (r < 0) {
		log_debug_errno(r, "Adding a keyslot to %s failed: %i", v->path, r);
		/* With a free slot number, -EINVAL here is a full binary keyslot area ("No space
		 * for new keyslot"); a wrong key is -EPERM already. */
		return r == -EINVAL ? -ENOSPC : r;
	}
	log_debug("Added keyslot %i to %s.", r, v->path);
	return r;
}

static int luks_check_slot_active(LuksVolume *v, int slot)
{
	if (!luks_slot_in_range(slot))
		return log_debug_errno(EINVAL, "Keyslot %i out of range.", slot);
	if (!luks_keyslot_info_active(crypt_keyslot_status(v->cd, slot)))
		return log_debug_errno(ENOENT, "Keyslot %i of %s is not in use.", slot, v->path);
	return 0;
}

int luks_keyslot_destroy(LuksVolume *v, int slot)
{
	int r;

	if (!v)
		return -EINVAL;
	r = luks_check_slot_active(v, slot);
	if (r < 0)
		return r;

	r = crypt_keyslot_destroy(v->cd, slot);
	if (r < 0)
		return log_debug_errno(r, "Destroying keyslot %i of %s failed: %i", slot, v->path, r);
	log_debug("Destroyed keyslot %i of %s.", slot, v->path);
	return 0;
}

bool luks_keyslot_active(LuksVolume *v, int slot)
{
	return v && luks_slot_in_range(slot) && luks_keyslot_info_active(crypt_keyslot_status(v->cd, slot));
}

int luks_keyslot_get_pbkdf(LuksVolume *v, int slot, LuksKeyslotPbkdf *ret)
{
	struct crypt_pbkdf_type p = {};
	LuksKeyslotPbkdf out = {};
	int r;

	if (!v || !ret)
		return -EINVAL;
	r = luks_check_slot_active(v, slot);
	if (r < 0)
		return r;

	r = crypt_keyslot_get_pbkdf(v->cd, slot, &p);
	if (r < 0)
		return log_debug_errno(r, "Cannot read the PBKDF of keyslot %i: %i", slot, r);
	if (!p.type || strlen(p.type) >= sizeof(out.type) || (p.hash && strlen(p.hash) >= sizeof(out.hash)))
		return -EINVAL;
	strcpy(out.type, p.type);
	if (p.hash)
		strcpy(out.hash, p.hash);
	out.iterations = p.iterations;
	out.max_memory_kb = p.max_memory_kb;
	out.parallel_threads = p.parallel_threads;
	*ret = out;
	return 0;
}

int luks_keyslot_area(LuksVolume *v, int slot, uint64_t *ret_offset, uint64_t *ret_length)
{
	uint64_t offset, length;
	int r;

	if (!v)
		return -EINVAL;
	r = luks_check_slot_active(v, slot);
	if (r < 0)
		return r;

	r = crypt_keyslot_area(v->cd, slot, &offset, &length);
	if (r < 0)
		return log_debug_errno(r, "Cannot locate keyslot %i area: %i", slot, r);
	if (ret_offset)
		*ret_offset = offset;
	if (ret_length)
		*ret_length = length;
	return 0;
}

/* Checked before activating so that the answer does not depend on how far libcryptsetup gets
 * before it notices. Whether /dev/mapper/control exists says nothing: libdevmapper (run as root)
 * creates that node itself, as char 10:236, even on kernels without device-mapper; opening it
 * then fails with ENODEV (ENXIO on some kernels). So open it, as libdevmapper does. */
static int luks_dm_available(void)
{
	_cleanup_close_ int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return 0;
	if (errno == EACCES || errno == EPERM)
		return log_debug_errno(EACCES,
				       "No permission to use device-mapper (/dev/mapper/control): %m");
	return log_debug_errno(ENOTSUP, "Device-mapper is not available (/dev/mapper/control: %s).",
			       strerror(errno));
}

int luks_activate(LuksVolume *v, const char *name, int slot, const void *pass, size_t pass_len)
{
	int r;

	if (!v || !name || !*name || (!pass && pass_len > 0))
		return -EINVAL;
	r = luks_check_slot_arg(slot);
	if (r < 0)
		return r;

	r = luks_dm_available();
	if (r < 0)
		return r;

	r = crypt_activate_by_passphrase(v->cd, name, slot, pass ?: "", pass_len, 0);
	if (r < 0) {
		log_debug_errno(r, "Activating %s as %s failed: %i", v->path, name, r);
		/* dm_init failing (module not loaded, no permission to the control node inside a
		 * container) comes back as -ENOTSUP or -ENODEV. */
		if (r == -ENOTSUP || r == -ENODEV)
			return log_debug_errno(ENOTSUP, "Device-mapper is not usable.");
		return luks_map_open_error(r);
	}
	log_debug("Activated %s as /dev/mapper/%s via keyslot %i.", v->path, name, r);
	return r;
}

static int luks_check_token_active(LuksVolume *v, int token)
{
	crypt_token_info info;

	if (!luks_token_in_range(token))
		return log_debug_errno(EINVAL, "Token %i out of range.", token);
	info = crypt_token_status(v->cd, token, NULL);
	if (info == CRYPT_TOKEN_INVALID || info == CRYPT_TOKEN_INACTIVE)
		return -ENOENT;
	return 0;
}

int luks_token_get(LuksVolume *v, int token, char **ret_json)
{
	const char *json = NULL;
	char *copy;
	int r;

	if (!v || !ret_json)
		return -EINVAL;
	r = luks_check_token_active(v, token);
	if (r < 0)
		return r;

	r = crypt_token_json_get(v->cd, token, &json);
	if (r < 0)
		return log_debug_errno(r, "Cannot read token %i of %s: %i", token, v->path, r);
	copy = strdup(json);
	if (!copy)
		return -ENOMEM;
	*ret_json = copy;
	return 0;
}

int luks_token_find(LuksVolume *v, const char *type, int *ret_token, char **ret_json)
{
	if (!v || !type)
		return -EINVAL;

	for (int t = 0; luks_token_in_range(t); t++) {
		const char *ttype = NULL;
		crypt_token_info info;

		info = crypt_token_status(v->cd, t, &ttype);
		if (info == CRYPT_TOKEN_INVALID || info == CRYPT_TOKEN_INACTIVE || !ttype)
			continue;
		if (!streq(ttype, type))
			continue;

		if (ret_json) {
			int r = luks_token_get(v, t, ret_json);
			if (r < 0)
				return r;
		}
		if (ret_token)
			*ret_token = t;
		return t;
	}
	return -ENOENT;
}

int luks_token_write(LuksVolume *v, int token, const char *json)
{
	int r;

	if (!v || !json)
		return -EINVAL;
	if (token != LUKS_ANY_TOKEN && !luks_token_in_range(token))
		return log_debug_errno(EINVAL, "Token %i out of range.", token);

	if (token == LUKS_ANY_TOKEN) {
		bool free_token = false;

		for (int t = 0; luks_token_in_range(t) && !free_token; t++)
			free_token = crypt_token_status(v->cd, t, NULL) == CRYPT_TOKEN_INACTIVE;
		if (!free_token)
			return log_debug_errno(ENOSPC, "No free token in %s.", v->path);
	}

	/* libcryptsetup validates the JSON (object, "type" string, "keyslots" array of existing
	 * keyslot numbers) and the header as a whole before it writes; an invalid token never
	 * reaches the disk. An existing token id is replaced in one header write. */
	r = crypt_token_json_set(v->cd, token, json);
	if (r < 0)
		/* 2.6 says -EINVAL for JSON it rejects and -ENOSPC when the JSON area is full. */
		return log_debug_errno(r, "Writing token %i to %s failed: %i", token, v->path, r);
	log_debug("Wrote token %i to %s.", r, v->path);
	return r;
}

int luks_token_remove(LuksVolume *v, int token)
{
	int r;

	if (!v)
		return -EINVAL;
	r = luks_check_token_active(v, token);
	if (r < 0)
		return r;

	r = crypt_token_json_set(v->cd, token, NULL);
	if (r < 0)
		return log_debug_errno(r, "Removing token %i from %s failed: %i", token, v->path, r);
	log_debug("Removed token %i from %s.", token, v->path);
	return 0;
}

int luks_token_is_assigned(LuksVolume *v, int token, int slot)
{
	int r;

	if (!v || !luks_token_in_range(token) || !luks_slot_in_range(slot))
		return -EINVAL;

	r = crypt_token_is_assigned(v->cd, token, slot);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return log_debug_errno(r, "crypt_token_is_assigned(%i, %i) failed: %i", token, slot, r);
	return 1;
}

/* Makes the header forget the volume key: a throw-away keyslot with a fresh random key is added
 * with CRYPT_VOLUME_KEY_SET, which moves the data segment to a new digest of that key and drops
 * the old digest; the slot is then destroyed and the key wiped. Without this the header keeps a
 * PBKDF2 digest of the old volume key after all keyslots are gone, and anyone who had copied the
 * key (from memory, a backup) could re-enrol a keyslot or activate with it through cryptsetup.
 * The ciphertext is untouched: it is the old key that decrypts it, and that key is now nowhere. */
static int luks_forget_volume_key(LuksVolume *v, size_t n)
{
	_cleanup_secure_ uint8_t *key = NULL;
	uint8_t pass[32];
	int slot, r;
	ERASE_ON_EXIT(pass);

	if (n == 0)
		return -EINVAL;
	key = secure_alloc(n);
	if (!key)
		return -ENOMEM;
	if (getrandom(key, n, 0) != (ssize_t)n || getrandom(pass, sizeof(pass), 0) != (ssize_t)sizeof(pass))
		return log_debug_errno(errno ?: EIO, "getrandom failed: %m");

	r = crypt_set_pbkdf_type(v->cd, &luks_pbkdf);
	if (r < 0)
		return log_debug_errno(r, "crypt_set_pbkdf_type failed: %i", r);

	slot = crypt_keyslot_add_by_key(v->cd, CRYPT_ANY_SLOT, (const char *)key, n, (const char *)pass,
					sizeof(pass), CRYPT_VOLUME_KEY_SET);
	if (slot < 0)
		return log_debug_errno(slot, "Replacing the volume key digest of %s failed: %i", v->path,
				       slot);

	r = crypt_keyslot_destroy(v->cd, slot);
	if (r < 0)
		return log_debug_errno(r, "Destroying temporary keyslot %i of %s failed: %i", slot, v->path,
				       r);
	return 0;
}

int luks_erase(LuksVolume *v)
{
	uint64_t metadata_size, keyslots_size;
	size_t vk_size;
	int r, ret = 0;

	if (!v)
		return -EINVAL;
	/* LUKS2 derives the volume key size from the keyslots: with none left it reads as 0. */
	vk_size = luks_volume_key_size(v);

	/* Every step runs even when an earlier one failed: an erase that stops half-way should
	 * still have destroyed all it could. The first error is returned. */

	/* 1. Tokens first: they name keyslots, and some (TPM2, FIDO2) hold material that together
	 *    with the device unwraps a keyslot passphrase. */
	for (int t = 0; luks_token_in_range(t); t++) {
		crypt_token_info info = crypt_token_status(v->cd, t, NULL);

		if (info == CRYPT_TOKEN_INVALID || info == CRYPT_TOKEN_INACTIVE)
			continue;
		r = crypt_token_json_set(v->cd, t, NULL);
		if (r < 0 && ret == 0)
			ret = log_debug_errno(r, "Removing token %i from %s failed: %i", t, v->path, r);
	}

	/* 2. Keyslots: crypt_keyslot_destroy removes the JSON entry and overwrites the slot's binary
	 *    area (libcryptsetup wipes it with several passes ending in random data). */
	for (int s = 0; luks_slot_in_range(s); s++) {
		if (!luks_keyslot_info_active(crypt_keyslot_status(v->cd, s)))
			continue;
		r = crypt_keyslot_destroy(v->cd, s);
		if (r < 0 && ret == 0)
			ret = log_debug_errno(r, "Destroying keyslot %i of %s failed: %i", s, v->path, r);
	}

	/* 3. The volume key digest. */
	r = luks_forget_volume_key(v, vk_size);
	if (r < 0 && ret == 0)
		ret = r;

	/* 4. The whole binary keyslot area, once more with random data. Step 2 only reaches areas
	 *    the JSON still names; this also covers areas of slots removed earlier by tools that
	 *    only dropped the JSON entry, or left behind by an interrupted operation or a header
	 *    repair. It lies between the second metadata copy and the data (LUKS2 on-disk format
	 *    §2): [2 × metadata_size, + keyslots_size). Our handles never use a detached header,
	 *    so the area is on path. No direct I/O: tmpfs files do not support it. */
	r = crypt_get_metadata_size(v->cd, &metadata_size, &keyslots_size);
	if (r >= 0)
		r = crypt_wipe(v->cd, v->path, CRYPT_WIPE_RANDOM, 2 * metadata_size, keyslots_size, 0,
			       CRYPT_WIPE_NO_DIRECT_IO, NULL, NULL);
	if (r < 0 && ret == 0)
		ret = log_debug_errno(r, "Wiping the keyslot area of %s failed: %i", v->path, r);

	if (ret < 0)
		return ret;
	log_debug("Erased %s: no keyslots, no tokens, volume key digest replaced, keyslot area wiped.",
		  v->path);
	return 0;
}
