/* SPDX-License-Identifier: Apache-2.0 */
/* load-devices: K simulated devices with software TPMs against one trustpc-server (issue 3,
 * "Benchmarks"; bench/README.md says how they differ from real devices).
 *
 *   load-devices prepare --state DIR [--events N]   test TPM manufacturer CA (DIR/tpm-ca.pem) and
 *                                                   the PCR values every device reports ("7=HEX 11=HEX")
 *   load-devices missing --state DIR -k K           how many of devices 0..K-1 are not enrolled yet
 *   load-devices enroll --state DIR -k K --server ADDR:PORT --ca FLEET.pem --tokens FILE [--jobs N]
 *   load-devices run --state DIR -k K --server ADDR:PORT --server-pid PID [--window W] [--timeout S]
 *   load-devices serve --state DIR -k K --server ADDR:PORT --server-pid PID [--window W]
 *                                                   connect all K, print "ready K", then execute
 *                                                   lock/unlock commands until SIGTERM (one line
 *                                                   per command: load-devices-run.c slot_serve)
 *
 * State: DIR/tpm-ca.{key,pem}, DIR/ca.pem (the fleet CA), DIR/dev-NNNNN (device id, AK, TLS key,
 * certificate, the fleet command and policy keys; the EK is only needed at enrollment),
 * DIR/sim-state (serve: each device's lock counter and last command). `run` prints the figures (load-devices-run.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-x509.h"
#include "load-devices.h"
#include "tpm2/tpm2-attest.h"

#define DEVICES_MAX 100000
#define EVENTS_MAX 1000

int fleet_init(Fleet *f, unsigned n_events)
{
	/* PCRs a firmware log touches: 0–7 (firmware, Secure Boot) and 11 (the UKI). */
	static const uint32_t pcrs[] = {0, 1, 2, 3, 4, 5, 6, 7, 11};
	_cleanup_free_ Tpm2Event *ev = NULL;
	char text[64];
	uint32_t mask;
	int r;

	*f = (Fleet){};
	if (n_events == 0) {
		for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
			snprintf(text, sizeof(text), "load-devices pcr %u", i);
			r = sha256(text, strlen(text), f->pcrs[i]);
			if (r < 0)
				return r;
		}
		return 0;
	}
	ev = calloc(n_events, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	for (unsigned i = 0; i < n_events; i++) {
		ev[i].pcr = pcrs[i % ELEMENTSOF(pcrs)];
		ev[i].type = 0x0d; /* EV_IPL */
		ev[i].data = "load-devices: one measured boot component";
		snprintf(text, sizeof(text), "load-devices event %u", i);
		r = sha256(text, strlen(text), ev[i].digest);
		if (r < 0)
			return r;
	}
	r = tpm2_eventlog_build(ev, n_events, &f->event_log, &f->event_log_size);
	if (r < 0)
		return r;
	/* The PCR values are whatever the server's replay of this log gives: they agree by design. */
	r = tpm2_eventlog_replay(f->event_log, f->event_log_size, f->pcrs, &mask, NULL);
	if (r < 0)
		fleet_done(f);
	return r;
}

void fleet_done(Fleet *f)
{
	free(f->event_log);
	f->event_log = NULL;
	f->event_log_size = 0;
}

char *device_path(const Options *o, unsigned index)
{
	char *p;
	return asprintf(&p, "%s/dev-%05u", o->state, index) < 0 ? NULL : p;
}

void device_done(Device *d)
{
	d->ak = ec_key_free(d->ak);
	d->command_key = ec_key_free(d->command_key);
	d->policy_key = ec_key_free(d->policy_key);
	d->tls_key = ec_key_free(d->tls_key);
	free(d->cert_pem);
	d->cert_pem = NULL;
	d->key_pem = secure_free(d->key_pem);
	d->cfg = tls_config_free(d->cfg);
}

/* One "name=hex" line of a device file, decoded (raw bytes). */
static int field_bytes(const char *text, const char *name, uint8_t **ret, size_t *ret_size)
{
	const char *p = text, *end;
	size_t len = strlen(name);

	for (;;) {
		if (strncmp(p, name, len) == 0 && p[len] == '=')
			break;
		p = strchr(p, '\n');
		if (!p)
			return -ENOENT;
		p++;
	}
	p += len + 1;
	end = strchrnul(p, '\n');
	return hex_decode(p, (size_t)(end - p), ret, ret_size);
}

/* The same, NUL-terminated. */
static int field(const char *text, const char *name, bool secure, char **ret)
{
	_cleanup_free_ uint8_t *raw = NULL;
	size_t n;
	char *s;
	int r;

	r = field_bytes(text, name, &raw, &n);
	if (r < 0)
		return r;
	s = secure ? secure_alloc(n + 1) : malloc(n + 1);
	if (!s) {
		memory_erase(raw, n);
		return -ENOMEM;
	}
	memcpy(s, raw, n);
	s[n] = 0;
	memory_erase(raw, n);
	*ret = s;
	return 0;
}

/* An optional SPKI DER field: NULL when absent. */
static int key_field(const char *text, const char *name, EcKey **ret)
{
	_cleanup_free_ uint8_t *spki = NULL;
	size_t n;
	int r;

	r = field_bytes(text, name, &spki, &n);
	if (r == -ENOENT) {
		*ret = NULL;
		return 0;
	}
	if (r < 0)
		return r;
	return ec_key_from_spki_der(spki, n, ret);
}

int device_tls_reset(const Options *o, Device *d, const char *ca_pem)
{
	_cleanup_ec_key_ EcKey *key = NULL;
	int r;

	(void)o;
	d->cfg = tls_config_free(d->cfg);
	r = ec_key_from_pem_or_der(d->key_pem, strlen(d->key_pem), &key);
	if (r < 0)
		return r;
	return tls_config_new(
	    &(TlsConfigParams){
		.ca_pem = ca_pem, .cert_pem = d->cert_pem, .key = key, .session_tickets = true},
	    &d->cfg);
}

int device_load(const Options *o, unsigned index, Device *ret)
{
	_cleanup_free_ char *path = device_path(o, index), *id = NULL;
	_cleanup_secure_ char *text = NULL, *ak_pem = NULL;
	Device d = {.index = index};
	size_t n;
	int r;

	if (!path)
		return -ENOMEM;
	r = read_full_file(path, 1 << 16, true, &text, &n);
	if (r < 0)
		return r;
	r = field(text, "id", false, &id);
	if (r >= 0 && strlen(id) != DEVICE_ID_STRING_SIZE - 1)
		r = -EINVAL;
	if (r >= 0) {
		memcpy(d.id, id, DEVICE_ID_STRING_SIZE);
		r = field(text, "ak", true, &ak_pem);
	}
	if (r >= 0)
		r = ec_key_from_pem_or_der(ak_pem, strlen(ak_pem), &d.ak);
	if (r >= 0) {
		uint8_t pub[SOFT_AK_PUBLIC_MAX];
		r = soft_ak_public(d.ak, pub, &n, d.ak_name);
	}
	if (r >= 0)
		r = field(text, "key", true, &d.key_pem);
	if (r >= 0)
		r = ec_key_from_pem_or_der(d.key_pem, strlen(d.key_pem), &d.tls_key);
	if (r >= 0)
		r = field(text, "cert", false, &d.cert_pem);
	/* Optional: devices enrolled before commands (issue 4) have neither; `serve` needs both. */
	if (r >= 0)
		r = key_field(text, "cmdkey", &d.command_key);
	if (r >= 0)
		r = key_field(text, "policykey", &d.policy_key);
	if (r < 0) {
		device_done(&d);
		return r;
	}
	*ret = d;
	return 0;
}

int do_prepare(const Options *o)
{
	_cleanup_free_ char *key_path = NULL, *pem_path = NULL, *ca_pem = NULL;
	_cleanup_secure_ char *key_pem = NULL;
	_cleanup_ec_key_ EcKey *key = NULL;
	Fleet f;
	int r;

	if (mkdir(o->state, 0700) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Cannot create --state %s: %m", o->state);
	if (asprintf(&key_path, "%s/tpm-ca.key", o->state) < 0 ||
	    asprintf(&pem_path, "%s/tpm-ca.pem", o->state) < 0)
		return log_oom();
	if (access(pem_path, F_OK) < 0) {
		/* The test "TPM manufacturer": the server trusts EK certificates it issued (--tpm-ca). */
		r = ec_key_generate(&key);
		if (r >= 0)
			r = x509_issue(&(X509IssueParams){.subject_key = key,
							  .subject_cn = "load-devices TPM manufacturer CA",
							  .days = 3650,
							  .is_ca = 1},
				       &ca_pem);
		if (r >= 0)
			r = ec_key_private_pem(key, &key_pem);
		if (r >= 0)
			r = write_file_atomic(key_path, key_pem, strlen(key_pem), 0600);
		if (r >= 0)
			r = write_file_atomic(pem_path, ca_pem, strlen(ca_pem), 0644);
		if (r < 0)
			return log_error_errno(r, "Cannot create the test TPM manufacturer CA in %s: %m",
					       o->state);
	}
	r = fleet_init(&f, o->events);
	if (r < 0)
		return log_error_errno(r, "Cannot build the event log: %m");
	/* The image's expected values, for `trustpc-server image set NAME 7=… 11=…`. */
	for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
		_cleanup_free_ char *hex = NULL;
		if (i != 7 && i != 11)
			continue;
		hex = hex_encode(f.pcrs[i], TPM2_SHA256_SIZE);
		if (!hex)
			return log_oom();
		printf("%s%u=%s", i == 7 ? "" : " ", i, hex);
	}
	printf("\n");
	fleet_done(&f);
	return 0;
}

int do_missing(const Options *o)
{
	unsigned missing = 0;

	for (unsigned i = 0; i < o->k; i++) {
		_cleanup_free_ char *p = device_path(o, i);
		if (!p)
			return log_oom();
		if (access(p, F_OK) < 0)
			missing++;
	}
	printf("%u\n", missing);
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		ARG_STATE = 0x100,
		ARG_SERVER,
		ARG_NAME,
		ARG_TOKENS,
		ARG_JOBS,
		ARG_WINDOW,
		ARG_EVENTS,
		ARG_PID,
		ARG_TIMEOUT,
		ARG_CA
	};
	static const struct option opts[] = {
	    {"state", required_argument, NULL, ARG_STATE},
	    {"server", required_argument, NULL, ARG_SERVER},
	    {"name", required_argument, NULL, ARG_NAME},
	    {"tokens", required_argument, NULL, ARG_TOKENS},
	    {"jobs", required_argument, NULL, ARG_JOBS},
	    {"window", required_argument, NULL, ARG_WINDOW},
	    {"events", required_argument, NULL, ARG_EVENTS},
	    {"server-pid", required_argument, NULL, ARG_PID},
	    {"timeout", required_argument, NULL, ARG_TIMEOUT},
	    {"ca", required_argument, NULL, ARG_CA},
	    {},
	};
	Options o = {.name = "localhost", .jobs = 2, .window = 128, .events = 40, .timeout = 600};
	const char *verb;
	uint64_t u;
	int c, r;

	log_set_program("load-devices");
	log_parse_environment();
	while ((c = getopt_long(argc, argv, "k:", opts, NULL)) >= 0) {
		switch (c) {
		case ARG_STATE:
			o.state = optarg;
			break;
		case ARG_SERVER:
			o.server = optarg;
			break;
		case ARG_NAME:
			o.name = optarg;
			break;
		case ARG_TOKENS:
			o.tokens = optarg;
			break;
		case ARG_CA:
			o.ca = optarg;
			break;
		case 'k':
		case ARG_JOBS:
		case ARG_WINDOW:
		case ARG_EVENTS:
		case ARG_PID:
		case ARG_TIMEOUT:
			if (parse_uint64(optarg,
					 c == 'k'	   ? DEVICES_MAX
					 : c == ARG_EVENTS ? EVENTS_MAX
							   : INT32_MAX,
					 &u) < 0 ||
			    (u == 0 && c != ARG_EVENTS)) {
				log_error("Bad number '%s'.", optarg);
				return 2;
			}
			*(c == 'k'	     ? &o.k
			  : c == ARG_JOBS    ? &o.jobs
			  : c == ARG_WINDOW  ? &o.window
			  : c == ARG_EVENTS  ? &o.events
			  : c == ARG_TIMEOUT ? &o.timeout
					     : (unsigned *)&o.server_pid) = (unsigned)u;
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc || !o.state) {
		log_error("Usage: load-devices prepare|missing|enroll|run|serve --state DIR … (see "
			  "bench/load-devices.c)");
		return 2;
	}
	verb = argv[optind];
	if (streq(verb, "prepare"))
		r = do_prepare(&o);
	else if (!o.k) {
		log_error("%s needs -k K.", verb);
		return 2;
	} else if (streq(verb, "missing"))
		r = do_missing(&o);
	else if (streq(verb, "enroll")) {
		if (!o.server || !o.ca || !o.tokens) {
			log_error("enroll needs --server, --ca and --tokens.");
			return 2;
		}
		r = do_enroll(&o);
	} else if (streq(verb, "run") || streq(verb, "serve")) {
		if (!o.server || o.server_pid <= 0) {
			log_error("%s needs --server and --server-pid.", verb);
			return 2;
		}
		r = streq(verb, "run") ? do_run(&o) : do_serve(&o);
	} else {
		log_error("Unknown verb '%s'.", verb);
		return 2;
	}
	return r < 0 ? 1 : 0;
}
