/* SPDX-License-Identifier: Apache-2.0 */
/* proto_decode on arbitrary bytes (a frame payload, without the 4-byte length). What decodes must
 * re-encode, decode again to equal fields, and re-encode to the same bytes (the encoder is a
 * fixpoint of decode ∘ encode). A refusal must come with a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtoMessage m = {}, m2 = {};
	const char *reason = NULL;
	uint8_t *frame = NULL, *frame2 = NULL;
	size_t n, n2, payload = 0;
	int r;

	(void)proto_frame_size(data, size, &payload);

	r = proto_decode(data, size, &m, &reason);
	if (r < 0) {
		if (!reason || m._storage)
			abort();
		return 0;
	}

	if (proto_encode(&m, &frame, &n) < 0)
		abort(); /* we accepted something we could not send */
	if (proto_frame_size(frame, n, &payload) != (int)(n - 4) || payload != n - 4)
		abort();
	if (proto_decode(frame + 4, payload, &m2, &reason) < 0)
		abort();
	if (!proto_message_equal(&m, &m2) || !proto_message_equal(&m2, &m))
		abort();
	if (proto_encode(&m2, &frame2, &n2) < 0 || n2 != n || memcmp(frame, frame2, n) != 0)
		abort();

	free(frame);
	free(frame2);
	proto_message_done(&m);
	proto_message_done(&m2);
	return 0;
}
