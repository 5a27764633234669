/* SPDX-License-Identifier: Apache-2.0 */
/* The admin port: one HTTP request per connection (remote/http.h parser, fed as bytes arrive),
 * answered by the admin API (remote/admin-api.h), then closed. Authentication and routing are the
 * admin API's; this file is transport only. */
#include <stdlib.h>
#include <time.h>

#include "admin-api.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "http.h"
#include "server.h"

typedef struct AdminSession {
	HttpParser *parser;
	bool answered;
} AdminSession;

static int admin_established(ServerConn *c)
{
	AdminSession *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return log_oom();
	c->session = a;
	r = http_parser_new(&a->parser);
	if (r < 0)
		return log_oom();
	return 0;
}

static void admin_answer(ServerConn *c, const HttpResponse *resp, const char *what)
{
	AdminSession *a = c->session;
	_cleanup_free_ char *bytes = NULL;
	size_t n;

	a->answered = true;
	if (http_response_format(resp, &bytes, &n) < 0) {
		static const char oom[] =
		    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		(void)conn_send_raw(c, oom, sizeof(oom) - 1);
	} else
		(void)conn_send_raw(c, bytes, n);
	log_info("Admin %s from %s: %d.", what, c->peer, resp->status);
	conn_close_after_write(c);
}

static void admin_fail(ServerConn *c, const char *code, const char *reason)
{
	_cleanup_http_response_ HttpResponse resp = {};
	AdminSession *a = c->session;
	int status = streq(code, "too-large") ? 413 : streq(code, "timeout") ? 408 : 400;

	if (!a || a->answered)
		return;
	if (http_response_set_error(&resp, status, code, reason) < 0)
		resp.status = 500;
	admin_answer(c, &resp, "request refused");
}

static int admin_input(ServerConn *c)
{
	_cleanup_http_response_ HttpResponse resp = {};
	AdminSession *a = c->session;
	HttpParseError err = {};
	const HttpRequest *req;
	char what[300];
	int r;

	if (a->answered) {
		conn_input_consume(c, c->in_size);
		return 0;
	}
	/* The parser keeps its own copy (bounded by the protocol's limits). */
	r = http_parser_feed(a->parser, c->in, c->in_size, &err);
	conn_input_consume(c, c->in_size);
	if (r == -EAGAIN)
		return 0;
	if (r == -EBADMSG || r == -EMSGSIZE) {
		if (admin_api_parse_error(&err, &resp) < 0)
			resp.status = 500;
		snprintf(what, sizeof(what), "request refused (%s)", strna(err.reason));
		admin_answer(c, &resp, what);
		return 0;
	}
	if (r < 0) {
		resp.status = 500;
		admin_answer(c, &resp, "request");
		return r;
	}

	req = http_parser_request(a->parser);
	AdminContext ctx = {
	    .store = c->server->store,
	    .is_connected = server_is_connected,
	    .userdata = c->server,
	    .now = time(NULL),
	    .commands = &c->server->command_issue,
	    .command_queued = server_device_command_queued,
	    .escrow_key_path = c->server->keys.escrow_key_path,
	};
	r = admin_api_handle(&ctx, req, &resp);
	if (r < 0)
		resp = (HttpResponse){.status = 500};
	snprintf(what, sizeof(what), "%s %.200s", req->method, req->path);
	admin_answer(c, &resp, what);
	return 0;
}

static int admin_message(ServerConn *c, const ProtoMessage *m)
{
	return -EBADMSG; /* not framed: admin_input gets the bytes */
}

static void admin_timeout(ServerConn *c)
{
	admin_fail(c, "timeout", "request not complete in time");
}

static void admin_closed(ServerConn *c)
{
	AdminSession *a = c->session;

	if (!a)
		return;
	http_parser_free(a->parser);
	free(a);
	c->session = NULL;
}

const ConnHandler admin_handler = {
    .established = admin_established,
    .message = admin_message,
    .input = admin_input,
    .fail = admin_fail,
    .timeout = admin_timeout,
    .closed = admin_closed,
};
