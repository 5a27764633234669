#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# No secrets on the TPM bus (security design 3): a recording proxy (tests/lib/tpm-proxy.py) sits
# between trustpc-disk and swtpm while a PIN-protected disk is enrolled and unlocked. Neither the
# PIN, nor the authValue derived from it, nor the disk key (the 32-byte secret that opens the TPM
# keyslot), nor the LUKS volume key may appear in the recorded bytes.
#
# Positive controls prove that the capture and the searches would catch a secret in clear:
#   (a) the 32 bytes of a TPM2_GetRandom through the proxy are found by tpm_capture_contains, and
#       luks-try-keys finds them when they are made the passphrase of a keyslot;
#   (c) a secret sealed and unsealed with tpm2-tools without session encryption through the proxy is
#       found in both directions, and luks-try-keys finds it as a keyslot passphrase.
set -euo pipefail
LIB="${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib"
# shellcheck source=tests/lib/assert.sh
source "$LIB/assert.sh"
# shellcheck source=tests/lib/swtpm.sh
source "$LIB/swtpm.sh"
# shellcheck source=tests/lib/luks.sh
source "$LIB/luks.sh"
require_cmd python3 openssl od tpm2_getrandom tpm2_createprimary tpm2_create tpm2_load tpm2_unseal
T=$TRUSTPC_TEST_TMP
DISK=$(find_binary trustpc-disk) || true
[[ -n "$DISK" ]] || skip "trustpc-disk is not built under $TRUSTPC_BUILD_ROOT"
TRY_KEYS=$(find_binary luks-try-keys) || true
[[ -n "$TRY_KEYS" ]] || skip "luks-try-keys (tests/unit/luks) is not built under $TRUSTPC_BUILD_ROOT"
CMDS=(python3 "$LIB/tpm-commands.py")

hex_of() { od -An -v -tx1 "$1" | tr -d ' \n'; }
hex_str() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# A PIN that cannot occur by chance; it must never be seen, as text or as its derived authValue.
PIN="trustpc-sniff-PIN-$RANDOM$RANDOM"
PASS=enroll-passphrase
swtpm_start dev1
openssl ecparam -name prime256v1 -genkey -noout -out "$T/policy.key" 2>/dev/null
openssl ec -in "$T/policy.key" -pubout -out "$T/policy.pub" 2>/dev/null
printf '%s' "$PASS" >"$T/pass"
luks_image_make "$T/disk.img" "$PASS"

# ---- enroll with a PIN and unlock with it, every TPM byte recorded ------------------------------
tpm_proxy_start dev1 "$T/bus"
BUS=$PROXY_CAPTURE
TRUSTPC_NEW_PIN=$PIN EXPECT_NAME="enroll --pin through the recording proxy" \
	expect_ok "$DISK" enroll "$T/disk.img" --pin --policy-key "$T/policy.pub" --no-recovery-key \
	--unlock-key-file "$T/pass"
device_id='' epoch='' pcr7='' pcr11='' # set by the eval of tpm-status below
eval "$("$DISK" tpm-status | grep -E '^(device_id|epoch|pcr7|pcr11)=')"
"$DISK" sign-policy --key "$T/policy.key" --device-id "$device_id" --epoch "$epoch" \
	--pcr 7="$pcr7" --pcr 11="$pcr11" -o "$T/p.json"
bus_before_unlock=$(stat -c %s "$BUS.tx")
TRUSTPC_PIN=$PIN EXPECT_NAME="unlock --test with the PIN through the recording proxy" \
	expect_ok "$DISK" unlock "$T/disk.img" --test --policy "$T/p.json"
# (a) positive control in the same capture.
expect_ok tpm2_getrandom 32 -o "$T/random.bin"
tpm_proxy_stop dev1

# ---- the capture is the real thing ----------------------------------------------------------------
size=$(stat -c %s "$BUS")
if ((size >= 4096)); then ok "the capture is non-trivial ($size bytes)"; else not_ok "the capture is non-trivial" "only $size bytes"; fi
EXPECT_NAME="the client-to-TPM stream parses as a sequence of TPM commands" expect_ok "${CMDS[@]}" --summary "$BUS.tx"
sed 's/^/# /' "$EXPECT_STDOUT"
EXPECT_NAME="the capture holds a TPM2_Unseal command header (code 0x0000015e)" \
	expect_ok "${CMDS[@]}" --has-cc 15e "$BUS.tx"
tail -c +$((bus_before_unlock + 1)) "$BUS.tx" >"$T/unlock.tx"
EXPECT_NAME="...sent by the unlock, after the enrollment" expect_ok "${CMDS[@]}" --has-cc 15e "$T/unlock.tx"
EXPECT_NAME="the enrollment's TPM2_Create (the sealing, 0x00000153) is in the capture" \
	expect_ok "${CMDS[@]}" --has-cc 153 "$BUS.tx"
EXPECT_NAME="the sessions are started on the wire (TPM2_StartAuthSession, 0x00000176)" \
	expect_ok "${CMDS[@]}" --has-cc 176 "$BUS.tx"

# ---- (a) positive control: bytes the TPM returned in clear are found ------------------------------
rnd=$(hex_of "$T/random.bin")
assert_eq 64 "${#rnd}" "tpm2_getrandom returned 32 bytes"
EXPECT_NAME="positive control (a): the GetRandom bytes are in the capture" expect_ok tpm_capture_contains "$BUS" "$rnd"
cp "$T/disk.img" "$T/control.img"
cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$T/pass" \
	--new-key-slot 7 "$T/control.img" "$T/random.bin"
# luks-try-keys costs ~10 ms of CPU per window: the full search runs once, on the real question
# below; its positive control searches the last 64 bytes of the same capture (GetRandom's answer).
tail -c 64 "$BUS" >"$T/bus-tail"
EXPECT_NAME="positive control (a): luks-try-keys finds a keyslot passphrase that crossed the bus" \
	expect_ok "$TRY_KEYS" "$T/control.img" 7 "$T/bus-tail"
assert_file_contains "$EXPECT_STDOUT" '^FOUND at offset [0-9]+$' "luks-try-keys says where it found it"

# ---- the secrets are not there ---------------------------------------------------------------------
EXPECT_NAME="the PIN (as text) is not in the capture" expect_fail 1 '' tpm_capture_contains "$BUS" "$(hex_str "$PIN")"
# The sealed object's authValue = HMAC-SHA256(token salt, PIN) (boot/disk-unseal.h): not on the bus
# either (it goes into TPM2_Create only inside the encrypted parameter).
cryptsetup token export --token-id 0 "$T/disk.img" >"$T/token.json"
auth=$(python3 -c '
import base64, hashlib, hmac, json, sys
t = json.load(open(sys.argv[1]))
print(hmac.new(base64.b64decode(t["tpm2_pin_salt"]), sys.argv[2].encode(), hashlib.sha256).hexdigest())' \
	"$T/token.json" "$PIN")
assert_match '^[0-9a-f]{64}$' "$auth" "the PIN's authValue was derived"
EXPECT_NAME="the PIN's authValue is not in the capture" expect_fail 1 '' tpm_capture_contains "$BUS" "$auth"
keyslot=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["keyslots"][0])' "$T/token.json")
assert_match '^[0-9]+$' "$keyslot" "the token names its keyslot ($keyslot)"
EXPECT_NAME="no 32-byte window of the capture opens the TPM keyslot (the disk key never crossed the bus)" \
	expect_fail 1 '' "$TRY_KEYS" "$T/disk.img" "$keyslot" "$BUS"
assert_file_contains "$EXPECT_STDERR" "No 32-byte window of .*\\($size bytes" "luks-try-keys searched the whole capture"
# (b) the LUKS volume key.
expect_ok cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$T/pass" \
	--volume-key-file "$T/volume-key.bin" "$T/disk.img"
vk=$(hex_of "$T/volume-key.bin")
assert_match '^[0-9a-f]{128}$' "$vk" "the 64-byte volume key was dumped"
EXPECT_NAME="the volume key is not in the capture" expect_fail 1 '' tpm_capture_contains "$BUS" "$vk"
EXPECT_NAME="...nor its first half" expect_fail 1 '' tpm_capture_contains "$BUS" "${vk:0:64}"
EXPECT_NAME="...nor its second half" expect_fail 1 '' tpm_capture_contains "$BUS" "${vk:64:64}"

# ---- (c) positive control: an unseal without session encryption shows the secret -------------------
head -c 32 /dev/urandom >"$T/clear-secret.bin"
clear=$(hex_of "$T/clear-secret.bin")
tpm_proxy_start dev1 "$T/bus-clear-seal"
SEAL=$PROXY_CAPTURE
expect_ok tpm2_createprimary -Q -C o -G ecc -c "$T/prim.ctx"
expect_ok tpm2_create -Q -C "$T/prim.ctx" -i "$T/clear-secret.bin" -u "$T/seal.pub" -r "$T/seal.priv"
tpm2_flushcontext -t
expect_ok tpm2_load -Q -C "$T/prim.ctx" -u "$T/seal.pub" -r "$T/seal.priv" -c "$T/seal.ctx"
tpm2_flushcontext -t
tpm_proxy_stop dev1
# The unseal on its own capture: small enough for a full luks-try-keys search.
tpm_proxy_start dev1 "$T/bus-clear-unseal"
UNSEAL=$PROXY_CAPTURE
expect_ok tpm2_unseal -c "$T/seal.ctx" -o "$T/clear-out.bin"
tpm_proxy_stop dev1
tpm2_flushcontext -t
expect_ok cmp "$T/clear-secret.bin" "$T/clear-out.bin"
EXPECT_NAME="positive control (c): tpm2-tools' unseal without encryption has TPM2_Unseal on the wire" \
	expect_ok "${CMDS[@]}" --has-cc 15e "$UNSEAL.tx"
EXPECT_NAME="positive control (c): the secret is in the TPM's Unseal response" \
	expect_ok tpm_capture_contains "$UNSEAL.rx" "$clear"
EXPECT_NAME="positive control (c): ...and in the Create command that sealed it" \
	expect_ok tpm_capture_contains "$SEAL.tx" "$clear"
cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$T/pass" \
	--new-key-slot 6 "$T/control.img" "$T/clear-secret.bin"
EXPECT_NAME="positive control (c): luks-try-keys finds a disk key unsealed in clear (whole capture)" \
	expect_ok "$TRY_KEYS" "$T/control.img" 6 "$UNSEAL"

test_done
