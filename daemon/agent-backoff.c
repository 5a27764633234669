/* SPDX-License-Identifier: Apache-2.0 */
#include "agent-backoff.h"

uint64_t backoff_base(unsigned attempt)
{
	/* 2^9 s already exceeds the cap: stop shifting before it can overflow. */
	if (attempt >= 9)
		return BACKOFF_MAX_USEC;
	uint64_t d = BACKOFF_BASE_USEC << attempt;
	return d < BACKOFF_MAX_USEC ? d : BACKOFF_MAX_USEC;
}

uint64_t backoff_jitter(uint64_t base, uint32_t rnd)
{
	/* base · (3/4 + rnd / 2^33): base ≤ 3e8 and rnd < 2^32, so base · rnd < 2^61: no overflow. */
	return base / 4 * 3 + ((base * rnd) >> 33);
}

uint64_t backoff_next(Backoff *b, uint32_t rnd)
{
	uint64_t d = backoff_jitter(backoff_base(b->attempt), rnd);
	if (b->attempt < 64)
		b->attempt++;
	return d;
}

void backoff_reset(Backoff *b)
{
	b->attempt = 0;
}
