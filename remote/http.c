/* SPDX-License-Identifier: Apache-2.0 */
/* The strict HTTP/1.1 subset of http.h: RFC 9112 message syntax, minus everything the admin API
 * does not need. Each refusal names the rule it enforces. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "http.h"

#define HTTP_METHOD_MAX 16

typedef enum ParserState {
	PARSER_HEAD,
	PARSER_BODY,
	PARSER_DONE,
	PARSER_FAILED,
} ParserState;

struct HttpParser {
	ParserState state;
	char *buf; /* head + body, at most HTTP_HEAD_MAX + HTTP_BODY_MAX (+1 to notice excess) */
	size_t size;
	size_t scanned;	 /* head bytes already checked for bare CR/LF and NUL */
	size_t head_end; /* offset after the blank line */
	size_t content_length;
	bool overflow; /* bytes beyond what we keep were fed */
	int error;
	HttpParseError err;
	HttpRequest req;
};

void http_request_done(HttpRequest *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->path);
	free(r->query);
	free(r->host);
	erase_and_free(r->authorization);
	free(r->body);
	*r = (HttpRequest){};
}

static int fail(HttpParser *p, int error, int status, const char *reason)
{
	p->state = PARSER_FAILED;
	p->error = error;
	p->err = (HttpParseError){.status = status, .reason = reason};
	return error;
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Field value characters: VCHAR, SP, HTAB, obs-text. Control characters are how header
 * injection and response splitting start. */
static bool is_field_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int parse_request_line(HttpParser *p, const char *line, size_t len)
{
	const char *sp1, *sp2, *target, *q;
	size_t mlen, tlen;

	sp1 = memchr(line, ' ', len);
	if (!sp1)
		return fail(p, -EBADMSG, 400, "malformed request line");
	mlen = (size_t)(sp1 - line);
	if (mlen == 0 || mlen > HTTP_METHOD_MAX)
		return fail(p, -EBADMSG, 400, "malformed method");
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)line[i]))
			return fail(p, -EBADMSG, 400, "malformed method");

	target = sp1 + 1;
	sp2 = memchr(target, ' ', len - mlen - 1);
	if (!sp2)
		return fail(p, -EBADMSG, 400, "malformed request line");
	tlen = (size_t)(sp2 - target);
	if (tlen == 0)
		return fail(p, -EBADMSG, 400, "empty request target");
	/* Origin form only (RFC 9112 §3.2.1): no absolute-form, authority-form or "*". */
	if (target[0] != '/')
		return fail(p, -EBADMSG, 400, "request target must start with '/'");
	for (size_t i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)target[i];
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return fail(p, -EBADMSG, 400, "invalid character in request target");
	}

	const char *version = sp2 + 1;
	size_t vlen = len - (size_t)(version - line);
	if (vlen != 8 || memcmp(version, "HTTP/", 5) != 0)
		return fail(p, -EBADMSG, 400, "malformed HTTP version");
	if (memcmp(version, "HTTP/1.1", 8) != 0)
		return fail(p, -EBADMSG, 505, "only HTTP/1.1 is supported");

	p->req.method = memdup_str(line, mlen);
	q = memchr(target, '?', tlen);
	p->req.path = memdup_str(target, q ? (size_t)(q - target) : tlen);
	if (q)
		p->req.query = memdup_str(q + 1, tlen - (size_t)(q - target) - 1);
	if (!p->req.method || !p->req.path || (q && !p->req.query))
		return fail(p, -ENOMEM, 500, "out of memory");
	return 0;
}

static int parse_content_length(HttpParser *p, const char *v, size_t n)
{
	size_t value = 0;

	/* 1*DIGIT only: no sign, no list ("5, 5"), no whitespace inside. */
	if (n == 0)
		return fail(p, -EBADMSG, 400, "empty Content-Length");
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return fail(p, -EBADMSG, 400, "Content-Length must be decimal digits");
		value = value * 10 + (size_t)(v[i] - '0');
		if (value > HTTP_BODY_MAX)
			return fail(p, -EMSGSIZE, 413, "request body too large");
	}
	p->content_length = value;
	return 0;
}

static int set_unique(HttpParser *p, char **field, const char *v, size_t n, const char *dup_reason)
{
	if (*field)
		return fail(p, -EBADMSG, 400, dup_reason);
	*field = memdup_str(v, n);
	if (!*field)
		return fail(p, -ENOMEM, 500, "out of memory");
	return 0;
}

static int parse_header_line(HttpParser *p, const char *line, size_t len, bool *seen_cl)
{
	const char *colon, *v, *end;
	size_t nlen;
	int r;

	/* obs-fold (RFC 9112 §5.2): a line that continues the previous one. */
	if (line[0] == ' ' || line[0] == '\t')
		return fail(p, -EBADMSG, 400, "obsolete header line folding");
	colon = memchr(line, ':', len);
	if (!colon)
		return fail(p, -EBADMSG, 400, "header line without ':'");
	nlen = (size_t)(colon - line);
	if (nlen == 0)
		return fail(p, -EBADMSG, 400, "empty header name");
	/* Includes whitespace before the colon (RFC 9112 §5.1: MUST reject). */
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar((unsigned char)line[i]))
			return fail(p, -EBADMSG, 400, "invalid character in header name");

	v = colon + 1;
	end = line + len;
	for (const char *c = v; c < end; c++)
		if (!is_field_char((unsigned char)*c))
			return fail(p, -EBADMSG, 400, "invalid character in header value");
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;

#define NAME_IS(s) (nlen == strlen(s) && strncasecmp(line, s, nlen) == 0)
	if (NAME_IS("Transfer-Encoding"))
		/* The request-smuggling header: we only speak Content-Length. */
		return fail(p, -EBADMSG, 501, "Transfer-Encoding is not supported");
	if (NAME_IS("Content-Length")) {
		if (*seen_cl)
			return fail(p, -EBADMSG, 400, "duplicate Content-Length");
		*seen_cl = true;
		return parse_content_length(p, v, (size_t)(end - v));
	}
	if (NAME_IS("Host")) {
		r = set_unique(p, &p->req.host, v, (size_t)(end - v), "duplicate Host");
		return r;
	}
	if (NAME_IS("Authorization"))
		return set_unique(p, &p->req.authorization, v, (size_t)(end - v), "duplicate Authorization");
#undef NAME_IS
	return 0;
}

/* buf[0..head_end) is a complete head whose line ends were all checked to be CRLF. */
static int parse_head(HttpParser *p)
{
	const char *s = p->buf, *end = p->buf + p->head_end - 2; /* up to the last line's CRLF */
	unsigned n_headers = 0;
	bool seen_cl = false;
	int r;

	for (bool first = true; s < end; first = false) {
		const char *eol = memmem(s, (size_t)(end - s), "\r\n", 2);
		size_t len = (size_t)(eol - s);

		if (first) {
			r = parse_request_line(p, s, len);
		} else {
			if (++n_headers > HTTP_HEADERS_MAX)
				return fail(p, -EMSGSIZE, 431, "too many header lines");
			r = parse_header_line(p, s, len, &seen_cl);
		}
		if (r < 0)
			return r;
		s = eol + 2;
	}
	/* RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host. */
	if (!p->req.host)
		return fail(p, -EBADMSG, 400, "missing Host header");
	return 0;
}

/* Checks new head bytes once each: every LF must follow a CR and every CR precede an LF (no
 * bare line ends another parser would split differently), no NUL. Returns the offset after the
 * blank line, 0 if not there yet, or an error. */
static int scan_head(HttpParser *p)
{
	size_t limit = MIN(p->size, (size_t)HTTP_HEAD_MAX);

	for (size_t i = p->scanned; i < limit; i++) {
		char c = p->buf[i];

		if (c == 0)
			return fail(p, -EBADMSG, 400, "NUL byte in request head");
		if (c == '\r') {
			if (i + 1 >= p->size) {
				p->scanned = i; /* look again when the next byte is there */
				return 0;
			}
			if (p->buf[i + 1] != '\n')
				return fail(p, -EBADMSG, 400, "CR not followed by LF");
		} else if (c == '\n') {
			if (i == 0 || p->buf[i - 1] != '\r')
				return fail(p, -EBADMSG, 400, "bare LF line ending");
			if (i == 1)
				return fail(p, -EBADMSG, 400, "empty request line");
			if (i >= 3 && p->buf[i - 2] == '\n') {
				p->head_end = i + 1;
				p->scanned = i + 1;
				return 1;
			}
		}
	}
	p->scanned = limit;
	if (p->size >= HTTP_HEAD_MAX)
		return fail(p, -EMSGSIZE, 431, "request head too large");
	return 0;
}

int http_parser_new(HttpParser **ret)
{
	HttpParser *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

HttpParser *http_parser_free(HttpParser *p)
{
	if (!p)
		return NULL;
	http_request_done(&p->req);
	/* The buffer held the Authorization header. */
	if (p->buf)
		memory_erase(p->buf, p->size);
	free(p->buf);
	free(p);
	return NULL;
}

static int append(HttpParser *p, const void *data, size_t n)
{
	size_t keep_max = HTTP_HEAD_MAX + HTTP_BODY_MAX + 1, room, take;
	char *b;

	if (p->size >= keep_max) {
		p->overflow = p->overflow || n > 0;
		return 0;
	}
	room = keep_max - p->size;
	take = MIN(n, room);
	if (take < n)
		p->overflow = true;
	if (take == 0)
		return 0;
	if (!p->buf) {
		b = malloc(keep_max);
		if (!b)
			return -ENOMEM;
		p->buf = b;
	}
	memcpy(p->buf + p->size, data, take);
	p->size += take;
	return 0;
}

static void report(const HttpParser *p, HttpParseError *err)
{
	if (err && p->state == PARSER_FAILED && p->error != -ENOMEM)
		*err = p->err;
}

int http_parser_feed(HttpParser *p, const void *data, size_t n, HttpParseError *err)
{
	size_t have;
	int r;

	if (p->state == PARSER_FAILED) {
		report(p, err);
		return p->error;
	}
	if (p->state == PARSER_DONE) {
		if (n == 0)
			return 0;
		r = fail(p, -EBADMSG, 400, "data after the request (one request per connection)");
		report(p, err);
		return r;
	}

	r = append(p, data, n);
	if (r < 0)
		return fail(p, r, 500, "out of memory");

	if (p->state == PARSER_HEAD) {
		r = scan_head(p);
		if (r <= 0) {
			report(p, err);
			return r < 0 ? r : -EAGAIN;
		}
		r = parse_head(p);
		if (r < 0) {
			report(p, err);
			return r;
		}
		p->state = PARSER_BODY;
	}

	have = p->size - p->head_end;
	if (have > p->content_length || p->overflow) {
		r = fail(p, -EBADMSG, 400, "data after the request body (one request per connection)");
		report(p, err);
		return r;
	}
	if (have < p->content_length)
		return -EAGAIN;

	p->req.body = malloc(p->content_length + 1);
	if (!p->req.body)
		return fail(p, -ENOMEM, 500, "out of memory");
	memcpy(p->req.body, p->buf + p->head_end, p->content_length);
	p->req.body[p->content_length] = 0;
	p->req.body_len = p->content_length;
	p->state = PARSER_DONE;
	return 0;
}

const HttpRequest *http_parser_request(const HttpParser *p)
{
	return p->state == PARSER_DONE ? &p->req : NULL;
}

int http_request_parse(const void *buf, size_t n, HttpRequest *ret, HttpParseError *err)
{
	_cleanup_http_parser_ HttpParser *p = NULL;
	int r;

	r = http_parser_new(&p);
	if (r < 0)
		return r;
	r = http_parser_feed(p, buf, n, err);
	if (r < 0)
		return r;
	*ret = p->req;
	p->req = (HttpRequest){};
	return 0;
}

/* ---- responses ---- */

void http_response_done(HttpResponse *r)
{
	if (!r)
		return;
	/* Bodies can carry a fresh enrollment token. */
	erase_and_free(r->body);
	*r = (HttpResponse){};
}

const char *http_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/* JSON string escaping for the two fields of an error body (jansson would do, but the HTTP layer
 * should not need it for this). Control characters become \u00XX. */
static int json_escape(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(f, "\\u%04x", *c);
		else
			fputc(*c, f);
	}
	fputc('"', f);
	return 0;
}

int http_response_set_error(HttpResponse *resp, int status, const char *code, const char *message)
{
	char *body = NULL;
	size_t n = 0;
	FILE *f;

	f = open_memstream(&body, &n);
	if (!f)
		return -ENOMEM;
	fputs("{\"error\":", f);
	json_escape(f, code);
	fputs(",\"message\":", f);
	json_escape(f, message);
	fputs("}", f);
	if (fclose(f) != 0) {
		free(body);
		return -ENOMEM;
	}
	free(resp->body);
	resp->status = status;
	resp->body = body;
	return 0;
}

int http_response_format(const HttpResponse *resp, char **ret, size_t *ret_size)
{
	size_t body_len = resp->body ? strlen(resp->body) : 0;
	char *out = NULL;
	size_t n = 0;
	FILE *f;

	if (resp->status < 100 || resp->status > 599)
		return -EINVAL;
	f = open_memstream(&out, &n);
	if (!f)
		return -ENOMEM;
	fprintf(f,
		"HTTP/1.1 %d %s\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length: %zu\r\n"
		"Connection: close\r\n"
		"Cache-Control: no-store\r\n"
		"X-Content-Type-Options: nosniff\r\n"
		"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
		"Referrer-Policy: no-referrer\r\n"
		"X-Frame-Options: DENY\r\n"
		"Strict-Transport-Security: max-age=31536000\r\n"
		"%s"
		"\r\n",
		resp->status, http_status_text(resp->status), body_len,
		resp->status == 401 ? "WWW-Authenticate: Bearer realm=\"trustpc\"\r\n" : "");
	if (body_len > 0)
		fwrite(resp->body, 1, body_len, f);
	if (fclose(f) != 0) {
		free(out);
		return -ENOMEM;
	}
	*ret = out;
	*ret_size = n;
	return 0;
}

/* ---- client side ---- */

int http_response_parse(const void *buf, size_t n, int *ret_status, char **ret_body, size_t *ret_body_len)
{
	const char *s = buf, *head_end, *line, *end;
	size_t content_length = 0, body_len;
	bool seen_cl = false;
	int status;
	char *body;

	if (n > HTTP_HEAD_MAX + HTTP_CLIENT_BODY_MAX)
		return -EMSGSIZE;
	head_end = memmem(s, MIN(n, (size_t)HTTP_HEAD_MAX), "\r\n\r\n", 4);
	if (!head_end)
		return -EBADMSG;

	/* "HTTP/1.1 NNN reason" */
	if (head_end - s < 12 || memcmp(s, "HTTP/1.1 ", 9) != 0 || s[9] < '1' || s[9] > '5' || s[10] < '0' ||
	    s[10] > '9' || s[11] < '0' || s[11] > '9')
		return -EBADMSG;
	status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');

	line = memmem(s, (size_t)(head_end - s) + 2, "\r\n", 2);
	if (!line)
		return -EBADMSG;
	for (const char *c = s; c < line; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return -EBADMSG;
	line += 2;
	end = head_end + 2;
	while (line < end) {
		const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2), *colon, *v;
		size_t nlen;

		if (!eol)
			return -EBADMSG;
		for (const char *c = line; c < eol; c++)
			if (!is_field_char((unsigned char)*c))
				return -EBADMSG;
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon)
			return -EBADMSG;
		nlen = (size_t)(colon - line);
		v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		if (nlen == strlen("Transfer-Encoding") && strncasecmp(line, "Transfer-Encoding", nlen) == 0)
			return -EBADMSG;
		if (nlen == strlen("Content-Length") && strncasecmp(line, "Content-Length", nlen) == 0) {
			if (seen_cl || v == eol)
				return -EBADMSG;
			seen_cl = true;
			for (; v < eol && *v != ' ' && *v != '\t'; v++) {
				if (*v < '0' || *v > '9')
					return -EBADMSG;
				content_length = content_length * 10 + (size_t)(*v - '0');
				if (content_length > HTTP_CLIENT_BODY_MAX)
					return -EMSGSIZE;
			}
		}
		line = eol + 2;
	}
	if (!seen_cl)
		return -EBADMSG;
	body_len = n - (size_t)(head_end + 4 - s);
	if (body_len != content_length)
		return -EBADMSG;

	body = malloc(body_len + 1);
	if (!body)
		return -ENOMEM;
	memcpy(body, head_end + 4, body_len);
	body[body_len] = 0;
	*ret_status = status;
	*ret_body = body;
	if (ret_body_len)
		*ret_body_len = body_len;
	return 0;
}
