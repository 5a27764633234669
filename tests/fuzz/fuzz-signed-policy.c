/* SPDX-License-Identifier: Apache-2.0 */
/* Signed policy files arrive from the server, from files and inside LUKS2 tokens: untrusted. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-policy-file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const SignedPolicy *a, const SignedPolicy *b)
{
	return streq(a->device_id, b->device_id) && a->params.pcr_mask == b->params.pcr_mask &&
	       !memcmp(a->params.pcr_values, b->params.pcr_values, sizeof(a->params.pcr_values)) &&
	       a->params.nv_index == b->params.nv_index && a->params.epoch == b->params.epoch &&
	       !memcmp(a->policy_digest, b->policy_digest, 32) &&
	       !memcmp(a->key_id, b->key_id, 32) && !memcmp(a->signature, b->signature, 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EcKey *key = NULL;
	SignedPolicy p, q;
	const char *why = NULL;
	char *text = NULL;

	if (!key && ec_key_generate(&key) < 0)
		abort();
	if (signed_policy_parse((const char *)data, size, &p, &why) < 0) {
		assert(why); /* every rejection says why */
		return 0;
	}
	(void)signed_policy_verify(&p, key, &why);
	/* What we accept, we can write back, and read again to the same thing. */
	if (signed_policy_format(&p, &text) < 0)
		abort();
	if (signed_policy_parse(text, strlen(text), &q, &why) < 0 || !same(&p, &q))
		abort();
	free(text);
	return 0;
}
