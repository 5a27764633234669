#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The device life cycle on the booted image (suite vm; docs/IMAGE.md "Device life cycle"): a real
# trustpc-server on the host's loopback, the test image under image/run-vm (QEMU TCG, OVMF Secure
# Boot, swtpm), every assertion from the serial log or from trustpcctl.
#
#   boot 1   first boot: provision.conf on the ESP → enrolled, personal + corporate created and
#            sealed, reboot → the TPM unlocks personal, trustpcd attested (trustpcctl show), the
#            recovery key escrowed; PCR 11 in the guest = pcr11.json predicted by the build
#   lock     helpdesk lock --poweroff → logind's Lock signal for the test session on the console,
#            the signed result at the server, then the guest powers itself off
#   boot 2   the initrd: "disk locked by your organisation", a wrong key refused, the escrowed
#            recovery key (trustpcctl recovery-key) typed on the serial console → boots; helpdesk
#            unlock → done (the new epoch's policy stored in the token)
#   boot 3   the TPM unlocks without a key; helpdesk wipe --class corporate → done
#   boot 4   "corporate volume erased", the personal file written on boot 1 intact, attested again
#   boot 5   a UKI re-signed with the fleet key but with "init=/bin/sh" in its cmdline:
#            it boots (Secure Boot is satisfied), PCR 11 differs, the TPM refuses, the initrd says
#            so and asks for the recovery key; boot 6: the fleet's UKI back, the TPM unlocks again
#
# The image: TRUSTPC_VM_IMAGE_DEVICE (trustpc.img + pcr11.json of a build with
# TRUSTPC_IMAGE_TEST_SESSION=1), else built (or reused) in $TRUSTPC_BUILD_ROOT/vm-image-device.
# Skipped unless TRUSTPC_VM_TESTS=1 and root (tests/vm/lib-vm.sh).
# Waits are bounded by TRUSTPC_VM_BOOT_TIMEOUT (default 900 s per step under TCG). The server,
# the provisioning and the VM helpers: tests/vm/lib-vm-device.sh (shared with tools/demo --vm).
set -euo pipefail
source "$TRUSTPC_SOURCE_ROOT/tests/vm/lib-vm.sh"
vm_require
S=$TRUSTPC_SOURCE_ROOT
source "$S/tests/integration/test-server-common.sh"
source "$S/tests/vm/lib-vm-device.sh"
require_cmd curl openssl sbsign sbverify objcopy mcopy
T=$TRUSTPC_TEST_TMP

# The test variant of the image (a logind session on the console, its Lock signals printed), a
# server trusting the VM's TPM CA, provision.conf + the server's CA on the ESP (mtools, no mount).
vmdev_image || { not_ok "the test image"; exit 1; }
vmdev_server || { not_ok "the server for the VM"; exit 1; }
EXPECT_NAME="image register pcr11.json (PCR 11 only before the first device), token, provision.conf on the ESP" \
	expect_ok vmdev_provision vm-test
H11=$(jq -r '[.sha256[] | select(has("phase") | not) | .hash][0]' "$IMG_DIR/pcr11.json")

# serial_wait LOG REGEX NAME [FROM-LINE]: ok once REGEX is in LOG (from line FROM-LINE on; bounded),
# not_ok with the log's tail otherwise.
serial_wait() {
	if vm_wait "$1" "$2" "${4:-1}"; then
		ok "$3"
	else
		not_ok "$3" "$(tail -n 40 "$1")"
		return 1
	fi
}
serial_lacks() {
	if grep -qaE -- "$2" "$1"; then not_ok "$3" "$(grep -aE -- "$2" "$1")"; else ok "$3"; fi
}

# ---- boot 1: first boot, then the reboot into the sealed volumes ---------------------------------
B1=$T/boot1.log
vm_start "$B1" --reboot
serial_wait "$B1" '^trustpc: first boot: the data partitions are not set up yet' "boot 1: the initrd sees unformatted data partitions"
serial_wait "$B1" '^trustpc: first boot: enrolled as device [0-9a-f]{32}' "boot 1: enrolled" || { vm_stop; test_done; }
DEV=$(serial_value "$B1" '^trustpc: first boot: enrolled as device ([0-9a-f]{32}).*')
serial_wait "$B1" '^trustpc: first boot: done in [0-9.]+ s; rebooting' "boot 1: data partitions created and sealed, rebooting" || { vm_stop; test_done; }
echo "# first boot: enroll $(serial_value "$B1" '^trustpc: first boot: enrolled as device [0-9a-f]{32} in ([0-9.]+) s.*') s, all $(serial_value "$B1" '^trustpc: first boot: done in ([0-9.]+) s.*') s (guest uptime)"
pcr7=$(serial_value "$B1" '.*pcr7=([0-9a-f]{64}).*')
pcr11=$(serial_value "$B1" '.*pcr11=([0-9a-f]{64}).*')
assert_eq "$H11" "$pcr11" "PCR 11 in the booted guest is the value the build predicted (pcr11.json)"
serial_wait "$B1" '^trustpc: personal volume unlocked by the TPM' "boot 1b: the TPM unlocks personal after the reboot"
from=$(grep -naE '^trustpc: personal volume unlocked by the TPM' "$B1" | head -n1 | cut -d: -f1)
serial_wait "$B1" '^trustpc: corporate volume opened' "boot 1b: corporate opened" "$from"
serial_wait "$B1" '^trustpc: booted ' "boot 1b: booted" "$from"
poll_until 60 _serial_has "$B1" '^trustpc: systemd-analyze' "$from" || true
echo "# boot 1b: $(tr -d '\r' <"$B1" | grep -a '^trustpc: systemd-analyze' | tail -n1)"
personal=$(serial_value "$B1" '^trustpc-test: personal file: (written at boot [0-9a-f-]+).*')
assert_match '^written at boot ' "$personal" "boot 1b: a file written on the personal volume"
if poll_until 120 show_has '^State: +trusted'; then ok "trustpcctl show: attested (trusted) after $(since) s"; else not_ok "trustpcctl show: attested (trusted)" "$(ctl admin show "$DEV")"; fi
poll_until 120 show_has '^Recovery key: +escrowed' && ok "trustpcctl show: recovery key escrowed" ||
	not_ok "trustpcctl show: recovery key escrowed" "$(ctl admin show "$DEV")"
# PCR 7 (Secure Boot state) is the fleet's, read here from the first device; PCR 11 is kept.
EXPECT_NAME="image register with the device's PCR 7" expect_ok ctl admin image register "$IMG_DIR/pcr11.json" vm-test --pcr 7="$pcr7"

# ---- lock --poweroff: the session is locked, the result reaches the server, then the machine ------
# powers itself off (trustpcd's executor starts poweroff.target: the disk key leaves memory)
lock_id=$(queue lock "$DEV" --reason "reported stolen (vm test)" --poweroff)
assert_match '^[0-9a-f]{32}' "$lock_id" "helpdesk lock --poweroff queued"
serial_wait "$B1" '^trustpc-test: logind Lock /org/freedesktop/login1/session/' "lock: logind locked the employee's session"
poll_until 60 cmd_done "$lock_id" && ok "lock: done (signed result)" || not_ok "lock: done" "$(ctl admin commands "$DEV")"
serial_wait "$B1" 'reboot: Power down' "lock --poweroff: the guest powered itself off (kernel: reboot: Power down)" "$from"
poll_until 120 vm_gone && ok "lock --poweroff: QEMU ended on its own (the machine is off)" ||
	not_ok "lock --poweroff: QEMU ended on its own" "$(tail -n 20 "$B1")"
vm_stop

# ---- boot 2: the initrd refuses; the recovery key on the console ---------------------------------
B2=$T/boot2.log
vm_start "$B2"
serial_wait "$B2" '^trustpc: disk locked by your organisation: ' "boot 2: the initrd refuses: locked by the organisation" || { vm_stop; test_done; }
echo "# $(grep -a '^trustpc: disk locked' "$B2" | tail -n1)"
serial_wait "$B2" '^trustpc: enter the recovery key' "boot 2: asks for the recovery key"
RK=$(ctl admin --json recovery-key "$DEV" | jq -r .recovery_key)
assert_match '^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}' "$RK" "the escrowed recovery key (trustpcctl recovery-key)"
EXPECT_NAME="type a wrong key on the console" expect_ok console_type "$B2" "$(printf 'cbdefghi%.0s' 1 2 3 4 5 6 7 8)"
serial_wait "$B2" '^trustpc: the recovery key does not open the disk' "boot 2: a wrong key is refused"
EXPECT_NAME="type the recovery key on the console" expect_ok console_type "$B2" "$RK"
serial_wait "$B2" '^trustpc: recovery key accepted' "boot 2: the recovery key opens personal"
serial_wait "$B2" '^trustpc: corporate volume opened' "boot 2: corporate opened from personal"
serial_wait "$B2" '^trustpc: booted ' "boot 2: booted"
poll_until 120 show_has '^Connected: +yes' && ok "boot 2: trustpcd connected" || not_ok "boot 2: trustpcd connected" "$(ctl admin show "$DEV")"
unlock_id=$(queue unlock "$DEV")
assert_match '^[0-9a-f]{32}' "$unlock_id" "helpdesk unlock queued (policy for the new epoch)"
poll_until 60 cmd_done "$unlock_id" && ok "unlock: done (the token holds the new epoch's policy)" ||
	not_ok "unlock: done" "$(ctl admin commands "$DEV")"
vm_stop

# ---- boot 3: re-sealed — no key needed; then the corporate wipe ------------------------------------
B3=$T/boot3.log
vm_start "$B3"
serial_wait "$B3" '^trustpc: personal volume unlocked by the TPM' "boot 3: the TPM unlocks again without a key"
serial_wait "$B3" '^trustpc: booted ' "boot 3: booted"
serial_lacks "$B3" 'enter the recovery key' "boot 3: no recovery prompt"
poll_until 60 _serial_has "$B3" '^trustpc: systemd-analyze' || true
echo "# boot 3: $(tr -d '\r' <"$B3" | grep -a '^trustpc: systemd-analyze' | tail -n1)"
poll_until 120 show_has '^State: +trusted' && ok "boot 3: attested" || not_ok "boot 3: attested" "$(ctl admin show "$DEV")"
wipe_id=$(queue wipe "$DEV" --class corporate)
assert_match '^[0-9a-f]{32}' "$wipe_id" "helpdesk wipe --class corporate queued"
poll_until 60 cmd_done "$wipe_id" && ok "wipe: done" || not_ok "wipe: done" "$(ctl admin commands "$DEV")"
vm_stop

# ---- boot 4: corporate gone, personal intact ------------------------------------------------------
B4=$T/boot4.log
vm_start "$B4"
serial_wait "$B4" '^trustpc: personal volume unlocked by the TPM' "boot 4: personal unlocks"
serial_wait "$B4" '^trustpc: corporate volume erased' "boot 4: the corporate volume is gone, said so"
serial_wait "$B4" '^trustpc: booted ' "boot 4: the boot goes on"
assert_eq "$personal" "$(serial_value "$B4" '^trustpc-test: personal file: (.*)')" "boot 4: the file written on personal in boot 1 is intact"
assert_match '^none' "$(serial_value "$B4" '^trustpc-test: corporate file: (.*)')" "boot 4: no corporate file"
poll_until 120 show_has '^State: +trusted' && ok "boot 4: attested" || not_ok "boot 4: attested" "$(ctl admin show "$DEV")"
vm_stop

# ---- boot 5: a UKI signed with the fleet's key but with another cmdline -------------------------
# ("init=/bin/sh", an attacker's signed image asking for a root shell): the firmware boots it, PCR 11
# differs from the registered image's, so the TPM refuses the signed policy and the initrd asks for
# the recovery key. (objcopy cannot grow a PE section: the new cmdline has the old one's length.)
uki_dir=$T/uki-cmdline
mkdir -p "$uki_dir"
objcopy --dump-section .cmdline="$uki_dir/cmdline" "$IMG_DIR/work/uki-unsigned.efi" "$uki_dir/scratch.efi"
sed 's|console=tty0 |init=/bin/sh |' "$uki_dir/cmdline" >"$uki_dir/cmdline.new"
assert_eq "$(wc -c <"$uki_dir/cmdline")" "$(wc -c <"$uki_dir/cmdline.new")" "the changed cmdline has the old one's length"
objcopy --update-section .cmdline="$uki_dir/cmdline.new" "$IMG_DIR/work/uki-unsigned.efi" "$uki_dir/changed.efi"
objcopy --dump-section .cmdline="$uki_dir/cmdline.check" "$uki_dir/changed.efi" "$uki_dir/scratch.efi"
assert_file_contains "$uki_dir/cmdline.check" '^init=/bin/sh console=ttyS0' "the re-built UKI carries the changed cmdline"
openssl pkey -in /usr/share/ovmf/PkKek-1-snakeoil.key -passin pass:snakeoil -out "$uki_dir/key.pem"
sbsign --key "$uki_dir/key.pem" --cert /usr/share/ovmf/PkKek-1-snakeoil.pem --output "$uki_dir/changed-signed.efi" \
	"$uki_dir/changed.efi" 2>/dev/null
expect_ok sbverify --cert /usr/share/ovmf/PkKek-1-snakeoil.pem "$uki_dir/changed-signed.efi"
esp_off=$(_vm_part_start "$DISK" esp)
mcopy -n -i "$DISK@@$esp_off" ::/EFI/BOOT/BOOTX64.EFI "$uki_dir/original.efi"
assert_eq "$(sha256sum <"$IMG_DIR/uki.efi")" "$(sha256sum <"$uki_dir/original.efi")" "the ESP holds the built UKI before the change"
expect_ok vm_esp_put "$DISK" "$uki_dir/changed-signed.efi" /EFI/BOOT/BOOTX64.EFI
B5=$T/boot5.log
vm_start "$B5"
serial_wait "$B5" 'Command line: init=/bin/sh ' "boot 5: the firmware started the re-signed UKI (its cmdline in the kernel's log)"
serial_wait "$B5" '^trustpc: disk refused: this boot is not the one the disk was sealed for' \
	"boot 5: the TPM refuses: not the boot the disk was sealed for (PCR 11)"
echo "# $(tr -d '\r' <"$B5" | grep -a '^trustpc: disk refused' | tail -n1)"
serial_wait "$B5" '^trustpc: enter the recovery key' "boot 5: asks for the recovery key"
serial_lacks "$B5" '^trustpc: personal volume unlocked' "boot 5: personal not unlocked"
serial_lacks "$B5" '^trustpc: corporate volume opened' "boot 5: corporate not opened"
vm_stop
# Nothing changed on the disk or in the TPM: the fleet's UKI unlocks again without a key.
expect_ok vm_esp_put "$DISK" "$uki_dir/original.efi" /EFI/BOOT/BOOTX64.EFI
B6=$T/boot6.log
vm_start "$B6"
serial_wait "$B6" '^trustpc: personal volume unlocked by the TPM' "boot 6: the fleet's UKI back: the TPM unlocks personal again"
serial_lacks "$B6" 'enter the recovery key' "boot 6: no recovery prompt"
vm_stop

# The spent token is off the ESP; the rest of provision.conf stays.
mtype -i "$DISK@@$esp_off" ::/trustpc/provision.conf >"$T/provision.after"
assert_file_contains "$T/provision.after" '^server_name = trustpc-server' "provision.conf still on the ESP"
if grep -q 'token' "$T/provision.after"; then not_ok "the enrollment token was removed from the ESP" "$(cat "$T/provision.after")"; else ok "the enrollment token was removed from the ESP"; fi
test_done
