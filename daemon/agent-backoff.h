/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Reconnect backoff: 1 s doubling to 5 min, each delay scaled by a random factor in [0.75, 1.25]
 * (±25 %) so that a fleet cut off by one server restart does not come back in lock step. Reset
 * after a successful attestation. */

#include <stdint.h>

#define BACKOFF_BASE_USEC UINT64_C(1000000)
#define BACKOFF_MAX_USEC (UINT64_C(300) * 1000000)

typedef struct Backoff {
	unsigned attempt; /* failures since the last reset */
} Backoff;

/* The delay before attempt number b->attempt (then counts it). rnd: a uniformly random 32-bit
 * value (crypto_random_bytes in the agent; fixed values in the tests). */
uint64_t backoff_next(Backoff *b, uint32_t rnd);
/* The delay without jitter for a given attempt: min(1 s · 2^attempt, 5 min). */
uint64_t backoff_base(unsigned attempt);
/* base (≤ BACKOFF_MAX_USEC) scaled by 0.75 + 0.5 · rnd / 2^32. */
uint64_t backoff_jitter(uint64_t base, uint32_t rnd);
void backoff_reset(Backoff *b);
