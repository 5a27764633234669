/* SPDX-License-Identifier: Apache-2.0 */
/* The state dir: paths, atomic 0600 writes, the config file and loading the enrollment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent-state.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-policy-file.h"

int state_path(const char *dir, const char *name, char **ret)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int state_write(const char *dir, const char *name, const void *data, size_t n)
{
	_cleanup_free_ char *p = NULL;
	int r;

	r = state_path(dir, name, &p);
	if (r < 0)
		return r;
	return write_file_atomic(p, data, n, 0600);
}

int state_read(const char *dir, const char *name, bool secure, char **ret, size_t *ret_size)
{
	_cleanup_free_ char *p = NULL;
	int r;

	r = state_path(dir, name, &p);
	if (r < 0)
		return r;
	return read_full_file(p, STATE_FILE_MAX, secure, ret, ret_size);
}

int state_dir_prepare(const char *dir)
{
	_cleanup_free_ char *copy = strdup(dir);
	struct stat st;

	if (!copy)
		return -ENOMEM;
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(copy, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* Another user able to write here could swap our TLS key or AK blob under us. */
	if ((st.st_mode & 0022) || st.st_uid != geteuid())
		return -EPERM;
	return 0;
}

static char *strip(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

static bool class_name_valid(const char *s)
{
	size_t n = strlen(s);

	/* "all" names every class in a wipe command: no volume may be configured under it. */
	if (n == 0 || n > AGENT_CLASS_NAME_MAX || streq(s, "all"))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	return true;
}

static int config_add_volumes(AgentConfig *c, const char *class_name, char *value)
{
	char *save = NULL;

	for (char *w = strtok_r(value, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		AgentVolume *nv;

		if (*w != '/' || c->n_volumes >= AGENT_VOLUMES_MAX)
			return -EINVAL;
		nv = realloc(c->volumes, (c->n_volumes + 1) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->volumes = nv;
		nv[c->n_volumes] = (AgentVolume){0};
		nv[c->n_volumes].path = strdup(w);
		nv[c->n_volumes].class_name = class_name ? strdup(class_name) : NULL;
		c->n_volumes++;
		if (!nv[c->n_volumes - 1].path || (class_name && !nv[c->n_volumes - 1].class_name))
			return -ENOMEM;
	}
	return 0;
}

int agent_config_load(const char *dir, AgentConfig *ret, unsigned *ret_line)
{
	_cleanup_free_ char *text = NULL, *server = NULL;
	_cleanup_(agent_config_done) AgentConfig c = {0};
	unsigned line = 0;
	char *save = NULL;
	int r;

	r = state_read(dir, STATE_CONFIG, false, &text, NULL);
	if (r == -ENOENT) {
		*ret = (AgentConfig){0};
		return 0;
	}
	if (r < 0)
		return r;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *eq, *key, *value;

		line++;
		l = strip(l);
		if (*l == 0 || *l == '#')
			continue;
		eq = strchr(l, '=');
		if (!eq)
			goto bad;
		*eq = 0;
		key = strip(l);
		value = strip(eq + 1);
		if (streq(key, "server")) {
			free(server);
			server = strdup(value);
			if (!server)
				return -ENOMEM;
		} else if (streq(key, "volumes")) {
			/* paths of trustpc-tpm2 LUKS volumes, space-separated */
			r = config_add_volumes(&c, NULL, value);
			if (r == -EINVAL)
				goto bad;
			if (r < 0)
				return r;
		} else if (startswith(key, "volume.")) {
			/* the volumes of one data class, erased by a wipe command for that class */
			if (!class_name_valid(key + strlen("volume.")))
				goto bad;
			r = config_add_volumes(&c, key + strlen("volume."), value);
			if (r == -EINVAL)
				goto bad;
			if (r < 0)
				return r;
		} else
			goto bad;
	}
	c.server = TAKE_PTR(server);
	c.disk_encrypted = c.n_volumes > 0;
	*ret = c;
	c = (AgentConfig){0};
	return 0;
bad:
	if (ret_line)
		*ret_line = line;
	return -EINVAL;
}

void agent_config_done(AgentConfig *c)
{
	free(c->server);
	for (size_t i = 0; i < c->n_volumes; i++) {
		free(c->volumes[i].class_name);
		free(c->volumes[i].path);
	}
	free(c->volumes);
	*c = (AgentConfig){0};
}

void agent_state_done(AgentState *s)
{
	free(s->device_cert_pem);
	free(s->ca_pem);
	secure_free(s->tls_key_pem);
	free(s->ak_blob);
	free(s->command_key_pem);
	*s = (AgentState){0};
}

/* The epoch of the stored policy, trusted only when it is for this device and verifies with the
 * stored fleet policy key: "locked" is reported from it. */
static int load_policy_epoch(const char *dir, const char *device_id, uint64_t *ret)
{
	_cleanup_free_ char *text = NULL, *key_pem = NULL;
	_cleanup_ec_key_ EcKey *key = NULL;
	const char *why = NULL;
	SignedPolicy p;
	size_t n, kn;
	int r;

	r = state_read(dir, STATE_POLICY, false, &text, &n);
	if (r < 0)
		return r;
	r = state_read(dir, STATE_POLICY_KEY, false, &key_pem, &kn);
	if (r < 0)
		return r;
	r = ec_key_from_pem_or_der(key_pem, kn, &key);
	if (r < 0)
		return log_warning_errno(r, "%s/%s is not a P-256 public key: %m", dir, STATE_POLICY_KEY);
	r = signed_policy_parse(text, n, &p, &why);
	if (r >= 0)
		r = signed_policy_verify(&p, key, &why);
	if (r < 0)
		return log_warning_errno(r, "%s/%s is not valid (%s); reporting the device as locked.", dir,
					 STATE_POLICY, strna(why));
	if (!streq(p.device_id, device_id))
		return log_warning_errno(EXDEV, "%s/%s is for device %s, not %s; reporting the device as locked.",
					 dir, STATE_POLICY, p.device_id, device_id);
	*ret = p.params.epoch;
	return 0;
}

int agent_state_load(const char *dir, AgentState *ret)
{
	_cleanup_free_ char *id = NULL;
	AgentState s = {0};
	size_t n;
	int r;

	r = state_read(dir, STATE_DEVICE_ID, false, &id, &n);
	if (r == -ENOENT) {
		*ret = (AgentState){0};
		return 0;
	}
	if (r < 0)
		return log_error_errno(r, "Cannot read %s/%s: %m", dir, STATE_DEVICE_ID);
	if (n > 0 && id[n - 1] == '\n')
		id[--n] = 0;
	if (n != DEVICE_ID_STRING_SIZE - 1 || device_id_parse(id, (uint8_t[DEVICE_ID_SIZE]){0}) < 0)
		return log_error_errno(EBADMSG, "%s/%s does not hold a device id. Enroll again: trustpcd enroll …",
				       dir, STATE_DEVICE_ID);
	memcpy(s.device_id, id, DEVICE_ID_STRING_SIZE);

	static const char *const needed[] = {STATE_DEVICE_CERT, STATE_CA_CERT, STATE_TLS_KEY, STATE_AK};
	char **dest[] = {&s.device_cert_pem, &s.ca_pem, &s.tls_key_pem, (char **)&s.ak_blob};
	for (size_t i = 0; i < ELEMENTSOF(needed); i++) {
		r = state_read(dir, needed[i], dest[i] == &s.tls_key_pem, dest[i],
			       dest[i] == (char **)&s.ak_blob ? &s.ak_blob_size : NULL);
		if (r < 0) {
			agent_state_done(&s);
			return log_error_errno(r == -ENOENT ? EBADMSG : r,
					       "The enrollment in %s is incomplete: cannot read %s (%s). Enroll "
					       "again: trustpcd enroll …",
					       dir, needed[i], strerror(-r));
		}
	}
	r = load_policy_epoch(dir, s.device_id, &s.policy_epoch);
	s.has_policy = r >= 0;
	/* Optional: without it every command is answered "rejected" (no key to check it with). */
	r = state_read(dir, STATE_COMMAND_KEY, false, &s.command_key_pem, NULL);
	if (r < 0 && r != -ENOENT)
		log_warning_errno(r, "Cannot read %s/%s: %m; rejecting remote commands.", dir, STATE_COMMAND_KEY);
	s.enrolled = true;
	*ret = s;
	return 0;
}

int server_address_split(const char *s, char **ret_host, char **ret_port)
{
	_cleanup_free_ char *host = NULL, *port = NULL;
	const char *colon, *h, *he;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		h = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		h = s;
		he = colon;
	}
	if (he == h || colon[1] == 0 || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5 || atoi(colon + 1) == 0 || atoi(colon + 1) > 65535)
		return -EINVAL;
	host = strndup(h, (size_t)(he - h));
	port = strdup(colon + 1);
	if (!host || !port)
		return -ENOMEM;
	*ret_host = TAKE_PTR(host);
	*ret_port = TAKE_PTR(port);
	return 0;
}
