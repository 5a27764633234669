#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The firmware refuses a UKI that the enrolled key did not sign: once unsigned, once signed with a
# key of our own (a valid signature, but not by a key in db). Asserted from the serial log: the
# firmware's "Access Denied" and no line of the kernel or the initrd.
set -euo pipefail
source "$TRUSTPC_SOURCE_ROOT/tests/vm/lib-vm.sh"
vm_require
vm_image vm-image
require_cmd openssl sbsign mcopy

other_key="$TRUSTPC_TEST_TMP/other.key"
other_crt="$TRUSTPC_TEST_TMP/other.crt"
openssl req -new -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=not the fleet key" \
	-keyout "$other_key" -out "$other_crt" 2>/dev/null
sbsign --key "$other_key" --cert "$other_crt" --output "$TRUSTPC_TEST_TMP/other.efi" \
	"$VM_IMAGE_DIR/work/uki-unsigned.efi" 2>/dev/null
expect_ok sbverify --cert "$other_crt" "$TRUSTPC_TEST_TMP/other.efi"

for variant in unsigned other-key; do
	disk=$(vm_disk_copy "$variant")
	case $variant in
	unsigned) vm_esp_put "$disk" "$VM_IMAGE_DIR/work/uki-unsigned.efi" /EFI/BOOT/BOOTX64.EFI ;;
	other-key) vm_esp_put "$disk" "$TRUSTPC_TEST_TMP/other.efi" /EFI/BOOT/BOOTX64.EFI ;;
	esac
	rc=0
	# After the refusal OVMF has nothing else to boot (no network, no other disk): it says so.
	vm_run "$variant" "$disk" --timeout 240 \
		--until 'Access Denied.*|No bootable option' --fail 'Linux version|trustpc-initrd|trustpc: booted' || rc=$?
	assert_eq 0 "$rc" "$variant UKI: the firmware stopped without starting it" || vm_log_show
	assert_file_contains "$VM_SERIAL" 'Access Denied' "$variant UKI: refused by Secure Boot (Access Denied)" || vm_log_show
	if grep -aqE 'Linux version|trustpc-initrd|trustpc: booted' "$VM_SERIAL"; then
		not_ok "$variant UKI: nothing of the kernel ran"
		vm_log_show
	else
		ok "$variant UKI: nothing of the kernel ran"
	fi
done
test_done
