/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "tpm2/tpm2-internal.h"

TSS2_RC tpm2_rc_base(TSS2_RC rc)
{
	if (rc & TSS2_RC_LAYER_MASK)
		return rc;
	if (rc & TPM2_RC_FMT1)
		return rc & (TPM2_RC_FMT1 | 0x3f);
	return rc & 0xfff;
}

int tpm2_rc_errno(TSS2_RC rc, const char *what)
{
	TSS2_RC base = tpm2_rc_base(rc);
	int r;

	if (rc == TSS2_RC_SUCCESS)
		return 0;

	switch (base) {
	case TPM2_RC_VALUE:
	case TPM2_RC_POLICY_FAIL:
	case TPM2_RC_PCR_CHANGED:
		r = -EPERM;
		break;
	case TPM2_RC_POLICY:
		r = -ESTALE;
		break;
	case TPM2_RC_SIGNATURE:
		r = -EBADMSG;
		break;
	case TPM2_RC_TICKET:
		r = -EKEYREJECTED;
		break;
	case TPM2_RC_AUTH_FAIL:
	case TPM2_RC_BAD_AUTH:
		r = -EACCES;
		break;
	case TPM2_RC_LOCKOUT:
		r = -EAGAIN;
		break;
	case TPM2_RC_HANDLE:
		r = -ENOENT;
		break;
	case TPM2_RC_INTEGRITY:
	case TPM2_RC_SIZE:
	case TPM2_RC_INSUFFICIENT:
		r = -EINVAL;
		break;
	default:
		if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER)
			r = -ENODEV;
		else if ((rc & 0xffff) == TSS2_BASE_RC_IO_ERROR || (rc & 0xffff) == TSS2_BASE_RC_NO_CONNECTION)
			r = -ENODEV;
		else
			r = -EIO;
	}
	log_debug("TPM2 %s failed: 0x%x %s", what, rc, Tss2_RC_Decode(rc));
	return r;
}

int tpm2_context_new(const char *device, Tpm2Context **ret)
{
	_cleanup_free_ char *conf = NULL;
	Tpm2Context *c;
	TSS2_RC rc;

	if (!device)
		device = getenv("TRUSTPC_TPM2_DEVICE");
	if (!device || !*device)
		device = "/dev/tpmrm0";
	/* A path is a device node; anything else is a TCTI string for the tctildr. */
	if (device[0] == '/') {
		if (asprintf(&conf, "device:%s", device) < 0)
			return -ENOMEM;
	} else if (!(conf = strdup(device)))
		return -ENOMEM;

	/* tpm2-tss logs errors to stderr by itself; we map and report them once (lib/ stays quiet).
	 * TSS2_LOG set by the user wins; debug logging turns the TSS log on too. */
	setenv("TSS2_LOG", log_get_max_level() >= LOG_DEBUG ? "all+WARNING" : "all+NONE", 0);

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = Tss2_TctiLdr_Initialize(conf, &c->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		log_debug("Cannot initialise TCTI '%s': 0x%x %s", conf, rc, Tss2_RC_Decode(rc));
		free(c);
		return -ENODEV;
	}
	rc = Esys_Initialize(&c->esys, c->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		int r = tpm2_rc_errno(rc, "Esys_Initialize");
		tpm2_context_free(c);
		return r == -EIO ? -ENODEV : r;
	}
	/* swtpm started with not-need-init/startup-clear and real TPMs after firmware have run
	 * Startup already; TPM2_RC_INITIALIZE means "already started", which is fine. */
	rc = Esys_Startup(c->esys, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && tpm2_rc_base(rc) != TPM2_RC_INITIALIZE) {
		int r = tpm2_rc_errno(rc, "Startup");
		tpm2_context_free(c);
		return r == -EIO ? -ENODEV : r;
	}
	*ret = c;
	return 0;
}

Tpm2Context *tpm2_context_free(Tpm2Context *c)
{
	if (!c)
		return NULL;
	if (c->esys)
		Esys_Finalize(&c->esys);
	if (c->tcti)
		Tss2_TctiLdr_Finalize(&c->tcti);
	free(c);
	return NULL;
}

void tpm2_flush(Tpm2Context *c, ESYS_TR *handle)
{
	if (*handle == ESYS_TR_NONE)
		return;
	TSS2_RC rc = Esys_FlushContext(c->esys, *handle);
	if (rc != TSS2_RC_SUCCESS)
		log_debug("Flushing a TPM handle failed: 0x%x %s", rc, Tss2_RC_Decode(rc));
	*handle = ESYS_TR_NONE;
}

bool tpm2_public_equal(const TPM2B_PUBLIC *a, const TPM2B_PUBLIC *b)
{
	uint8_t ba[sizeof(TPM2B_PUBLIC)], bb[sizeof(TPM2B_PUBLIC)];
	size_t oa = 0, ob = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(a, ba, sizeof(ba), &oa) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PUBLIC_Marshal(b, bb, sizeof(bb), &ob) != TSS2_RC_SUCCESS)
		return false;
	return oa == ob && memcmp(ba, bb, oa) == 0;
}
