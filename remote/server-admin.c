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

/* A fleet command being queued, one slice per loop turn (admin_fleet_step) so that the server
 * serves its other connections meanwhile. It outlives its connection: a client that goes away
 * (Ctrl-C) does not stop a fleet command half-way; it is queued to the end, unanswered. */
struct FleetTask {
	FleetTask *prev, *next; /* Server.fleet_tasks */
	Server *server;
	ServerConn *conn; /* NULL once the connection is gone */
	AdminFleet *fleet;
	AdminContext ctx;
	sd_event_source *step;
	char what[300];
};

/* An answer can take this long (trustpcctl waits as long for a fleet command). */
#define FLEET_ANSWER_SECONDS (30 * 60)

typedef struct AdminSession {
	HttpParser *parser;
	bool answered;
	FleetTask *task;
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

static void fleet_task_free(FleetTask *t)
{
	Server *s = t->server;

	if (t->conn)
		((AdminSession *)t->conn->session)->task = NULL;
	if (t->prev)
		t->prev->next = t->next;
	else
		s->fleet_tasks = t->next;
	if (t->next)
		t->next->prev = t->prev;
	sd_event_source_disable_unref(t->step);
	admin_fleet_free(t->fleet);
	free(t);
}

static int on_fleet_step(sd_event_source *es, uint64_t usec, void *userdata)
{
	_cleanup_http_response_ HttpResponse resp = {};
	FleetTask *t = userdata;
	ServerConn *c = t->conn;
	size_t done, total;
	char what[300];
	int r;

	r = admin_fleet_step(t->fleet, &t->ctx, &resp);
	if (r == 0) {
		/* The next slice after what became ready meanwhile. */
		r = sd_event_source_set_time_relative(es, 0);
		if (r >= 0)
			r = sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
		if (r >= 0)
			return 0;
		log_error_errno(r, "Cannot schedule the next slice of %s: %m.", t->what);
	}
	if (r < 0)
		resp = (HttpResponse){.status = 500};
	admin_fleet_progress(t->fleet, &done, &total);
	snprintf(what, sizeof(what), "%s", t->what);
	if (!c)
		log_info("Admin %s: %d (%zu of %zu devices queued); its client is gone.", what, resp.status,
			 done, total);
	fleet_task_free(t);
	if (c) {
		admin_answer(c, &resp, what);
		conn_kick(c); /* outside the connection's own dispatch; may free c */
	}
	return 0;
}

/* Starts running f one slice per loop turn; the answer comes when it is done. */
static int fleet_task_start(ServerConn *c, AdminFleet *f, const AdminContext *ctx, const char *what)
{
	AdminSession *a = c->session;
	Server *s = c->server;
	FleetTask *t;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t) {
		admin_fleet_free(f);
		return -ENOMEM;
	}
	*t = (FleetTask){.server = s, .conn = c, .fleet = f, .ctx = *ctx, .next = s->fleet_tasks};
	snprintf(t->what, sizeof(t->what), "%s", what);
	if (s->fleet_tasks)
		s->fleet_tasks->prev = t;
	s->fleet_tasks = t;
	a->task = t;
	/* A timer due at once, re-armed after each slice: it becomes pending behind what the loop
	 * already has pending, so every connection that is ready gets its turn between two slices
	 * (a defer source would stay pending ahead of them and starve them). */
	r = sd_event_add_time_relative(s->event, &t->step, CLOCK_MONOTONIC, 0, 1, on_fleet_step, t);
	if (r >= 0)
		r = conn_set_deadline(c, FLEET_ANSWER_SECONDS);
	if (r < 0) {
		fleet_task_free(t);
		return r;
	}
	return 0;
}

void server_fleet_tasks_free(Server *s)
{
	while (s->fleet_tasks) {
		size_t done, total;

		admin_fleet_progress(s->fleet_tasks->fleet, &done, &total);
		log_warning("Shutting down in the middle of %s: queued for %zu of %zu devices; the "
			    "rest was not queued.",
			    s->fleet_tasks->what, done, total);
		fleet_task_free(s->fleet_tasks);
	}
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

	if (a->answered || a->task) {
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
	AdminFleet *fleet = NULL;
	r = admin_api_handle_async(&ctx, req, &resp, &fleet);
	snprintf(what, sizeof(what), "%s %.200s", req->method, req->path);
	if (r >= 0 && fleet) {
		r = fleet_task_start(c, fleet, &ctx, what);
		if (r >= 0)
			return 0; /* answered when every slice is queued */
	}
	if (r < 0)
		resp = (HttpResponse){.status = 500};
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
	if (a->task)
		a->task->conn = NULL; /* it goes on: queued to the end, unanswered */
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
