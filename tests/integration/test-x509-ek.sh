#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# x509_verify_der (lib/crypto) on the real EK certificates of a manufactured swtpm: the P-256 EK
# certificate (the one the enroll message carries, docs/PROTOCOL.md) chains to the TPM
# manufacturer CA bundle through an RSA issuer; it is refused against any other CA, without its
# intermediate, and when damaged. Each result is cross-checked with openssl.
set -euo pipefail
LIB="${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib"
source "$LIB/assert.sh"
source "$LIB/swtpm.sh"
require_cmd openssl od
T=$TRUSTPC_TEST_TMP
exe="${TRUSTPC_BUILD_ROOT:?}/tests/unit/tls/x509-verify"
[[ -x "$exe" ]] || { echo "missing $exe: build first" >&2; exit 1; }

swtpm_start dev >/dev/null

spki_of() { # DER certificate -> hex of its SubjectPublicKeyInfo, according to openssl
	openssl x509 -inform DER -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | od -An -v -tx1 |
		tr -d ' \n'
}

# ---- the P-256 EK certificate verifies, and its key is the one openssl sees ----------------------
expect_ok openssl verify -CAfile "$SWTPM_CA_CERT" <(openssl x509 -inform DER -in "$SWTPM_EK_CERT_P256")
expect_ok "$exe" "$SWTPM_CA_CERT" "$SWTPM_EK_CERT_P256"
got=$("$exe" "$SWTPM_CA_CERT" "$SWTPM_EK_CERT_P256")
assert_eq "$(spki_of "$SWTPM_EK_CERT_P256")" "$got" "the returned SPKI is the EK certificate's key"
assert_match '^3059301306072a8648ce3d020106082a8648ce3d030107034200' "$got" "it is a P-256 key"
issuer_alg=$(openssl x509 -in "$SWTPM_CA_ISSUER_CERT" -noout -text | grep -m1 'Public Key Algorithm' || true)
echo "# manufacturer issuer key: $issuer_alg"

# The intermediate alone is a trust anchor (a bundle entry); the root alone is not enough.
expect_ok "$exe" "$SWTPM_CA_ISSUER_CERT" "$SWTPM_EK_CERT_P256"
expect_fail 2 'not issued by a trusted CA' "$exe" "$SWTPM_CA_ROOT_CERT" "$SWTPM_EK_CERT_P256"

# ---- the other EK certificates of the same TPM (RSA 2048, P-384) chain too ------------------------
expect_ok "$exe" "$SWTPM_CA_CERT" "$SWTPM_EK_CERT_RSA"
expect_ok "$exe" "$SWTPM_CA_CERT" "$SWTPM_EK_CERT_P384"

# ---- another CA: refused, by us and by openssl --------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other.key" \
	-out "$T/other-ca.pem" -subj "/CN=other TPM manufacturer" -days 2 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/other-rsa.key" \
	-out "$T/other-rsa-ca.pem" -subj "/CN=swtpm-localca" -days 2 2>/dev/null
expect_fail '*' '' openssl verify -CAfile "$T/other-ca.pem" <(openssl x509 -inform DER -in "$SWTPM_EK_CERT_P256")
expect_fail 2 'not issued by a trusted CA' "$exe" "$T/other-ca.pem" "$SWTPM_EK_CERT_P256"
# same name as the real issuer, another key
expect_fail 2 'not issued by a trusted CA' "$exe" "$T/other-rsa-ca.pem" "$SWTPM_EK_CERT_P256"
cat "$T/other-ca.pem" "$SWTPM_CA_ROOT_CERT" >"$T/mixed.pem"
expect_fail 2 'not issued by a trusted CA' "$exe" "$T/mixed.pem" "$SWTPM_EK_CERT_P256"

# ---- damaged certificates -----------------------------------------------------------------------
size=$(stat -c %s "$SWTPM_EK_CERT_P256")
head -c $((size - 1)) "$SWTPM_EK_CERT_P256" >"$T/truncated.der"
expect_fail 4 'Bad message' "$exe" "$SWTPM_CA_CERT" "$T/truncated.der"
{ cat "$SWTPM_EK_CERT_P256"; printf '\0'; } >"$T/trailing.der"
expect_fail 4 'Bad message' "$exe" "$SWTPM_CA_CERT" "$T/trailing.der"
# one bit of the signature flipped: parses, does not verify
cp "$SWTPM_EK_CERT_P256" "$T/flipped.der"
last=$(od -An -j $((size - 2)) -N1 -tu1 "$T/flipped.der" | tr -d ' ')
printf "\\$(printf '%03o' $((last ^ 1)))" | dd of="$T/flipped.der" bs=1 seek=$((size - 2)) conv=notrunc status=none
assert_ne "$(od -An -tx1 "$SWTPM_EK_CERT_P256" | tr -d ' \n')" "$(od -An -tx1 "$T/flipped.der" | tr -d ' \n')" \
	"the flipped copy differs"
expect_fail 2 'not issued by a trusted CA' "$exe" "$SWTPM_CA_CERT" "$T/flipped.der"
# the original is untouched and still verifies
expect_ok "$exe" "$SWTPM_CA_CERT" "$SWTPM_EK_CERT_P256"

test_done
