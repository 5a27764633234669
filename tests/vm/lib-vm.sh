# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# tests/vm/lib-vm.sh — the booted image under QEMU/TCG for the 'vm' suite (docs/IMAGE.md).
#
#   vm_require           skip (77) unless TRUSTPC_VM_TESTS=1, root and the image tools are there
#   vm_image [NAME [VAR]]  build the image once per build dir into <builddir>/NAME (default
#                        vm-image; a variant's build options come from the environment, e.g.
#                        TRUSTPC_IMAGE_TEST_SESSION=1), or reuse it, or use the built image named
#                        by the variable VAR (default TRUSTPC_VM_IMAGE); export VM_IMAGE_DIR
#                        (trustpc.img, uki.efi, roothash, pcr11.json, work/…) and VM_ROOTHASH
#   vm_disk_copy NAME    a sparse copy of the image in the test's temp dir; prints its path
#   vm_esp_put DISK FILE PATH     write FILE to the ESP of DISK at PATH (mtools, no mount)
#   vm_root_offset DISK  byte offset of the 'root' partition in DISK
#   vm_run NAME DISK [run-vm options…]  boot DISK with the TPM/UEFI state $TRUSTPC_TEST_TMP/NAME,
#                        serial log $TRUSTPC_TEST_TMP/NAME.log (exported as VM_SERIAL); returns
#                        run-vm's exit status (0 --until seen, 1 timeout, 4 --fail seen)
#
# The image is built from the binaries of TRUSTPC_BUILD_ROOT into TRUSTPC_BUILD_ROOT/vm-image
# (rebuilt when a binary or a file of image/ is newer than it); the debootstrap cache is
# /var/cache/trustpc-image (TRUSTPC_IMAGE_CACHE). Set TRUSTPC_VM_IMAGE=DIR to use a built image.

# shellcheck source=../lib/assert.sh
source "$TRUSTPC_SOURCE_ROOT/tests/lib/assert.sh"

VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-420}

vm_require() {
	# Minutes of TCG per test and a root build: only when asked (tools/run-tests asks), not in
	# every plain `meson test`.
	[[ "${TRUSTPC_VM_TESTS:-0}" == 1 ]] || skip "set TRUSTPC_VM_TESTS=1 to boot the image (tools/run-tests does)"
	[[ $(id -u) == 0 ]] || skip "the vm suite needs root (debootstrap, chroot)"
	require_cmd qemu-system-x86_64 swtpm swtpm_setup debootstrap mksquashfs veritysetup sbsign \
		objcopy sfdisk mkfs.vfat mcopy socat jq zstd cpio
	[[ -f /usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd && -f /usr/lib/systemd/boot/efi/linuxx64.efi.stub ]] ||
		skip "ovmf or systemd-boot-efi missing"
}

_vm_image_stale() {
	local dir=$1 f b=$TRUSTPC_BUILD_ROOT
	[[ -f "$dir/manifest" && -f "$dir/trustpc.img" ]] || return 0
	for f in "$b/boot/trustpc-disk" "$b/boot/libcryptsetup-token-trustpc-tpm2.so" "$b/daemon/trustpcd" \
		"$b/daemon/pam_trustpc.so" $(find "$TRUSTPC_SOURCE_ROOT/image" -type f); do
		[[ "$f" -nt "$dir/manifest" ]] && return 0
	done
	return 1
}

vm_image() {
	local override=${2:-TRUSTPC_VM_IMAGE} dir
	dir=${!override:-$TRUSTPC_BUILD_ROOT/${1:-vm-image}}
	mkdir -p "$dir"
	# One build at a time per build dir, whatever runs the tests in parallel.
	exec {_vm_lock}>"$dir.lock"
	flock "$_vm_lock"
	if [[ -z "${!override:-}" ]] && _vm_image_stale "$dir"; then
		echo "# building the image into $dir (log $dir.build.log)" >&2
		rm -f "$dir/manifest"
		if ! "$TRUSTPC_SOURCE_ROOT/image/trustpc-image" build --out "$dir" \
			--build-root "$TRUSTPC_BUILD_ROOT" --cache "${TRUSTPC_IMAGE_CACHE:-/var/cache/trustpc-image}" \
			>"$dir.build.log" 2>&1; then
			tail -n 40 "$dir.build.log" >&2
			flock -u "$_vm_lock"
			not_ok "image build" "see $dir.build.log"
			return 1
		fi
	fi
	flock -u "$_vm_lock"
	VM_IMAGE_DIR=$dir
	VM_ROOTHASH=$(cat "$dir/roothash")
	export VM_IMAGE_DIR VM_ROOTHASH
}

vm_disk_copy() {
	local out="$TRUSTPC_TEST_TMP/$1.img"
	cp --sparse=always "$VM_IMAGE_DIR/trustpc.img" "$out"
	echo "$out"
}

# _vm_part_start DISK LABEL: first byte of the partition named LABEL.
_vm_part_start() {
	local s
	s=$(sfdisk --json "$1" | jq -r --arg l "$2" '.partitiontable.partitions[] | select(.name == $l) | .start')
	[[ "$s" =~ ^[0-9]+$ ]] || return 1
	echo $((s * 512))
}

vm_root_offset() { _vm_part_start "$1" root; }

vm_esp_put() {
	local off
	off=$(_vm_part_start "$1" esp) || return 1
	mcopy -o -i "$1@@$off" "$2" "::$3"
}

vm_run() {
	local name=$1 disk=$2
	shift 2
	VM_SERIAL="$TRUSTPC_TEST_TMP/$name.log"
	export VM_SERIAL
	: >"$VM_SERIAL"
	"$TRUSTPC_SOURCE_ROOT/image/run-vm" "$disk" --tpm-state "$TRUSTPC_TEST_TMP/$name" \
		--serial "$VM_SERIAL" --timeout "$VM_BOOT_TIMEOUT" "$@"
}

# vm_log_show: the serial log on stderr (for a failed check).
vm_log_show() {
	echo "# ---- serial log $VM_SERIAL (last 60 lines)" >&2
	tail -n 60 "$VM_SERIAL" | sed 's/^/# /' >&2
}
