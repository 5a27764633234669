#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Self-test of the integration fixtures (tests/lib/*.sh, tpm-proxy.py): every later integration
# test trusts them, so each claim is checked here with a positive and a negative case.
set -euo pipefail
LIB="${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib"
source "$LIB/assert.sh"
source "$LIB/swtpm.sh"
source "$LIB/luks.sh"
require_cmd tpm2_nvread tpm2_nvreadpublic tpm2_getrandom tpm2_readpublic python3 openssl od
T=$TRUSTPC_TEST_TMP

# ---- assert.sh itself: a failing check must fail the test, a test without checks too ----------
cat >"$T/child-asserts.sh" <<EOF
set -euo pipefail
source "$LIB/assert.sh"
expect_ok true
expect_fail 3 'boom' bash -c 'echo boom >&2; exit 3'
expect_fail 3 'boom' bash -c 'echo bang >&2; exit 3' || true
assert_eq a b || true
test_done
EOF
rc=0
bash "$T/child-asserts.sh" >"$T/child.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "assert.sh: a test with failed checks exits 1"
assert_eq "2 passed, 2 failed" "$(tail -n1 "$T/child.out")" "assert.sh: summary line counts passes and failures"
printf 'source "%s/assert.sh"\n' "$LIB" >"$T/child-empty.sh"
rc=0
bash "$T/child-empty.sh" >"$T/child.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "assert.sh: a test that ran no check fails"
printf 'source "%s/assert.sh"\nrequire_cmd no-such-tool-xyz\nexpect_ok true\n' "$LIB" >"$T/child-skip.sh"
rc=0
bash "$T/child-skip.sh" >"$T/child.out" 2>&1 || rc=$?
assert_eq 77 "$rc" "assert.sh: a missing tool skips with exit 77"
printf 'set -e\nsource "%s/assert.sh"\nexpect_ok true\nfalse\nexpect_ok true\n' "$LIB" >"$T/child-abort.sh"
rc=0
bash "$T/child-abort.sh" >"$T/child.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "assert.sh: an unexpected set -e exit fails the test"

# ---- one swtpm: it answers, its EK certificates chain to the per-test local CA ----------------
swtpm_start dev1
assert_match '^swtpm:host=127\.0\.0\.1,port=[0-9]+$' "$TPM_TCTI_NAME" "TPM_TCTI_NAME is a swtpm TCTI"
expect_ok tpm2_getcap -T "$TPM_TCTI_NAME" properties-fixed
assert_file_contains "$EXPECT_STDOUT" 'TPM2_PT_MANUFACTURER' "getcap answers with the fixed properties"
assert_match "^$TRUSTPC_TEST_TMP/" "$SWTPM_CA_CERT" "the CA lives in the per-test temp dir"

# verify_nv_cert INDEX FILE-WRITTEN-BY-SETUP LABEL
verify_nv_cert() {
	local idx=$1 file=$2 label=$3
	expect_ok tpm2_nvread -T "$TPM_TCTI_NAME" -C o -o "$T/$label.der" "$idx"
	expect_ok cmp "$T/$label.der" "$file"
	openssl x509 -inform der -in "$T/$label.der" -out "$T/$label.pem"
	EXPECT_NAME="$label EK certificate from NV $idx verifies against SWTPM_CA_CERT" \
		expect_ok openssl verify -CAfile "$SWTPM_CA_CERT" "$T/$label.pem"
}
verify_nv_cert 0x01c00002 "$SWTPM_EK_CERT_RSA" rsa
verify_nv_cert 0x01c00016 "$SWTPM_EK_CERT_P384" p384
verify_nv_cert 0x01c0000a "$SWTPM_EK_CERT_P256" p256
expect_ok openssl x509 -in "$T/p256.pem" -noout -text
assert_file_contains "$EXPECT_STDOUT" 'NIST CURVE: P-256' "the 0x01c0000a certificate holds a P-256 key"
# Negative controls: without the issuer cert the chain is incomplete; a foreign CA proves nothing.
EXPECT_NAME="EK certificate does not verify against the root alone" \
	expect_fail '*' '' openssl verify -CAfile "$SWTPM_CA_ROOT_CERT" "$T/rsa.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=foreign -days 1 \
	-keyout "$T/foreign.key" -out "$T/foreign.pem" 2>/dev/null
EXPECT_NAME="EK certificate does not verify against a foreign CA" \
	expect_fail '*' '' openssl verify -CAfile "$T/foreign.pem" "$T/rsa.pem"
# The P-256 certificate certifies the EK the TPM recreates from the TCG default template.
tpm2_createek -T "$TPM_TCTI_NAME" -G ecc -c "$T/ek.ctx" -u "$T/ek.pub" >/dev/null
tpm2_flushcontext -T "$TPM_TCTI_NAME" -t
tpm_xy=$(tpm2_print -t TPM2B_PUBLIC "$T/ek.pub" | awk '$1 == "x:" || $1 == "y:" { printf "%s", $2 }')
cert_xy=$(openssl x509 -in "$T/p256.pem" -noout -pubkey | openssl pkey -pubin -outform der |
	tail -c 64 | od -An -v -tx1 | tr -d ' \n')
assert_eq "$tpm_xy" "$cert_xy" "P-256 EK certificate matches the TPM's P-256 EK"

# ---- two devices at once, each its own TPM identity --------------------------------------------
swtpm_start dev2
assert_ne "$(swtpm_port dev1)" "$(swtpm_port dev2)" "two swtpms on different ports"
expect_ok tpm2_getcap -T "$(swtpm_tcti dev1)" properties-fixed
expect_ok tpm2_getcap -T "$(swtpm_tcti dev2)" properties-fixed
ek1=$(openssl x509 -inform der -in "$(swtpm_dir dev1)/ekcerts/ek-rsa2048.crt" -noout -modulus)
ek2=$(openssl x509 -inform der -in "$(swtpm_dir dev2)/ekcerts/ek-rsa2048.crt" -noout -modulus)
assert_ne "$ek1" "$ek2" "the two devices have different EKs"
EXPECT_NAME="dev2's EK certificate is issued by the same local CA" \
	expect_ok openssl verify -CAfile "$SWTPM_CA_CERT" <(openssl x509 -inform der -in "$SWTPM_EK_CERT_RSA")

# ---- reboot: PCRs reset, NV kept, the other device untouched --------------------------------------
zero=$(printf '0%.0s' {1..64})
digest=$(printf 'trustpc' | sha256sum | cut -d' ' -f1)
assert_eq "$zero" "$(tpm_pcr_read dev1 7)" "PCR 7 starts at zero"
tpm_pcr_extend dev1 7 "$digest"
tpm_pcr_extend dev2 7 "$digest"
expected=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())' "$zero$digest")
assert_eq "$expected" "$(tpm_pcr_read dev1 7)" "PCR 7 after one extend = SHA256(0^32 || digest)"
tpm2_nvdefine -T "$(swtpm_tcti dev1)" 0x01500010 -C o -s 8 -a "ownerread|ownerwrite|authread|authwrite" >/dev/null
printf 'NVKEPT!!' >"$T/nv.in"
tpm2_nvwrite -T "$(swtpm_tcti dev1)" 0x01500010 -C o -i "$T/nv.in"
pid_before=$(swtpm_pid dev1)
port_before=$(swtpm_port dev1)
t0=$(now_ms)
swtpm_reboot dev1
echo "# reboot took $(($(now_ms) - t0)) ms"
assert_ne "$pid_before" "$(swtpm_pid dev1)" "reboot runs a new swtpm process"
assert_eq "$port_before" "$(swtpm_port dev1)" "reboot keeps the port (TCTI strings stay valid)"
assert_eq "$zero" "$(tpm_pcr_read dev1 7)" "reboot resets PCR 7"
expect_ok tpm2_nvread -T "$(swtpm_tcti dev1)" -C o -o "$T/nv.out" 0x01500010
expect_ok cmp "$T/nv.in" "$T/nv.out"
assert_eq "$expected" "$(tpm_pcr_read dev2 7)" "rebooting dev1 leaves dev2's PCR 7 alone"
expect_ok tpm2_nvreadpublic -T "$(swtpm_tcti dev1)" 0x01c0000a

# ---- recording proxy: the bytes a command returns appear in the capture --------------------------
swtpm_use dev1
direct=$TPM_TCTI_NAME
tpm_proxy_start dev1
assert_ne "$direct" "$TPM_TCTI_NAME" "the proxy takes over TPM_TCTI_NAME"
expect_ok tpm2_getrandom -T "$TPM_TCTI_NAME" 32 -o "$T/random.bin"
rnd=$(od -An -v -tx1 "$T/random.bin" | tr -d ' \n')
assert_eq 64 "${#rnd}" "tpm2_getrandom through the proxy returned 32 bytes"
EXPECT_NAME="positive control: the 32 random bytes are in the capture" \
	expect_ok tpm_capture_contains "$PROXY_CAPTURE" "$rnd"
EXPECT_NAME="...and in the TPM-to-client direction" expect_ok tpm_capture_contains "$PROXY_CAPTURE.rx" "$rnd"
EXPECT_NAME="...not in the client-to-TPM direction" expect_fail 1 '' tpm_capture_contains "$PROXY_CAPTURE.tx" "$rnd"
other=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
EXPECT_NAME="negative control: bytes never sent are not found" expect_fail 1 '' tpm_capture_contains "$PROXY_CAPTURE" "$other"
# TPM2_GetRandom command header: tag 8001, size 0000000c, code 0000017b.
EXPECT_NAME="the capture holds the GetRandom command" expect_ok tpm_capture_contains "$PROXY_CAPTURE.tx" 80010000000c0000017b
tpm_proxy_stop dev1
assert_eq "$direct" "$TPM_TCTI_NAME" "tpm_proxy_stop restores the direct TCTI"

# ---- LUKS2 images: fast format, passphrase check, header hash detects any header change -------------
img=$T/disk.img
expect_ok luks_image_make "$img"
expect_ok cryptsetup isLuks --type luks2 "$img"
expect_ok luks_check_passphrase "$img" "$LUKS_TEST_PASSPHRASE"
EXPECT_NAME="a wrong passphrase does not open the image" expect_fail '*' '' luks_check_passphrase "$img" wrong
expect_ok cryptsetup luksDump "$img"
assert_file_contains "$EXPECT_STDOUT" 'Iterations: +1000$' "keyslot 0 uses PBKDF2 with 1000 iterations"
h1=$(luks_header_hash "$img")
assert_eq "$h1" "$(luks_header_hash "$img")" "header hash is stable when nothing changes"
printf '%s' "$LUKS_TEST_PASSPHRASE" | cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 \
	--pbkdf-force-iterations 1000 --key-file - "$img" <(printf second)
assert_ne "$h1" "$(luks_header_hash "$img")" "header hash changes when a keyslot is added"

# ---- cleanup: every swtpm and proxy dies and the temp dir goes, however the test ends -------------
# The child records its pids and temp dir, then ends as MODE says.
cat >"$T/child-cleanup.sh" <<EOF
set -euo pipefail
source "$LIB/assert.sh"
source "$LIB/swtpm.sh"
SWTPM_EK_P256=0
swtpm_start a
swtpm_start b
tpm_proxy_start a
echo "\$(swtpm_pid a) \$(swtpm_pid b) \$PROXY_PID" >"\$1.pids"
echo "\$TRUSTPC_TEST_TMP" >"\$1.tmp"
expect_ok true
case "\$2" in
ok) test_done ;;
fail) false ;;
int) kill -INT \$\$ ;;
term) kill -TERM \$\$ ;;
esac
expect_ok true
EOF
for mode in ok fail int term; do
	case $mode in ok) want=0 ;; fail) want=1 ;; int) want=1 ;; term) want=1 ;; esac
	rc=0
	bash "$T/child-cleanup.sh" "$T/cleanup-$mode" "$mode" >"$T/child-$mode.out" 2>&1 || rc=$?
	assert_eq "$want" "$rc" "child ending '$mode' exits $want" || cat "$T/child-$mode.out"
	pids=$(cat "$T/cleanup-$mode.pids")
	left=""
	for p in $pids; do
		_pid_alive "$p" && left="$left $p"
	done
	assert_eq "3" "$(wc -w <<<"$pids" | tr -d ' ')" "child '$mode' ran two swtpms and a proxy"
	assert_eq "" "$left" "no swtpm/proxy process left after a '$mode' exit"
	EXPECT_NAME="temp dir removed after a '$mode' exit" expect_fail 1 '' test -e "$(cat "$T/cleanup-$mode.tmp")"
done

test_done
