#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# trustpc-disk lock: the TPM lock counter moves up (lock prints the new epoch); a policy for the old
# epoch stops working (exit 3, header unchanged), also after a reboot; a policy for the new epoch
# unlocks and is stored so that later boots need no --policy; status --json reports it all.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/disk.sh"
T=$TRUSTPC_TEST_TMP
IMG=$T/disk.img

swtpm_start dev1
disk_measured_boot dev1
disk_keys
EXPECT_NAME="enroll disk.img on dev1" expect_ok disk_enroll dev1 "$IMG"
dev_id=$(tpcdisk device-id)
disk_sign_current dev1 "$T/p-old.json"
e0=$DISK_EPOCH
EXPECT_NAME="unlock with the policy for epoch $e0" expect_ok tpcdisk unlock "$IMG" --test --policy "$T/p-old.json"

# ---- status before the lock -----------------------------------------------------------------------
expect_ok tpcdisk status "$IMG" --json
cp "$EXPECT_STDOUT" "$T/status-before.json"
s() { jq -c "$1" "$T/status-$2.json"; }
assert_eq "\"$dev_id\"" "$(s .device_id before)" "status before lock: device_id"
assert_eq "$e0" "$(s .epoch before)" "status before lock: epoch = lock counter"
assert_eq "$e0" "$(s .policy_epoch before)" "status before lock: policy_epoch = stored policy"
assert_eq false "$(s .locked before)" "status before lock: locked = false"
assert_eq '[7,11,15]' "$(s .pcrs before)" "status before lock: pcrs = [7,11,15]"
assert_eq true "$(s .tpm before)" "status before lock: the TPM was reachable"
expect_ok tpcdisk status "$IMG"
assert_file_contains "$EXPECT_STDOUT" '^State: +unlockable$' "status (text) before lock: unlockable"

# ---- lock ------------------------------------------------------------------------------------------
EXPECT_NAME="lock" expect_ok tpcdisk lock
e1=$(cat "$EXPECT_STDOUT")
assert_match '^[0-9]+$' "$e1" "lock prints the new epoch on stdout"
assert_eq 1 "$((e1 > e0))" "the new epoch $e1 is strictly greater than $e0"
assert_file_contains "$EXPECT_STDERR" "Locked: the lock counter is now at epoch $e1" "lock says what it did"
disk_tpm_status dev1
assert_eq "$e1" "$DISK_EPOCH" "tpm-status shows the new epoch"

expect_ok tpcdisk status "$IMG" --json
cp "$EXPECT_STDOUT" "$T/status-after.json"
assert_eq "\"$dev_id\"" "$(s .device_id after)" "status after lock: device_id unchanged"
assert_eq "$e1" "$(s .epoch after)" "status after lock: epoch = new counter value"
assert_eq "$e0" "$(s .policy_epoch after)" "status after lock: policy_epoch still the old one"
assert_eq true "$(s .locked after)" "status after lock: locked = true"
assert_eq '[7,11,15]' "$(s .pcrs after)" "status after lock: pcrs unchanged"
expect_ok tpcdisk status "$IMG"
assert_file_contains "$EXPECT_STDOUT" '^State: +LOCKED$' "status (text) after lock: LOCKED"

# ---- the old epoch's policy is dead, in this boot and the next ---------------------------------------
disk_reboot dev1
EXPECT_NAME="after lock: unlock with the stored policy (exit 3)" \
	disk_expect_fail_unchanged "$IMG" 3 "the device is locked: lock counter is at epoch $e1, the policy is for epoch $e0" \
	tpcdisk unlock "$IMG" --test
EXPECT_NAME="after lock: explicit --policy for epoch $e0 (exit 3)" \
	disk_expect_fail_unchanged "$IMG" 3 "locked.*epoch $e1.*epoch $e0.*ask the helpdesk for a policy for the new epoch, or use the recovery key" \
	tpcdisk unlock "$IMG" --test --policy "$T/p-old.json"
assert_pcr15_zero dev1 "a locked refusal leaves PCR 15 alone"
disk_sign_current dev1 "$T/p-future.json" --epoch $((e1 + 5))
EXPECT_NAME="a policy for a future epoch $((e1 + 5)) (exit 3)" \
	disk_expect_fail_unchanged "$IMG" 3 "the lock counter is at epoch $e1 but the policy is for a later epoch $((e1 + 5))" \
	tpcdisk unlock "$IMG" --test --policy "$T/p-future.json"
assert_eq true "$(disk_status_field "$IMG" .locked)" "still locked after the refusals"

# ---- a policy for the new epoch unlocks and is kept ----------------------------------------------------
disk_sign_current dev1 "$T/p-new.json"
assert_eq "$e1" "$(jq .epoch "$T/p-new.json")" "the new policy is for epoch $e1"
EXPECT_NAME="policy for epoch $e1 unlocks (exit 0)" expect_ok tpcdisk unlock "$IMG" --test --policy "$T/p-new.json"
assert_file_contains "$EXPECT_STDERR" "epoch $e1\\)" "unlock reports epoch $e1"
assert_eq "$e1" "$(disk_status_field "$IMG" .policy_epoch)" "the new policy is stored in the token"
assert_eq false "$(disk_status_field "$IMG" .locked)" "status: no longer locked"
disk_reboot dev1
EXPECT_NAME="next boot: unlock without --policy uses the stored epoch-$e1 policy" expect_ok tpcdisk unlock "$IMG" --test
disk_reboot dev1
EXPECT_NAME="the old policy cannot come back after an unlock (exit 3)" \
	disk_expect_fail_unchanged "$IMG" 3 "lock counter is at epoch $e1, the policy is for epoch $e0" \
	tpcdisk unlock "$IMG" --test --policy "$T/p-old.json"

# ---- lock again: only up, and the stored policy dies with it ---------------------------------------------
EXPECT_NAME="lock again" expect_ok tpcdisk lock
e2=$(cat "$EXPECT_STDOUT")
assert_eq 1 "$((e2 > e1))" "second lock: $e2 > $e1"
swtpm_reboot dev1
disk_measured_boot dev1
disk_tpm_status dev1
assert_eq "$e2" "$DISK_EPOCH" "the counter keeps its value across a reboot"
EXPECT_NAME="after the second lock the stored epoch-$e1 policy fails (exit 3)" \
	disk_expect_fail_unchanged "$IMG" 3 "lock counter is at epoch $e2, the policy is for epoch $e1" \
	tpcdisk unlock "$IMG" --test

# ---- status and lock without a reachable TPM / without a counter ------------------------------------------
port=$(_pick_port_pair)
EXPECT_NAME="status --json without a TPM still reads the token" \
	expect_ok env TRUSTPC_TPM2_DEVICE="swtpm:host=127.0.0.1,port=$port" "$DISK_BIN" status "$IMG" --json
assert_eq 'false null null' "$(jq -r '"\(.tpm) \(.epoch) \(.locked)"' "$EXPECT_STDOUT")" \
	"status without a TPM: tpm false, epoch and locked unknown (null)"
assert_eq "$e1" "$(jq .policy_epoch "$EXPECT_STDOUT")" "status without a TPM: policy_epoch from the token"
EXPECT_NAME="lock without a TPM (exit 7, names the TPM)" \
	expect_fail 7 "Cannot reach a TPM at 'swtpm:host=127.0.0.1,port=$port'" \
	env TRUSTPC_TPM2_DEVICE="swtpm:host=127.0.0.1,port=$port" "$DISK_BIN" lock
swtpm_start fresh
EXPECT_NAME="lock on a TPM without a lock counter (exit 1)" \
	expect_fail 1 'There is no lock counter at NV index 0x01807c50: enroll a disk first' tpcdisk_on fresh lock
disk_tpm_status dev1
assert_eq "$e2" "$DISK_EPOCH" "locking another TPM did not touch dev1's counter"

test_done
