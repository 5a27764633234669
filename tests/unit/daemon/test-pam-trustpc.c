/* SPDX-License-Identifier: Apache-2.0 */
/* pam_trustpc.so's decisions below PAM: the strict state parser, the loader's refusals of files it
 * must not trust, the module arguments and the allow list. The module under a real PAM stack is
 * tests/integration/test-pam-trustpc.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

/* Its functions are static (a PAM module exports pam_sm_* only): compiled in here. */
#include "../../../daemon/pam_trustpc.c"

static int parse(const char *text, PamTrustpcState *s, const char **why)
{
	*why = NULL;
	return pam_trustpc_state_parse(text, strlen(text), s, why);
}

static void test_parse_executor_files(void **state)
{
	PamTrustpcState s;
	const char *why;

	/* What exec_state_save writes (JSON_COMPACT | JSON_SORT_KEYS), locked and unlocked. */
	assert_int_equal(parse("{\"epoch\":7,\"last_id\":\"00112233445566778899aabbccddeeff\","
			       "\"last_reason\":\"locked at epoch 7\",\"last_seq\":3,\"last_status\":0,"
			       "\"last_type\":1,\"locked\":true}",
			       &s, &why),
			 0);
	assert_true(s.locked);
	assert_int_equal(s.last_seq, 3);
	assert_true(s.has_epoch);
	assert_int_equal(s.epoch, 7);
	assert_string_equal(s.reason, "");
	assert_int_equal(parse("{\"last_seq\":4,\"locked\":false,\"last_reason\":\"unlocked\"}", &s, &why),
			 0);
	assert_false(s.locked);
	assert_false(s.has_epoch);
	/* The operator's reason, and keys a newer trustpcd may add, ignored. */
	assert_int_equal(parse("{\"last_seq\":1,\"locked\":true,\"lock_reason\":\"laptop reported stolen\","
			       "\"future\":[1,2]}",
			       &s, &why),
			 0);
	assert_string_equal(s.reason, "laptop reported stolen");
}

static void test_parse_refusals(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
	    {"", "not valid JSON"},
	    {"{\"last_seq\":1,\"locked\":true", "not valid JSON"},
	    {"{\"last_seq\":1,\"locked\":false} {}", "not valid JSON"},		     /* trailing data */
	    {"{\"last_seq\":1,\"locked\":true,\"locked\":false}", "not valid JSON"}, /* duplicate */
	    {"[true]", "not a JSON object"},
	    {"true", "not valid JSON"}, /* jansson: only an object or array at the top */
	    {"{\"last_seq\":1}", "\"locked\""},
	    {"{\"last_seq\":1,\"locked\":\"false\"}", "\"locked\""},
	    {"{\"last_seq\":1,\"locked\":0}", "\"locked\""},
	    {"{\"last_seq\":1,\"locked\":null}", "\"locked\""},
	    {"{\"locked\":false}", "\"last_seq\""},
	    {"{\"last_seq\":-1,\"locked\":false}", "\"last_seq\""},
	    {"{\"last_seq\":1.5,\"locked\":false}", "\"last_seq\""},
	    {"{\"last_seq\":1,\"locked\":false,\"epoch\":\"3\"}", "\"epoch\""},
	    {"{\"last_seq\":1,\"locked\":false,\"epoch\":-3}", "\"epoch\""},
	    {"{\"last_seq\":1,\"locked\":false,\"last_reason\":5}", "\"last_reason\""},
	    {"{\"last_seq\":1,\"locked\":true,\"lock_reason\":[]}", "\"lock_reason\""},
	    {"{\"last_seq\":1,\"locked\":true,\"lock_reason\":\"a\\u0000b\"}", "not valid JSON"},
	    {"{\"last_seq\":1,\"locked\":true,\"lock_reason\":\"\xff\"}", "not valid JSON"},
	};
	PamTrustpcState s = {.locked = true, .last_seq = 99};
	const char *why;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		assert_int_equal(parse(bad[i].text, &s, &why), -EBADMSG);
		assert_non_null(why);
		if (!strstr(why, bad[i].why))
			fail_msg("%s: \"%s\", expected \"%s\"", bad[i].text, why, bad[i].why);
		/* ret_* set only on success. */
		assert_true(s.locked);
		assert_int_equal(s.last_seq, 99);
	}
	/* A NUL byte inside the buffer, outside any string. */
	static const char nul[] = "{\"last_seq\":1,\"locked\":false}\0{}";
	assert_int_equal(pam_trustpc_state_parse(nul, sizeof(nul) - 1, &s, &why), -EBADMSG);
}

static void test_parse_bounds(void **state)
{
	_cleanup_free_ char *big = malloc(STATE_FILE_MAX + 2);
	char reason[PROTO_TEXT_MAX + 2];
	char text[PROTO_TEXT_MAX + 100];
	PamTrustpcState s;
	const char *why;

	/* A valid object padded with whitespace to one byte past the limit: refused by size before
	 * jansson sees it; at exactly the limit it is accepted. */
	assert_non_null(big);
	memset(big, ' ', STATE_FILE_MAX + 1);
	memcpy(big, "{\"last_seq\":1,\"locked\":false}", 29);
	assert_int_equal(pam_trustpc_state_parse(big, STATE_FILE_MAX + 1, &s, &why), -EFBIG);
	assert_int_equal(pam_trustpc_state_parse(big, STATE_FILE_MAX, &s, &why), 0);

	/* lock_reason: PROTO_TEXT_MAX bytes (the most a lock command carries) is fine, one more is not. */
	memset(reason, 'r', PROTO_TEXT_MAX);
	reason[PROTO_TEXT_MAX] = 0;
	snprintf(text, sizeof(text), "{\"last_seq\":1,\"locked\":true,\"lock_reason\":\"%s\"}", reason);
	assert_int_equal(parse(text, &s, &why), 0);
	assert_int_equal(strlen(s.reason), PROTO_TEXT_MAX);
	reason[PROTO_TEXT_MAX] = 'r';
	reason[PROTO_TEXT_MAX + 1] = 0;
	snprintf(text, sizeof(text), "{\"last_seq\":1,\"locked\":true,\"lock_reason\":\"%s\"}", reason);
	assert_int_equal(parse(text, &s, &why), -EBADMSG);
	assert_non_null(strstr(why, "lock_reason"));
}

static void test_reason_sanitized(void **state)
{
	PamTrustpcState s;
	const char *why;

	/* ESC [2J (clear screen), a newline, CSI as U+009B, DEL: each one '?'; UTF-8 text stays. */
	assert_int_equal(parse("{\"last_seq\":1,\"locked\":true,"
			       "\"lock_reason\":\"a\\u001b[2Jb\\nc\\u009bd\\u007fe Gerät gestohlen\"}",
			       &s, &why),
			 0);
	assert_string_equal(s.reason, "a?[2Jb?c?d?e Gerät gestohlen");
}

static void test_args(void **state)
{
	PamTrustpcArgs a;
	const char *bad = NULL;

	assert_int_equal(args_parse(0, NULL, &a, &bad), 0);
	assert_string_equal(a.state_dir, "/var/lib/trustpcd");
	assert_null(a.allow_users);
	assert_false(a.debug);

	const char *ok[] = {"state_dir=/srv/state", "allow_users=helpdesk,root", "debug"};
	assert_int_equal(args_parse(3, ok, &a, &bad), 0);
	assert_string_equal(a.state_dir, "/srv/state");
	assert_string_equal(a.allow_users, "helpdesk,root");
	assert_true(a.debug);

	const char *relative[] = {"state_dir=var/lib/trustpcd"};
	assert_int_equal(args_parse(1, relative, &a, &bad), -EINVAL);
	assert_string_equal(bad, "state_dir=var/lib/trustpcd");
	const char *empty[] = {"debug", "state_dir="};
	assert_int_equal(args_parse(2, empty, &a, &bad), -EINVAL);
	assert_string_equal(bad, "state_dir=");
	const char *typo[] = {"statedir=/srv/state"};
	assert_int_equal(args_parse(1, typo, &a, &bad), -EINVAL);
	assert_string_equal(bad, "statedir=/srv/state");
}

static void test_allow_list(void **state)
{
	assert_true(user_in_list("helpdesk", "helpdesk"));
	assert_true(user_in_list("alice,helpdesk", "helpdesk"));
	assert_true(user_in_list(",helpdesk,", "helpdesk"));
	assert_true(user_in_list("helpdesk,bob", "helpdesk"));
	/* Whole names only. */
	assert_false(user_in_list("helpdesk", "help"));
	assert_false(user_in_list("help", "helpdesk"));
	assert_false(user_in_list("helpdesk2,xhelpdesk", "helpdesk"));
	assert_false(user_in_list("a,b", "a,b"));
	assert_false(user_in_list(NULL, "helpdesk"));
	assert_false(user_in_list("", "helpdesk"));
	assert_false(user_in_list(",,", ""));
	assert_false(user_in_list("helpdesk", ""));
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_load(void **state)
{
	char dir[] = "/tmp/test-pam-trustpc.XXXXXX", missing[64], file[64], link[64];
	PamTrustpcState s = {0};
	const char *why = NULL;

	if (geteuid() != 0)
		skip(); /* the loader trusts root-owned files only */
	assert_non_null(mkdtemp(dir));
	snprintf(missing, sizeof(missing), "%s/none", dir);
	snprintf(file, sizeof(file), "%s/%s", dir, STATE_COMMANDS);
	snprintf(link, sizeof(link), "%s/elsewhere", dir);

	assert_int_equal(pam_trustpc_state_load(missing, &s, &why), 1);
	/* The dir without the file: the executor's zero state. */
	s.locked = true;
	assert_int_equal(pam_trustpc_state_load(dir, &s, &why), 0);
	assert_false(s.locked);

	write_text(file, "{\"last_seq\":2,\"locked\":true,\"lock_reason\":\"audit\"}", 0600);
	assert_int_equal(pam_trustpc_state_load(dir, &s, &why), 0);
	assert_true(s.locked);
	assert_string_equal(s.reason, "audit");

	/* Writable by others: anyone could have written "locked": false. */
	assert_int_equal(chmod(file, 0666), 0);
	assert_int_equal(pam_trustpc_state_load(dir, &s, &why), -EPERM);
	assert_int_equal(chmod(file, 0600), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(pam_trustpc_state_load(dir, &s, &why), -EPERM);
	assert_int_equal(chmod(dir, 0700), 0);

	/* A file grown past the limit. */
	assert_int_equal(truncate(file, STATE_FILE_MAX + 1), 0);
	assert_int_equal(pam_trustpc_state_load(dir, &s, &why), -EFBIG);

	/* A symlink (even to a good file), a FIFO (must not block) and a directory in its place. */
	assert_int_equal(rename(file, link), 0);
	write_text(link, "{\"last_seq\":2,\"locked\":false}", 0600);
	assert_int_equal(symlink(link, file), 0);
	assert_int_equal(pam_trustpc_state_load(dir, &s, &why), -ELOOP);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(mkfifo(file, 0600), 0);
	assert_int_equal(pam_trustpc_state_load(dir, &s, &why), -EBADMSG);
	assert_string_equal(why, "the state file is not a regular file");
	assert_int_equal(unlink(file), 0);
	assert_int_equal(mkdir(file, 0700), 0);
	assert_int_equal(pam_trustpc_state_load(dir, &s, &why), -EBADMSG);
	assert_int_equal(rmdir(file), 0);
	/* The state dir path naming a file. */
	assert_int_equal(pam_trustpc_state_load(link, &s, &why), -ENOTDIR);

	assert_int_equal(unlink(link), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_executor_files),
	    cmocka_unit_test(test_parse_refusals),
	    cmocka_unit_test(test_parse_bounds),
	    cmocka_unit_test(test_reason_sanitized),
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_allow_list),
	    cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
