#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A modified root partition fails dm-verity in the initrd, which says so on the console and stops:
# bytes flipped in a copy of the image (the signed UKI and its root hash unchanged).
set -euo pipefail
source "$TRUSTPC_SOURCE_ROOT/tests/vm/lib-vm.sh"
vm_require
vm_image vm-image

# flip DISK OFFSET: invert 16 bytes at OFFSET.
flip() {
	python3 - "$1" "$2" <<-'PY'
		import sys
		with open(sys.argv[1], "r+b") as f:
		    f.seek(int(sys.argv[2])); b = f.read(16)
		    f.seek(int(sys.argv[2])); f.write(bytes(x ^ 0xff for x in b))
	PY
}

root_size=$(stat -c %s "$VM_IMAGE_DIR/work/root.sqfs")
# Two places: the squashfs superblock (read by the mount) and the middle of the file data.
for where in superblock middle; do
	disk=$(vm_disk_copy "$where")
	off=$(vm_root_offset "$disk")
	case $where in
	superblock) pos=$((off + 8)) ;;
	middle) pos=$((off + root_size / 2)) ;;
	esac
	before=$(sha256sum <"$disk")
	flip "$disk" "$pos"
	assert_ne "$before" "$(sha256sum <"$disk")" "$where: the copy's root partition is modified"
	rc=0
	vm_run "$where" "$disk" --until 'trustpc: the system is stopped' --fail 'trustpc: booted|Access Denied' || rc=$?
	assert_eq 0 "$rc" "$where: the initrd stopped the boot" || vm_log_show
	assert_file_contains "$VM_SERIAL" '^trustpc: root filesystem failed dm-verity verification' \
		"$where: the console says the root failed dm-verity" || vm_log_show
	# …because the kernel's dm-verity found a block whose hash differs (not any other I/O error).
	assert_file_contains "$VM_SERIAL" 'device-mapper: verity: .*data block [0-9]+ is corrupted' \
		"$where: the kernel's dm-verity reported the corrupted block" || vm_log_show
	if grep -aq 'trustpc-initrd: switch_root' "$VM_SERIAL"; then
		not_ok "$where: the modified root was never switched to"
	else
		ok "$where: the modified root was never switched to"
	fi
done
test_done
