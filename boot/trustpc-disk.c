/* SPDX-License-Identifier: Apache-2.0 */
/* trustpc-disk: TPM-sealed LUKS2 disk encryption that a remote lock can revoke. One file per verb
 * (disk-*.c); this file parses the command line and holds what the verbs share. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "trustpc-disk.h"

int exit_code_from_errno(int r)
{
	switch (r) {
	case 0:
		return EXIT_OK;
	case -ESTALE:
		return EXIT_LOCKED;
	case -EPERM:
		return EXIT_BOOT_STATE;
	case -EALREADY:
		return EXIT_ALREADY;
	case -ENOMSG:
	case -EXDEV:
	case -ENOKEY:
	case -EBADMSG:
	case -EKEYREJECTED:
		return EXIT_POLICY;
	case -EACCES:
	case -EAGAIN:
		return EXIT_AUTH;
	case -ENODEV:
	case -EREMCHG:
		return EXIT_NO_TPM;
	case -EINVAL:
	case -EFBIG:
	case -ENOTUNIQ:
		return EXIT_BAD_INPUT;
	default:
		return EXIT_FAIL;
	}
}

int disk_tpm_open(const DiskArgs *a, Tpm2Context **ret)
{
	const char *dev = a->tpm2_device ?: getenv("TRUSTPC_TPM2_DEVICE") ?: "/dev/tpmrm0";
	int r = tpm2_context_new(dev, ret);
	if (r < 0)
		return log_error_errno(r == -EIO ? -ENODEV : r,
				       "Cannot reach a TPM at '%s': %m. Pass --tpm2-device=PATH|TCTI or set "
				       "TRUSTPC_TPM2_DEVICE.",
				       dev);
	return 0;
}

int disk_load_key(const char *path, const char *option, bool need_private, EcKey **ret)
{
	_cleanup_ec_key_ EcKey *k = NULL;
	int r;

	if (!path)
		return log_error_errno(EINVAL, "%s KEY.pem is required.", option);
	r = ec_key_load_file(path, &k);
	if (r == -ENOENT || r == -EACCES)
		return log_error_errno(r, "Cannot read %s '%s': %m.", option, path);
	if (r < 0)
		return log_error_errno(EINVAL, "%s '%s' is not a P-256 key in PEM or DER form.", option, path);
	if (need_private && !ec_key_has_private(k))
		return log_error_errno(EINVAL, "%s '%s' is a public key; the private key is needed.", option, path);
	*ret = TAKE_PTR(k);
	return 0;
}

int disk_load_policy(const char *path, SignedPolicy *ret)
{
	_cleanup_free_ char *text = NULL;
	const char *why = NULL;
	size_t n;
	int r;

	r = read_full_file(path, SIGNED_POLICY_MAX_SIZE, false, &text, &n);
	if (r == -EFBIG)
		return log_error_errno(r, "Policy file '%s' is larger than %d bytes: not a trustpc policy.", path,
				       SIGNED_POLICY_MAX_SIZE);
	if (r < 0)
		return log_error_errno(r, "Cannot read policy file '%s': %m.", path);
	r = signed_policy_parse(text, n, ret, &why);
	if (r < 0)
		return log_error_errno(EINVAL, "Policy file '%s' is malformed: %s.", path, why);
	return 0;
}

int disk_write_output(const char *path, const char *text, unsigned mode)
{
	int r;

	if (!path || streq(path, "-")) {
		fputs(text, stdout);
		return fflush(stdout) == 0 ? 0 : -EIO;
	}
	r = write_file_atomic(path, text, strlen(text), mode);
	if (r < 0)
		return log_error_errno(r, "Cannot write '%s': %m.", path);
	return 0;
}

static const char modhex[] = "cbdefghijklnrtuv";

int recovery_key_generate(char ret[RECOVERY_KEY_STRING_SIZE])
{
	uint8_t b[32];
	ERASE_ON_EXIT(b);
	size_t o = 0;
	int r;

	r = crypto_random_bytes(b, sizeof(b));
	if (r < 0)
		return r;
	for (size_t i = 0; i < 32; i++) {
		if (i > 0 && i % 4 == 0)
			ret[o++] = '-';
		ret[o++] = modhex[b[i] >> 4];
		ret[o++] = modhex[b[i] & 15];
	}
	ret[o] = 0;
	return 0;
}

int recovery_key_normalize(const char *in, char ret[RECOVERY_KEY_STRING_SIZE])
{
	size_t n = 0, o = 0;

	for (const char *p = in; *p; p++) {
		char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		if (c == '-' || c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (!strchr(modhex, c) || n >= 64)
			return -EINVAL;
		if (n > 0 && n % 8 == 0)
			ret[o++] = '-';
		ret[o++] = c;
		n++;
	}
	if (n != 64)
		return -EINVAL;
	ret[o] = 0;
	return 0;
}

static void help(void)
{
	printf("trustpc-disk — TPM-sealed LUKS2 disk encryption that a remote lock can revoke\n\n"
	       "Device side:\n"
	       "  enroll IMAGE|DEVICE --policy-key PUB.pem [--pcrs 7,11] [--pin] [--policy FILE]\n"
	       "         (--escrow-key PUB.pem --escrow-out FILE | --show-recovery-key | --no-recovery-key)\n"
	       "         [--unlock-key-file FILE]\n"
	       "  unlock IMAGE|DEVICE [NAME] [--test] [--policy FILE]\n"
	       "  recovery IMAGE|DEVICE --policy FILE [--recovery-key-file FILE] [--pin] [NAME] [--test]\n"
	       "  lock                       increment the TPM lock counter, print the new epoch\n"
	       "  status IMAGE|DEVICE [--json]\n"
	       "  device-id                  this TPM's device id (from its endorsement key)\n"
	       "  tpm-status [--pcrs 7,11] [--json]   device id, epoch, PCR values for sign-policy\n"
	       "Fleet side (no TPM needed):\n"
	       "  sign-policy --key KEY.pem --device-id ID --epoch N --pcr 7=HEX --pcr 11=HEX [-o FILE]\n"
	       "  escrow-open --key ESCROW.pem FILE   print the recovery key from an escrow file\n\n"
	       "Options: --tpm2-device=PATH|TCTI (or TRUSTPC_TPM2_DEVICE), --nv-index=0x…, --json\n"
	       "Secrets never come from argv: PIN from TRUSTPC_PIN / TRUSTPC_NEW_PIN or the terminal,\n"
	       "passphrase from --unlock-key-file, TRUSTPC_PASSPHRASE or the terminal, recovery key from\n"
	       "--recovery-key-file or standard input. See trustpc-disk(8).\n");
}

static int parse_pcr_value(DiskArgs *a, const char *s)
{
	const char *eq = strchr(s, '=');
	char num[4];
	uint64_t n;

	if (!eq || eq == s || (size_t)(eq - s) >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, (size_t)(eq - s));
	num[eq - s] = 0;
	if (parse_uint64(num, TPM2_PCRS_MAX - 1, &n) < 0 || n == TPM2_PCR_ONE_BOOT)
		return -EINVAL;
	if (hex_decode_exact(eq + 1, a->pcr_values[n], 32) < 0)
		return -EINVAL;
	a->pcr_values_set |= UINT32_C(1) << n;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		ARG_TPM = 0x100, ARG_JSON, ARG_TEST, ARG_PIN, ARG_POLICY_KEY, ARG_POLICY, ARG_ESCROW_KEY,
		ARG_ESCROW_OUT, ARG_SHOW_RK, ARG_NO_RK, ARG_KEY, ARG_DEVICE_ID, ARG_EPOCH, ARG_PCR, ARG_PCRS,
		ARG_NV, ARG_UNLOCK_KEY, ARG_RK_FILE,
	};
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"tpm2-device", required_argument, NULL, ARG_TPM},
		{"json", no_argument, NULL, ARG_JSON},
		{"test", no_argument, NULL, ARG_TEST},
		{"pin", no_argument, NULL, ARG_PIN},
		{"policy-key", required_argument, NULL, ARG_POLICY_KEY},
		{"policy", required_argument, NULL, ARG_POLICY},
		{"escrow-key", required_argument, NULL, ARG_ESCROW_KEY},
		{"escrow-out", required_argument, NULL, ARG_ESCROW_OUT},
		{"show-recovery-key", no_argument, NULL, ARG_SHOW_RK},
		{"no-recovery-key", no_argument, NULL, ARG_NO_RK},
		{"key", required_argument, NULL, ARG_KEY},
		{"device-id", required_argument, NULL, ARG_DEVICE_ID},
		{"epoch", required_argument, NULL, ARG_EPOCH},
		{"pcr", required_argument, NULL, ARG_PCR},
		{"pcrs", required_argument, NULL, ARG_PCRS},
		{"nv-index", required_argument, NULL, ARG_NV},
		{"unlock-key-file", required_argument, NULL, ARG_UNLOCK_KEY},
		{"recovery-key-file", required_argument, NULL, ARG_RK_FILE},
		{"output", required_argument, NULL, 'o'},
		{},
	};
	static const struct {
		const char *name;
		int (*fn)(DiskArgs *);
	} verbs[] = {
		{"enroll", verb_enroll}, {"sign-policy", verb_sign_policy}, {"unlock", verb_unlock},
		{"recovery", verb_recovery}, {"lock", verb_lock}, {"status", verb_status},
		{"device-id", verb_device_id}, {"tpm-status", verb_tpm_status}, {"escrow-open", verb_escrow_open},
	};
	DiskArgs a = {.nv_index = TPM2_LOCK_COUNTER_NV_INDEX, .pcr_mask = (1u << 7) | (1u << 11)};
	uint64_t u;
	int c, r;

	log_set_program("trustpc-disk");
	log_parse_environment();

	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return EXIT_OK;
		case ARG_TPM:
			a.tpm2_device = optarg;
			break;
		case ARG_JSON:
			a.json = true;
			break;
		case ARG_TEST:
			a.test = true;
			break;
		case ARG_PIN:
			a.pin = true;
			break;
		case ARG_POLICY_KEY:
			a.policy_key = optarg;
			break;
		case ARG_POLICY:
			a.policy = optarg;
			break;
		case ARG_ESCROW_KEY:
			a.escrow_key = optarg;
			break;
		case ARG_ESCROW_OUT:
			a.escrow_out = optarg;
			break;
		case ARG_SHOW_RK:
			a.show_recovery_key = true;
			break;
		case ARG_NO_RK:
			a.no_recovery_key = true;
			break;
		case ARG_KEY:
			a.key = optarg;
			break;
		case ARG_DEVICE_ID:
			a.device_id = optarg;
			break;
		case ARG_EPOCH:
			if (parse_uint64(optarg, INT64_MAX, &a.epoch) < 0) {
				log_error("--epoch '%s' is not a non-negative integer.", optarg);
				return EXIT_USAGE;
			}
			a.epoch_set = true;
			break;
		case ARG_PCR:
			if (parse_pcr_value(&a, optarg) < 0) {
				log_error("--pcr '%s' must be N=HEX with N a PCR 0-23 other than 15 and HEX 64 hex "
					  "digits (SHA-256 bank).", optarg);
				return EXIT_USAGE;
			}
			break;
		case ARG_PCRS:
			if (pcr_mask_parse(optarg, &a.pcr_mask) < 0) {
				log_error("--pcrs '%s' must be a comma-separated list of PCRs 0-23 (15 is always "
					  "bound and may not be listed).", optarg);
				return EXIT_USAGE;
			}
			a.pcr_mask_set = true;
			break;
		case ARG_NV:
			if (parse_uint64(optarg, UINT32_MAX, &u) < 0 || (u >> 24) != 0x01) {
				log_error("--nv-index '%s' is not an NV index (0x01xxxxxx).", optarg);
				return EXIT_USAGE;
			}
			a.nv_index = (uint32_t)u;
			break;
		case ARG_UNLOCK_KEY:
			a.unlock_key_file = optarg;
			break;
		case ARG_RK_FILE:
			a.recovery_key_file = optarg;
			break;
		case 'o':
			a.output = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		help();
		return EXIT_USAGE;
	}
	a.argv = argv + optind + 1;
	a.argc = argc - optind - 1;
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[optind], verbs[i].name)) {
			r = verbs[i].fn(&a);
			return r < 0 ? exit_code_from_errno(r) : r;
		}
	log_error("Unknown verb '%s'. See 'trustpc-disk --help'.", argv[optind]);
	return EXIT_USAGE;
}
