/* SPDX-License-Identifier: Apache-2.0 */
/* KDFa and KDFe with SHA-256 (TPM 2.0 Library Part 1, 11.4.10). The TPM derives the same keys from
 * the same seed when it activates a credential: a single byte of difference here and activation
 * fails with an integrity error, so tests/integration/test-tpm2-attest.sh is their real check. */
#include <errno.h>
#include <string.h>

#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "crypto/crypto.h"
#include "tpm2/tpm2-kdf-internal.h"

#define KDF_MAX_OUT 8192 /* far above any TPM key (the largest is a 512-bit digest) */

static void be32(uint8_t p[4], uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int kdf_check(const Tpm2KdfParams *p, const void *out, size_t out_size)
{
	if (!p || !p->label || !out || out_size == 0 || out_size > KDF_MAX_OUT)
		return -EINVAL;
	if ((!p->key && p->key_len > 0) || (!p->u && p->u_len > 0) || (!p->v && p->v_len > 0))
		return -EINVAL;
	return 0;
}

int tpm2_kdfa_sha256(const Tpm2KdfParams *p, void *out, size_t out_size)
{
	uint8_t k[SHA256_SIZE], counter[4], bits[4];
	_cleanup_secure_ uint8_t *msg = NULL;
	size_t label_len, msg_len, done = 0;
	uint8_t *o = out;
	int r;

	r = kdf_check(p, out, out_size);
	if (r < 0)
		return r;
	ERASE_ON_EXIT(k);

	/* Label including its NUL: Part 1 11.4.10.2 appends a zero octet when the label has none,
	 * and our labels ("STORAGE", "INTEGRITY", …) are C strings. */
	label_len = strlen(p->label) + 1;
	msg_len = 4 + label_len + p->u_len + p->v_len + 4;
	msg = secure_alloc(msg_len);
	if (!msg)
		return -ENOMEM;
	be32(bits, (uint32_t)(out_size * 8));
	memcpy(msg + 4, p->label, label_len);
	if (p->u_len)
		memcpy(msg + 4 + label_len, p->u, p->u_len);
	if (p->v_len)
		memcpy(msg + 4 + label_len + p->u_len, p->v, p->v_len);
	memcpy(msg + msg_len - 4, bits, 4);

	for (uint32_t i = 1; done < out_size; i++) {
		size_t take = MIN(out_size - done, sizeof(k));

		be32(counter, i);
		memcpy(msg, counter, 4);
		r = hmac_sha256(p->key, p->key_len, msg, msg_len, k);
		if (r < 0) {
			memory_erase(out, out_size);
			return r;
		}
		memcpy(o + done, k, take);
		done += take;
	}
	return 0;
}

int tpm2_kdfe_sha256(const Tpm2KdfParams *p, void *out, size_t out_size)
{
	uint8_t k[SHA256_SIZE], counter[4];
	size_t label_len, done = 0;
	uint8_t *o = out;
	int r;

	r = kdf_check(p, out, out_size);
	if (r < 0)
		return r;
	ERASE_ON_EXIT(k);

	/* Use (the label) with its NUL, as in KDFa (Part 1 11.4.10.3). sha256_many stops at the first
	 * NULL pointer, so empty buffers are passed as "". */
	label_len = strlen(p->label) + 1;
	for (uint32_t i = 1; done < out_size; i++) {
		size_t take = MIN(out_size - done, sizeof(k));

		be32(counter, i);
		r = sha256_many(k, counter, (size_t)4, p->key ?: "", p->key_len, p->label, label_len,
				p->u ?: "", p->u_len, p->v ?: "", p->v_len, NULL);
		if (r < 0) {
			memory_erase(out, out_size);
			return r;
		}
		memcpy(o + done, k, take);
		done += take;
	}
	return 0;
}
