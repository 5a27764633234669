/* SPDX-License-Identifier: Apache-2.0 */
/* trustpcctl: the helpdesk's command line for trustpc-server's admin API (trustpcctl(1)).
 * Options, the verb table and the output helpers; the verbs are in trustpcctl-verbs.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "trustpcctl.h"

#define DEFAULT_PORT "7445"

/* ---- output ---- */

void ctl_print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	if (s) {
		puts(s);
		free(s);
	}
}

char *ctl_format_time(const json_t *t)
{
	char buf[64];
	struct tm tm;
	time_t v;

	if (!json_is_integer(t) || json_integer_value(t) <= 0)
		return strdup("-");
	v = (time_t)json_integer_value(t);
	if (!localtime_r(&v, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return strdup("?");
	return strdup(buf);
}

struct CtlTable {
	size_t n_cols, n_rows;
	char **cells; /* row-major, row 0 = headers */
};

CtlTable *ctl_table_new(size_t n_cols, const char *const *headers)
{
	CtlTable *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->n_cols = n_cols;
	if (ctl_table_add(t, headers) < 0)
		return ctl_table_free(t);
	return t;
}

int ctl_table_add(CtlTable *t, const char *const *cells)
{
	char **c = reallocarray(t->cells, (t->n_rows + 1) * t->n_cols, sizeof(char *));
	if (!c)
		return -ENOMEM;
	t->cells = c;
	for (size_t i = 0; i < t->n_cols; i++) {
		/* Text from the server goes to a terminal: no control characters (escape sequences). */
		char *s = strdup(cells[i] ?: "-");
		if (!s) {
			for (size_t k = 0; k < i; k++)
				free(c[t->n_rows * t->n_cols + k]);
			return -ENOMEM;
		}
		for (char *p = s; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		c[t->n_rows * t->n_cols + i] = s;
	}
	t->n_rows++;
	return 0;
}

void ctl_table_print(CtlTable *t)
{
	size_t *w = calloc(t->n_cols, sizeof(size_t));

	if (!w)
		return;
	for (size_t r = 0; r < t->n_rows; r++)
		for (size_t i = 0; i < t->n_cols; i++)
			w[i] = MAX(w[i], strlen(t->cells[r * t->n_cols + i]));
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t i = 0; i < t->n_cols; i++) {
			const char *s = t->cells[r * t->n_cols + i];
			if (i + 1 == t->n_cols)
				printf("%s", s); /* no trailing blanks */
			else
				printf("%-*s  ", (int)w[i], s);
		}
		putchar('\n');
	}
	free(w);
}

CtlTable *ctl_table_free(CtlTable *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	return NULL;
}

/* ---- command line ---- */

static void help(void)
{
	printf(
	    "Usage: trustpcctl [OPTIONS] VERB ...\n"
	    "\n"
	    "The helpdesk's view of a trustpc fleet, through trustpc-server's admin API.\n"
	    "\n"
	    "Verbs:\n"
	    "  devices                        list devices with state and last contact\n"
	    "  show DEV                       one device (id, unique id prefix or hostname) and its "
	    "history\n"
	    "  token create [--image NAME] [--ttl 24h]\n"
	    "                                 a one-time enrollment token (admin)\n"
	    "  images                         registered images and their expected PCR values\n"
	    "  images add NAME --pcr N=HEX... register or replace an image (admin)\n"
	    "  image register FILE [NAME] [--pcr 7=HEX]\n"
	    "                                 register a built image from its pcr11.json (admin)\n"
	    "  audit [--after N]              the audit log\n"
	    "  audit verify                   recompute the audit hash chain (exit 6 when broken)\n"
	    "  lock DEV... | --all --reason TEXT [--poweroff]\n"
	    "                                 queue a signed lock (helpdesk)\n"
	    "  unlock DEV... | --all          queue a signed unlock with the disk policy for the new epoch\n"
	    "  wipe DEV... | --all --class NAME|all\n"
	    "                                 queue a crypto-erase of a data class (helpdesk)\n"
	    "  policy set DEV... | --all KEY=VALUE...\n"
	    "                                 queue a signed device policy (admin): heartbeat=60s\n"
	    "                                 offline_lease=72h|0 usb_storage=yes|no screen_lock=5m\n"
	    "  commands [DEV]                 commands and their states (queued, delivered, done, ...)\n"
	    "  recovery-key DEV               the escrowed LUKS recovery key (admin; audited)\n"
	    "\n"
	    "Options:\n"
	    "  --server HOST[:PORT]   admin port of the server ($TRUSTPC_SERVER, default localhost:%s);\n"
	    "                         HOST must be the name in the server's certificate\n"
	    "  --ca FILE              the fleet CA, ca.pem from the server's state dir ($TRUSTPC_CA)\n"
	    "  --token-file FILE      the operator token (else $TRUSTPC_OPERATOR_TOKEN; never on the "
	    "command line)\n"
	    "  --json                 print the API's JSON\n"
	    "  -h, --help             this text\n"
	    "\n"
	    "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 no/unknown token or role too low,\n"
	    "5 server unreachable or TLS refused, 6 audit chain broken.\n",
	    DEFAULT_PORT);
}

/* HOST, HOST:PORT, [V6]:PORT. */
static int parse_server(const char *s, CtlOptions *o)
{
	const char *colon, *host = s;
	size_t host_len;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close == s + 1 || (close[1] && close[1] != ':'))
			return -EINVAL;
		host = s + 1;
		host_len = (size_t)(close - host);
		colon = close[1] ? close + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			return -EINVAL; /* a bare IPv6 address: needs brackets */
		host_len = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (host_len == 0)
		return -EINVAL;
	if (colon) {
		char *end;
		unsigned long p = strtoul(colon + 1, &end, 10);
		if (!colon[1] || *end || p == 0 || p > 65535 || colon[1] == '0')
			return -EINVAL;
	}
	o->host = strndup(host, host_len);
	o->port = strdup(colon ? colon + 1 : DEFAULT_PORT);
	return o->host && o->port ? 0 : -ENOMEM;
}

static const struct {
	const char *name;
	int (*run)(const CtlOptions *o, int argc, char **argv);
} verbs[] = {
    {"devices", verb_devices},	 {"show", verb_show},
    {"token", verb_token},	 {"images", verb_images},
    {"audit", verb_audit},	 {"lock", verb_lock},
    {"unlock", verb_unlock},	 {"wipe", verb_wipe},
    {"commands", verb_commands}, {"recovery-key", verb_recovery_key},
    {"policy", verb_policy},	 {"image", verb_image},
};

int main(int argc, char *argv[])
{
	enum {
		ARG_SERVER = 0x100,
		ARG_CA,
		ARG_TOKEN_FILE,
		ARG_JSON,
		ARG_IMAGE,
		ARG_TTL,
		ARG_PCR,
		ARG_AFTER,
		ARG_REASON,
		ARG_POWEROFF,
		ARG_CLASS,
		ARG_ALL,
	};
	static const struct option options[] = {{"help", no_argument, NULL, 'h'},
						{"server", required_argument, NULL, ARG_SERVER},
						{"ca", required_argument, NULL, ARG_CA},
						{"token-file", required_argument, NULL, ARG_TOKEN_FILE},
						{"json", no_argument, NULL, ARG_JSON},
						{"image", required_argument, NULL, ARG_IMAGE},
						{"ttl", required_argument, NULL, ARG_TTL},
						{"pcr", required_argument, NULL, ARG_PCR},
						{"after", required_argument, NULL, ARG_AFTER},
						{"reason", required_argument, NULL, ARG_REASON},
						{"poweroff", no_argument, NULL, ARG_POWEROFF},
						{"class", required_argument, NULL, ARG_CLASS},
						{"all", no_argument, NULL, ARG_ALL},
						{"token", required_argument, NULL, 't'},
						{}};
	CtlOptions o = {};
	const char *server = NULL, *ca = NULL;
	int c, r;

	log_set_program("trustpcctl");
	log_parse_environment();

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return CTL_EXIT_OK;
		case ARG_SERVER:
			server = optarg;
			break;
		case ARG_CA:
			ca = optarg;
			break;
		case ARG_TOKEN_FILE:
			o.token_file = optarg;
			break;
		case ARG_JSON:
			o.json = true;
			break;
		case ARG_IMAGE:
			o.image = optarg;
			break;
		case ARG_TTL:
			o.ttl = optarg;
			break;
		case ARG_AFTER:
			o.after = optarg;
			break;
		case ARG_REASON:
			o.reason = optarg;
			break;
		case ARG_POWEROFF:
			o.poweroff = true;
			break;
		case ARG_CLASS:
			o.class_name = optarg;
			break;
		case ARG_ALL:
			o.all = true;
			break;
		case ARG_PCR: {
			char **p = reallocarray(o.pcrs, o.n_pcrs + 1, sizeof(char *));
			if (!p)
				return log_oom(), CTL_EXIT_ERROR;
			o.pcrs = p;
			o.pcrs[o.n_pcrs++] = optarg;
			break;
		}
		case 't':
			/* Refused on purpose: argv is visible to every user of the machine (ps). */
			log_error("Tokens are not accepted on the command line; use --token-file FILE or "
				  "$TRUSTPC_OPERATOR_TOKEN.");
			return CTL_EXIT_USAGE;
		default:
			log_error("See 'trustpcctl --help'.");
			return CTL_EXIT_USAGE;
		}

	if (optind >= argc) {
		log_error("No verb given. See 'trustpcctl --help'.");
		return CTL_EXIT_USAGE;
	}

	server = server ?: getenv("TRUSTPC_SERVER") ?: "localhost";
	if (parse_server(server, &o) < 0) {
		log_error("Server '%s' is not HOST[:PORT] (an IPv6 address in brackets: [::1]:7445).",
			  server);
		return CTL_EXIT_USAGE;
	}
	o.ca_path = (char *)(ca ?: getenv("TRUSTPC_CA"));
	if (!o.ca_path || !*o.ca_path) {
		log_error(
		    "No fleet CA: give --ca FILE or set $TRUSTPC_CA (ca.pem from the server's state dir).");
		return CTL_EXIT_USAGE;
	}

	r = -1;
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[optind], verbs[i].name))
			r = verbs[i].run(&o, argc - optind, argv + optind);
	if (r < 0) {
		log_error("Unknown verb '%s'. See 'trustpcctl --help'.", argv[optind]);
		r = CTL_EXIT_USAGE;
	}
	free(o.host);
	free(o.port);
	free(o.pcrs);
	return r;
}
