/* SPDX-License-Identifier: Apache-2.0 */
/* The privsep message set: the executor's size/range gate, datagram I/O, and the network side's
 * round trips. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "basic/macro.h"
#include "basic/memory-secure.h"
#include "privsep-proto.h"

static const char *const type_names[_PRIVSEP_TYPE_MAX] = {
	[PRIVSEP_READY] = "READY",
	[PRIVSEP_STATUS] = "STATUS",
	[PRIVSEP_QUOTE] = "QUOTE",
	[PRIVSEP_EVENT_LOG] = "EVENT_LOG",
	[PRIVSEP_ESCROW_GET] = "ESCROW_GET",
	[PRIVSEP_ESCROW_DONE] = "ESCROW_DONE",
	[PRIVSEP_ACTIVATE] = "ACTIVATE",
	[PRIVSEP_STORE] = "STORE",
	[PRIVSEP_EXECUTE] = "EXECUTE",
	[PRIVSEP_LEASE_LOCK] = "LEASE_LOCK",
	[PRIVSEP_CHECKIN] = "CHECKIN",
	[PRIVSEP_POWEROFF] = "POWEROFF",
};

const char *privsep_type_name(uint32_t type)
{
	return type > 0 && type < _PRIVSEP_TYPE_MAX ? type_names[type] : "unknown";
}

static bool device_id_text_valid(const char s[DEVICE_ID_STRING_SIZE])
{
	for (size_t i = 0; i < DEVICE_ID_STRING_SIZE - 1; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[DEVICE_ID_STRING_SIZE - 1] == 0;
}

static int check_store(const uint8_t *p, size_t n, const char **ret_reason)
{
	PrivsepStoreRequest s;
	size_t total = 0;

	if (n < sizeof(s)) {
		*ret_reason = "STORE shorter than its fixed part";
		return -EPROTO;
	}
	memcpy(&s, p, sizeof(s));
	if (!device_id_text_valid(s.device_id)) {
		*ret_reason = "STORE device_id is not 32 lower-case hex digits";
		return -EPROTO;
	}
	for (size_t i = 0; i < _STORE_BLOB_MAX; i++) {
		/* Each size is bounded before the sum, so the sum cannot wrap. */
		if (s.sizes[i] > PRIVSEP_STORE_BLOB_MAX) {
			*ret_reason = "STORE blob larger than its maximum";
			return -EPROTO;
		}
		if (i != STORE_POLICY && i != STORE_COMMAND_KEY && s.sizes[i] == 0) {
			*ret_reason = "STORE certificate or key blob is empty";
			return -EPROTO;
		}
		total += s.sizes[i];
	}
	if (total != n - sizeof(s)) {
		*ret_reason = "STORE blob sizes do not add up to the message size";
		return -EPROTO;
	}
	return 0;
}

int privsep_request_check(const void *buf, size_t n, bool enroll, PrivsepType *ret_type, const char **ret_reason)
{
	const uint8_t *p = buf;
	PrivsepHeader h;
	size_t want;
	int r;

	if (n < sizeof(h)) {
		*ret_reason = "datagram shorter than the header";
		return -EPROTO;
	}
	memcpy(&h, p, sizeof(h));
	if (h.type == 0 || h.type >= _PRIVSEP_TYPE_MAX) {
		*ret_reason = "unknown message type";
		return -EPROTO;
	}
	if (h.size != n - sizeof(h)) {
		*ret_reason = "header size differs from the datagram size";
		return -EPROTO;
	}
	p += sizeof(h);
	n -= sizeof(h);

	/* Which messages each mode may send: the enrolling network process has no business asking
	 * for quotes, the running one none activating credentials or rewriting the enrollment. */
	switch (h.type) {
	case PRIVSEP_ACTIVATE:
	case PRIVSEP_STORE:
		if (!enroll) {
			*ret_reason = "enrollment message outside enrollment";
			return -EPROTO;
		}
		break;
	case PRIVSEP_QUOTE:
	case PRIVSEP_ESCROW_GET:
	case PRIVSEP_ESCROW_DONE:
	case PRIVSEP_READY:
	case PRIVSEP_EXECUTE:
	case PRIVSEP_LEASE_LOCK:
	case PRIVSEP_CHECKIN:
	case PRIVSEP_POWEROFF:
		if (enroll) {
			*ret_reason = "run-time message during enrollment";
			return -EPROTO;
		}
		break;
	default:
		break;
	}

	switch (h.type) {
	case PRIVSEP_READY:
	case PRIVSEP_STATUS:
	case PRIVSEP_EVENT_LOG:
	case PRIVSEP_ESCROW_GET:
	case PRIVSEP_ESCROW_DONE:
	case PRIVSEP_LEASE_LOCK:
	case PRIVSEP_CHECKIN:
	case PRIVSEP_POWEROFF:
		want = 0;
		break;
	case PRIVSEP_QUOTE: {
		PrivsepQuoteRequest q;
		if (n != sizeof(q)) {
			*ret_reason = "QUOTE has the wrong size";
			return -EPROTO;
		}
		memcpy(&q, p, sizeof(q));
		if (q.pcr_mask == 0 || (q.pcr_mask & ~PRIVSEP_QUOTE_PCRS)) {
			*ret_reason = "QUOTE PCR mask empty or beyond PCR 23";
			return -EPROTO;
		}
		want = sizeof(q);
		break;
	}
	case PRIVSEP_ACTIVATE: {
		PrivsepActivateRequest a;
		if (n != sizeof(a)) {
			*ret_reason = "ACTIVATE has the wrong size";
			return -EPROTO;
		}
		memcpy(&a, p, sizeof(a));
		if (a.id_object_size == 0 || a.id_object_size > PRIVSEP_CRED_MAX || a.encrypted_secret_size == 0 ||
		    a.encrypted_secret_size > PRIVSEP_CRED_MAX) {
			*ret_reason = "ACTIVATE sizes out of range";
			return -EPROTO;
		}
		want = sizeof(a);
		break;
	}
	case PRIVSEP_EXECUTE: {
		PrivsepExecuteRequest x;
		if (n < sizeof(x)) {
			*ret_reason = "EXECUTE shorter than its fixed part";
			return -EPROTO;
		}
		memcpy(&x, p, sizeof(x));
		/* Bounded before it is added: a size near 2^32 cannot wrap the comparison. */
		if (x.size == 0 || x.size > PRIVSEP_COSE_MAX) {
			*ret_reason = "EXECUTE command size out of range";
			return -EPROTO;
		}
		want = sizeof(x) + x.size;
		break;
	}
	case PRIVSEP_STORE:
		r = check_store(p, n, ret_reason);
		if (r < 0)
			return r;
		want = n;
		break;
	default:
		*ret_reason = "unknown message type";
		return -EPROTO;
	}
	if (n != want) {
		*ret_reason = "payload has the wrong size for its type";
		return -EPROTO;
	}
	*ret_type = h.type;
	return 0;
}

int privsep_send(int fd, const void *buf, size_t n)
{
	ssize_t k;

	if (n > PRIVSEP_MSG_MAX)
		return -EMSGSIZE;
	do
		k = send(fd, buf, n, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;
	return (size_t)k == n ? 0 : -EIO;
}

ssize_t privsep_recv(int fd, void *buf, size_t max)
{
	struct iovec iov = {.iov_base = buf, .iov_len = max};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t k;

	do
		k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return errno == ECONNRESET ? 0 : -errno;
	/* A datagram longer than max is cut short by the kernel: refuse it, never act on a prefix. */
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EMSGSIZE;
	return k;
}

static int send_two(int fd, const void *h, size_t hn, const void *payload, size_t size)
{
	_cleanup_free_ uint8_t *buf = NULL;

	if (hn + size > PRIVSEP_MSG_MAX)
		return -EMSGSIZE;
	buf = malloc(hn + size);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, h, hn);
	if (size > 0)
		memcpy(buf + hn, payload, size);
	int r = privsep_send(fd, buf, hn + size);
	memory_erase(buf, hn + size); /* replies may hold the activated credential */
	return r;
}

int privsep_send_msg(int fd, uint32_t type, const void *payload, size_t size)
{
	PrivsepHeader h = {.type = type, .size = (uint32_t)size};
	return send_two(fd, &h, sizeof(h), payload, size);
}

int privsep_send_reply(int fd, uint32_t type, int error, const void *payload, size_t size)
{
	PrivsepReplyHeader h = {.type = type, .error = error < 0 ? error : 0, .size = error < 0 ? 0 : (uint32_t)size};
	return send_two(fd, &h, sizeof(h), error < 0 ? NULL : payload, error < 0 ? 0 : size);
}

int privsep_call(int fd, PrivsepType type, const void *req, size_t req_size, void *reply, size_t reply_max,
		 size_t *ret_reply_size)
{
	_cleanup_free_ uint8_t *buf = NULL;
	PrivsepReplyHeader h;
	ssize_t k;
	int r;

	r = privsep_send_msg(fd, type, req, req_size);
	if (r < 0)
		return r;
	buf = malloc(sizeof(h) + reply_max);
	if (!buf)
		return -ENOMEM;
	k = privsep_recv(fd, buf, sizeof(h) + reply_max);
	if (k == 0)
		return -ECONNRESET;
	if (k < 0)
		return k == -EMSGSIZE ? -EPROTO : (int)k;
	if ((size_t)k < sizeof(h))
		return -EPROTO;
	memcpy(&h, buf, sizeof(h));
	if (h.type != type || h.size != (size_t)k - sizeof(h) || h.error > 0)
		return -EPROTO;
	if (h.error < 0)
		return h.error;
	if (reply_max > 0)
		memcpy(reply, buf + sizeof(h), h.size);
	memory_erase(buf, (size_t)k);
	if (ret_reply_size)
		*ret_reply_size = h.size;
	return 0;
}

int privsep_ready(int fd)
{
	size_t n;
	return privsep_call(fd, PRIVSEP_READY, NULL, 0, NULL, 0, &n);
}

int privsep_status(int fd, PrivsepStatusReply *ret)
{
	PrivsepStatusReply s;
	size_t n;
	int r;

	r = privsep_call(fd, PRIVSEP_STATUS, NULL, 0, &s, sizeof(s), &n);
	if (r < 0)
		return r;
	if (n != sizeof(s) || s.device_id[DEVICE_ID_STRING_SIZE - 1] != 0)
		return -EPROTO;
	*ret = s;
	return 0;
}

int privsep_quote(int fd, const uint8_t qualifying[32], uint32_t pcr_mask, PrivsepQuoteReply *ret)
{
	PrivsepQuoteRequest q = {.pcr_mask = pcr_mask};
	_cleanup_free_ PrivsepQuoteReply *rep = NULL;
	size_t n;
	int r;

	memcpy(q.qualifying, qualifying, sizeof(q.qualifying));
	rep = malloc(sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	r = privsep_call(fd, PRIVSEP_QUOTE, &q, sizeof(q), rep, sizeof(*rep), &n);
	if (r < 0)
		return r;
	if (n != sizeof(*rep) || rep->attest_size == 0 || rep->attest_size > PRIVSEP_ATTEST_MAX ||
	    rep->pcr_mask != pcr_mask)
		return -EPROTO;
	*ret = *rep;
	return 0;
}

static int call_bytes(int fd, PrivsepType type, size_t max, uint8_t **ret, size_t *ret_size)
{
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_free_ uint8_t *out = NULL;
	uint32_t size;
	size_t n;
	int r;

	buf = malloc(sizeof(uint32_t) + max);
	if (!buf)
		return -ENOMEM;
	r = privsep_call(fd, type, NULL, 0, buf, sizeof(uint32_t) + max, &n);
	if (r < 0)
		return r;
	if (n < sizeof(uint32_t))
		return -EPROTO;
	memcpy(&size, buf, sizeof(size));
	if (size != n - sizeof(uint32_t))
		return -EPROTO;
	out = malloc(size + 1);
	if (!out)
		return -ENOMEM;
	memcpy(out, buf + sizeof(uint32_t), size);
	out[size] = 0;
	*ret = TAKE_PTR(out);
	*ret_size = size;
	return 0;
}

int privsep_event_log(int fd, uint8_t **ret, size_t *ret_size)
{
	return call_bytes(fd, PRIVSEP_EVENT_LOG, PRIVSEP_EVENT_LOG_MAX, ret, ret_size);
}

int privsep_escrow_get(int fd, char **ret, size_t *ret_size)
{
	return call_bytes(fd, PRIVSEP_ESCROW_GET, PRIVSEP_ESCROW_MAX, (uint8_t **)ret, ret_size);
}

int privsep_escrow_done(int fd)
{
	size_t n;
	return privsep_call(fd, PRIVSEP_ESCROW_DONE, NULL, 0, NULL, 0, &n);
}

int privsep_activate(int fd, const uint8_t *id_object, size_t id_object_size, const uint8_t *encrypted_secret,
		     size_t encrypted_secret_size, uint8_t **ret_secret, size_t *ret_secret_size)
{
	PrivsepActivateRequest a = {0};
	PrivsepActivateReply rep;
	uint8_t *s;
	size_t n;
	int r;

	if (id_object_size == 0 || id_object_size > PRIVSEP_CRED_MAX || encrypted_secret_size == 0 ||
	    encrypted_secret_size > PRIVSEP_CRED_MAX)
		return -EINVAL;
	a.id_object_size = (uint32_t)id_object_size;
	a.encrypted_secret_size = (uint32_t)encrypted_secret_size;
	memcpy(a.id_object, id_object, id_object_size);
	memcpy(a.encrypted_secret, encrypted_secret, encrypted_secret_size);
	r = privsep_call(fd, PRIVSEP_ACTIVATE, &a, sizeof(a), &rep, sizeof(rep), &n);
	if (r < 0)
		return r;
	if (n != sizeof(rep) || rep.secret_size == 0 || rep.secret_size > PRIVSEP_SECRET_MAX) {
		memory_erase(&rep, sizeof(rep));
		return -EPROTO;
	}
	n = rep.secret_size;
	s = secure_memdup(rep.secret, n);
	memory_erase(&rep, sizeof(rep));
	if (!s)
		return -ENOMEM;
	*ret_secret = s;
	*ret_secret_size = n;
	return 0;
}

int privsep_store(int fd, const PrivsepStoreBlobs *b)
{
	PrivsepStoreRequest s = {0};
	_cleanup_free_ uint8_t *buf = NULL;
	size_t total = sizeof(s), o, n;

	if (!b->device_id || strlen(b->device_id) != DEVICE_ID_STRING_SIZE - 1)
		return -EINVAL;
	memcpy(s.device_id, b->device_id, DEVICE_ID_STRING_SIZE);
	for (size_t i = 0; i < _STORE_BLOB_MAX; i++) {
		if (b->size[i] > PRIVSEP_STORE_BLOB_MAX)
			return -EFBIG;
		s.sizes[i] = (uint32_t)b->size[i];
		total += b->size[i];
	}
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &s, sizeof(s));
	o = sizeof(s);
	for (size_t i = 0; i < _STORE_BLOB_MAX; i++) {
		if (b->size[i] > 0)
			memcpy(buf + o, b->data[i], b->size[i]);
		o += b->size[i];
	}
	return privsep_call(fd, PRIVSEP_STORE, buf, total, NULL, 0, &n);
}

int privsep_execute(int fd, const uint8_t *cose, size_t n, PrivsepExecuteReply *ret)
{
	PrivsepExecuteRequest x = {.size = (uint32_t)n};
	_cleanup_free_ uint8_t *buf = NULL;
	PrivsepExecuteReply rep;
	size_t got;
	int r;

	if (!cose || n == 0 || n > PRIVSEP_COSE_MAX)
		return -EINVAL;
	buf = malloc(sizeof(x) + n);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &x, sizeof(x));
	memcpy(buf + sizeof(x), cose, n);
	r = privsep_call(fd, PRIVSEP_EXECUTE, buf, sizeof(x) + n, &rep, sizeof(rep), &got);
	if (r < 0)
		return r;
	if (got != sizeof(rep) || rep.id[sizeof(rep.id) - 1] != 0 || rep.reason[sizeof(rep.reason) - 1] != 0)
		return -EPROTO;
	*ret = rep;
	return 0;
}

int privsep_lease_lock(int fd, PrivsepExecuteReply *ret)
{
	PrivsepExecuteReply rep;
	size_t got;
	int r;

	r = privsep_call(fd, PRIVSEP_LEASE_LOCK, NULL, 0, &rep, sizeof(rep), &got);
	if (r < 0)
		return r;
	if (got != sizeof(rep) || rep.id[sizeof(rep.id) - 1] != 0 || rep.reason[sizeof(rep.reason) - 1] != 0)
		return -EPROTO;
	*ret = rep;
	return 0;
}

int privsep_checkin(int fd)
{
	size_t n;
	return privsep_call(fd, PRIVSEP_CHECKIN, NULL, 0, NULL, 0, &n);
}

int privsep_poweroff(int fd)
{
	size_t n;
	return privsep_call(fd, PRIVSEP_POWEROFF, NULL, 0, NULL, 0, &n);
}
