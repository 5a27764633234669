/* SPDX-License-Identifier: Apache-2.0 */
/* libcryptsetup token plugin for tokens of type "trustpc-tpm2", so that plain `cryptsetup open`
 * and systemd's crypttab can unlock our volumes. ABI: libcryptsetup.h "Token handler plugin"
 * (CRYPTSETUP_TOKEN_1.0). This is the one file outside lib/luks that includes libcryptsetup.h:
 * the ABI's types are libcryptsetup's.
 *
 * TPM selection: TRUSTPC_TPM2_DEVICE, else /dev/tpmrm0. A PIN comes through the _open_pin entry
 * (cryptsetup asks for it when we return -ENOANO). */
#include <errno.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "disk-unseal.h"

#define TOKEN_VERSION_MAJOR "1"
#define TOKEN_VERSION_MINOR "0"

const char *cryptsetup_token_version(void);
int cryptsetup_token_open_pin(struct crypt_device *cd, int token, const char *pin, size_t pin_size,
			      char **buffer, size_t *buffer_len, void *usrptr);
int cryptsetup_token_open(struct crypt_device *cd, int token, char **buffer, size_t *buffer_len, void *usrptr);
void cryptsetup_token_buffer_free(void *buffer, size_t buffer_len);
int cryptsetup_token_validate(struct crypt_device *cd, const char *json);
void cryptsetup_token_dump(struct crypt_device *cd, const char *json);

const char *cryptsetup_token_version(void)
{
	return TOKEN_VERSION_MAJOR "." TOKEN_VERSION_MINOR;
}

/* Measures the volume key into PCR 15 after a successful unseal (one unseal per boot). */
static int measure(struct crypt_device *cd, Tpm2Context *tpm, int keyslot, const char *pass, size_t n)
{
	_cleanup_secure_ char *vk = NULL;
	_cleanup_free_ char *msg = NULL;
	size_t vk_size;
	uint8_t digest[32];
	int r;

	r = crypt_get_volume_key_size(cd);
	if (r <= 0)
		return -EINVAL;
	vk_size = (size_t)r;
	vk = secure_alloc(vk_size);
	if (!vk)
		return -ENOMEM;
	r = crypt_volume_key_get(cd, keyslot, vk, &vk_size, pass, n);
	if (r < 0)
		return r;
	if (asprintf(&msg, "trustpc:%s", crypt_get_uuid(cd) ?: "") < 0)
		return -ENOMEM;
	r = hmac_sha256(vk, vk_size, msg, strlen(msg), digest);
	if (r < 0)
		return r;
	return tpm2_pcr_extend(tpm, TPM2_PCR_ONE_BOOT, digest);
}

int cryptsetup_token_open_pin(struct crypt_device *cd, int token, const char *pin, size_t pin_size,
			      char **buffer, size_t *buffer_len, void *usrptr)
{
	_cleanup_(disk_token_done) DiskToken t = {};
	_cleanup_tpm2_ Tpm2Context *tpm = NULL;
	_cleanup_secure_ char *pin_str = NULL;
	uint8_t *secret = NULL;
	char reason[REASON_MAX];
	const char *json = NULL, *why = NULL;
	size_t n;
	int r;

	r = crypt_token_json_get(cd, token, &json);
	if (r < 0)
		return r;
	r = disk_token_parse(json, strlen(json), &t, &why);
	if (r < 0) {
		crypt_log(cd, CRYPT_LOG_ERROR, "trustpc-tpm2 token is invalid: ");
		crypt_log(cd, CRYPT_LOG_ERROR, why);
		crypt_log(cd, CRYPT_LOG_ERROR, "\n");
		return -EINVAL;
	}
	if (t.pin && !pin)
		return -ENOANO; /* cryptsetup asks for the PIN and calls _open_pin */
	if (t.pin) {
		/* The ABI allows binary PINs; ours are text (the HMAC input is a C string), so a PIN
		 * with a NUL byte could only be a truncated one: refuse it like a wrong PIN. */
		if (pin_size == 0 || memchr(pin, 0, pin_size)) {
			crypt_log(cd, CRYPT_LOG_ERROR, "trustpc-tpm2: the PIN is empty or contains a NUL byte.\n");
			return -ENOANO;
		}
		pin_str = secure_alloc(pin_size + 1);
		if (!pin_str)
			return -ENOMEM;
		memcpy(pin_str, pin, pin_size);
	}
	r = tpm2_context_new(NULL, &tpm);
	if (r < 0) {
		crypt_log(cd, CRYPT_LOG_ERROR, "trustpc-tpm2: no TPM reachable (set TRUSTPC_TPM2_DEVICE).\n");
		/* libcryptsetup: -EAGAIN = the token needs hardware that is not present. */
		return -EAGAIN;
	}
	r = disk_unseal(tpm, &t, NULL, pin_str, (uint8_t **)&secret, &n, reason, sizeof(reason));
	if (r < 0) {
		char msg[REASON_MAX + 32];
		snprintf(msg, sizeof(msg), "trustpc-tpm2: %s.\n", reason);
		crypt_log(cd, CRYPT_LOG_ERROR, msg);
		/* Token ABI: -ENOANO = the PIN was missing or wrong (cryptsetup asks again, up to --tries);
		 * -EPERM would mean "the passphrase did not open the keyslot", and libcryptsetup turns
		 * -EPERM/-EINVAL from an external plugin into -ENOENT ("no usable token"), which ends the
		 * PIN prompt loop after one wrong PIN. Everything else: this token cannot be used now. */
		if (r == -EACCES)
			return -ENOANO;
		if (r == -ENODEV)
			return -EAGAIN;
		return -ENOENT;
	}
	r = measure(cd, tpm, t.keyslot, (const char *)secret, n);
	if (r < 0) {
		crypt_log(cd, CRYPT_LOG_ERROR, "trustpc-tpm2: extending PCR 15 failed; refusing the unlock.\n");
		secure_free(secret);
		return -EIO;
	}
	*buffer = (char *)secret;
	*buffer_len = n;
	return 0;
}

int cryptsetup_token_open(struct crypt_device *cd, int token, char **buffer, size_t *buffer_len, void *usrptr)
{
	return cryptsetup_token_open_pin(cd, token, NULL, 0, buffer, buffer_len, usrptr);
}

void cryptsetup_token_buffer_free(void *buffer, size_t buffer_len)
{
	secure_free(buffer);
}

int cryptsetup_token_validate(struct crypt_device *cd, const char *json)
{
	_cleanup_(disk_token_done) DiskToken t = {};
	const char *why = NULL;
	int r = disk_token_parse(json, strlen(json), &t, &why);
	if (r < 0) {
		crypt_log(cd, CRYPT_LOG_ERROR, "trustpc-tpm2 token is invalid: ");
		crypt_log(cd, CRYPT_LOG_ERROR, why);
		crypt_log(cd, CRYPT_LOG_ERROR, "\n");
		return -EINVAL;
	}
	return 0;
}

void cryptsetup_token_dump(struct crypt_device *cd, const char *json)
{
	_cleanup_(disk_token_done) DiskToken t = {};
	char line[256];

	if (disk_token_parse(json, strlen(json), &t, NULL) < 0) {
		crypt_log(cd, CRYPT_LOG_NORMAL, "\ttrustpc-tpm2 token: invalid\n");
		return;
	}
	snprintf(line, sizeof(line), "\tDevice id:  %s\n\tPIN:        %s\n\tNV index:   0x%08x\n\tPolicy:     %s\n",
		 t.device_id, t.pin ? "yes" : "no", t.nv_index, t.has_policy ? "stored" : "none");
	crypt_log(cd, CRYPT_LOG_NORMAL, line);
	if (t.has_policy) {
		snprintf(line, sizeof(line), "\tEpoch:      %llu\n", (unsigned long long)t.policy.params.epoch);
		crypt_log(cd, CRYPT_LOG_NORMAL, line);
	}
}
