/* SPDX-License-Identifier: Apache-2.0 */
/* trustpcctl image register: the expected PCR 11 of a built image (systemd-measure's JSON, written
 * by the image build next to the image) registered with the server, so that it attests the image's
 * devices and signs disk policies for it (docs/IMAGE.md "Device life cycle"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "trustpcctl.h"

#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))
/* systemd-measure's answer for all banks and four phases is about 2 KiB. */
#define MEASURE_JSON_MAX (64 * 1024)
#define PCR_UKI 11
#define PCR_SECURE_BOOT 7

static bool hex64(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64;
}

/* The PCR 11 value from `systemd-measure calculate --json`: {"sha256": [{"pcr": 11, "hash": HEX,
 * "phase"?: "..."}], other banks...}. The image's initrd and root extend nothing into PCR 11
 * (no systemd-pcrphase), so the value is the one without a phase ("--phase=" at build time): the
 * same value is in PCR 11 when the initrd unseals and when trustpcd attests. An entry with a
 * phase is refused rather than guessed: a policy for a phase the device never reaches would lock
 * every device of the image out. */
static int measure_pcr11(const char *path, const json_t *root, char ret[65])
{
	const json_t *bank = json_object_get(root, "sha256"), *e;
	const char *found = NULL;
	size_t i, n_phases = 0;

	if (!json_is_array(bank)) {
		log_error("%s has no \"sha256\" list: it is not the output of 'systemd-measure calculate "
			  "--json=short --phase='.",
			  path);
		return -EINVAL;
	}
	json_array_foreach (bank, i, e) {
		const json_t *pcr = json_object_get(e, "pcr"), *hash = json_object_get(e, "hash");

		if (!json_is_integer(pcr) || !json_is_string(hash) || !hex64(json_string_value(hash))) {
			log_error(
			    "%s: sha256 entry %zu needs \"pcr\" (a number) and \"hash\" (64 hex digits).",
			    path, i);
			return -EINVAL;
		}
		if (json_integer_value(pcr) != PCR_UKI) {
			log_error(
			    "%s: sha256 entry %zu is for PCR %lld; only PCR 11 (the UKI) is predicted at "
			    "build time.",
			    path, i, (long long)json_integer_value(pcr));
			return -EINVAL;
		}
		if (json_object_get(e, "phase")) {
			n_phases++;
			continue;
		}
		if (found) {
			log_error("%s has two PCR 11 values without a phase.", path);
			return -EINVAL;
		}
		found = json_string_value(hash);
	}
	if (!found) {
		log_error(
		    "%s has PCR 11 only for %zu boot phase(s): trustpc images extend no phase into PCR "
		    "11; measure with 'systemd-measure calculate --json=short --phase=' (empty phase).",
		    path, n_phases);
		return -EINVAL;
	}
	for (i = 0; i < 64; i++)
		ret[i] = (char)(found[i] >= 'A' && found[i] <= 'F' ? found[i] - 'A' + 'a' : found[i]);
	ret[64] = 0;
	return 0;
}

/* PCR 7 is the fleet's Secure Boot state (PK/KEK/db/dbx and the certificate that verified the
 * UKI), not a property of the image file: the same for every image signed with the same key on
 * the same firmware settings. It comes from --pcr 7=HEX (e.g. `trustpc-disk tpm-status --pcrs 7`
 * on a reference device) or, when not given, stays what the server has for the same name. */
static int previous_pcr7(const CtlOptions *o, const char *name, char ret[65], bool *ret_found)
{
	_cleanup_json_ json_t *list = NULL;
	json_t *img;
	size_t i;
	int r;

	r = ctl_call(o, "GET", "/api/v1/images", NULL, &list);
	if (r != 0)
		return r;
	*ret_found = false;
	json_array_foreach (list, i, img) {
		const char *v;

		if (!json_is_string(json_object_get(img, "name")) ||
		    !streq(json_string_value(json_object_get(img, "name")), name))
			continue;
		v = json_string_value(json_object_get(json_object_get(img, "pcrs"), "7"));
		if (hex64(v)) {
			memcpy(ret, v, 65);
			*ret_found = true;
		}
	}
	return 0;
}

static int usage_register(void)
{
	log_error("Usage: trustpcctl image register FILE [NAME] [--pcr 7=HEX]");
	return CTL_EXIT_USAGE;
}

static int image_register(const CtlOptions *o, const char *path, const char *name_arg)
{
	_cleanup_json_ json_t *root = NULL, *body = NULL, *answer = NULL;
	_cleanup_free_ char *text = NULL;
	char pcr11[65], pcr7[65];
	const char *name = name_arg, *pcr7_from = NULL;
	json_error_t jerr;
	json_t *pcrs;
	size_t n;
	bool have7 = false;
	int r;

	r = read_full_file(path, MEASURE_JSON_MAX, false, &text, &n);
	if (r < 0) {
		log_error_errno(r, "Cannot read %s: %m.", path);
		return r == -ENOENT ? CTL_EXIT_NOT_FOUND : CTL_EXIT_ERROR;
	}
	root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		if (root)
			log_error("%s is not a JSON object.", path);
		else
			log_error("%s is not JSON (line %d: %s).", path, jerr.line, jerr.text);
		return CTL_EXIT_USAGE;
	}
	/* The build may write the image's name into the file; the command line wins. */
	if (!name) {
		const json_t *nj = json_object_get(root, "name");
		name = json_string_value(nj);
		if (!name) {
			log_error(
			    "%s names no image: give the name as 'trustpcctl image register FILE NAME'.",
			    path);
			return CTL_EXIT_USAGE;
		}
	}
	if (measure_pcr11(path, root, pcr11) < 0)
		return CTL_EXIT_USAGE;

	for (size_t i = 0; i < o->n_pcrs; i++) {
		const char *eq = strchr(o->pcrs[i], '=');
		if (!eq || (size_t)(eq - o->pcrs[i]) != 1 || o->pcrs[i][0] != '7' || !hex64(eq + 1)) {
			log_error(
			    "--pcr '%s': only 7=HEX (64 hex digits) goes with image register; PCR 11 comes "
			    "from %s.",
			    o->pcrs[i], path);
			return CTL_EXIT_USAGE;
		}
		if (have7) {
			log_error("--pcr 7 given twice.");
			return CTL_EXIT_USAGE;
		}
		for (size_t k = 0; k < 65; k++)
			pcr7[k] =
			    (char)(eq[1 + k] >= 'A' && eq[1 + k] <= 'F' ? eq[1 + k] - 'A' + 'a' : eq[1 + k]);
		have7 = true;
		pcr7_from = "--pcr 7";
	}
	if (!have7) {
		r = previous_pcr7(o, name, pcr7, &have7);
		if (r != 0)
			return r;
		if (have7)
			pcr7_from = "kept from the registered image";
	}

	pcrs = json_pack("{s:s}", "11", pcr11);
	body = json_pack("{s:s, s:o}", "name", name, "pcrs", pcrs);
	if (!body || (have7 && json_object_set_new(pcrs, "7", json_string(pcr7)) < 0))
		return log_oom(), CTL_EXIT_ERROR;
	r = ctl_call(o, "POST", "/api/v1/images", body, &answer);
	if (r != 0)
		return r;
	if (o->json) {
		ctl_print_json(answer);
		return CTL_EXIT_OK;
	}
	printf("Image '%s' registered: PCR 11 %s (from %s)", name, pcr11, path);
	if (have7)
		printf(", PCR 7 %s (%s).\n", pcr7, pcr7_from);
	else
		printf(".\n");
	if (!have7)
		fprintf(stderr,
			"Warning: no PCR 7 for '%s': devices attest on PCR 11 only, and no unlock can be "
			"signed for them (409 no-policy-data) until PCR 7 is registered: 'trustpcctl image "
			"register %s %s --pcr 7=HEX' with the value of a reference device "
			"('trustpc-disk tpm-status --pcrs 7').\n",
			name, path, name);
	return CTL_EXIT_OK;
}

int verb_image(const CtlOptions *o, int argc, char **argv)
{
	if (argc < 2 || !streq(argv[1], "register"))
		return usage_register();
	if (o->image || o->ttl || o->after || o->reason || o->poweroff || o->class_name || o->all) {
		log_error("'image register' takes only --pcr 7=HEX. See 'trustpcctl --help'.");
		return CTL_EXIT_USAGE;
	}
	if (argc < 3 || argc > 4)
		return usage_register();
	return image_register(o, argv[2], argc == 4 ? argv[3] : NULL);
}
