/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static const char *program = NULL;
static int use_journal = 0;

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

void log_set_program(const char *name)
{
	program = name;
}

/* JOURNAL_STREAM=dev:ino names the stream systemd connected to our stderr: only when stderr is
 * still that stream do we log to the journal (a redirected stderr keeps working as expected). */
static int stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return st.st_dev == dev && st.st_ino == ino;
}

void log_parse_environment(void)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"notice", LOG_NOTICE},
		{"warning", LOG_WARNING}, {"err", LOG_ERR}, {"error", LOG_ERR},
	};
	const char *e = getenv("TRUSTPC_LOG_LEVEL");

	if (e)
		for (size_t i = 0; i < ELEMENTSOF(levels); i++)
			if (streq(e, levels[i].name))
				max_level = levels[i].level;
	use_journal = stderr_is_journal();
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int saved = errno;

	error = abs(error);
	errno = error; /* so that %m prints the error passed in */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	if (use_journal) {
		if (error > 0)
			sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, "ERRNO=%i", error,
					"CODE_FILE=%s", file, "CODE_LINE=%i", line, "CODE_FUNC=%s", func,
					"SYSLOG_IDENTIFIER=%s", program ?: "trustpc", NULL);
		else
			sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, "CODE_FILE=%s", file,
					"CODE_LINE=%i", line, "CODE_FUNC=%s", func,
					"SYSLOG_IDENTIFIER=%s", program ?: "trustpc", NULL);
	} else {
		if (program)
			fprintf(stderr, "%s: %s\n", program, buf);
		else
			fprintf(stderr, "%s\n", buf);
	}
	errno = saved;
	return -error;
}
