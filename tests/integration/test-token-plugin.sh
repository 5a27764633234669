#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The libcryptsetup token plugin (boot/cryptsetup-token-trustpc-tpm2.c) driven by the stock
# cryptsetup 2.6 CLI, against a real swtpm and real LUKS2 images.
#
# cryptsetup 2.6 loads token plugins only from /lib/x86_64-linux-gnu/cryptsetup (no
# --external-tokens-path). Nothing is installed: every cryptsetup call that needs our plugin runs
# in a private mount namespace where a temp dir holding a copy of the built plugin is bind-mounted
# over that directory (skip when unshare/mount are not permitted). The same commands without the
# plugin are the negative controls: they prove it is our plugin that does the work.
# shellcheck disable=SC2317 # helpers called through expect_ok/expect_fail look unreachable to it
set -euo pipefail
LIB="${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib"
# shellcheck source=tests/lib/assert.sh
source "$LIB/assert.sh"
# shellcheck source=tests/lib/swtpm.sh
source "$LIB/swtpm.sh"
# shellcheck source=tests/lib/luks.sh
source "$LIB/luks.sh"
require_cmd unshare mount python3 openssl tpm2_dictionarylockout
T=$TRUSTPC_TEST_TMP
PLUGIN_NAME=libcryptsetup-token-trustpc-tpm2.so
PLUGIN_DIR_SYSTEM=/lib/x86_64-linux-gnu/cryptsetup
DISK=$(find_binary trustpc-disk) || true
[[ -n "$DISK" ]] || skip "trustpc-disk is not built under $TRUSTPC_BUILD_ROOT"
PLUGIN_BUILT=$TRUSTPC_BUILD_ROOT/boot/$PLUGIN_NAME
[[ -f "$PLUGIN_BUILT" ]] || skip "$PLUGIN_NAME is not built under $TRUSTPC_BUILD_ROOT/boot"

mkdir -p "$T/plugins"
cp "$PLUGIN_BUILT" "$T/plugins/$PLUGIN_NAME"
[[ -d $PLUGIN_DIR_SYSTEM ]] || skip "$PLUGIN_DIR_SYSTEM does not exist (not a Debian x86-64 cryptsetup)"
# shellcheck disable=SC2016 # expanded by the inner bash
unshare -m --propagation private bash -c 'mount --bind "$0" "$1" && test -f "$1/$2"' \
	"$T/plugins" "$PLUGIN_DIR_SYSTEM" "$PLUGIN_NAME" 2>/dev/null ||
	skip "cannot bind-mount a plugin dir in a private mount namespace (needs CAP_SYS_ADMIN)"

# cs ARGS…: the stock cryptsetup with our plugin visible (private mount namespace, nothing installed).
# shellcheck disable=SC2016 # expanded by the inner bash: $0 = plugin dir, $1 = system dir
IN_NS='mount --bind "$0" "$1" && shift && exec cryptsetup "$@"'
cs() {
	unshare -m --propagation private bash -c "$IN_NS" "$T/plugins" "$PLUGIN_DIR_SYSTEM" "$@"
}
# cs_stdin INPUT ARGS…: the same with INPUT on standard input (not a terminal).
cs_stdin() {
	local input=$1
	shift
	cs "$@" <<<"$input"
}
# cs_tty ANSWERS… -- ARGS…: the same on a pseudo-terminal, answering "Enter token PIN:" prompts.
cs_tty() {
	local answers=()
	while [[ $1 != -- ]]; do
		answers+=(--secret "Enter token PIN: ?=$1")
		shift
	done
	shift
	python3 "$LIB/pty-answer.py" --timeout 60 "${answers[@]}" -- \
		unshare -m --propagation private bash -c "$IN_NS" "$T/plugins" "$PLUGIN_DIR_SYSTEM" "$@"
}
OPEN=(open --test-passphrase --token-only --token-type trustpc-tpm2)

# ---- set-up: one TPM, two enrolled images (A without PIN, B with PIN), policies stored -----------
swtpm_start dev1
openssl ecparam -name prime256v1 -genkey -noout -out "$T/policy.key" 2>/dev/null
openssl ec -in "$T/policy.key" -pubout -out "$T/policy.pub" 2>/dev/null
printf 'enroll-pass' >"$T/pass"
luks_image_make "$T/a.img" enroll-pass
luks_image_make "$T/b.img" enroll-pass
expect_ok "$DISK" enroll "$T/a.img" --policy-key "$T/policy.pub" --no-recovery-key --unlock-key-file "$T/pass"
device_id='' epoch='' pcr7='' pcr11='' # set by the eval of tpm-status below
eval "$("$DISK" tpm-status | grep -E '^(device_id|epoch|pcr7|pcr11)=')"
assert_match '^[0-9a-f]{32}$' "$device_id" "tpm-status gives the device id"
"$DISK" sign-policy --key "$T/policy.key" --device-id "$device_id" --epoch "$epoch" \
	--pcr 7="$pcr7" --pcr 11="$pcr11" -o "$T/p.json"
# A PIN is bound at enrollment (the sealed object's own policy): one signed policy serves both disks.
TRUSTPC_NEW_PIN=4711 expect_ok "$DISK" enroll "$T/b.img" --pin --policy "$T/p.json" \
	--policy-key "$T/policy.pub" --no-recovery-key --unlock-key-file "$T/pass"
# The plugin uses the policy stored in the token: unlock once with --policy to store it.
expect_ok "$DISK" unlock "$T/a.img" --test --policy "$T/p.json"
keyslot_a=$(cryptsetup token export --token-id 0 "$T/a.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keyslots"][0])')
swtpm_reboot dev1

# ---- open with the stock CLI -------------------------------------------------------------------
# (cryptsetup prints its token status messages on stdout, and only with -v.)
EXPECT_NAME="negative control: without our plugin the token cannot open the image" \
	expect_fail '*' '' cryptsetup "${OPEN[@]}" -v "$T/a.img"
assert_file_contains "$EXPECT_STDOUT" 'No usable token' "...cryptsetup finds no usable token"
EXPECT_NAME="cryptsetup open --test-passphrase --token-only --token-type trustpc-tpm2 works" \
	expect_ok cs "${OPEN[@]}" -v "$T/a.img"
assert_file_contains "$EXPECT_STDOUT" "^Key slot $keyslot_a unlocked" "the token opened its own keyslot ($keyslot_a)"
zero=$(printf '0%.0s' {1..64})
assert_ne "$zero" "$(tpm_pcr_read dev1 15)" "the plugin measured the volume key into PCR 15"
EXPECT_NAME="a second open in the same boot fails, naming PCR 15" \
	expect_fail '*' 'trustpc-tpm2: PCR 15 is not zero' cs "${OPEN[@]}" "$T/a.img"

# ---- no TPM: a clear reason, no crash -----------------------------------------------------------
swtpm_reboot dev1
dead_port=$(_pick_port_pair)
EXPECT_NAME="no reachable TPM: fails with our reason" TRUSTPC_TPM2_DEVICE="swtpm:host=127.0.0.1,port=$dead_port" \
	expect_fail '*' 'trustpc-tpm2: no TPM reachable' cs "${OPEN[@]}" "$T/a.img"

# ---- luksDump shows our token -----------------------------------------------------------------
expect_ok cs luksDump "$T/a.img"
assert_file_contains "$EXPECT_STDOUT" "^[[:space:]]+Device id:[[:space:]]+$device_id\$" "luksDump: our dump names the device id"
assert_file_contains "$EXPECT_STDOUT" '^[[:space:]]+Policy:[[:space:]]+stored$' "luksDump: our dump says a policy is stored"
assert_file_contains "$EXPECT_STDOUT" "^[[:space:]]+Epoch:[[:space:]]+$epoch\$" "luksDump: our dump gives the policy epoch"
assert_file_contains "$EXPECT_STDOUT" '^[[:space:]]+PIN:[[:space:]]+no$' "luksDump: image A has no PIN"
expect_ok cs luksDump "$T/b.img"
assert_file_contains "$EXPECT_STDOUT" '^[[:space:]]+PIN:[[:space:]]+yes$' "luksDump: image B has a PIN"
expect_ok cryptsetup luksDump "$T/a.img"
EXPECT_NAME="negative control: without the plugin luksDump has no 'Device id' line" \
	expect_fail 1 '' grep -q 'Device id:' "$EXPECT_STDOUT"

# ---- token import: our validate hook refuses an invalid token ----------------------------------
cryptsetup token export --token-id 0 "$T/a.img" >"$T/token.json"
python3 -c 'import json, sys; t = json.load(open(sys.argv[1])); t["tpm2_nv_index"] = "0x99999999"; print(json.dumps(t))' \
	"$T/token.json" >"$T/bad-token.json"
cp "$T/a.img" "$T/a-copy.img"
h_before=$(luks_header_hash "$T/a.img")
EXPECT_NAME="token import of an invalid trustpc-tpm2 token is refused by our validate hook" \
	expect_fail '*' "trustpc-tpm2 token is invalid: field 'tpm2_nv_index'" cs token import --json-file "$T/bad-token.json" "$T/a.img"
assert_eq "$h_before" "$(luks_header_hash "$T/a.img")" "the refused import left the header unchanged"
EXPECT_NAME="negative control: without the plugin cryptsetup imports the same invalid token" \
	expect_ok cryptsetup token import --json-file "$T/bad-token.json" "$T/a-copy.img"
EXPECT_NAME="a valid trustpc-tpm2 token passes our validate hook" \
	expect_ok cs token import --json-file "$T/token.json" "$T/a-copy.img"

# ---- PIN-protected token (image B) -------------------------------------------------------------
# cryptsetup 2.6 asks for a token PIN on the terminal, or reads one line from standard input when
# it is not a terminal (one try then). The swtpm allows 3 failed authorizations before a lockout:
# the DA counter is reset before each case that may spend one.
expect_ok tpm2_dictionarylockout -c
EXPECT_NAME="PIN token, no PIN given: fails, cryptsetup says it needs a PIN" \
	expect_fail '*' '' cs "${OPEN[@]}" -v "$T/b.img"
assert_file_contains "$EXPECT_STDOUT" 'requires PIN' "cryptsetup reports that the token requires a PIN"
EXPECT_NAME="PIN token, wrong PIN on stdin: fails with our reason" \
	expect_fail '*' 'trustpc-tpm2: wrong PIN' cs_stdin 1234 "${OPEN[@]}" "$T/b.img"
EXPECT_NAME="PIN token, right PIN on stdin: opens" expect_ok cs_stdin 4711 "${OPEN[@]}" -v "$T/b.img"
assert_file_contains "$EXPECT_STDOUT" '^Key slot [0-9]+ unlocked' "the PIN token opened its keyslot"
swtpm_reboot dev1
expect_ok tpm2_dictionarylockout -c
# On a terminal: a wrong PIN is answered with another prompt (the plugin returns -ENOANO), then the
# right one opens.
EXPECT_NAME="PIN token on a terminal: wrong PIN, prompted again, right PIN opens" \
	expect_ok cs_tty 0000 4711 -- "${OPEN[@]}" -v "$T/b.img"
assert_eq 2 "$(grep -c 'Enter token PIN:' "$EXPECT_STDOUT")" "the terminal got two PIN prompts"
assert_file_contains "$EXPECT_STDOUT" 'trustpc-tpm2: wrong PIN' "the wrong PIN was reported"
assert_file_contains "$EXPECT_STDOUT" '^Key slot [0-9]+ unlocked' "the second PIN opened the keyslot"
EXPECT_NAME="PIN token: a second open in the same boot fails (PCR 15)" \
	expect_fail '*' 'trustpc-tpm2: PCR 15 is not zero' cs_stdin 4711 "${OPEN[@]}" "$T/b.img"

# ---- remote lock: after trustpc-disk lock the plugin refuses, saying why -----------------------
swtpm_reboot dev1
expect_ok "$DISK" lock
EXPECT_NAME="after 'trustpc-disk lock' the plugin refuses: the device is locked" \
	expect_fail '*' 'trustpc-tpm2: the device is locked' cs "${OPEN[@]}" "$T/a.img"
assert_eq "$zero" "$(tpm_pcr_read dev1 15)" "a refused open leaves PCR 15 at zero"
EXPECT_NAME="the passphrase still opens the locked image (the lock is the TPM's, not the header's)" \
	expect_ok luks_check_passphrase "$T/a.img" enroll-pass

test_done
