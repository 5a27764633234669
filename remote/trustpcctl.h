/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* trustpcctl internals: trustpcctl.c (options, output), trustpcctl-client.c (HTTPS to the admin
 * port), trustpcctl-verbs.c (one function per verb). */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/* Exit codes (trustpcctl(1)). */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_ERROR = 1,	  /* the server refused the request (400, 5xx) or a local failure */
	CTL_EXIT_USAGE = 2,	  /* bad command line */
	CTL_EXIT_NOT_FOUND = 3,	  /* unknown device, image */
	CTL_EXIT_AUTH = 4,	  /* no/unknown operator token (401), role too low (403) */
	CTL_EXIT_UNREACHABLE = 5, /* cannot connect, TLS refused (certificate not from --ca, name) */
	CTL_EXIT_AUDIT_BROKEN = 6,
};

typedef struct CtlOptions {
	char *host; /* the server name the certificate must carry, and where to connect */
	char *port;
	char *ca_path;
	char *token_file;
	bool json;
	/* verb options */
	const char *image;
	const char *ttl;
	const char *after;
	char **pcrs; /* "N=HEX" strings */
	size_t n_pcrs;
	const char *reason;	/* lock */
	bool poweroff;		/* lock */
	const char *class_name; /* wipe */
	bool all;		/* lock, unlock, wipe: every device */
} CtlOptions;

/* method + target (path?query) with an optional JSON body; on a 2xx answer *ret is its JSON and
 * 0 is returned. Otherwise the server's message is printed and the exit code returned. */
int ctl_call(const CtlOptions *o, const char *method, const char *target, json_t *body, json_t **ret);

/* Output. */
void ctl_print_json(const json_t *j);
char *ctl_format_time(const json_t *t); /* "2026-11-26 12:36:51" local time, "-" for null */

typedef struct CtlTable CtlTable;
CtlTable *ctl_table_new(size_t n_cols, const char *const *headers);
int ctl_table_add(CtlTable *t, const char *const *cells); /* n_cols cells, NULL = "-" */
void ctl_table_print(CtlTable *t);
CtlTable *ctl_table_free(CtlTable *t);
static inline void ctl_table_freep(CtlTable **t)
{
	ctl_table_free(*t);
}

int verb_devices(const CtlOptions *o, int argc, char **argv);
int verb_show(const CtlOptions *o, int argc, char **argv);
int verb_token(const CtlOptions *o, int argc, char **argv);
int verb_images(const CtlOptions *o, int argc, char **argv);
int verb_audit(const CtlOptions *o, int argc, char **argv);
/* trustpcctl-commands.c */
int verb_lock(const CtlOptions *o, int argc, char **argv);
int verb_unlock(const CtlOptions *o, int argc, char **argv);
int verb_wipe(const CtlOptions *o, int argc, char **argv);
int verb_commands(const CtlOptions *o, int argc, char **argv);
int verb_recovery_key(const CtlOptions *o, int argc, char **argv);
int verb_policy(const CtlOptions *o, int argc, char **argv);
/* trustpcctl-image.c */
int verb_image(const CtlOptions *o, int argc, char **argv);

/* A device id from an id, a unique id prefix or a hostname (0), else an exit code (logged). */
int ctl_resolve_device(const CtlOptions *o, const char *arg, char **ret);
