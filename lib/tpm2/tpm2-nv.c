/* SPDX-License-Identifier: Apache-2.0 */
/* The lock counter: a TPM NV counter. Its value is the epoch that signed policies name in
 * PolicyNV; incrementing it (a lock) invalidates every policy signed so far. A counter never goes
 * down, and a counter defined anew starts at the highest value any counter on this TPM ever had,
 * so neither an increment nor an undefine/define can roll the epoch back. */
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "tpm2/tpm2-internal.h"

static uint64_t from_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Opens the index and checks that it is our counter (same attributes, so same name as the
 * policies bind to). *ret_written tells whether it has been initialised. */
static int counter_open(Tpm2Context *c, uint32_t nv_index, ESYS_TR *ret, bool *ret_written)
{
	TPM2B_NV_PUBLIC *pub = NULL, expect;
	ESYS_TR h = ESYS_TR_NONE;
	TSS2_RC rc;
	bool written;

	rc = Esys_TR_FromTPMPublic(c->esys, nv_index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h);
	if (rc != TSS2_RC_SUCCESS) {
		int r = tpm2_rc_errno(rc, "TR_FromTPMPublic(NV)");
		return r == -ENODEV ? r : -ENOENT;
	}
	rc = Esys_NV_ReadPublic(c->esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		(void)Esys_TR_Close(c->esys, &h);
		return tpm2_rc_errno(rc, "NV_ReadPublic");
	}
	written = pub->nvPublic.attributes & TPMA_NV_WRITTEN;
	tpm2_counter_public(nv_index, written, &expect);
	if (pub->nvPublic.attributes != expect.nvPublic.attributes || pub->nvPublic.nameAlg != TPM2_ALG_SHA256 ||
	    pub->nvPublic.dataSize != 8 || pub->nvPublic.authPolicy.size != 0) {
		log_debug("NV index 0x%08x has attributes 0x%08x, expected 0x%08x: not our lock counter.", nv_index,
			  pub->nvPublic.attributes, expect.nvPublic.attributes);
		free(pub);
		(void)Esys_TR_Close(c->esys, &h);
		return -ENOTUNIQ;
	}
	free(pub);
	*ret = h;
	*ret_written = written;
	return 0;
}

static int counter_read_handle(Tpm2Context *c, ESYS_TR h, uint64_t *ret)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	TSS2_RC rc;

	rc = Esys_NV_Read(c->esys, h, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &data);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_rc_errno(rc, "NV_Read");
	if (data->size != 8) {
		free(data);
		return -EIO;
	}
	*ret = from_be64(data->buffer);
	free(data);
	return 0;
}

static int counter_increment_handle(Tpm2Context *c, ESYS_TR h)
{
	TSS2_RC rc = Esys_NV_Increment(c->esys, h, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
	return tpm2_rc_errno(rc, "NV_Increment");
}

int tpm2_counter_read(Tpm2Context *c, uint32_t nv_index, uint64_t *ret)
{
	ESYS_TR h;
	bool written;
	int r;

	r = counter_open(c, nv_index, &h, &written);
	if (r < 0)
		return r;
	if (!written) {
		(void)Esys_TR_Close(c->esys, &h);
		return -ENOENT;
	}
	r = counter_read_handle(c, h, ret);
	(void)Esys_TR_Close(c->esys, &h);
	return r;
}

int tpm2_counter_ensure(Tpm2Context *c, uint32_t nv_index, uint64_t *ret, bool *ret_created)
{
	TPM2B_NV_PUBLIC pub;
	TPM2B_AUTH no_auth = {};
	ESYS_TR h = ESYS_TR_NONE;
	bool written = false, created = false;
	TSS2_RC rc;
	int r;

	r = counter_open(c, nv_index, &h, &written);
	if (r == -ENOENT) {
		tpm2_counter_public(nv_index, false, &pub);
		rc = Esys_NV_DefineSpace(c->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
					 &no_auth, &pub, &h);
		if (rc != TSS2_RC_SUCCESS)
			return tpm2_rc_errno(rc, "NV_DefineSpace");
		created = true;
	} else if (r < 0)
		return r;

	/* A counter can be read only once written; its first increment sets it to the highest
	 * value any counter of this TPM has had. */
	if (!written) {
		r = counter_increment_handle(c, h);
		if (r < 0)
			goto out;
	}
	r = counter_read_handle(c, h, ret);
	if (r >= 0 && ret_created)
		*ret_created = created;
out:
	(void)Esys_TR_Close(c->esys, &h);
	return r;
}

int tpm2_counter_increment(Tpm2Context *c, uint32_t nv_index, uint64_t *ret_new)
{
	ESYS_TR h;
	bool written;
	int r;

	r = counter_open(c, nv_index, &h, &written);
	if (r < 0)
		return r;
	r = counter_increment_handle(c, h);
	if (r >= 0)
		r = counter_read_handle(c, h, ret_new);
	(void)Esys_TR_Close(c->esys, &h);
	return r;
}
