#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# trustpcd's executor carries out signed commands (issue 4) against a real swtpm and real LUKS2
# images. tests/unit/daemon/exec-command signs each command with a test command key and hands it to
# the real executor loop over the privsep socketpair, as the network process does:
#   lock → counter +1, state locked, the disk no longer unlocks (exit 3); redelivery → no second
#   increment, the same result; an older seq / another device / another key / expired → rejected
#   with the reason, nothing changed; unlock with the new epoch's policy → the disk opens again;
#   wipe corporate → that image opens with nothing (TPM, passphrase, recovery key), personal still
#   does; the executor killed after the intent record / after the increment → after redelivery the
#   device is locked exactly once.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/disk.sh"
T=$TRUSTPC_TEST_TMP
EXE="$TRUSTPC_BUILD_ROOT/tests/unit/daemon/exec-command"
[[ -x "$EXE" ]] || { not_ok "exec-command is built at $EXE"; exit 1; }

swtpm_start dev
disk_measured_boot dev
disk_keys
CORP=$T/corp.img
PERS=$T/personal.img
EXPECT_NAME="enroll corp.img" expect_ok disk_enroll dev "$CORP"
EXPECT_NAME="enroll personal.img" expect_ok disk_enroll dev "$PERS"
disk_tpm_status dev
DEV=$DISK_DEVICE_ID
E0=$DISK_EPOCH

# the state dir as trustpcd enroll leaves it, plus the fleet command key
S=$T/state
mkdir -m 0700 "$S"
cp "$DISK_KEYS/policy.pub" "$S/policy-key.pem"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/cmd.key" 2>/dev/null
openssl ec -in "$T/cmd.key" -pubout -out "$S/command-key.pem" 2>/dev/null
printf 'volume.corporate = %s\nvolume.personal = %s\n' "$CORP" "$PERS" >"$S/trustpcd.conf"

# run_cmd OUT ARGS…: one signed command through the executor; OUT gets its KEY=VALUE reply
run_cmd() {
	local out=$1
	shift
	"$EXE" --state-dir "$S" --key "$T/cmd.key" "$@" >"$out" 2>"$out.err"
}
field() { sed -n "s/^$2=//p" "$1"; }
counter() { disk_tpm_status dev >/dev/null && echo "$DISK_EPOCH"; }
state_hash() { sha256sum "$S/commands.json" 2>/dev/null | cut -d' ' -f1; }
unlock_test() { tpcdisk_on dev unlock "$1" --test; }

# the first policy (epoch E0) into both tokens, as the first boot after enrollment does
disk_sign_current dev "$T/p0.json"
for img in "$CORP" "$PERS"; do
	EXPECT_NAME="$(basename "$img"): first unlock with the epoch $E0 policy" expect_ok tpcdisk_on dev unlock "$img" --test --policy "$T/p0.json"
	disk_reboot dev
done
EXPECT_NAME="before any command corp.img unlocks with the TPM" expect_ok unlock_test "$CORP"
disk_reboot dev

# ---- lock -----------------------------------------------------------------------------------------
LOCK_ID=0123456789abcdef0123456789abcd01
EXPECT_NAME="lock (seq 1) is executed" expect_ok run_cmd "$T/r1" --type lock --seq 1 --id $LOCK_ID
assert_eq done "$(field "$T/r1" status)" "lock: status done"
assert_eq $((E0 + 1)) "$(field "$T/r1" epoch)" "lock: the result carries epoch $((E0 + 1))"
assert_eq 1 "$(field "$T/r1" locked)" "lock: the executor reports locked"
assert_eq $((E0 + 1)) "$(counter)" "lock: the TPM counter moved by one"
assert_eq true "$(jq .locked "$S/commands.json")" "lock: commands.json says locked"
assert_eq test "$(jq -r .lock_reason "$S/commands.json")" "lock: commands.json keeps the operator's reason (pam_trustpc shows it)"
assert_eq 1 "$(jq .last_seq "$S/commands.json")" "lock: commands.json last_seq 1"
[[ ! -e "$S/command-intent.json" ]] && ok "lock: no intent record left" || not_ok "lock: no intent record left"
EXPECT_NAME="locked: trustpc-disk unlock --test fails with exit 3" expect_fail 3 "" unlock_test "$CORP"
disk_reboot dev

EXPECT_NAME="the same lock redelivered" expect_ok run_cmd "$T/r1b" --type lock --seq 1 --id $LOCK_ID
assert_eq 1 "$(field "$T/r1b" redelivered)" "redelivery: answered from the stored result"
assert_eq "$(field "$T/r1" reason)" "$(field "$T/r1b" reason)" "redelivery: the same result"
assert_eq $((E0 + 1)) "$(counter)" "redelivery: no second increment"

# ---- rejections: nothing changes ------------------------------------------------------------------
openssl ecparam -name prime256v1 -genkey -noout -out "$T/stranger.key" 2>/dev/null
expect_rejected() {
	local what=$1 pattern=$2 before_hash before_counter
	shift 2
	before_hash=$(state_hash)
	before_counter=$(counter)
	EXPECT_NAME="$what: answered" expect_ok "$@"
	assert_eq rejected "$(field "$T/rj" status)" "$what: rejected"
	assert_match "$pattern" "$(field "$T/rj" reason)" "$what: the reason says why"
	assert_eq "$before_hash" "$(state_hash)" "$what: commands.json unchanged"
	assert_eq "$before_counter" "$(counter)" "$what: counter unchanged"
	[[ ! -e "$S/command-intent.json" ]] && ok "$what: no intent written" || not_ok "$what: no intent written"
}
expect_rejected "another device" "another device" run_cmd "$T/rj" --type lock --seq 2 --device ffffffffffffffffffffffffffffffff
run_stranger() { "$EXE" --state-dir "$S" --key "$T/stranger.key" "$@" >"$T/rj" 2>"$T/rj.err"; }
expect_rejected "another key" "COSE" run_stranger --type lock --seq 2
expect_rejected "expired" "expired" run_cmd "$T/rj" --type lock --seq 2 --exp-delta -30
expect_rejected "seq 1 with another id" "sequence not above" run_cmd "$T/rj" --type lock --seq 1
EXPECT_NAME="locked: still exit 3 after the rejections" expect_fail 3 "" unlock_test "$CORP"
disk_reboot dev

# ---- unlock ----------------------------------------------------------------------------------------
disk_sign_current dev "$T/p-new.json"
assert_eq $((E0 + 1)) "$DISK_EPOCH" "the new policy is for epoch $((E0 + 1))"
disk_sign_current dev "$T/p-old.json" --epoch "$E0"
EXPECT_NAME="unlock with the old epoch's policy: answered" expect_ok run_cmd "$T/r2" --type unlock --seq 2 --policy "$T/p-old.json"
assert_eq failed "$(field "$T/r2" status)" "unlock with the old epoch's policy fails"
assert_match "epoch $E0" "$(field "$T/r2" reason)" "it says the policy is for epoch $E0"
EXPECT_NAME="still locked after it" expect_fail 3 "" unlock_test "$CORP"
disk_reboot dev
EXPECT_NAME="unlock (seq 3) with the new epoch's policy" expect_ok run_cmd "$T/r3" --type unlock --seq 3 --policy "$T/p-new.json"
assert_eq done "$(field "$T/r3" status)" "unlock: done"
assert_match "2 volume" "$(field "$T/r3" reason)" "unlock: both volume tokens updated"
assert_eq 0 "$(field "$T/r3" locked)" "unlock: the executor reports unlocked"
assert_eq false "$(jq .locked "$S/commands.json")" "unlock: commands.json says unlocked"
assert_eq null "$(jq .lock_reason "$S/commands.json")" "unlock: no lock reason left"
assert_eq $((E0 + 1)) "$(jq -r .epoch "$S/policy.json")" "unlock: policy.json holds the new epoch"
EXPECT_NAME="after unlock corp.img opens again (no --policy: from its token)" expect_ok unlock_test "$CORP"
disk_reboot dev
EXPECT_NAME="after unlock personal.img opens again" expect_ok unlock_test "$PERS"
disk_reboot dev
expect_rejected "older seq (2 after 3)" "sequence not above" run_cmd "$T/rj" --type lock --seq 2
assert_eq $((E0 + 1)) "$(counter)" "the older lock did not run"

# ---- wipe ------------------------------------------------------------------------------------------
RK=$(tpcdisk escrow-open --key "$DISK_KEYS/escrow.key" "$CORP.escrow")
EXPECT_NAME="before the wipe the recovery key opens corp.img" expect_ok luks_check_passphrase "$CORP" "$RK"
keyslots() { cryptsetup luksDump "$1" | grep -cE '^ +[0-9]+: luks2' || true; }
assert_ne 0 "$(keyslots "$CORP")" "before the wipe corp.img has keyslots (control for the count below)"
EXPECT_NAME="wipe corporate (seq 4)" expect_ok run_cmd "$T/r4" --type wipe --seq 4 --class corporate
assert_eq done "$(field "$T/r4" status)" "wipe: done"
assert_match "erased 1 volume.*corp.img" "$(field "$T/r4" reason)" "wipe: the result names what it destroyed"
EXPECT_NAME="wiped: the passphrase no longer opens corp.img" expect_fail '*' "" luks_check_passphrase "$CORP" "$DISK_PASSPHRASE"
EXPECT_NAME="wiped: the recovery key no longer opens corp.img" expect_fail '*' "" luks_check_passphrase "$CORP" "$RK"
EXPECT_NAME="wiped: the TPM no longer opens corp.img" expect_fail '*' "" unlock_test "$CORP"
assert_eq 0 "$(keyslots "$CORP")" "wiped: corp.img has no keyslot"
assert_ne 0 "$(keyslots "$PERS")" "personal.img keeps its keyslots"
disk_reboot dev
EXPECT_NAME="personal.img still opens with the TPM" expect_ok unlock_test "$PERS"
EXPECT_NAME="personal.img still opens with the passphrase" expect_ok luks_check_passphrase "$PERS" "$DISK_PASSPHRASE"
disk_reboot dev

# ---- crashes: locked exactly once -----------------------------------------------------------------
c0=$(counter)
ID5=0123456789abcdef0123456789abcd05
EXPECT_NAME="lock seq 5: executor killed after the intent record" expect_fail 3 "" run_cmd "$T/r5" --type lock --seq 5 --id $ID5 --crash intent-written
assert_eq killed "$(field "$T/r5" executor)" "the executor died at the crash point"
assert_eq 5 "$(jq .seq "$S/command-intent.json")" "the intent record of seq 5 survived"
assert_eq "$c0" "$(counter)" "killed before the increment: counter unchanged"
EXPECT_NAME="lock seq 5 redelivered after the restart" expect_ok run_cmd "$T/r5b" --type lock --seq 5 --id $ID5
assert_eq done "$(field "$T/r5b" status)" "resumed lock: done"
assert_eq $((c0 + 1)) "$(counter)" "resumed lock: counter +1"
assert_eq $((c0 + 1)) "$(field "$T/r5b" epoch)" "resumed lock: the result carries the new epoch"
[[ ! -e "$S/command-intent.json" ]] && ok "resumed lock: intent removed" || not_ok "resumed lock: intent removed"

ID6=0123456789abcdef0123456789abcd06
EXPECT_NAME="lock seq 6: executor killed after the increment" expect_fail 3 "" run_cmd "$T/r6" --type lock --seq 6 --id $ID6 --crash counter-incremented
assert_eq $((c0 + 2)) "$(counter)" "killed after the increment: counter +1"
assert_eq 5 "$(jq .last_seq "$S/commands.json")" "killed before the state write: last_seq still 5"
EXPECT_NAME="lock seq 6 redelivered after the restart" expect_ok run_cmd "$T/r6b" --type lock --seq 6 --id $ID6
assert_eq done "$(field "$T/r6b" status)" "completed lock: done"
assert_eq $((c0 + 2)) "$(counter)" "completed lock: no second increment (+1, not +2)"
assert_eq 6 "$(jq .last_seq "$S/commands.json")" "completed lock: last_seq 6"
assert_eq true "$(jq .locked "$S/commands.json")" "completed lock: locked"
EXPECT_NAME="and once more: the stored result" expect_ok run_cmd "$T/r6c" --type lock --seq 6 --id $ID6
assert_eq 1 "$(field "$T/r6c" redelivered)" "third delivery: stored result"
assert_eq $((c0 + 2)) "$(counter)" "third delivery: counter unchanged"
EXPECT_NAME="locked: personal.img no longer unlocks (exit 3)" expect_fail 3 "" unlock_test "$PERS"

test_done
