/* SPDX-License-Identifier: Apache-2.0 */
/* trustpc-server init: the fleet's keys. Never overwrites: a second init over a live state dir
 * would replace the fleet CA (every device certificate invalid) and the policy key (every disk
 * policy unverifiable) — the fleet would be bricked by a typo. */
#include <assert.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-x509.h"
#include "server.h"

#define CA_DAYS 7300	/* the fleet CA outlives every device certificate */
#define SERVER_DAYS 825 /* the server certificate is re-issued by hand; keep it bounded */

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

typedef struct InitFiles {
	const char *dir;
	char *written[16];
	size_t n;
} InitFiles;

static bool hostname_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.'))
			return false;
	return s[0] != '.' && s[0] != '-' && s[n - 1] != '.';
}

/* 0: missing (created), 1: exists and empty; -EEXIST: has entries. */
static int state_dir_prepare(const char *dir)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return log_error_errno(errno, "Cannot create state dir '%s': %m.", dir);
	d = opendir(dir);
	if (!d)
		return log_error_errno(errno, "Cannot open state dir '%s': %m.", dir);
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			return -EEXIST;
	return 1;
}

static int init_write(InitFiles *f, const char *name, const void *data, size_t n, mode_t mode)
{
	_cleanup_free_ char *path = server_path(f->dir, name);
	int r;

	if (!path)
		return log_oom();
	r = write_file_atomic(path, data, n, mode);
	if (r < 0)
		return log_error_errno(r, "Cannot write '%s': %m.", path);
	assert(f->n < ELEMENTSOF(f->written));
	f->written[f->n++] = TAKE_PTR(path);
	return 0;
}

/* Writes NAME.key (0600) and, with pub_name, its public key (0644). */
static int init_write_key(InitFiles *f, const EcKey *k, const char *name, const char *pub_name)
{
	_cleanup_secure_ char *priv = NULL;
	_cleanup_free_ char *pub = NULL;
	int r;

	r = ec_key_private_pem(k, &priv);
	if (r < 0)
		return log_error_errno(r, "Cannot encode the key %s: %m.", name);
	r = init_write(f, name, priv, strlen(priv), 0600);
	if (r < 0 || !pub_name)
		return r;
	r = ec_key_public_pem(k, &pub);
	if (r < 0)
		return log_error_errno(r, "Cannot encode the public key %s: %m.", pub_name);
	return init_write(f, pub_name, pub, strlen(pub), 0644);
}

static int new_key(EcKey **ret)
{
	int r = ec_key_generate(ret);
	if (r < 0)
		return log_error_errno(r, "Cannot generate a P-256 key: %m.");
	return 0;
}

static void init_undo(InitFiles *f, bool created_dir)
{
	for (size_t i = 0; i < f->n; i++)
		(void)unlink(f->written[i]);
	if (created_dir)
		(void)rmdir(f->dir);
}

static int init_keys(InitFiles *f, const char *hostname, char ret_fingerprint[65])
{
	_cleanup_ec_key_ EcKey *ca = NULL, *server = NULL, *command = NULL, *policy = NULL, *escrow = NULL;
	_cleanup_free_ char *ca_pem = NULL, *server_pem = NULL, *fp = NULL;
	_cleanup_free_ uint8_t *ca_der = NULL;
	uint8_t digest[SHA256_SIZE];
	size_t ca_der_size;
	int r;

	r = new_key(&ca);
	if (r < 0)
		return r;
	r = x509_issue(
	    &(X509IssueParams){
		.subject_key = ca, .subject_cn = "trustpc fleet CA", .days = CA_DAYS, .is_ca = 1},
	    &ca_pem);
	if (r < 0)
		return log_error_errno(r, "Cannot issue the fleet CA certificate: %m.");
	r = new_key(&server);
	if (r < 0)
		return r;
	r = x509_issue(&(X509IssueParams){.subject_key = server,
					  .subject_cn = hostname,
					  .dns_name = hostname,
					  .issuer_key = ca,
					  .issuer_cert_pem = ca_pem,
					  .days = SERVER_DAYS},
		       &server_pem);
	if (r < 0)
		return log_error_errno(r, "Cannot issue the server certificate for '%s': %m.", hostname);
	r = new_key(&command);
	if (r >= 0)
		r = new_key(&policy);
	if (r >= 0)
		r = new_key(&escrow);
	if (r < 0)
		return r;

	r = init_write_key(f, ca, "ca.key", NULL);
	if (r >= 0)
		r = init_write(f, "ca.pem", ca_pem, strlen(ca_pem), 0644);
	if (r >= 0)
		r = init_write_key(f, server, "server.key", NULL);
	if (r >= 0)
		r = init_write(f, "server.pem", server_pem, strlen(server_pem), 0644);
	if (r >= 0)
		r = init_write_key(f, command, "command.key", "command.pub");
	if (r >= 0)
		r = init_write_key(f, policy, "policy.key", "policy.pub");
	if (r >= 0)
		r = init_write_key(f, escrow, "escrow.key", "escrow.pub");
	if (r < 0)
		return r;

	r = x509_pem_to_der(ca_pem, &ca_der, &ca_der_size);
	if (r < 0)
		return log_error_errno(r, "Cannot decode the CA certificate just issued: %m.");
	r = sha256(ca_der, ca_der_size, digest);
	if (r < 0)
		return log_error_errno(r, "SHA-256 failed: %m.");
	fp = hex_encode(digest, sizeof(digest));
	if (!fp)
		return log_oom();
	memcpy(ret_fingerprint, fp, 65);
	return 0;
}

int verb_init(ServerArgs *a)
{
	_cleanup_(server_store_closep) Store *store = NULL;
	const char *hostname = a->hostname ?: "localhost";
	InitFiles f = {.dir = a->state_dir};
	char fingerprint[65];
	bool created;
	int r;

	if (a->argc != 0) {
		log_error("Usage: trustpc-server init --state-dir DIR [--hostname NAME]");
		return SERVER_EXIT_USAGE;
	}
	if (!hostname_valid(hostname)) {
		log_error("--hostname '%s' is not a DNS name (letters, digits, '-' and '.').", hostname);
		return SERVER_EXIT_USAGE;
	}
	/* Private by default: the database (token hashes, escrow blobs) and anything a library
	 * creates. Public files get their mode explicitly. */
	umask(0077);
	r = state_dir_prepare(a->state_dir);
	if (r == -EEXIST) {
		log_error("State dir '%s' is not empty: init never overwrites a fleet's keys. Use another "
			  "directory, or remove this one if it really holds no fleet.",
			  a->state_dir);
		return SERVER_EXIT_EXISTS;
	}
	if (r < 0)
		return SERVER_EXIT_FAIL;
	created = r == 0;

	r = init_keys(&f, hostname, fingerprint);
	if (r >= 0)
		r = init_write(&f, SERVER_CONF_NAME, server_config_default_text,
			       strlen(server_config_default_text), 0644);
	if (r >= 0) {
		r = server_store_open(a->state_dir, &store);
		if (r >= 0)
			r = store_audit_append(store, "trustpc-server init", "server.init", hostname, NULL);
		if (r < 0) {
			log_error_errno(r, "Cannot create the database in '%s': %m.", a->state_dir);
			store = store_close(store);
			for (const char *const *s =
				 (const char *const[]){SERVER_DB_NAME, SERVER_DB_NAME "-wal",
						       SERVER_DB_NAME "-shm", NULL};
			     *s; s++) {
				_cleanup_free_ char *p = server_path(a->state_dir, *s);
				if (p)
					(void)unlink(p);
			}
		}
	}
	if (r < 0) {
		init_undo(&f, created);
		for (size_t i = 0; i < f.n; i++)
			free(f.written[i]);
		return SERVER_EXIT_FAIL;
	}
	for (size_t i = 0; i < f.n; i++)
		free(f.written[i]);

	printf("Initialised %s for server name '%s'.\n"
	       "Fleet CA SHA-256 fingerprint: %s\n"
	       "Next: set tpm_ca in %s/%s, add an operator ('trustpc-server operator add NAME --role admin "
	       "--state-dir %s'), then 'trustpc-server run --state-dir %s'.\n",
	       a->state_dir, hostname, fingerprint, a->state_dir, SERVER_CONF_NAME, a->state_dir,
	       a->state_dir);
	return SERVER_EXIT_OK;
}
