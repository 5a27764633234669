/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* lib/luks: the only code that includes libcryptsetup. A thin, errno-returning wrapper with the
 * operations trustpc needs on a LUKS2 volume (an image file or a block device).
 * Errors: -ENOENT no such file; -EINVAL not a LUKS2 volume / bad argument; -EPERM passphrase does
 * not open the slot; -ENOSPC no free keyslot/token; -EBUSY device in use; -ENOTSUP operation
 * needs device-mapper and it is missing; other negative errnos from libcryptsetup.
 * Keyslots made here use PBKDF2-SHA256 with 1000 iterations and no benchmark: every secret we
 * store is high-entropy (256-bit key, recovery key), an expensive KDF only slows boot. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct LuksVolume LuksVolume;

#define LUKS_ANY_SLOT (-1)
#define LUKS_ANY_TOKEN (-1)
#define LUKS_PBKDF2_ITERATIONS 1000

/* crypt_init + crypt_load(LUKS2). */
int luks_open(const char *path, LuksVolume **ret);
LuksVolume *luks_close(LuksVolume *v);

const char *luks_path(const LuksVolume *v);
const char *luks_uuid(const LuksVolume *v);
size_t luks_volume_key_size(const LuksVolume *v);

/* Formats a new LUKS2 volume on path (a file of at least 16 MiB, or a block device) with a
 * random volume key and one keyslot for passphrase; PBKDF2 as above. For tests and the image
 * builder. ret_slot may be NULL. */
int luks_format(const char *path, const void *pass, size_t pass_len, int *ret_slot);

/* Returns the keyslot opened (>= 0) or -EPERM. slot may be LUKS_ANY_SLOT. */
int luks_test_passphrase(LuksVolume *v, int slot, const void *pass, size_t pass_len);
/* Recovers the volume key through a keyslot. *ret is secure memory (secure_free). */
int luks_volume_key_get(LuksVolume *v, int slot, const void *pass, size_t pass_len, uint8_t **ret,
			size_t *ret_size);
/* Adds a keyslot for new_pass, authorised by the volume key. Returns the new slot number. */
int luks_keyslot_add_by_volume_key(LuksVolume *v, const void *vk, size_t vk_len, const void *new_pass,
				   size_t new_pass_len);
int luks_keyslot_destroy(LuksVolume *v, int slot);
/* Whether slot is in use. */
bool luks_keyslot_active(LuksVolume *v, int slot);

/* Activates (device-mapper) with the passphrase. -ENOTSUP when device-mapper is not available. */
int luks_activate(LuksVolume *v, const char *name, int slot, const void *pass, size_t pass_len);

/* Tokens. luks_token_find returns the id of the first token of that type and its JSON
 * (malloc'ed), -ENOENT when there is none. */
int luks_token_find(LuksVolume *v, const char *type, int *ret_token, char **ret_json);
/* Writes (or with token >= 0, replaces) a token; returns its id. The JSON must contain "type"
 * and "keyslots" (libcryptsetup checks them); assigns it to the keyslots it names. */
int luks_token_write(LuksVolume *v, int token, const char *json);
int luks_token_remove(LuksVolume *v, int token);

/* Crypto-erase: destroys every keyslot and token and wipes the keyslot area, so no key can open
 * the volume again. */
int luks_erase(LuksVolume *v);
