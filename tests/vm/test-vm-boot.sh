#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The image boots under enforced Secure Boot (OVMF snakeoil db, signed UKI) through the trustpc
# initrd (dm-verity root) to multi-user.target: every fact is read from the serial console.
set -euo pipefail
source "$TRUSTPC_SOURCE_ROOT/tests/vm/lib-vm.sh"
vm_require
vm_image vm-image

disk=$(vm_disk_copy boot)
rc=0
vm_run boot "$disk" --until 'trustpc: booted roothash=' \
	--fail 'trustpc: root filesystem failed|Kernel panic|Access Denied|trustpc: the system is stopped' || rc=$?
assert_eq 0 "$rc" "booted to multi-user.target (run-vm exit status)" || { vm_log_show; exit 1; }

# The firmware verified the UKI: Secure Boot on (the guest reads the SecureBoot variable).
assert_file_contains "$VM_SERIAL" '^trustpc: secureboot=1' "the guest runs with Secure Boot enabled" || vm_log_show
# The TPM's PCR 11 is what the build predicted with systemd-measure (the value disk policies are
# signed for): the stub measured exactly the UKI's sections and nothing extended it since.
assert_file_contains "$VM_SERIAL" "^trustpc: pcr11=$(jq -r '.sha256[0].hash' "$VM_IMAGE_DIR/pcr11.json")" \
	"PCR 11 in the guest equals pcr11.json" || vm_log_show
# The initrd opened the root through dm-verity with the root hash of the signed cmdline.
assert_file_contains "$VM_SERIAL" "trustpc-initrd: root verified \(dm-verity, root hash $VM_ROOTHASH\)" \
	"the initrd verified the root against the image's root hash" || vm_log_show
# The marker names the root hash the kernel was given, and systemd reports the boot finished.
line=$(grep -a '^trustpc: booted roothash=' "$VM_SERIAL" | tr -d '\r' | head -n1)
assert_match "^trustpc: booted roothash=$VM_ROOTHASH state=(running|degraded)" "$line" \
	"systemd reached multi-user.target with the verified root" || vm_log_show
assert_file_contains "$VM_SERIAL" '^trustpc: root-mount=ro squashfs /dev/mapper/root' \
	"the booted root is the read-only verity device" || vm_log_show
assert_file_contains "$VM_SERIAL" '^trustpc: root-login=locked' "root has no usable password" || vm_log_show
# No getty anywhere: nothing on the console asks for a login.
if grep -aq 'login:' "$VM_SERIAL"; then
	not_ok "no login prompt on the console"
	vm_log_show
else
	ok "no login prompt on the console"
fi
test_done
