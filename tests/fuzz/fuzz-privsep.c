/* SPDX-License-Identifier: Apache-2.0 */
/* privsep_request_check, the executor's gate, on arbitrary datagrams (the network process it guards
 * is assumed compromised). The first byte picks the mode (run or enroll); an accepted request must
 * really have the shape its type promises. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "privsep-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	PrivsepType type;
	PrivsepHeader h;

	if (size < 1)
		return 0;
	bool enroll = data[0] & 1;
	data++;
	size--;
	if (privsep_request_check(data, size, enroll, &type, &why) < 0) {
		if (!why)
			abort(); /* every refusal names its reason */
		return 0;
	}
	memcpy(&h, data, sizeof(h));
	if (h.type != type || h.size != size - sizeof(h))
		abort();
	switch (type) {
	case PRIVSEP_QUOTE: {
		PrivsepQuoteRequest q;
		if (h.size != sizeof(q))
			abort();
		memcpy(&q, data + sizeof(h), sizeof(q));
		if (q.pcr_mask == 0 || (q.pcr_mask >> 24) || enroll)
			abort();
		break;
	}
	case PRIVSEP_ACTIVATE: {
		PrivsepActivateRequest a;
		if (h.size != sizeof(a) || !enroll)
			abort();
		memcpy(&a, data + sizeof(h), sizeof(a));
		if (a.id_object_size - 1 >= PRIVSEP_CRED_MAX || a.encrypted_secret_size - 1 >= PRIVSEP_CRED_MAX)
			abort();
		break;
	}
	case PRIVSEP_STORE: {
		PrivsepStoreRequest s;
		size_t total = sizeof(s);
		if (h.size < sizeof(s) || !enroll)
			abort();
		memcpy(&s, data + sizeof(h), sizeof(s));
		for (int i = 0; i < _STORE_BLOB_MAX; i++) {
			if (s.sizes[i] > PRIVSEP_STORE_BLOB_MAX)
				abort();
			total += s.sizes[i];
		}
		if (total != h.size || s.device_id[DEVICE_ID_STRING_SIZE - 1] != 0)
			abort();
		break;
	}
	case PRIVSEP_EXECUTE: {
		PrivsepExecuteRequest x;
		if (h.size < sizeof(x) || enroll)
			abort();
		memcpy(&x, data + sizeof(h), sizeof(x));
		if (x.size == 0 || x.size > PRIVSEP_COSE_MAX || sizeof(x) + x.size != h.size)
			abort();
		break;
	}
	default:
		if (h.size != 0)
			abort();
	}
	return 0;
}
