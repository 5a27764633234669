/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* lib/luks: the only code that includes libcryptsetup. A thin, errno-returning wrapper with the
 * operations trustpc needs on a LUKS2 volume (an image file or a block device).
 * Errors: -ENOENT no such file; -EINVAL not a LUKS2 volume / bad argument; -EPERM passphrase does
 * not open the slot; -ENOSPC no free keyslot/token; -EBUSY device in use; -ENOTSUP operation
 * needs device-mapper and it is missing; other negative errnos from libcryptsetup.
 * Each function lists the errnos it returns itself; any of them may also return -ENOMEM, and those
 * that touch the disk -EIO/-EACCES/-EROFS passed through from libcryptsetup.
 * Keyslots made here use PBKDF2-SHA256 with 1000 iterations and no benchmark: every secret we
 * store is high-entropy (256-bit key, recovery key), an expensive KDF only slows boot.
 *
 * libcryptsetup's own messages are forwarded to log_debug() (never printed at normal levels).
 * A LuksVolume is not thread-safe; open one per thread. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct LuksVolume LuksVolume;

#define LUKS_ANY_SLOT (-1)
#define LUKS_ANY_TOKEN (-1)
#define LUKS_PBKDF2_ITERATIONS 1000

/* crypt_init + crypt_load(LUKS2).
 * -ENOENT path does not exist; -EINVAL path is empty, not a regular file or block device, or holds
 * no valid LUKS2 header (LUKS1, garbage, both header copies damaged). */
int luks_open(const char *path, LuksVolume **ret);
/* Accepts NULL; returns NULL. */
LuksVolume *luks_close(LuksVolume *v);

/* Valid while v is open. */
const char *luks_path(const LuksVolume *v);
const char *luks_uuid(const LuksVolume *v);
/* 0 when the volume has no keyslots (LUKS2 records the key size only in keyslots), e.g. after
 * luks_erase. */
size_t luks_volume_key_size(const LuksVolume *v);

/* Formats a new LUKS2 volume on path (a file of at least 16 MiB, or a block device) with a
 * random volume key (aes-xts-plain64, 512-bit) and one keyslot for passphrase; PBKDF2 as above.
 * The header is small (64 KiB metadata copies, 4 MiB keyslot area), so the data area starts at
 * about 5 MiB. For tests and the image builder. ret_slot may be NULL.
 * -ENOENT path does not exist; -EINVAL bad argument, not a regular file or block device;
 * -ENOSPC the file is smaller than 16 MiB. */
int luks_format(const char *path, const void *pass, size_t pass_len, int *ret_slot);

/* Returns the keyslot opened (>= 0) or -EPERM (wrong passphrase, slot inactive, no keyslots).
 * slot may be LUKS_ANY_SLOT. -EINVAL slot out of range. Does not touch device-mapper. */
int luks_test_passphrase(LuksVolume *v, int slot, const void *pass, size_t pass_len);
/* Recovers the volume key through a keyslot; returns the keyslot used. *ret is secure memory
 * (secure_free). slot may be LUKS_ANY_SLOT. -EPERM / -EINVAL as luks_test_passphrase. */
int luks_volume_key_get(LuksVolume *v, int slot, const void *pass, size_t pass_len, uint8_t **ret,
			size_t *ret_size);
/* Checks vk against the volume key digest in the header: 0 if it is the volume key, -EPERM if not
 * (also after luks_erase), -EINVAL bad argument. */
int luks_volume_key_verify(LuksVolume *v, const void *vk, size_t vk_len);
/* Adds a keyslot for new_pass, authorised by the volume key. Returns the new slot number.
 * -EPERM vk is not this volume's key; -ENOSPC no free keyslot or no room in the keyslot area;
 * -EINVAL bad argument. */
int luks_keyslot_add_by_volume_key(LuksVolume *v, const void *vk, size_t vk_len, const void *new_pass,
				   size_t new_pass_len);
/* Destroys a keyslot and wipes its key material (libcryptsetup overwrites the slot's binary area).
 * -EINVAL slot out of range; -ENOENT slot not in use. */
int luks_keyslot_destroy(LuksVolume *v, int slot);
/* Whether slot is in use. False for slots out of range. */
bool luks_keyslot_active(LuksVolume *v, int slot);

/* PBKDF parameters of an active keyslot, copied out of libcryptsetup. */
typedef struct LuksKeyslotPbkdf {
	char type[16]; /* "pbkdf2", "argon2id", … */
	char hash[16]; /* "sha256" (pbkdf2 only; empty otherwise) */
	uint32_t iterations;
	uint32_t max_memory_kb;
	uint32_t parallel_threads;
} LuksKeyslotPbkdf;
/* -EINVAL slot out of range; -ENOENT slot not in use. */
int luks_keyslot_get_pbkdf(LuksVolume *v, int slot, LuksKeyslotPbkdf *ret);
/* Where a keyslot's binary (encrypted, anti-forensic split) key material lies on the device, in
 * bytes. For tests and diagnostics. -EINVAL slot out of range; -ENOENT slot not in use. */
int luks_keyslot_area(LuksVolume *v, int slot, uint64_t *ret_offset, uint64_t *ret_length);

/* Activates (device-mapper) with the passphrase; returns the keyslot used. -ENOTSUP when
 * device-mapper is not available (checked first: /dev/mapper/control cannot be opened — it may
 * exist without a driver behind it — or libcryptsetup fails to talk to dm); -EACCES no
 * permission to use device-mapper; -EPERM / -EINVAL as luks_test_passphrase; -EEXIST a mapping
 * called name exists. */
int luks_activate(LuksVolume *v, const char *name, int slot, const void *pass, size_t pass_len);

/* Tokens. luks_token_find returns the id of the first token of that type and its JSON
 * (malloc'ed), -ENOENT when there is none. ret_token and ret_json may be NULL. */
int luks_token_find(LuksVolume *v, const char *type, int *ret_token, char **ret_json);
/* The JSON (malloc'ed) of token. -EINVAL token out of range; -ENOENT token not in use. */
int luks_token_get(LuksVolume *v, int token, char **ret_json);
/* Writes (or with token >= 0, replaces) a token; returns its id. The JSON must contain "type"
 * and "keyslots" (libcryptsetup checks them); assigns it to the keyslots it names, which must be
 * in use. -EINVAL malformed JSON, missing "type"/"keyslots", keyslot not in use, token out of
 * range; -ENOSPC no free token or no room in the JSON area. */
int luks_token_write(LuksVolume *v, int token, const char *json);
/* -EINVAL token out of range; -ENOENT token not in use. */
int luks_token_remove(LuksVolume *v, int token);
/* > 0 if token is assigned to slot, 0 if not (or either is not in use), -EINVAL out of range. */
int luks_token_is_assigned(LuksVolume *v, int token, int slot);

/* Crypto-erase: destroys every keyslot and token and wipes the keyslot area, so no key can open
 * the volume again; the header also stops accepting the old volume key (see luks.c). The header
 * itself stays (a valid LUKS2 volume with no keyslots, luks_volume_key_size 0). Every step is
 * attempted even if an earlier one fails; the first error is returned (-EIO/-EACCES/-EBUSY from
 * libcryptsetup writing the header or wiping). */
int luks_erase(LuksVolume *v);
