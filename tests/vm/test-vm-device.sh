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
#
# The image: TRUSTPC_VM_IMAGE_DEVICE (trustpc.img + pcr11.json of a build with
# TRUSTPC_IMAGE_TEST_SESSION=1), else built (or reused) in $TRUSTPC_BUILD_ROOT/vm-image-device.
# Skipped unless TRUSTPC_VM_TESTS=1 and root (tests/vm/lib-vm.sh).
# Waits are bounded by TRUSTPC_VM_BOOT_TIMEOUT (default 900 s per step under TCG).
set -euo pipefail
source "$TRUSTPC_SOURCE_ROOT/tests/vm/lib-vm.sh"
vm_require
S=$TRUSTPC_SOURCE_ROOT
source "$S/tests/integration/test-server-common.sh"
require_cmd curl
CTL=$(find_binary trustpcctl)
[[ -n "$CTL" ]] || { not_ok "trustpcctl is built"; exit 1; }
T=$TRUSTPC_TEST_TMP
WAIT=${TRUSTPC_VM_BOOT_TIMEOUT:-900}

# ---- the image: the test variant (a logind session, Lock signals on the console) ----------------
IMG_DIR=${TRUSTPC_VM_IMAGE_DEVICE:-$TRUSTPC_BUILD_ROOT/vm-image-device}
mkdir -p "$IMG_DIR"
exec {img_lock}>"$IMG_DIR.lock"
flock "$img_lock"
if [[ -z "${TRUSTPC_VM_IMAGE_DEVICE:-}" ]] && _vm_image_stale "$IMG_DIR"; then
	echo "# building the test image into $IMG_DIR (TRUSTPC_IMAGE_TEST_SESSION=1)" >&2
	rm -f "$IMG_DIR/manifest"
	TRUSTPC_IMAGE_TEST_SESSION=1 "$S/image/trustpc-image" build --out "$IMG_DIR" --build-root "$TRUSTPC_BUILD_ROOT" \
		--cache "${TRUSTPC_IMAGE_CACHE:-/var/cache/trustpc-image}" >"$IMG_DIR.build.log" 2>&1 ||
		{ flock -u "$img_lock"; not_ok "the test image builds" "$(tail -n 30 "$IMG_DIR.build.log")"; exit 1; }
fi
flock -u "$img_lock"
[[ -f "$IMG_DIR/pcr11.json" ]] || { not_ok "the image has pcr11.json"; exit 1; }
DISK=$T/disk.img
cp --sparse=always "$IMG_DIR/trustpc.img" "$DISK"

# ---- the machine's TPM, manufactured the way run-vm does it, so the server can trust its CA ------
VMTPM=$T/vmtpm
(SWTPM_ROOT=$VMTPM && source "$S/tests/lib/swtpm.sh" && SWTPM_ROOT=$VMTPM && swtpm_start vm >/dev/null && swtpm_stop vm) ||
	{ not_ok "manufacture the VM's TPM"; exit 1; }
TPM_CA=$VMTPM/ca/ca-bundle.pem
[[ -f "$TPM_CA" ]] || { not_ok "the VM's TPM CA is at $TPM_CA"; exit 1; }

# ---- the server: its certificate names trustpc-server, the guest reaches it as 10.0.2.100 ---------
st=$T/server
server_init "$st" --hostname trustpc-server
for role in admin helpdesk; do
	(umask 077 && "$SERVER_BIN" operator add "op-$role" --role "$role" --state-dir "$st" >"$T/$role.token")
done
printf 'heartbeat = 5\n' >"$T/server.conf"
server_start "$st" --tpm-ca "$TPM_CA" --config "$T/server.conf"
# trustpcctl checks the certificate's name, trustpc-server: it runs in a private mount namespace
# whose /etc/hosts maps that name to the loopback (the host's own file is not touched).
printf '127.0.0.1\tlocalhost trustpc-server\n' >"$T/hosts"
export TRUSTPC_SERVER="trustpc-server:$ADMIN_PORT" TRUSTPC_CA="$st/ca.pem"
ctl() {
	local role=$1
	shift
	unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$T/hosts" \
		"$CTL" --token-file "$T/$role.token" "$@"
}

EXPECT_NAME="image register pcr11.json (PCR 11 only before the first device)" \
	expect_ok ctl admin image register "$IMG_DIR/pcr11.json" vm-test
H11=$(jq -r '[.sha256[] | select(has("phase") | not) | .hash][0]' "$IMG_DIR/pcr11.json")
token=$(ctl admin token create --image vm-test --ttl 2h | grep -oE 'tpe_[A-Za-z0-9_-]+' | head -n1)
assert_match '^tpe_' "$token" "an enrollment token for image vm-test"

# ---- provisioning on the ESP (mtools at the ESP's offset; nothing mounted) -------------------------
cat >"$T/provision.conf" <<EOF
server_name = trustpc-server
server_address = 10.0.2.100
enroll_port = $ENROLL_PORT
device_port = $DEVICE_PORT
token = $token
EOF
expect_ok vm_esp_put "$DISK" "$T/provision.conf" /trustpc/provision.conf
expect_ok vm_esp_put "$DISK" "$st/ca.pem" /trustpc/ca.pem

# ---- the VM: run-vm in the background; each "boot" is one run (power on → power off) --------------
VM_PID=
vm_start() { # vm_start LOG [run-vm options]
	local log=$1
	shift
	: >"$log"
	"$S/image/run-vm" "$DISK" --tpm-state "$VMTPM" --serial "$log" --serial-sock "$T/console.sock" \
		--server-port "$ENROLL_PORT" --server-port "$DEVICE_PORT" --timeout $((WAIT * 3)) "$@" \
		>>"$T/run-vm.log" 2>&1 &
	VM_PID=$!
	cleanup_push "kill -TERM $VM_PID 2>/dev/null; wait $VM_PID 2>/dev/null"
	VM_T0=$(date +%s.%N)
}
vm_stop() { # power off (run-vm's trap stops QEMU and swtpm)
	kill -TERM "$VM_PID" 2>/dev/null || true
	poll_until 60 eval "! kill -0 $VM_PID 2>/dev/null" || kill -KILL "$VM_PID" 2>/dev/null
	wait "$VM_PID" 2>/dev/null || true
}
# serial_wait LOG REGEX NAME [FROM-LINE]: ok once REGEX is in LOG (from line FROM-LINE on; bounded),
# not_ok with the log's tail otherwise.
_serial_has() { tail -n "+${3:-1}" "$1" | grep -qaE -- "$2"; }
serial_wait() {
	if poll_until "$WAIT" _serial_has "$1" "$2" "${4:-1}"; then
		ok "$3"
	else
		not_ok "$3" "$(tail -n 40 "$1")"
		return 1
	fi
}
serial_lacks() {
	if grep -qaE -- "$2" "$1"; then not_ok "$3" "$(grep -aE -- "$2" "$1")"; else ok "$3"; fi
}
serial_value() { tr -d '\r' <"$1" | grep -aoE -- "$2" | tail -n 1 | sed -E "s/$2/\\1/"; }
since() { awk -v a="$VM_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }'; }
# console_type LOG TEXT: types TEXT and Enter on the serial console one byte at a time, each byte
# after the guest echoed the previous one into LOG (bounded). image/vm-type writes the whole line
# at once and QEMU's UART keeps only what fits its FIFO: a 64-letter key arrived as 8 letters.
console_type() {
	python3 - "$T/console.sock" "$1" "$2" <<-'PY'
		import os, socket, sys, time
		sock_path, log, text = sys.argv[1], sys.argv[2], sys.argv[3]
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		s.connect(sock_path)
		for ch in text:
		    size = os.path.getsize(log)
		    s.sendall(ch.encode())
		    deadline = time.monotonic() + 20
		    while os.path.getsize(log) <= size:
		        if time.monotonic() > deadline:
		            sys.exit("no echo of %r within 20 s" % ch)
		        time.sleep(0.02)
		s.sendall(b"\r")
		s.close()
	PY
}
show_has() { ctl admin show "$DEV" | grep -qE "$1"; }
cmd_done() { [[ "$(ctl admin --json commands "$DEV" | jq -r --arg id "$1" '.[] | select(.id == $id) | .state')" == "done" ]]; }
queue() { # queue VERB ARGS…: the command's id
	ctl helpdesk --json "$@" | jq -r '.[0].id // .id'
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
vm_gone() { ! kill -0 "$VM_PID" 2>/dev/null; }
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

# The spent token is off the ESP; the rest of provision.conf stays.
esp_off=$(_vm_part_start "$DISK" esp)
mtype -i "$DISK@@$esp_off" ::/trustpc/provision.conf >"$T/provision.after"
assert_file_contains "$T/provision.after" '^server_name = trustpc-server' "provision.conf still on the ESP"
if grep -q 'token' "$T/provision.after"; then not_ok "the enrollment token was removed from the ESP" "$(cat "$T/provision.after")"; else ok "the enrollment token was removed from the ESP"; fi
test_done
