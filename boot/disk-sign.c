/* SPDX-License-Identifier: Apache-2.0 */
/* Fleet side, no TPM: trustpc-disk sign-policy and escrow-open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "trustpc-disk.h"

int verb_sign_policy(DiskArgs *a)
{
	_cleanup_ec_key_ EcKey *key = NULL;
	_cleanup_free_ char *text = NULL;
	SignedPolicy p = {};
	uint8_t ref[DEVICE_ID_SIZE];
	uint32_t missing;
	int r;

	if (a->argc != 0 || !a->device_id || !a->epoch_set) {
		log_error("Usage: trustpc-disk sign-policy --key KEY.pem --device-id ID --epoch N --pcr 7=HEX "
			  "--pcr 11=HEX [--nv-index 0x…] [-o FILE]");
		return EXIT_USAGE;
	}
	if (a->pin) {
		log_error("sign-policy takes no --pin: a PIN is bound to the disk at enroll time, in the sealed "
			  "object's own policy, and needs no signed policy.");
		return EXIT_USAGE;
	}
	if (device_id_parse(a->device_id, ref) < 0) {
		log_error("--device-id '%s' is not a device id (32 lower-case hex digits, from 'trustpc-disk "
			  "device-id').", a->device_id);
		return EXIT_USAGE;
	}
	if (a->pcr_values_set == 0) {
		log_error("Give the expected PCR values with --pcr N=HEX (e.g. from 'trustpc-disk tpm-status' on a "
			  "reference device).");
		return EXIT_USAGE;
	}
	/* --pcrs (if given) lists what must be bound; every listed PCR needs a value. */
	missing = a->pcr_mask_set ? a->pcr_mask & ~a->pcr_values_set : 0;
	if (missing) {
		log_error("--pcrs lists PCRs without a --pcr N=HEX value (mask 0x%06x).", missing);
		return EXIT_USAGE;
	}
	r = disk_load_key(a->key, "--key", true, &key);
	if (r < 0)
		return r;

	memcpy(p.device_id, a->device_id, DEVICE_ID_STRING_SIZE);
	p.params.pcr_mask = a->pcr_values_set | (UINT32_C(1) << TPM2_PCR_ONE_BOOT);
	memcpy(p.params.pcr_values, a->pcr_values, sizeof(p.params.pcr_values));
	memset(p.params.pcr_values[TPM2_PCR_ONE_BOOT], 0, 32);
	p.params.nv_index = a->nv_index;
	p.params.epoch = a->epoch;
	r = signed_policy_sign(&p, key);
	if (r < 0)
		return log_error_errno(r, "Signing the policy failed: %m");
	r = signed_policy_format(&p, &text);
	if (r < 0)
		return log_oom();
	return disk_write_output(a->output, text, 0644);
}

static void print_escrow_context(const char *json, size_t len)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	const char *ctx = o ? json_string_value(json_object_get(o, "context")) : NULL;
	char dev[64] = "", uuid[64] = "";

	if (ctx && sscanf(ctx, "recovery-key:%63[^:]:%63s", dev, uuid) == 2)
		log_info("Recovery key of device %s, LUKS volume %s.", dev, uuid);
	json_decref(o);
}

int verb_escrow_open(DiskArgs *a)
{
	_cleanup_ec_key_ EcKey *key = NULL;
	_cleanup_free_ char *json = NULL;
	_cleanup_secure_ uint8_t *secret = NULL;
	size_t n, len;
	int r;

	if (a->argc != 1) {
		log_error("Usage: trustpc-disk escrow-open --key ESCROW.pem FILE");
		return EXIT_USAGE;
	}
	r = disk_load_key(a->key, "--key", true, &key);
	if (r < 0)
		return r;
	r = read_full_file(a->argv[0], 65536, false, &json, &len);
	if (r < 0)
		return log_error_errno(r, "Cannot read escrow file '%s': %m.", a->argv[0]);
	r = escrow_open(key, NULL, json, len, &secret, &n);
	if (r == -ENOKEY)
		return log_error_errno(r, "Escrow file '%s' is encrypted to another key than --key '%s'.", a->argv[0],
				       a->key);
	if (r < 0) {
		log_error("Escrow file '%s' is malformed or was tampered with.", a->argv[0]);
		return EXIT_BAD_INPUT;
	}
	/* Say whose key this is (the authenticated context), so the helpdesk cannot read out the
	 * key of the wrong device by picking the wrong file. */
	print_escrow_context(json, len);
	fwrite(secret, 1, n, stdout);
	fputc('\n', stdout);
	return fflush(stdout) == 0 ? 0 : -EIO;
}
