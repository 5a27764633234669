/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Helpers for running Project Wycheproof vector files (found via $TRUSTPC_VECTORS) under cmocka. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "basic/encoding.h"

typedef struct VectorCounts {
	const char *name;
	unsigned valid_ok, invalid_rejected, acceptable_accepted, acceptable_rejected, failures;
} VectorCounts;

typedef enum VectorResult { RESULT_VALID, RESULT_INVALID, RESULT_ACCEPTABLE } VectorResult;

static inline json_t *vectors_load(const char *file)
{
	const char *dir = getenv("TRUSTPC_VECTORS");
	json_error_t err;
	char path[4096];
	json_t *j;

	if (!dir) {
		fail_msg("TRUSTPC_VECTORS is not set: run the tests through meson test");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/wycheproof/%s", dir, file);
	j = json_load_file(path, 0, &err);
	if (!j)
		fail_msg("%s: %s (line %d)", path, err.text, err.line);
	return j;
}

static inline VectorResult vector_result(json_t *t)
{
	const char *r = json_string_value(json_object_get(t, "result"));

	assert_non_null(r);
	if (strcmp(r, "valid") == 0)
		return RESULT_VALID;
	if (strcmp(r, "invalid") == 0)
		return RESULT_INVALID;
	assert_string_equal(r, "acceptable");
	return RESULT_ACCEPTABLE;
}

/* Hex member of a JSON object, malloc'ed (never NULL, even for ""). */
static inline uint8_t *vector_hex(json_t *o, const char *key, size_t *ret_size)
{
	const char *s = json_string_value(json_object_get(o, key));
	uint8_t *b = NULL;

	if (!s)
		fail_msg("vector member \"%s\" missing", key);
	assert_int_equal(hex_decode(s, strlen(s), &b, ret_size), 0);
	assert_non_null(b);
	return b;
}

/* Records the outcome of one case: accepted means the implementation accepted the input and produced
 * the expected output. An accepted case with a wrong output goes to vector_fail() instead. Each case
 * is recorded exactly once, by one of the two. */
static inline void vector_record(VectorCounts *c, json_t *t, bool accepted)
{
	VectorResult res = vector_result(t);
	bool fail = false;

	switch (res) {
	case RESULT_VALID:
		if (accepted)
			c->valid_ok++;
		else
			fail = true;
		break;
	case RESULT_INVALID:
		if (!accepted)
			c->invalid_rejected++;
		else
			fail = true;
		break;
	case RESULT_ACCEPTABLE:
		if (accepted)
			c->acceptable_accepted++;
		else
			c->acceptable_rejected++;
		break;
	}
	if (fail) {
		c->failures++;
		printf("%s: FAILED tcId %lld (%s, expected %s): %s\n", c->name,
		       (long long)json_integer_value(json_object_get(t, "tcId")),
		       accepted ? "accepted" : "rejected", json_string_value(json_object_get(t, "result")),
		       json_string_value(json_object_get(t, "comment")));
	}
}

static inline void vector_fail(VectorCounts *c, json_t *t, const char *why)
{
	c->failures++;
	printf("%s: FAILED tcId %lld: %s (%s)\n", c->name,
	       (long long)json_integer_value(json_object_get(t, "tcId")), why,
	       json_string_value(json_object_get(t, "comment")));
}

/* Prints the summary and fails the test on any failure, on an empty run, or when fewer cases ran
 * than the file declares. */
static inline void vector_summary(const VectorCounts *c, json_t *file)
{
	unsigned total = c->valid_ok + c->invalid_rejected + c->acceptable_accepted +
			 c->acceptable_rejected + c->failures;
	json_int_t declared = json_integer_value(json_object_get(file, "numberOfTests"));

	printf(
	    "%s: %u valid ok, %u invalid rejected, %u acceptable (%u accepted, %u rejected), %u failures, "
	    "%u cases\n",
	    c->name, c->valid_ok, c->invalid_rejected, c->acceptable_accepted + c->acceptable_rejected,
	    c->acceptable_accepted, c->acceptable_rejected, c->failures, total);
	fflush(stdout);
	assert_true(total > 0);
	assert_int_equal(total, declared);
	assert_int_equal(c->failures, 0);
}
