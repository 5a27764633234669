#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The initrd hook image/guest/initrd.d/50-trustpc-unlock.sh on the host, under busybox sh like in
# the initrd, with real LUKS2 image files and a real swtpm, in its dry-run mode (no device-mapper
# on the host: keys are checked, nothing is activated or mounted). Every boot situation and its
# console line: first boot (not LUKS: marker for trustpc-firstboot), a normal boot (TPM unlocks
# personal, the key file on personal opens corporate), a remote lock (the organisation's message,
# the recovery key typed in, a wrong key refused, an empty line boots without the data), another
# boot state (PCR 11 changed), the re-seal by the unlock's new-epoch policy (the next boot needs
# no key), and a corporate wipe (erased: the boot goes on, personal still opens). The VM test
# (tests/vm/test-vm-device.sh) runs the same hook for real.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/disk.sh"
require_cmd cryptsetup jq
BB=$(command -v busybox || true)
T=$TRUSTPC_TEST_TMP
HOOK=$TRUSTPC_SOURCE_ROOT/image/guest/initrd.d/50-trustpc-unlock.sh

swtpm_start dev
disk_measured_boot dev
disk_keys
P=$T/personal.img
C=$T/corporate.img
NEWROOT=$T/sysroot
mkdir -p "$NEWROOT/var/lib/trustpc" "$T/bin" "$T/run"
ln -s "$DISK_BIN" "$T/bin/trustpc-disk"

# hook [STDIN-TEXT]: one "boot" of the hook; its console output in $T/console.
hook() {
	printf '%b' "${1:-}" | env PATH="$T/bin:$PATH" TRUSTPC_UNLOCK_DRYRUN=1 TRUSTPC_RUN_DIR="$T/run" \
		TRUSTPC_PART_PERSONAL="$P" TRUSTPC_PART_CORPORATE="$C" NEWROOT="$NEWROOT" \
		TRUSTPC_TPM2_DEVICE="$(swtpm_tcti dev)" TRUSTPC_RECOVERY_TRIES=3 \
		${BB:+"$BB"} sh "$HOOK" >"$T/console" 2>&1
}
console_has() { # console_has REGEX NAME
	assert_file_contains "$T/console" "$1" "$2"
}
console_lacks() {
	if grep -Eq "$1" "$T/console"; then not_ok "$2" "$(cat "$T/console")"; else ok "$2"; fi
}

# ---- first boot: empty partitions ---------------------------------------------------------------
truncate -s 32M "$P" "$C"
expect_ok hook
console_has '^trustpc: first boot: the data partitions are not set up yet' "first boot: said so"
assert_eq yes "$([[ -f $T/run/first-boot ]] && echo yes)" "first boot: the marker for trustpc-firstboot.service is in /run"
rm -f "$P" "$C" "$T/run/first-boot"

# ---- the volumes as trustpc-firstboot makes them ----------------------------------------------
EXPECT_NAME="personal: LUKS2 sealed by trustpc-disk enroll" expect_ok disk_enroll dev "$P"
RK=$(tpcdisk escrow-open --key "$DISK_KEYS/escrow.key" "$P.escrow")
assert_match '^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$' "$RK" "the escrowed recovery key"
disk_sign_current dev "$T/policy-e0.json"
# trustpc-disk unlock --policy stores the first policy in the token (what enroll --policy does).
expect_ok tpcdisk unlock "$P" --test --policy "$T/policy-e0.json"
head -c 64 /dev/urandom >"$NEWROOT/var/lib/trustpc/corporate.key"
luks_image_make "$C" "unused" >/dev/null
printf unused >"$T/unused"
expect_ok cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$T/unused" "$C" \
	"$NEWROOT/var/lib/trustpc/corporate.key"
expect_ok cryptsetup luksRemoveKey --batch-mode "$C" "$T/unused"
disk_reboot dev

# ---- a normal boot ------------------------------------------------------------------------------
expect_ok hook
console_has '^trustpc: personal volume unlocked by the TPM$' "normal boot: TPM unlock"
console_has '^trustpc: corporate volume opened$' "normal boot: corporate opened with the key file on personal"
console_lacks 'recovery key' "normal boot: no recovery prompt"
assert_eq no "$([[ -f $T/run/first-boot ]] && echo yes || echo no)" "normal boot: no first-boot marker"
# A second run in the same boot: PCR 15 is extended, the TPM does not unseal twice.
expect_ok hook
console_has '^trustpc: disk refused: already unlocked once in this boot' "same boot again: refused by PCR 15, the reason named"
disk_reboot dev

# ---- remote lock: the counter moves, the stored policy is for the old epoch ------------------------
expect_ok tpcdisk lock
disk_reboot dev
hdr=$(luks_header_hash "$P")
EXPECT_NAME="locked boot, empty line" expect_ok hook '\n'
console_has '^trustpc: disk locked by your organisation: .*epoch' "locked: the organisation's lock, with the TPM's reason"
echo "# console: $(grep 'locked by' "$T/console")"
console_has '^trustpc: enter the recovery key' "locked: the recovery key is asked for"
console_has '^trustpc: booting without the personal volume' "locked, no key: boots without the data"
console_lacks 'corporate volume opened' "locked, no key: corporate stays closed (its key is on personal)"
assert_eq "$hdr" "$(luks_header_hash "$P")" "locked, no key: the header is unchanged"
disk_reboot dev

wrong=$(printf 'cbdefghi%.0s' 1 2 3 4 5 6 7 8)
EXPECT_NAME="locked boot, garbage, wrong key, right key" expect_ok hook "not-a-key\n$wrong\n${RK^^}\n"
console_has '^trustpc: that is not a recovery key' "garbage: said so"
console_has '^trustpc: the recovery key does not open the disk' "a wrong key: refused"
console_has '^trustpc: recovery key accepted' "the right key (upper case): accepted"
console_has '^trustpc: corporate volume opened$' "after recovery: corporate opens from personal"
assert_eq "$hdr" "$(luks_header_hash "$P")" "recovery in the initrd changes no header (the re-seal is the unlock's)"
disk_reboot dev

EXPECT_NAME="locked boot, three wrong keys" expect_ok hook "$wrong\n$wrong\n$wrong\n$RK\n"
assert_eq 3 "$(grep -c 'does not open the disk' "$T/console")" "three tries, then"
console_has '^trustpc: booting without the personal volume' "the boot goes on without the data"
disk_reboot dev

# ---- the helpdesk's unlock: a policy for the new epoch stored in the token (trustpcd's executor
# does this on the unlock command; tests/vm/test-vm-device.sh shows it in the VM) -----------------------
disk_sign_current dev "$T/policy-e1.json"
expect_ok tpcdisk unlock "$P" --test --policy "$T/policy-e1.json"
disk_reboot dev
expect_ok hook
console_has '^trustpc: personal volume unlocked by the TPM$' "after the unlock: the TPM unlocks again, no key"

# ---- another boot state: PCR 11 of another UKI ---------------------------------------------------
swtpm_reboot dev
tpm_pcr_extend dev 7 "$DISK_PCR7_EVENT"
tpm_pcr_extend dev 11 "$(printf 'another kernel command line' | sha256sum | cut -c1-64)"
expect_ok hook '\n'
console_has '^trustpc: disk refused: this boot is not the one the disk was sealed for' "PCR 11 differs: named"
echo "# console: $(grep 'disk refused' "$T/console")"
console_lacks 'locked by your organisation' "PCR 11 differs: not called a lock"
disk_reboot dev

# ---- corporate wipe: keyslots and tokens gone (what trustpcd's luks_erase leaves) ----------------
expect_ok cryptsetup luksErase --batch-mode "$C"
expect_ok hook
console_has '^trustpc: personal volume unlocked by the TPM$' "after the wipe: personal opens"
console_has '^trustpc: corporate volume erased$' "after the wipe: corporate erased, said so"
disk_reboot dev
rm -f "$C"
expect_ok hook
console_has '^trustpc: corporate volume erased$' "corporate partition missing: the boot goes on"

# ---- no personal partition label at all ----------------------------------------------------------
P="" expect_ok hook
console_has "^trustpc: no partition labelled 'personal'" "no personal partition: said so"
test_done
