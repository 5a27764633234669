# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# tests/vm/lib-vm-device.sh — a fleet server on the host and one provisioned device image under
# image/run-vm, for tests/vm/test-vm-device.sh and `tools/demo --vm` (docs/IMAGE.md "Device life
# cycle"). Source after tests/vm/lib-vm.sh and tests/integration/test-server-common.sh; needs
# TRUSTPC_SOURCE_ROOT, TRUSTPC_BUILD_ROOT and the temp dir TRUSTPC_TEST_TMP.
#
#   vmdev_image                build (or reuse) the test variant of the image
#                              (TRUSTPC_IMAGE_TEST_SESSION=1: a logind session on the console whose
#                              Lock signals are printed) into IMG_DIR (TRUSTPC_VM_IMAGE_DEVICE, else
#                              $TRUSTPC_BUILD_ROOT/vm-image-device); DISK = a sparse copy of it
#   vmdev_server               manufacture the VM's TPM (VMTPM), start trustpc-server trusting its
#                              EK CA, with operators op-admin and op-helpdesk; ctl ROLE ARGS… runs
#                              trustpcctl as one of them
#   vmdev_provision NAME       register pcr11.json as image NAME, make an enrollment token, write
#                              provision.conf and the server's CA into DISK's ESP
#   vm_start LOG [opts]        boot DISK in the background (VM_PID), serial log LOG
#   vm_stop                    power off (run-vm stops QEMU and swtpm)
#   vm_wait LOG REGEX [FROM]   0 once REGEX is in LOG (from line FROM on), bounded by VMDEV_WAIT
#   serial_value LOG REGEX     the last capture group 1 of REGEX in LOG
#   console_type LOG TEXT      type TEXT + Enter on the serial console, byte by byte
#   show_has REGEX / cmd_done ID / queue VERB ARGS…   trustpcctl show DEV, commands, a helpdesk
#                              command's id

VMDEV_WAIT=${TRUSTPC_VM_BOOT_TIMEOUT:-900}
# Waits here are for boots of minutes, and a check may start trustpcctl (a TLS handshake): poll
# every 0.25 s, not every 20 ms, so that the checks do not take CPU from the emulated guest.
POLL_INTERVAL=${POLL_INTERVAL:-0.25}

vmdev_image() {
	TRUSTPC_IMAGE_TEST_SESSION=1 vm_image vm-image-device TRUSTPC_VM_IMAGE_DEVICE || return 1
	IMG_DIR=$VM_IMAGE_DIR
	[[ -f "$IMG_DIR/pcr11.json" ]] || { echo "no pcr11.json in $IMG_DIR" >&2; return 1; }
	DISK=$TRUSTPC_TEST_TMP/disk.img
	cp --sparse=always "$IMG_DIR/trustpc.img" "$DISK"
}

vmdev_server() {
	local t=$TRUSTPC_TEST_TMP role
	# The machine's TPM, manufactured the way run-vm does it, so the server can trust its CA.
	VMTPM=$t/vmtpm
	(SWTPM_ROOT=$VMTPM && source "$TRUSTPC_SOURCE_ROOT/tests/lib/swtpm.sh" && SWTPM_ROOT=$VMTPM &&
		swtpm_start vm >/dev/null && swtpm_stop vm) || { echo "manufacturing the VM's TPM failed" >&2; return 1; }
	[[ -f "$VMTPM/ca/ca-bundle.pem" ]] || { echo "no TPM CA at $VMTPM/ca/ca-bundle.pem" >&2; return 1; }
	# The server's certificate names trustpc-server; the guest reaches it as 10.0.2.100.
	VMDEV_STATE=$t/server
	server_init "$VMDEV_STATE" --hostname trustpc-server
	for role in admin helpdesk; do
		(umask 077 && "$SERVER_BIN" operator add "op-$role" --role "$role" --state-dir "$VMDEV_STATE" >"$t/$role.token")
	done
	printf 'heartbeat = 5\n' >"$t/server.conf"
	server_start "$VMDEV_STATE" --tpm-ca "$VMTPM/ca/ca-bundle.pem" --config "$t/server.conf"
	# trustpcctl checks the certificate's name, trustpc-server: it runs in a private mount
	# namespace whose /etc/hosts maps that name to the loopback (the host's file is not touched).
	printf '127.0.0.1\tlocalhost trustpc-server\n' >"$t/hosts"
	VMDEV_CTL=$(find_binary trustpcctl)
	[[ -n "$VMDEV_CTL" ]] || { echo "trustpcctl is not built" >&2; return 1; }
	export TRUSTPC_SERVER="trustpc-server:$ADMIN_PORT" TRUSTPC_CA="$VMDEV_STATE/ca.pem"
}

ctl() { # ctl ROLE ARGS…
	local role=$1
	shift
	unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$TRUSTPC_TEST_TMP/hosts" \
		"$VMDEV_CTL" --token-file "$TRUSTPC_TEST_TMP/$role.token" "$@"
}

vmdev_provision() { # vmdev_provision IMAGE-NAME
	local t=$TRUSTPC_TEST_TMP token
	ctl admin image register "$IMG_DIR/pcr11.json" "$1" || return 1
	token=$(ctl admin token create --image "$1" --ttl 2h | grep -oE 'tpe_[A-Za-z0-9_-]+' | head -n1)
	[[ "$token" == tpe_* ]] || { echo "no enrollment token" >&2; return 1; }
	cat >"$t/provision.conf" <<-EOF
		server_name = trustpc-server
		server_address = 10.0.2.100
		enroll_port = $ENROLL_PORT
		device_port = $DEVICE_PORT
		token = $token
	EOF
	vm_esp_put "$DISK" "$t/provision.conf" /trustpc/provision.conf &&
		vm_esp_put "$DISK" "$VMDEV_STATE/ca.pem" /trustpc/ca.pem
}

# Each "boot" is one run-vm (power on → power off); with --reboot a guest reboot stays in it.
VM_PID=
vm_start() { # vm_start LOG [run-vm options]
	local log=$1
	shift
	: >"$log"
	"$TRUSTPC_SOURCE_ROOT/image/run-vm" "$DISK" --tpm-state "$VMTPM" --serial "$log" \
		--serial-sock "$TRUSTPC_TEST_TMP/console.sock" --server-port "$ENROLL_PORT" \
		--server-port "$DEVICE_PORT" --timeout $((VMDEV_WAIT * 3)) "$@" >>"$TRUSTPC_TEST_TMP/run-vm.log" 2>&1 &
	VM_PID=$!
	cleanup_push "kill -TERM $VM_PID 2>/dev/null; wait $VM_PID 2>/dev/null"
	VM_T0=$(date +%s.%N)
}
vm_stop() {
	kill -TERM "$VM_PID" 2>/dev/null || true
	poll_until 60 eval "! kill -0 $VM_PID 2>/dev/null" || kill -KILL "$VM_PID" 2>/dev/null
	wait "$VM_PID" 2>/dev/null || true
}
vm_gone() { ! kill -0 "$VM_PID" 2>/dev/null; }
_serial_has() { tail -n "+${3:-1}" "$1" | grep -qaE -- "$2"; }
vm_wait() { poll_until "$VMDEV_WAIT" _serial_has "$1" "$2" "${3:-1}"; }
serial_value() { tr -d '\r' <"$1" | grep -aoE -- "$2" | tail -n 1 | sed -E "s/$2/\\1/"; }
since() { awk -v a="$VM_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }'; }
# console_type LOG TEXT: types TEXT and Enter on the serial console one byte at a time, each byte
# after the guest echoed the previous one into LOG (bounded). image/vm-type writes the whole line
# at once and QEMU's UART keeps only what fits its FIFO: a 64-letter key arrived as 8 letters.
console_type() {
	python3 - "$TRUSTPC_TEST_TMP/console.sock" "$1" "$2" <<-'PY'
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
