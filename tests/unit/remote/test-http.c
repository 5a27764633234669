/* SPDX-License-Identifier: Apache-2.0 */
/* remote/http.c: valid requests, each malformation and limit refused with its reason and status,
 * incremental feeding, response formatting and the client-side response parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "basic/macro.h"
#include "http.h"

static void test_valid_get(void **state)
{
	_cleanup_http_request_ HttpRequest req = {};
	const char *s = "GET /api/v1/audit?after=5&limit=2 HTTP/1.1\r\n"
			"Host: server.example:7445\r\n"
			"authorization:   Bearer tpo_abc \t\r\n"
			"User-Agent: test\r\n"
			"\r\n";
	HttpParseError err = {};

	assert_int_equal(http_request_parse(s, strlen(s), &req, &err), 0);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.path, "/api/v1/audit");
	assert_string_equal(req.query, "after=5&limit=2");
	assert_string_equal(req.host, "server.example:7445");
	assert_string_equal(req.authorization, "Bearer tpo_abc");
	assert_non_null(req.body);
	assert_int_equal(req.body_len, 0);
	assert_int_equal(err.status, 0); /* untouched on success */
}

static void test_valid_post(void **state)
{
	_cleanup_http_request_ HttpRequest req = {};
	const char *s = "POST /api/v1/tokens HTTP/1.1\r\n"
			"Host: h\r\n"
			"Content-Length: 18\r\n"
			"Content-Type: application/json\r\n"
			"\r\n"
			"{\"ttl_seconds\":60}";

	assert_int_equal(http_request_parse(s, strlen(s), &req, NULL), 0);
	assert_string_equal(req.method, "POST");
	assert_string_equal(req.path, "/api/v1/tokens");
	assert_null(req.query);
	assert_null(req.authorization);
	assert_int_equal(req.body_len, 18);
	assert_string_equal(req.body, "{\"ttl_seconds\":60}");

	/* An empty query is a query. */
	http_request_done(&req);
	s = "GET /x? HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(http_request_parse(s, strlen(s), &req, NULL), 0);
	assert_string_equal(req.query, "");
}

typedef struct BadCase {
	const char *name;
	const char *text;
	int r, status;
	const char *reason;
} BadCase;

static const BadCase bad_cases[] = {
    {"transfer-encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     -EBADMSG, 501, "Transfer-Encoding"},
    {"te and cl", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx",
     -EBADMSG, 501, "Transfer-Encoding"},
    {"duplicate cl", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
     -EBADMSG, 400, "duplicate Content-Length"},
    {"cl list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\nx", -EBADMSG, 400,
     "decimal digits"},
    {"cl sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx", -EBADMSG, 400,
     "decimal digits"},
    {"cl hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x1\r\n\r\nx", -EBADMSG, 400,
     "decimal digits"},
    {"cl empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", -EBADMSG, 400,
     "empty Content-Length"},
    {"cl huge", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", -EMSGSIZE,
     413, "too large"},
    {"body too large", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n", -EMSGSIZE, 413,
     "too large"},
    {"after body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nxGET / HTTP/1.1\r\n\r\n",
     -EBADMSG, 400, "after the request body"},
    {"pipelined", "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400,
     "after the request body"},
    {"http/1.0", "GET / HTTP/1.0\r\nHost: h\r\n\r\n", -EBADMSG, 505, "HTTP/1.1"},
    {"http/2", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", -EBADMSG, 505, "HTTP/1.1"},
    {"version garbage", "GET / HTTQ/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "version"},
    {"version long", "GET / HTTP/1.11\r\nHost: h\r\n\r\n", -EBADMSG, 400, "version"},
    {"no version", "GET /\r\nHost: h\r\n\r\n", -EBADMSG, 400, "request line"},
    {"double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "target"},
    {"absolute form", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "start with '/'"},
    {"asterisk", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "start with '/'"},
    {"fragment", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "request target"},
    {"ctl in target", "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "request target"},
    {"8bit in target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "request target"},
    {"bad method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "method"},
    {"long method", "GETGETGETGETGETGET / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "method"},
    {"bare lf", "GET / HTTP/1.1\nHost: h\n\n", -EBADMSG, 400, "bare LF"},
    {"bare lf in header", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", -EBADMSG, 400, "bare LF"},
    {"bare cr", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", -EBADMSG, 400, "CR not followed by LF"},
    {"nul", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", -EBADMSG, 400, "NUL"},
    {"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG, 400, "empty request line"},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", -EBADMSG, 400, "folding"},
    {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", -EBADMSG, 400, "header name"},
    {"no colon", "GET / HTTP/1.1\r\nHost: h\r\nJunk\r\n\r\n", -EBADMSG, 400, "without ':'"},
    {"empty name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", -EBADMSG, 400, "empty header name"},
    {"ctl in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x1b[0m\r\n\r\n", -EBADMSG, 400, "header value"},
    {"del in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", -EBADMSG, 400, "header value"},
    {"no host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", -EBADMSG, 400, "Host"},
    {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -EBADMSG, 400, "duplicate Host"},
    {"two authorizations",
     "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", -EBADMSG,
     400, "duplicate Authorization"},
};

static void test_bad_requests(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
		const BadCase *b = &bad_cases[i];
		HttpRequest req = {.method = (char *)"untouched"};
		HttpParseError err = {};
		size_t n = strlen(b->text);
		int r;

		if (streq(b->name, "nul"))
			n = strlen(b->text) + 1 + strlen(b->text + strlen(b->text) + 1);
		r = http_request_parse(b->text, n, &req, &err);
		if (r != b->r || err.status != b->status || !err.reason || !strstr(err.reason, b->reason))
			fail_msg(
			    "case '%s': r=%d status=%d reason='%s', expected r=%d status=%d reason~'%s'",
			    b->name, r, err.status, strna(err.reason), b->r, b->status, b->reason);
		assert_string_equal(req.method, "untouched"); /* nothing returned */
	}
}

static char *make_head(size_t total, const char *extra_header)
{
	/* A request of exactly total bytes up to and including the blank line, padded in X-Pad. */
	const char *start = "GET / HTTP/1.1\r\nHost: h\r\n", *pad_name = "X-Pad: ";
	size_t fixed = strlen(start) + strlen(extra_header) + strlen(pad_name) + 2 + 2;
	char *s;

	assert_true(total > fixed);
	s = malloc(total + 1);
	assert_non_null(s);
	strcpy(s, start);
	strcat(s, extra_header);
	strcat(s, pad_name);
	memset(s + strlen(s), 'p', total - fixed);
	s[total - 4] = 0;
	strcat(s, "\r\n\r\n");
	assert_int_equal(strlen(s), total);
	return s;
}

static void test_limits(void **state)
{
	_cleanup_free_ char *ok = make_head(HTTP_HEAD_MAX, ""), *big = make_head(HTTP_HEAD_MAX + 1, "");
	_cleanup_free_ char *body = NULL, *many = NULL;
	HttpRequest req = {};
	HttpParseError err = {};
	FILE *f;
	size_t n;

	assert_int_equal(http_request_parse(ok, strlen(ok), &req, &err), 0);
	http_request_done(&req);
	assert_int_equal(http_request_parse(big, strlen(big), &req, &err), -EMSGSIZE);
	assert_int_equal(err.status, 431);
	assert_non_null(strstr(err.reason, "head too large"));

	/* A head that never ends is refused at the limit, not buffered forever. */
	memset(big, 'a', HTTP_HEAD_MAX + 1);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	assert_int_equal(http_request_parse(big, HTTP_HEAD_MAX, &req, &err), -EMSGSIZE);

	/* 64 header lines (Host + 63) pass, 65 do not. */
	for (int extra = 63; extra <= 64; extra++) {
		free(many);
		many = NULL;
		f = open_memstream(&many, &n);
		fputs("GET / HTTP/1.1\r\nHost: h\r\n", f);
		for (int i = 0; i < extra; i++)
			fprintf(f, "X-%d: v\r\n", i);
		fputs("\r\n", f);
		fclose(f);
		err = (HttpParseError){};
		int r = http_request_parse(many, n, &req, &err);
		if (extra == 63) {
			assert_int_equal(r, 0);
			http_request_done(&req);
		} else {
			assert_int_equal(r, -EMSGSIZE);
			assert_int_equal(err.status, 431);
			assert_non_null(strstr(err.reason, "too many header lines"));
		}
	}

	/* Body: exactly 64 KiB passes. */
	assert_true(
	    asprintf(&body, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n", HTTP_BODY_MAX) > 0);
	n = strlen(body);
	body = realloc(body, n + HTTP_BODY_MAX);
	assert_non_null(body);
	memset(body + n, '{', HTTP_BODY_MAX);
	assert_int_equal(http_request_parse(body, n + HTTP_BODY_MAX, &req, &err), 0);
	assert_int_equal(req.body_len, HTTP_BODY_MAX);
	http_request_done(&req);
	/* Truncated: incomplete, not an error. */
	assert_int_equal(http_request_parse(body, n + HTTP_BODY_MAX - 1, &req, &err), -EAGAIN);
}

static void test_incremental(void **state)
{
	const char *s = "POST /api/v1/images HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n"
			"Content-Length: 11\r\n\r\n{\"name\":1}\n";
	_cleanup_http_parser_ HttpParser *p = NULL;
	const HttpRequest *req;
	size_t n = strlen(s);

	assert_int_equal(http_parser_new(&p), 0);
	assert_null(http_parser_request(p));
	for (size_t i = 0; i < n - 1; i++)
		assert_int_equal(http_parser_feed(p, s + i, 1, NULL), -EAGAIN);
	assert_null(http_parser_request(p));
	assert_int_equal(http_parser_feed(p, s + n - 1, 1, NULL), 0);
	req = http_parser_request(p);
	assert_non_null(req);
	assert_string_equal(req->path, "/api/v1/images");
	assert_string_equal(req->authorization, "Bearer t");
	assert_string_equal(req->body, "{\"name\":1}\n");

	/* Nothing more is accepted on this connection. */
	HttpParseError err = {};
	assert_int_equal(http_parser_feed(p, "G", 1, &err), -EBADMSG);
	assert_int_equal(err.status, 400);
	assert_null(http_parser_request(p));
}

static void test_incremental_errors(void **state)
{
	_cleanup_http_parser_ HttpParser *p = NULL;
	HttpParseError err = {};

	/* A bare LF is refused when it arrives, not when (if ever) the head ends. */
	assert_int_equal(http_parser_new(&p), 0);
	assert_int_equal(http_parser_feed(p, "GET / HT", 8, &err), -EAGAIN);
	assert_int_equal(http_parser_feed(p, "TP/1.1\n", 7, &err), -EBADMSG);
	assert_non_null(strstr(err.reason, "bare LF"));
	/* …and the parser stays failed. */
	err = (HttpParseError){};
	assert_int_equal(http_parser_feed(p, "\r\n\r\n", 4, &err), -EBADMSG);
	assert_non_null(strstr(err.reason, "bare LF"));
	p = http_parser_free(p);

	/* CR split from its LF across two reads. */
	assert_int_equal(http_parser_new(&p), 0);
	assert_int_equal(http_parser_feed(p, "GET / HTTP/1.1\r", 15, &err), -EAGAIN);
	assert_int_equal(http_parser_feed(p, "\nHost: h\r", 9, &err), -EAGAIN);
	assert_int_equal(http_parser_feed(p, "\n\r", 2, &err), -EAGAIN);
	assert_int_equal(http_parser_feed(p, "\n", 1, &err), 0);
	p = http_parser_free(p);

	/* Body bytes beyond Content-Length in a later read. */
	assert_int_equal(http_parser_new(&p), 0);
	assert_int_equal(
	    http_parser_feed(p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n", 47, &err),
	    -EAGAIN);
	assert_int_equal(http_parser_feed(p, "abc", 3, &err), -EBADMSG);
	assert_non_null(strstr(err.reason, "after the request body"));
	p = http_parser_free(p);

	/* A flood in one read: the excess is noticed, not buffered. */
	size_t big = HTTP_HEAD_MAX + HTTP_BODY_MAX + 4096;
	char *flood = malloc(big);
	assert_non_null(flood);
	int hl =
	    snprintf(flood, big, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n", HTTP_BODY_MAX);
	memset(flood + hl, 'x', big - (size_t)hl);
	assert_int_equal(http_parser_new(&p), 0);
	assert_int_equal(http_parser_feed(p, flood, big, &err), -EBADMSG);
	free(flood);
}

static void test_response(void **state)
{
	_cleanup_http_response_ HttpResponse resp = {};
	_cleanup_free_ char *out = NULL, *body = NULL;
	size_t n = 0, body_len = 0;
	json_t *j;
	int status = 0;

	assert_int_equal(
	    http_response_set_error(&resp, 401, "unauthenticated", "quote \" backslash \\ ctl \x01 end"), 0);
	assert_int_equal(resp.status, 401);
	j = json_loads(resp.body, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "unauthenticated");
	assert_string_equal(json_string_value(json_object_get(j, "message")),
			    "quote \" backslash \\ ctl \x01 end");
	json_decref(j);

	assert_int_equal(http_response_format(&resp, &out, &n), 0);
	assert_true(startswith(out, "HTTP/1.1 401 Unauthorized\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
	assert_non_null(strstr(out, "\r\nX-Content-Type-Options: nosniff\r\n"));
	assert_non_null(strstr(out, "\r\nCache-Control: no-store\r\n"));
	assert_non_null(strstr(out, "\r\nWWW-Authenticate: Bearer"));

	/* Round trip through the client parser. */
	assert_int_equal(http_response_parse(out, n, &status, &body, &body_len), 0);
	assert_int_equal(status, 401);
	assert_string_equal(body, resp.body);
	assert_int_equal(body_len, strlen(resp.body));
	free(body);
	body = NULL;

	/* Not 401: no WWW-Authenticate; an empty body. */
	http_response_done(&resp);
	resp.status = 200;
	free(out);
	out = NULL;
	assert_int_equal(http_response_format(&resp, &out, &n), 0);
	assert_null(strstr(out, "WWW-Authenticate"));
	assert_non_null(strstr(out, "\r\nContent-Length: 0\r\n"));
	resp.status = 42;
	assert_int_equal(http_response_format(&resp, &body, &n), -EINVAL);
	assert_string_equal(http_status_text(404), "Not Found");
	assert_string_equal(http_status_text(299), "Unknown");
}

static void test_response_parse_errors(void **state)
{
	static const char *const bad[] = {
	    "HTTP/1.1 200 OK\r\n\r\n{}",		      /* no Content-Length */
	    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}", /* short */
	    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{}", /* long */
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
	    "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
	    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
	    "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\n{}",
	    "HTTP/1.1 700 X\r\nContent-Length: 2\r\n\r\n{}",
	    "HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\n{}",
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{}", /* no blank line */
	    "",
	};
	char *body = NULL;
	int status = 0;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (http_response_parse(bad[i], strlen(bad[i]), &status, &body, NULL) != -EBADMSG)
			fail_msg("accepted: %s", bad[i]);
	assert_null(body);
	assert_int_equal(status, 0);
	const char *good = "HTTP/1.1 200 OK\r\ncontent-length:  2 \r\n\r\n{}";
	assert_int_equal(http_response_parse(good, strlen(good), &status, &body, NULL), 0);
	assert_string_equal(body, "{}");
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_get),	 cmocka_unit_test(test_valid_post),
	    cmocka_unit_test(test_bad_requests), cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_incremental),	 cmocka_unit_test(test_incremental_errors),
	    cmocka_unit_test(test_response),	 cmocka_unit_test(test_response_parse_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
