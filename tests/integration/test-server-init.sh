#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trustpc-server init / operator add / token create / image set / config checks: the files and
# their modes, the certificates, refusal to overwrite (nothing changed), secrets never printed,
# bad arguments and config files refused with a message naming the problem.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/test-server-common.sh"

st="$TRUSTPC_TEST_TMP/state"
out="$TRUSTPC_TEST_TMP/init.out"

EXPECT_NAME="init with --hostname" expect_ok "$SERVER_BIN" init --state-dir "$st" --hostname fleet.example
init_output=$(cat "$EXPECT_STDOUT" "$EXPECT_STDERR")
assert_match 'Fleet CA SHA-256 fingerprint: [0-9a-f]{64}' "$init_output" "init prints the CA fingerprint"

mode() { stat -c %a "$1"; }
assert_eq 700 "$(mode "$st")" "state dir is 0700"
for f in ca.key server.key command.key policy.key escrow.key trustpc-server.db; do
	assert_eq 600 "$(mode "$st/$f")" "$f is 0600"
done
for f in ca.pem server.pem command.pub policy.pub escrow.pub trustpc-server.conf; do
	assert_eq 644 "$(mode "$st/$f")" "$f is 0644"
done
assert_eq "" "$(find "$st" -name '*.tmp-*')" "no temporary files left behind"

# Secrets never reach the output.
for f in ca.key server.key command.key policy.key escrow.key; do
	body=$(sed -n '2p' "$st/$f")
	if [[ "$init_output" == *"$body"* || "$init_output" == *"PRIVATE KEY"* ]]; then
		not_ok "init output does not contain $f"
	else
		ok "init output does not contain $f"
	fi
done

# Certificates: CA is a CA, the server certificate is for the hostname and chains to the CA.
assert_match 'CA:TRUE' "$(openssl x509 -in "$st/ca.pem" -noout -ext basicConstraints)" "ca.pem is a CA"
assert_match 'DNS:fleet.example' "$(openssl x509 -in "$st/server.pem" -noout -ext subjectAltName)" \
	"server.pem SAN is the hostname"
EXPECT_NAME="server.pem chains to ca.pem (serverAuth)" expect_ok \
	openssl verify -CAfile "$st/ca.pem" -purpose sslserver "$st/server.pem"
EXPECT_NAME="server.key belongs to server.pem" expect_ok bash -c \
	"[[ \$(openssl x509 -in '$st/server.pem' -noout -pubkey) == \$(openssl pkey -in '$st/server.key' -pubout) ]]"
for k in policy escrow command; do
	assert_eq "$(openssl pkey -in "$st/$k.key" -pubout)" "$(openssl pkey -pubin -in "$st/$k.pub")" \
		"$k.pub is the public half of $k.key"
done
assert_ne "$(cat "$st/policy.pub")" "$(cat "$st/escrow.pub")" "policy and escrow keys differ"
# Every key of the default config is one the server knows (run parses it; see below).
for k in listen enroll_port device_port admin_port tpm_ca attest_pcrs policy_pcrs heartbeat attest_timeout \
	max_connections device_cert_days default_image; do
	assert_file_contains "$st/trustpc-server.conf" "^#?$k = " "default config documents $k"
done
assert_eq 1 "$(sqlite3 "$st/trustpc-server.db" "SELECT count(*) FROM audit WHERE action = 'server.init'")" \
	"init is audited"

# Never overwrite: a second init fails and changes nothing.
before=$(cd "$st" && sha256sum ca.key ca.pem server.key server.pem policy.key escrow.key trustpc-server.conf)
expect_fail 4 "not empty: init never overwrites" "$SERVER_BIN" init --state-dir "$st"
expect_fail 4 "not empty" "$SERVER_BIN" init --state-dir "$st" --hostname other.example
after=$(cd "$st" && sha256sum ca.key ca.pem server.key server.pem policy.key escrow.key trustpc-server.conf)
assert_eq "$before" "$after" "a refused init changed nothing"
mkdir "$TRUSTPC_TEST_TMP/other"
touch "$TRUSTPC_TEST_TMP/other/unrelated"
expect_fail 4 "not empty" "$SERVER_BIN" init --state-dir "$TRUSTPC_TEST_TMP/other"
assert_eq "unrelated" "$(ls "$TRUSTPC_TEST_TMP/other")" "a non-empty foreign dir is left alone"
mkdir "$TRUSTPC_TEST_TMP/empty"
EXPECT_NAME="init into an existing empty dir" expect_ok "$SERVER_BIN" init --state-dir "$TRUSTPC_TEST_TMP/empty"
expect_fail 2 "not a DNS name" "$SERVER_BIN" init --state-dir "$TRUSTPC_TEST_TMP/bad" --hostname 'a b'
assert_eq no "$([[ -e "$TRUSTPC_TEST_TMP/bad" ]] && echo yes || echo no)" "a refused hostname creates nothing"
expect_fail 2 "--state-dir DIR is required" "$SERVER_BIN" init
expect_fail 1 "Cannot create state dir" "$SERVER_BIN" init --state-dir "$TRUSTPC_TEST_TMP/no/such/parent"

# Operators: the token is printed once; only its hash is stored.
EXPECT_NAME="operator add" expect_ok "$SERVER_BIN" operator add alice --role admin --state-dir "$st"
tok=$(cat "$EXPECT_STDOUT")
assert_match '^tpo_[A-Za-z0-9_-]{43}$' "$tok" "operator token printed"
assert_eq 0 "$(sqlite3 "$st/trustpc-server.db" "SELECT count(*) FROM operators WHERE token_hash LIKE '%$tok%'")" \
	"operator token not stored in clear"
assert_eq admin "$(sqlite3 "$st/trustpc-server.db" "SELECT role FROM operators WHERE name = 'alice'")" "role stored"
assert_eq 1 "$(sqlite3 "$st/trustpc-server.db" "SELECT count(*) FROM audit WHERE action = 'operator.add' AND subject = 'alice'")" \
	"operator add is audited"
expect_fail 1 "exists already" "$SERVER_BIN" operator add alice --role viewer --state-dir "$st"
expect_fail 2 "must be viewer, helpdesk or admin" "$SERVER_BIN" operator add bob --role root --state-dir "$st"
expect_fail 2 "Operator name" "$SERVER_BIN" operator add 'bob smith' --role viewer --state-dir "$st"
expect_fail 2 "Usage" "$SERVER_BIN" operator add --state-dir "$st"
assert_eq 1 "$(sqlite3 "$st/trustpc-server.db" "SELECT count(*) FROM operators")" "refused operators are not stored"

# Tokens and images from the server host.
expect_fail 1 "Cannot create an enrollment token" "$SERVER_BIN" token create --image nosuch --state-dir "$st"
EXPECT_NAME="image set" expect_ok "$SERVER_BIN" image set base "7=$(printf '%064d' 7)" "11=$(printf '%064d' 11)" \
	--state-dir "$st"
assert_eq 2 "$(sqlite3 "$st/trustpc-server.db" "SELECT count(*) FROM image_pcrs WHERE image = 'base'")" "image stored"
expect_fail 2 "PCR=HEX" "$SERVER_BIN" image set base 7=00 --state-dir "$st"
expect_fail 2 "PCR=HEX" "$SERVER_BIN" image set base "24=$(printf '%064d' 0)" --state-dir "$st"
EXPECT_NAME="token create --image base" expect_ok "$SERVER_BIN" token create --image base --ttl 600 --state-dir "$st"
assert_match '^tpe_[A-Za-z0-9_-]{43}$' "$(cat "$EXPECT_STDOUT")" "enrollment token printed"
expect_fail 2 "--ttl" "$SERVER_BIN" token create --ttl 0 --state-dir "$st"

# Config: unknown keys and bad values are refused with the file and line; flags too.
conf="$TRUSTPC_TEST_TMP/bad.conf"
printf 'listen = 127.0.0.1\nheartbeet = 60\n' >"$conf"
expect_fail 3 "bad.conf:2: unknown setting 'heartbeet'" "$SERVER_BIN" run --state-dir "$st" --config "$conf"
printf 'attest_pcrs = 7,15\n' >"$conf"
expect_fail 3 "bad.conf:1: attest_pcrs = '7,15'" "$SERVER_BIN" run --state-dir "$st" --config "$conf"
printf 'heartbeat = 1\n' >"$conf"
expect_fail 3 "heartbeat = '1' must be 5-86400" "$SERVER_BIN" run --state-dir "$st" --config "$conf"
printf 'listen\n' >"$conf"
expect_fail 3 "bad.conf:1: expected 'key = value'" "$SERVER_BIN" run --state-dir "$st" --config "$conf"
expect_fail 3 "Cannot read config file" "$SERVER_BIN" run --state-dir "$st" --config "$TRUSTPC_TEST_TMP/none.conf"
expect_fail 3 "enroll_port = '70000'" "$SERVER_BIN" run --state-dir "$st" --enroll-port 70000
expect_fail 3 "listen = 'localhost' is not a numeric" "$SERVER_BIN" run --state-dir "$st" --listen localhost
expect_fail 3 "No TPM manufacturer CA bundle: set tpm_ca" "$SERVER_BIN" run --state-dir "$st"
expect_fail 3 "Cannot read the TPM CA bundle '.*/none.pem'" "$SERVER_BIN" run --state-dir "$st" \
	--tpm-ca "$TRUSTPC_TEST_TMP/none.pem"
expect_fail 3 "holds no PEM certificate" "$SERVER_BIN" run --state-dir "$st" --tpm-ca "$st/trustpc-server.conf"
expect_fail 3 "state dir made by 'trustpc-server init'" "$SERVER_BIN" run --state-dir "$TRUSTPC_TEST_TMP/nothing" \
	--tpm-ca "$st/ca.pem"
expect_fail 2 "Unknown verb" "$SERVER_BIN" frobnicate --state-dir "$st"
test_done
