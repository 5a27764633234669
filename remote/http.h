/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A strict HTTP/1.1 subset for the admin port (docs/PROTOCOL.md "Admin API"): one request per
 * connection, Content-Length bodies only. Everything the admin API does not need is refused rather
 * than interpreted, because two parsers that disagree about where a request ends (a proxy and
 * us) is how request smuggling works: Transfer-Encoding, a repeated Content-Length, obsolete
 * line folding, bare LF line ends, whitespace before the colon, absolute-form targets, and any
 * bytes after the body.
 *
 * Limits: request line + headers ≤ HTTP_HEAD_MAX bytes (including the blank line), body ≤
 * HTTP_BODY_MAX bytes, at most HTTP_HEADERS_MAX header lines.
 *
 * Parsing returns
 *   0         a complete request (the HttpRequest is filled)
 *   -EAGAIN   incomplete so far: feed more bytes
 *   -EBADMSG  malformed (HttpParseError.status 400, 501 or 505, .reason says what)
 *   -EMSGSIZE a limit was exceeded (status 413 body, 431 head/header count)
 *   -ENOMEM
 * The parser never reads past the length it is given; the request owns copies of everything. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX (8U * 1024U)
#define HTTP_BODY_MAX (64U * 1024U)
#define HTTP_HEADERS_MAX 64U

typedef struct HttpRequest {
	char *method; /* as sent ("GET", "POST", …): a token, case-sensitive */
	char *path;   /* origin-form target up to '?', starts with '/', not decoded */
	char *query;  /* after '?', not decoded; NULL when the target has no '?' */
	char *host;   /* the Host header (required by HTTP/1.1) */
	char
	    *authorization; /* the Authorization header value, NULL if absent; a credential: wiped on done */
	char *body;	    /* body_len bytes + a NUL (never NULL after a successful parse) */
	size_t body_len;
} HttpRequest;
void http_request_done(HttpRequest *r); /* frees the fields (wipes authorization), zeroes r */

typedef struct HttpParseError {
	int status;	    /* HTTP status to answer with: 400, 413, 431, 501, 505 */
	const char *reason; /* static text, e.g. "Transfer-Encoding is not supported" */
} HttpParseError;

/* One-shot: parses buf[0..n) as a whole request. -EAGAIN when it is a valid prefix of one. Bytes
 * after the body are refused (-EBADMSG, one request per connection). ret is set only on 0; err
 * (may be NULL) only on -EBADMSG/-EMSGSIZE. */
int http_request_parse(const void *buf, size_t n, HttpRequest *ret, HttpParseError *err);

/* Incremental: the server feeds bytes as they arrive. The parser keeps at most HTTP_HEAD_MAX +
 * HTTP_BODY_MAX bytes and scans each byte of the head once (no quadratic rescans for a client that
 * sends one byte at a time). After 0 the request is available via http_parser_request(); after an
 * error the parser stays failed and repeats that error. */
typedef struct HttpParser HttpParser;
int http_parser_new(HttpParser **ret);
HttpParser *http_parser_free(HttpParser *p);
int http_parser_feed(HttpParser *p, const void *data, size_t n, HttpParseError *err);
/* After http_parser_feed returned 0: the request; ownership stays with the parser. */
const HttpRequest *http_parser_request(const HttpParser *p);

/* ---- responses ---- */
typedef struct HttpResponse {
	int status;
	char *body; /* malloc'ed JSON text (NUL-terminated), or NULL for an empty body */
} HttpResponse;
void http_response_done(HttpResponse *r);

const char *http_status_text(int status); /* "OK", "Not Found", …; "Unknown" otherwise */

/* Sets resp to status with body {"error": code, "message": message}. -ENOMEM. */
int http_response_set_error(HttpResponse *resp, int status, const char *code, const char *message);

/* The full response bytes: status line, Content-Type: application/json, Content-Length,
 * Connection: close, Cache-Control: no-store, X-Content-Type-Options: nosniff,
 * Content-Security-Policy: default-src 'none', Referrer-Policy: no-referrer, X-Frame-Options: DENY,
 * WWW-Authenticate: Bearer (401 only), then the body. *ret is malloc'ed. */
int http_response_format(const HttpResponse *resp, char **ret, size_t *ret_size);

/* ---- client side (trustpcctl) ----
 * Parses a complete response read until the server closed the connection: status line
 * "HTTP/1.1 NNN text", headers (CRLF), Content-Length required and equal to the bytes that
 * follow. -EBADMSG on anything else, -EMSGSIZE above HTTP_HEAD_MAX + 16 MiB.
 * *ret_body is malloc'ed and NUL-terminated. */
#define HTTP_CLIENT_BODY_MAX (16U * 1024U * 1024U)
int http_response_parse(const void *buf, size_t n, int *ret_status, char **ret_body, size_t *ret_body_len);

/* Cleanup helpers. */
static inline void http_request_donep(HttpRequest *r)
{
	http_request_done(r);
}
static inline void http_response_donep(HttpResponse *r)
{
	http_response_done(r);
}
static inline void http_parser_freep(HttpParser **p)
{
	http_parser_free(*p);
}
#define _cleanup_http_request_ __attribute__((cleanup(http_request_donep)))
#define _cleanup_http_response_ __attribute__((cleanup(http_response_donep)))
#define _cleanup_http_parser_ __attribute__((cleanup(http_parser_freep)))
