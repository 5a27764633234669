/* SPDX-License-Identifier: Apache-2.0 */
/* remote/http.c on arbitrary bytes: the one-shot and the incremental request parser must agree
 * (same result, same request) however the bytes are split, and the client-side response parser
 * must not crash. Input: byte 0 picks the split point, the rest is the request. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const HttpRequest *a, const HttpRequest *b)
{
	if (strcmp(a->method, b->method) != 0 || strcmp(a->path, b->path) != 0 || !a->host || !b->host ||
	    strcmp(a->host, b->host) != 0 || !a->query != !b->query || (a->query && strcmp(a->query, b->query) != 0) ||
	    !a->authorization != !b->authorization ||
	    (a->authorization && strcmp(a->authorization, b->authorization) != 0) || a->body_len != b->body_len ||
	    memcmp(a->body, b->body, a->body_len) != 0 || a->body[a->body_len] != 0)
		abort();
	if (a->path[0] != '/' || strlen(a->method) == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	HttpRequest one = {};
	HttpParser *p = NULL;
	HttpParseError e1 = {}, e2 = {};
	size_t split;
	int r1, r2;

	if (size < 1)
		return 0;
	split = data[0];
	data++;
	size--;
	split = size ? split % (size + 1) : 0;

	r1 = http_request_parse(data, size, &one, &e1);
	if ((r1 == -EBADMSG || r1 == -EMSGSIZE) && (!e1.reason || e1.status < 400 || e1.status > 599))
		abort();

	if (http_parser_new(&p) < 0)
		abort();
	r2 = http_parser_feed(p, data, split, &e2);
	if (split < size && (r2 == -EAGAIN || r2 == 0))
		r2 = http_parser_feed(p, data + split, size - split, &e2);
	/* Errors found early may differ in kind from the whole-buffer ones only in which rule fired
	 * first; success and incompleteness must match exactly. */
	if ((r1 == 0) != (r2 == 0) || (r1 == -EAGAIN) != (r2 == -EAGAIN))
		abort();
	if (r1 == 0)
		check_same(&one, http_parser_request(p));
	http_parser_free(p);
	http_request_done(&one);

	/* The client side parses server answers. */
	{
		char *body = NULL;
		size_t n = 0;
		int status = 0;
		if (http_response_parse(data, size, &status, &body, &n) == 0) {
			if (status < 100 || status > 599 || !body || body[n] != 0)
				abort();
			free(body);
		}
	}
	return 0;
}
