/* SPDX-License-Identifier: Apache-2.0 */
/* load-devices serve: what a simulated device does with a `command` (docs/PROTOCOL.md "Commands"),
 * the way trustpcd's network process and executor do it together (daemon/agent-command.c,
 * daemon/executor-command.c): command_verify with the fleet command key from `enrolled`, this
 * device's id and its last executed seq; a redelivery of the last command is answered with the
 * same outcome, never executed twice; anything refused is answered `rejected` with the reason.
 * lock increments the device's lock counter (here a number in sim-state, not a TPM NV counter);
 * unlock checks the carried disk policy (signature with the fleet policy key, this device, the
 * current epoch) as the executor does before it stores it. The result is signed with the device's
 * TLS key and, for a lock, travels with a software quote whose qualifying data is SHA-256 of the
 * result's COSE bytes. The state is written before the result is sent (to a shared mapping: it
 * survives a crash of this process, not of the machine — a real device fsyncs). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "load-devices.h"
#include "proto/command.h"
#include "proto/proto.h"
#include "tpm2/tpm2-policy-file.h"

/* What the agent quotes with a lock/wipe result (daemon/agent-command.c COMMAND_QUOTE_PCRS). */
#define COMMAND_QUOTE_PCRS ((UINT32_C(1) << 7) | (UINT32_C(1) << 11))

int sim_state_open(const Options *o, SimState **ret, size_t *ret_size)
{
	_cleanup_free_ char *path = NULL;
	size_t size = (size_t)o->k * sizeof(SimState);
	struct stat st;
	void *p;
	int fd;

	if (asprintf(&path, "%s/sim-state", o->state) < 0)
		return log_oom();
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(errno, "Cannot open %s: %m", path);
	/* Grows with K (new devices start unlocked at epoch 0, no command seen); never shrinks. */
	if (fstat(fd, &st) < 0 || ((size_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0)) {
		int r = -errno;
		close(fd);
		return log_error_errno(r, "Cannot size %s: %m", path);
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return log_error_errno(errno, "Cannot map %s: %m", path);
	*ret = p;
	*ret_size = size;
	return 0;
}

static void outcome(SimState *st, ResultStatus status, const char *fmt, ...) _printf_(3, 4);
static void outcome(SimState *st, ResultStatus status, const char *fmt, ...)
{
	va_list ap;

	st->last_status = status;
	va_start(ap, fmt);
	(void)vsnprintf(st->last_reason, sizeof(st->last_reason), fmt, ap);
	va_end(ap);
}

static void do_unlock(const Device *d, SimState *st, const Command *c)
{
	const char *why = NULL, *policy = c->args.unlock.policy;
	SignedPolicy p;

	if (signed_policy_parse(policy, strlen(policy), &p, &why) < 0) {
		outcome(st, RESULT_FAILED, "the carried policy is malformed: %s", strna(why));
		return;
	}
	if (signed_policy_verify(&p, d->policy_key, &why) < 0) {
		outcome(st, RESULT_FAILED,
			"the carried policy does not verify with the fleet policy key: %s", strna(why));
		return;
	}
	if (!streq(p.device_id, d->id)) {
		outcome(st, RESULT_FAILED, "the carried policy is for device %s", p.device_id);
		return;
	}
	if (p.params.epoch != st->epoch) {
		outcome(st, RESULT_FAILED,
			"the carried policy is for epoch %llu, the lock counter is at %llu",
			(unsigned long long)p.params.epoch, (unsigned long long)st->epoch);
		return;
	}
	st->locked = 0;
	outcome(st, RESULT_DONE, "unlocked at epoch %llu (0 volume token(s) updated)",
		(unsigned long long)st->epoch);
}

/* Executes a verified command: the outcome goes to st (seq and id included) before anything is sent. */
static void execute(const Device *d, SimState *st, const Command *c)
{
	st->has_epoch = 0;
	switch (c->type) {
	case COMMAND_LOCK:
		st->epoch++;
		st->locked = 1;
		st->has_epoch = 1;
		outcome(st, RESULT_DONE, "locked at epoch %llu", (unsigned long long)st->epoch);
		break;
	case COMMAND_UNLOCK:
		do_unlock(d, st, c);
		st->has_epoch = 1;
		break;
	default:
		/* wipe and policy are not part of this benchmark: answered, honestly, as not done. */
		outcome(st, RESULT_FAILED, "load-devices simulates lock and unlock only");
		break;
	}
	st->last_seq = c->seq;
	st->last_type = c->type;
	memcpy(st->last_id, c->id, sizeof(st->last_id));
}

int device_command(const DeviceCommandParams *p, const uint8_t *cose, size_t n, uint8_t **ret_frame,
		   size_t *ret_size, CommandType *ret_type)
{
	const Device *d = p->dev;
	SimState *st = p->state;
	_cleanup_(command_done) Command c = {0};
	_cleanup_free_ uint8_t *rcose = NULL;
	uint8_t digest[SHA256_SIZE], attest[SOFT_ATTEST_MAX], sig[64];
	ProtoMessage m = {.type = PROTO_RESULT};
	CommandResult res = {.time = (uint64_t)time(NULL)};
	const char *why = NULL;
	size_t rn, attest_size;
	int r;

	memcpy(res.device_id, d->id, sizeof(res.device_id));
	r = command_verify(d->command_key, d->id, st->last_seq, res.time, cose, n, &c, &why);
	if (r == -ENOMEM)
		return r;
	if (r == -ESTALE && c.seq == st->last_seq && streq(c.id, st->last_id)) {
		/* A redelivery (the server did not see our result): the stored outcome again. */
		memcpy(res.id, st->last_id, sizeof(res.id));
		res.seq = st->last_seq;
		res.type = st->last_type;
		res.status = st->last_status;
		res.reason = st->last_reason;
		res.has_epoch = st->has_epoch;
		res.epoch = st->epoch;
	} else if (r < 0) {
		/* Refused, the seq does not move: the reason of the first failed check. */
		bool parsed = r == -ESTALE;
		res.seq = parsed ? c.seq : 0;
		res.type = parsed ? c.type : 0;
		if (parsed)
			memcpy(res.id, c.id, sizeof(res.id));
		res.status = RESULT_REJECTED;
		res.reason = (char *)(why ?: "invalid command");
		log_debug("Device %u: command refused: %s", d->index, res.reason);
	} else {
		execute(d, st, &c);
		memcpy(res.id, c.id, sizeof(res.id));
		res.seq = c.seq;
		res.type = c.type;
		res.status = st->last_status;
		res.reason = st->last_reason;
		res.has_epoch = st->has_epoch;
		res.epoch = st->epoch;
	}

	r = command_result_sign(d->tls_key, &res, &rcose, &rn);
	if (r < 0)
		return r;
	m.result.cose = (ProtoBytes){rcose, rn};
	if (res.status == RESULT_DONE && (res.type == COMMAND_LOCK || res.type == COMMAND_WIPE)) {
		/* The "TPM's" word on this result: qualifying data = SHA-256 of the COSE bytes. */
		r = sha256(rcose, rn, digest);
		if (r >= 0)
			r = soft_quote(&(SoftQuoteParams){.ak = d->ak,
							  .ak_name = d->ak_name,
							  .qualifying = digest,
							  .mask = COMMAND_QUOTE_PCRS,
							  .values = p->fleet->pcrs,
							  .clock = p->clock},
				       attest, &attest_size, sig);
		if (r < 0)
			return r;
		m.result.has_quote = true;
		m.result.quote = (ProtoBytes){attest, attest_size};
		m.result.quote_signature = (ProtoBytes){sig, sizeof(sig)};
		m.result.pcrs.mask = COMMAND_QUOTE_PCRS;
		memcpy(m.result.pcrs.values, p->fleet->pcrs, sizeof(m.result.pcrs.values));
	}
	r = proto_encode(&m, ret_frame, ret_size);
	if (r >= 0 && ret_type)
		*ret_type = res.type;
	return r;
}
