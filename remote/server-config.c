/* SPDX-License-Identifier: Apache-2.0 */
/* trustpc-server's config file: "key = value" lines, '#' comments, every key documented in
 * trustpc-server(8). Flags override the file; unknown keys are errors (a typo must not silently
 * fall back to a default). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "server.h"

#define CONFIG_MAX_SIZE (64 * 1024)
#define PCR_BIT(n) (UINT32_C(1) << (n))

const char server_config_default_text[] =
    "# trustpc-server configuration (trustpc-server(8)). Flags given to 'trustpc-server run'\n"
    "# override these values. Lines are 'key = value'; '#' starts a comment.\n"
    "\n"
    "# Address to listen on (numeric IPv4 or IPv6).\n"
    "listen = 0.0.0.0\n"
    "# Ports: enrollment (no client certificate), devices (mutual TLS), admin API.\n"
    "enroll_port = 7443\n"
    "device_port = 7444\n"
    "admin_port = 7445\n"
    "# PEM bundle of the TPM manufacturer CAs that EK certificates must chain to (required).\n"
    "#tpm_ca = /etc/trustpc/tpm-ca.pem\n"
    "# PCRs quoted on every connection (the image's registered PCRs are added).\n"
    "attest_pcrs = 7,11\n"
    "# PCRs bound by the first disk policy signed at enrollment (PCR 15 = 0 is always added).\n"
    "policy_pcrs = 7,11\n"
    "# Seconds between device heartbeats; a silent device is dropped after three.\n"
    "heartbeat = 60\n"
    "# Seconds a client has to finish the TLS handshake and attestation (or an enrollment step).\n"
    "attest_timeout = 30\n"
    "# Seconds a signed command stays valid (exp = issue time + this); a device offline longer\n"
    "# refuses it as expired. 7 days by default.\n"
    "command_ttl = 604800\n"
    "# Enrollment + device connections at once; more wait in the kernel's backlog.\n"
    "max_connections = 16384\n"
    "# Validity of the device certificates issued at enrollment, in days.\n"
    "device_cert_days = 3650\n"
    "# Image of devices enrolled with a token that names none.\n"
    "#default_image = base\n";

void server_config_init(ServerConfig *c)
{
	*c = (ServerConfig){
	    .listen = strdup("0.0.0.0"),
	    .enroll_port = 7443,
	    .device_port = 7444,
	    .admin_port = 7445,
	    .attest_pcrs = PCR_BIT(7) | PCR_BIT(11),
	    .policy_pcrs = PCR_BIT(7) | PCR_BIT(11),
	    .heartbeat = 60,
	    .attest_timeout = 30,
	    .command_ttl = 7U * 24U * 3600U,
	    .max_connections = 16384,
	    .device_cert_days = 3650,
	};
}

void server_config_done(ServerConfig *c)
{
	free(c->listen);
	free(c->tpm_ca);
	free(c->default_image);
	*c = (ServerConfig){};
}

static int set_string(char **p, const char *value)
{
	char *s = strdup(value);
	if (!s)
		return -ENOMEM;
	free(*p);
	*p = s;
	return 0;
}

static int set_uint(uint64_t min, uint64_t max, const char *value, uint64_t *ret)
{
	uint64_t u;
	if (parse_uint64(value, max, &u) < 0 || u < min)
		return -EINVAL;
	*ret = u;
	return 0;
}

static bool image_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("._-", *p)))
			return false;
	return true;
}

int server_config_set(ServerConfig *c, const char *key, const char *value, const char *origin)
{
	struct in6_addr a6;
	struct in_addr a4;
	uint64_t u;
	uint32_t mask;

	if (streq(key, "listen")) {
		if (inet_pton(AF_INET, value, &a4) != 1 && inet_pton(AF_INET6, value, &a6) != 1)
			return log_error_errno(EINVAL,
					       "%s: listen = '%s' is not a numeric IPv4 or IPv6 address.",
					       origin, value);
		return set_string(&c->listen, value);
	}
	if (streq(key, "enroll_port") || streq(key, "device_port") || streq(key, "admin_port")) {
		if (set_uint(0, 65535, value, &u) < 0)
			return log_error_errno(EINVAL, "%s: %s = '%s' is not a port number (0-65535).",
					       origin, key, value);
		*(streq(key, "enroll_port")   ? &c->enroll_port
		  : streq(key, "device_port") ? &c->device_port
					      : &c->admin_port) = (uint16_t)u;
		return 0;
	}
	if (streq(key, "tpm_ca"))
		return set_string(&c->tpm_ca, value);
	if (streq(key, "attest_pcrs") || streq(key, "policy_pcrs")) {
		if (pcr_mask_parse(value, &mask) < 0 || mask == 0)
			return log_error_errno(
			    EINVAL,
			    "%s: %s = '%s' is not a comma-separated list of PCRs 0-23 (15 "
			    "excluded).",
			    origin, key, value);
		*(streq(key, "attest_pcrs") ? &c->attest_pcrs : &c->policy_pcrs) = mask;
		return 0;
	}
	if (streq(key, "heartbeat")) {
		/* ≥ 5 s: three missed heartbeats drop a device; 1 day at most. */
		if (set_uint(5, 86400, value, &u) < 0)
			return log_error_errno(EINVAL, "%s: heartbeat = '%s' must be 5-86400 seconds.",
					       origin, value);
		c->heartbeat = (uint32_t)u;
		return 0;
	}
	if (streq(key, "attest_timeout")) {
		if (set_uint(1, 600, value, &u) < 0)
			return log_error_errno(EINVAL, "%s: attest_timeout = '%s' must be 1-600 seconds.",
					       origin, value);
		c->attest_timeout = (uint32_t)u;
		return 0;
	}
	if (streq(key, "max_connections")) {
		if (set_uint(1, 1000000, value, &u) < 0)
			return log_error_errno(EINVAL, "%s: max_connections = '%s' must be 1-1000000.",
					       origin, value);
		c->max_connections = (uint32_t)u;
		return 0;
	}
	if (streq(key, "command_ttl")) {
		/* ≥ 1 min: it must outlive delivery; ≤ 1 year: a lost command must not stay valid forever.
		 */
		if (set_uint(60, 366U * 24U * 3600U, value, &u) < 0)
			return log_error_errno(EINVAL, "%s: command_ttl = '%s' must be 60-31622400 seconds.",
					       origin, value);
		c->command_ttl = (uint32_t)u;
		return 0;
	}
	if (streq(key, "device_cert_days")) {
		if (set_uint(1, 36500, value, &u) < 0)
			return log_error_errno(EINVAL, "%s: device_cert_days = '%s' must be 1-36500.",
					       origin, value);
		c->device_cert_days = (uint32_t)u;
		return 0;
	}
	if (streq(key, "default_image")) {
		if (!image_name_valid(value))
			return log_error_errno(
			    EINVAL,
			    "%s: default_image = '%s' is not an image name ([A-Za-z0-9._-], "
			    "1-64 characters).",
			    origin, value);
		return set_string(&c->default_image, value);
	}
	return log_error_errno(ENOENT, "%s: unknown setting '%s' (see trustpc-server(8)).", origin, key);
}

static char *strip(char *s)
{
	char *e;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

int server_config_load(ServerConfig *c, const char *path, bool must_exist)
{
	_cleanup_free_ char *text = NULL;
	char *line, *next;
	unsigned lineno = 0;
	size_t n;
	int r;

	r = read_full_file(path, CONFIG_MAX_SIZE, false, &text, &n);
	if (r == -ENOENT && !must_exist)
		return 0;
	if (r == -EFBIG)
		return log_error_errno(r, "Config file '%s' is larger than %d bytes.", path,
				       CONFIG_MAX_SIZE);
	if (r < 0)
		return log_error_errno(r, "Cannot read config file '%s': %m.", path);
	if (strlen(text) != n)
		return log_error_errno(EINVAL, "Config file '%s' contains a NUL byte.", path);

	for (line = text; line; line = next) {
		char origin[512], *eq, *key, *value;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		lineno++;
		line = strip(line);
		if (*line == 0 || *line == '#')
			continue;
		snprintf(origin, sizeof(origin), "%s:%u", path, lineno);
		eq = strchr(line, '=');
		if (!eq)
			return log_error_errno(EINVAL, "%s: expected 'key = value'.", origin);
		*eq = 0;
		key = strip(line);
		value = strip(eq + 1);
		if (*value == 0)
			return log_error_errno(EINVAL, "%s: '%s' has no value.", origin, key);
		r = server_config_set(c, key, value, origin);
		if (r < 0)
			return r;
	}
	return 0;
}
