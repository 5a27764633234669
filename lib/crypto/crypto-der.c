/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal strict DER reader (X.690 section 10.1: definite form, fewest length octets). Used for
 * the few fixed structures we parse ourselves, where a lax BER parser would accept several
 * encodings of one value (signature malleability, Wycheproof "BerEncodedSignature"). */
#include <errno.h>

#include "crypto/crypto-internal.h"

int der_peek_tag(const DerCursor *c)
{
	if (!c || c->n == 0)
		return -EBADMSG;
	return c->p[0];
}

int der_read_tlv(DerCursor *c, uint8_t tag, DerCursor *ret_content)
{
	size_t len, hdr;

	if (c->n < 2 || c->p[0] != tag)
		return -EBADMSG;

	if (c->p[1] < 0x80) {
		len = c->p[1];
		hdr = 2;
	} else if (c->p[1] == 0x81) {
		/* Long form only when the short form cannot express the length. */
		if (c->n < 3 || c->p[2] < 0x80)
			return -EBADMSG;
		len = c->p[2];
		hdr = 3;
	} else if (c->p[1] == 0x82) {
		if (c->n < 4)
			return -EBADMSG;
		len = (size_t)c->p[2] << 8 | c->p[3];
		if (len < 0x100)
			return -EBADMSG;
		hdr = 4;
	} else
		/* 0x80 is the indefinite form (BER only); longer lengths we never need. */
		return -EBADMSG;

	if (c->n - hdr < len)
		return -EBADMSG;

	*ret_content = (DerCursor){.p = c->p + hdr, .n = len};
	c->p += hdr + len;
	c->n -= hdr + len;
	return 0;
}
