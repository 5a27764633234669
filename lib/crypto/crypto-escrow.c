/* SPDX-License-Identifier: Apache-2.0 */
/* Escrow: a secret encrypted to a P-256 public key (ECIES, SEC 1 v2 section 5.1, with HKDF and
 * AES-256-GCM), stored as one JSON object. Layout and derivation are documented in crypto.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "basic/encoding.h"
#include "basic/log.h"
#include "basic/memory-secure.h"
#include "crypto/crypto-internal.h"

#define ESCROW_VERSION 1
#define ESCROW_ALG "ECDH-ES-P256+HKDF-SHA256+A256GCM"
#define ESCROW_INFO "trustpc escrow v1"
#define ESCROW_KEY_SIZE 32
#define ESCROW_IV_SIZE 12
#define ESCROW_TAG_SIZE 16
/* Generous bound for base64 of ESCROW_SECRET_MAX plus the other members; refused before parsing so
 * that a hostile blob cannot make the JSON parser allocate without limit. */
#define ESCROW_JSON_MAX (256 * 1024)

/* json_decrefp comes with jansson >= 2.9. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* okm = HKDF-SHA256(salt = epk || recipient point, ikm = shared X,
 *                   info = "trustpc escrow v1" || context), split into key || IV. Binding both
 * points into the salt ties the key to this exact recipient and ephemeral key. */
static int escrow_derive(const uint8_t epk[EC_P256_POINT_SIZE], const uint8_t rcpt[EC_P256_POINT_SIZE],
			 const uint8_t shared[32], const char *context,
			 uint8_t okm[ESCROW_KEY_SIZE + ESCROW_IV_SIZE])
{
	_cleanup_free_ uint8_t *info = NULL;
	uint8_t salt[2 * EC_P256_POINT_SIZE];
	size_t cl = strlen(context), il = strlen(ESCROW_INFO);

	memcpy(salt, epk, EC_P256_POINT_SIZE);
	memcpy(salt + EC_P256_POINT_SIZE, rcpt, EC_P256_POINT_SIZE);
	info = malloc(il + cl + 1);
	if (!info)
		return -ENOMEM;
	memcpy(info, ESCROW_INFO, il);
	memcpy(info + il, context, cl);

	return hkdf_sha256(salt, sizeof(salt), shared, 32, info, il + cl, okm,
			   ESCROW_KEY_SIZE + ESCROW_IV_SIZE);
}

/* The two sides of one ECDH, and what the key derivation binds. */
typedef struct EscrowKeys {
	const EcKey *priv; /* the ephemeral key when sealing, the recipient's when opening */
	const EcKey *pub;  /* the recipient's key when sealing, the ephemeral key when opening */
	uint8_t epk[EC_P256_POINT_SIZE];
	uint8_t rcpt[EC_P256_POINT_SIZE];
	const char *context;
} EscrowKeys;

/* ECDH + HKDF + AES-256-GCM. Encrypting writes n bytes of ciphertext and the tag to out; decrypting
 * reads the tag after the n ciphertext bytes of in. All key material stays on this stack frame and
 * is wiped on every path. */
static int escrow_crypt(const EscrowKeys *k, bool encrypt, const uint8_t *in, size_t n, uint8_t *out)
{
	uint8_t shared[32], okm[ESCROW_KEY_SIZE + ESCROW_IV_SIZE];
	ERASE_ON_EXIT(shared);
	ERASE_ON_EXIT(okm);
	AeadParams p;
	int r;

	r = ecdh_p256(k->priv, k->pub, shared);
	if (r < 0)
		return r;
	r = escrow_derive(k->epk, k->rcpt, shared, k->context, okm);
	if (r < 0)
		return r;

	p = (AeadParams){
	    .key = okm,
	    .key_len = ESCROW_KEY_SIZE,
	    .iv = okm + ESCROW_KEY_SIZE,
	    .iv_len = ESCROW_IV_SIZE,
	    .aad = k->context,
	    .aad_len = strlen(k->context),
	    .tag_len = ESCROW_TAG_SIZE,
	};
	return encrypt ? aes_gcm_encrypt(&p, in, n, out, out + n) : aes_gcm_decrypt(&p, in, n, in + n, out);
}

int escrow_seal(const EcKey *recipient, const char *context, const void *secret, size_t n, char **ret_json)
{
	_cleanup_ec_key_ EcKey *eph = NULL;
	_cleanup_free_ uint8_t *ct = NULL;
	_cleanup_free_ char *kid = NULL, *epk_b64 = NULL, *ct_b64 = NULL;
	_cleanup_json_ json_t *o = NULL;
	EscrowKeys k = {.pub = recipient, .context = context};
	uint8_t fp[SHA256_SIZE];
	char *s;
	int r;

	if (!recipient || !context || !secret || !ret_json)
		return -EINVAL;
	if (n == 0 || n > ESCROW_SECRET_MAX)
		return log_debug_errno(EINVAL, "Escrow secret of %zu bytes, must be 1..%d.", n,
				       ESCROW_SECRET_MAX);
	if (strlen(context) > ESCROW_CONTEXT_MAX)
		return log_debug_errno(EINVAL, "Escrow context longer than %d bytes.", ESCROW_CONTEXT_MAX);

	r = ec_key_get_point(recipient, k.rcpt);
	if (r < 0)
		return r;
	r = ec_key_fingerprint(recipient, fp);
	if (r < 0)
		return r;

	/* A fresh ephemeral key per blob: key and IV are never reused. */
	r = ec_key_generate(&eph);
	if (r < 0)
		return r;
	r = ec_key_get_point(eph, k.epk);
	if (r < 0)
		return r;
	k.priv = eph;

	ct = malloc(n + ESCROW_TAG_SIZE);
	if (!ct)
		return -ENOMEM;
	r = escrow_crypt(&k, true, secret, n, ct);
	if (r < 0)
		return r;

	kid = hex_encode(fp, sizeof(fp));
	epk_b64 = base64_encode(k.epk, sizeof(k.epk));
	ct_b64 = base64_encode(ct, n + ESCROW_TAG_SIZE);
	if (!kid || !epk_b64 || !ct_b64)
		return -ENOMEM;

	/* json_pack fails (NULL) for a context that is not valid UTF-8. */
	o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "v", ESCROW_VERSION, "alg", ESCROW_ALG, "kid", kid,
		      "context", context, "epk", epk_b64, "ct", ct_b64);
	if (!o)
		return log_debug_errno(EINVAL, "Cannot build the escrow JSON (context not UTF-8?).");
	s = json_dumps(o, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	*ret_json = s;
	return 0;
}

/* The parsed, not yet authenticated members of a blob. */
typedef struct EscrowBlob {
	const char *context;
	uint8_t kid[SHA256_SIZE];
	uint8_t epk[EC_P256_POINT_SIZE];
	uint8_t *ct; /* ciphertext || tag */
	size_t ct_size;
} EscrowBlob;

static int blob_member_b64(json_t *o, const char *name, uint8_t **ret, size_t *ret_size)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_string(v))
		return log_debug_errno(EBADMSG, "Escrow blob: \"%s\" missing or not a string.", name);
	if (base64_decode(json_string_value(v), json_string_length(v), ret, ret_size) < 0)
		return log_debug_errno(EBADMSG, "Escrow blob: \"%s\" is not valid base64.", name);
	return 0;
}

static int blob_parse(json_t *o, EscrowBlob *b)
{
	static const char *const members[] = {"v", "alg", "kid", "context", "epk", "ct"};
	_cleanup_free_ uint8_t *epk = NULL;
	size_t epk_size;
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(o))
		return log_debug_errno(EBADMSG, "Escrow blob: not a JSON object.");
	/* Unknown members are refused: a v1 reader must not half-understand a later format. */
	json_object_foreach (o, key, v) {
		bool known = false;
		for (size_t i = 0; i < ELEMENTSOF(members); i++)
			known = known || streq(key, members[i]);
		if (!known)
			return log_debug_errno(EBADMSG, "Escrow blob: unknown member \"%s\".", key);
	}

	v = json_object_get(o, "v");
	if (!json_is_integer(v) || json_integer_value(v) != ESCROW_VERSION)
		return log_debug_errno(EBADMSG, "Escrow blob: unsupported version.");
	v = json_object_get(o, "alg");
	if (!json_is_string(v) || !streq(json_string_value(v), ESCROW_ALG))
		return log_debug_errno(EBADMSG, "Escrow blob: unsupported algorithm.");
	v = json_object_get(o, "context");
	if (!json_is_string(v) || json_string_length(v) > ESCROW_CONTEXT_MAX)
		return log_debug_errno(EBADMSG, "Escrow blob: bad context.");
	b->context = json_string_value(v);
	v = json_object_get(o, "kid");
	if (!json_is_string(v) || hex_decode_exact(json_string_value(v), b->kid, sizeof(b->kid)) < 0)
		return log_debug_errno(EBADMSG, "Escrow blob: kid is not 64 hex digits.");

	r = blob_member_b64(o, "epk", &epk, &epk_size);
	if (r < 0)
		return r;
	if (epk_size != EC_P256_POINT_SIZE)
		return log_debug_errno(EBADMSG, "Escrow blob: epk is not a 65-byte point.");
	memcpy(b->epk, epk, sizeof(b->epk));

	r = blob_member_b64(o, "ct", &b->ct, &b->ct_size);
	if (r < 0)
		return r;
	if (b->ct_size <= ESCROW_TAG_SIZE || b->ct_size > ESCROW_SECRET_MAX + ESCROW_TAG_SIZE)
		return log_debug_errno(EBADMSG, "Escrow blob: ciphertext of %zu bytes.", b->ct_size);
	return 0;
}

int escrow_open(const EcKey *recipient, const char *expected_context, const char *json, size_t json_len,
		uint8_t **ret, size_t *ret_size)
{
	_cleanup_json_ json_t *o = NULL;
	_cleanup_ec_key_ EcKey *epk = NULL;
	_cleanup_secure_ uint8_t *pt = NULL;
	EscrowBlob b = {};
	EscrowKeys k = {.priv = recipient};
	uint8_t fp[SHA256_SIZE];
	json_error_t err;
	bool kid_matches;
	size_t n;
	int r;

	if (!recipient || !json || !ret || !ret_size)
		return -EINVAL;
	if (!recipient->has_private)
		return log_debug_errno(EINVAL, "Opening an escrow blob needs the private key.");
	if (json_len > ESCROW_JSON_MAX)
		return log_debug_errno(EBADMSG, "Escrow blob of %zu bytes is too large.", json_len);

	/* Duplicate members are refused: two parsers must never disagree on which one counts. */
	o = json_loadb(json, json_len, JSON_REJECT_DUPLICATES, &err);
	if (!o)
		return log_debug_errno(EBADMSG, "Escrow blob is not valid JSON: %s (line %d, column %d).",
				       err.text, err.line, err.column);
	r = blob_parse(o, &b);
	if (r < 0)
		goto out;

	if (expected_context && !streq(b.context, expected_context)) {
		r = log_debug_errno(EBADMSG, "Escrow blob is bound to another context.");
		goto out;
	}
	r = ec_key_from_point(b.epk, sizeof(b.epk), &epk);
	if (r < 0) {
		/* An epk off the curve is an invalid-curve attack on our private key: refuse it. */
		r = r == -ENOMEM ? r
				 : log_debug_errno(EBADMSG, "Escrow blob: epk is not a valid P-256 point.");
		goto out;
	}

	k.pub = epk;
	k.context = b.context;
	memcpy(k.epk, b.epk, sizeof(k.epk));
	r = ec_key_get_point(recipient, k.rcpt);
	if (r < 0)
		goto out;
	r = ec_key_fingerprint(recipient, fp);
	if (r < 0)
		goto out;
	kid_matches = memcmp_const(b.kid, fp, sizeof(fp)) == 0;

	n = b.ct_size - ESCROW_TAG_SIZE;
	pt = secure_alloc(n + 1);
	if (!pt) {
		r = -ENOMEM;
		goto out;
	}
	/* Even when kid names another key we try to decrypt: the kid is only a label, and a blob that
	 * authenticates under our key but carries a foreign kid has been tampered with. */
	r = escrow_crypt(&k, false, b.ct, n, pt);
	if (r < 0) {
		if (r == -EBADMSG && !kid_matches)
			r = log_debug_errno(ENOKEY, "Escrow blob is for another key.");
		goto out;
	}
	if (!kid_matches) {
		r = log_debug_errno(EBADMSG, "Escrow blob decrypts, but its kid was altered.");
		goto out;
	}

	pt[n] = 0;
	*ret = TAKE_PTR(pt);
	*ret_size = n;
	r = 0;
out:
	free(b.ct);
	return r;
}
