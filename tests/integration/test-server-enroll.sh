#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Enrollment against a real swtpm (tests/integration/enroll-client.c as the device): unknown
# token, EK certificate from another CA, wrong activation secret (each refused with its code,
# audited, nothing stored, the token still usable), then a good enrollment (device id = the one
# trustpc-disk derives, certificate, first disk policy), a reused token, and a re-enrollment that
# kills the old device certificate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/test-server-common.sh"
source "$TRUSTPC_SOURCE_ROOT/tests/lib/swtpm.sh"
require_cmd curl

swtpm_start dev >/dev/null
st="$TRUSTPC_TEST_TMP/state"
server_init "$st"
p7=$(tpm_pcr_read dev 7)
p11=$(tpm_pcr_read dev 11)
"$SERVER_BIN" image set base "7=$p7" "11=$p11" --state-dir "$st" >/dev/null
server_start "$st" --tpm-ca "$SWTPM_CA_CERT"
E="127.0.0.1:$ENROLL_PORT"
D="127.0.0.1:$DEVICE_PORT"
tok=$("$SERVER_BIN" token create --image base --state-dir "$st")
dev="$TRUSTPC_TEST_TMP/dev"

enroll() { client enroll --server "$E" --ca "$st/ca.pem" --state "$dev" "$@"; }
devices() { db "SELECT count(*) FROM devices"; }
token_used() { db "SELECT used_at IS NOT NULL FROM enroll_tokens WHERE created_by LIKE '%local%' ORDER BY created_at, rowid LIMIT 1 OFFSET ${1:-0}"; }
last_rejection() { db "SELECT details FROM audit WHERE action = 'enroll.rejected' ORDER BY seq DESC LIMIT 1"; }

# Unknown token.
expect_fail 3 "error bad-token: unknown enrollment token" enroll --token tpe_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
assert_match '"code":"bad-token"' "$(last_rejection)" "unknown token audited with its code"
assert_eq 0 "$(devices)" "unknown token: no device stored"

# An EK certificate from a CA that is not the TPM manufacturer's (a software "TPM").
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=rogue TPM CA" \
	-keyout "$TRUSTPC_TEST_TMP/rogue-ca.key" -out "$TRUSTPC_TEST_TMP/rogue-ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=rogue EK" \
	-keyout "$TRUSTPC_TEST_TMP/rogue-ek.key" -out "$TRUSTPC_TEST_TMP/rogue-ek.csr" 2>/dev/null
openssl x509 -req -in "$TRUSTPC_TEST_TMP/rogue-ek.csr" -CA "$TRUSTPC_TEST_TMP/rogue-ca.pem" \
	-CAkey "$TRUSTPC_TEST_TMP/rogue-ca.key" -CAcreateserial -days 2 -outform DER \
	-out "$TRUSTPC_TEST_TMP/rogue-ek.der" 2>/dev/null
expect_fail 3 "error bad-ek-cert: EK certificate does not chain to the TPM manufacturer CA" \
	enroll --token "$tok" --ek-cert "$TRUSTPC_TEST_TMP/rogue-ek.der"
assert_match '"code":"bad-ek-cert"' "$(last_rejection)" "foreign EK certificate audited"
# Not an EK certificate at all.
head -c 300 /dev/urandom >"$TRUSTPC_TEST_TMP/junk.der"
expect_fail 3 "error bad-ek-cert: EK certificate is malformed" enroll --token "$tok" --ek-cert "$TRUSTPC_TEST_TMP/junk.der"
# The TPM's real RSA EK certificate chains to the CA but is not the P-256 EK the protocol uses.
expect_fail 3 "error bad-ek-cert: EK certificate key is not ECC P-256" \
	enroll --token "$tok" --ek-cert "$SWTPM_EK_CERT_RSA"
assert_eq 0 "$(devices)" "refused EK certificates: no device stored"
assert_eq 0 "$(token_used)" "refused EK certificates: token not consumed"

# The TPM's proof is wrong (a flipped bit of the activated credential).
expect_fail 3 "error bad-credential: activation proof does not match" enroll --token "$tok" --wrong-secret
assert_match '"code":"bad-credential"' "$(last_rejection)" "wrong activation secret audited"
dev_id=$(db "SELECT subject FROM audit WHERE action = 'enroll.rejected' ORDER BY seq DESC LIMIT 1")
assert_match '^[0-9a-f]{32}$' "$dev_id" "the rejection names the device id derived from the EK"
assert_eq 0 "$(devices)" "wrong activation secret: no device stored"
assert_eq 0 "$(token_used)" "wrong activation secret: token not consumed"

# The good enrollment, with the same token.
EXPECT_NAME="enroll" expect_ok enroll --token "$tok"
assert_eq "enrolled $dev_id" "$(cat "$EXPECT_STDOUT")" "enrolled under the EK-derived device id"
disk=$(find_binary trustpc-disk || true)
if [[ -n "$disk" ]]; then
	assert_eq "$dev_id" "$("$disk" device-id)" "the same device id as trustpc-disk derives"
fi
assert_eq 1 "$(devices)" "device stored"
assert_eq "enrolled|test-device|base" "$(db "SELECT state, hostname, image FROM devices")" "device record"
assert_eq 1 "$(token_used)" "token consumed"
assert_eq 1 "$(audit_count device.enroll "$dev_id")" "enrollment audited"
EXPECT_NAME="device certificate chains to the fleet CA (clientAuth)" expect_ok \
	openssl verify -CAfile "$st/ca.pem" -purpose sslclient "$dev/device.pem"
assert_match "CN ?= ?$dev_id" "$(openssl x509 -in "$dev/device.pem" -noout -subject)" "device certificate CN = device id"
assert_eq "$(openssl pkey -in "$dev/tls.key" -pubout)" "$(openssl x509 -in "$dev/device.pem" -noout -pubkey)" \
	"device certificate certifies the device's TLS key"
assert_eq "$(sha256sum <"$st/ca.pem")" "$(sha256sum <"$dev/ca.pem")" "enrolled carries the fleet CA"
assert_eq "$(openssl pkey -pubin -in "$st/policy.pub" -outform DER | sha256sum)" \
	"$(sha256sum <"$dev/policy-key.der")" "enrolled carries the policy key"
pol=$(cat "$dev/policy.json")
assert_match "\"device_id\":\"$dev_id\"" "$pol" "first disk policy is for this device"
assert_match '"epoch":0' "$pol" "first disk policy is for the reported epoch"
assert_match "\"7\":\"$p7\"" "$pol" "first disk policy binds the reported PCR 7"
assert_match "\"11\":\"$p11\"" "$pol" "first disk policy binds the reported PCR 11"
assert_match "\"15\":\"0{64}\"" "$pol" "first disk policy binds PCR 15 = 0"
kid=$(openssl pkey -pubin -in "$st/policy.pub" -outform DER | sha256sum | cut -d' ' -f1)
assert_match "\"key_id\":\"$kid\"" "$pol" "first disk policy signed by the policy key"

# The token is spent.
cp -r "$dev" "$TRUSTPC_TEST_TMP/dev-old"
expect_fail 3 "error bad-token: enrollment token already used or expired" enroll --token "$tok"
assert_match '"code":"bad-token"' "$(last_rejection)" "reused token audited"
assert_eq 0 "$(audit_count device.re-enroll "$dev_id")" "reused token: no re-enrollment"

# The old certificate works until the device is enrolled again (re-imaged) with a new token …
EXPECT_NAME="attest with the first certificate" expect_ok client attest --server "$D" --state "$TRUSTPC_TEST_TMP/dev-old"
tok2=$("$SERVER_BIN" token create --image base --state-dir "$st")
EXPECT_NAME="re-enroll with a new token" expect_ok enroll --token "$tok2"
assert_eq 1 "$(audit_count device.re-enroll "$dev_id")" "re-enrollment audited"
assert_eq 1 "$(devices)" "still one device"
# … then the old certificate still chains to the fleet CA but is refused.
rejected=$(audit_count device.rejected "$dev_id")
expect_fail 3 "error not-enrolled: client certificate key is not the one registered" \
	client attest --server "$D" --state "$TRUSTPC_TEST_TMP/dev-old"
assert_eq $((rejected + 1)) "$(audit_count device.rejected "$dev_id")" "old certificate refusal audited"
EXPECT_NAME="the new certificate attests" expect_ok client attest --server "$D" --state "$dev"
assert_match '^attest trusted' "$(cat "$EXPECT_STDOUT")" "re-enrolled device trusted"

# The server refuses to talk enrollment on the device port and vice versa: the enroll port is
# server-auth only, so a device certificate there changes nothing (an enroll with no token fails).
expect_fail 3 "error bad-token" enroll --token "tpe_$(printf 'B%.0s' {1..43})"

# The audit chain over all of this verifies (admin API, as trustpcctl audit verify sees it).
op=$("$SERVER_BIN" operator add auditor --role viewer --state-dir "$st")
verify=$(curl -sS --cacert "$st/ca.pem" --resolve "localhost:$ADMIN_PORT:127.0.0.1" -H "Authorization: Bearer $op" \
	"https://localhost:$ADMIN_PORT/api/v1/audit/verify")
assert_match '"ok": *true' "$verify" "audit chain verifies"
server_stop TERM
assert_eq 0 "$SERVER_RC" "server exits 0"
test_done
