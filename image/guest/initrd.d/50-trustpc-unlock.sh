# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# /lib/trustpc/initrd.d/50-trustpc-unlock.sh — sourced by the initrd's /init (busybox ash) after
# the verified root is at $NEWROOT and before switch_root (docs/IMAGE.md "Device life cycle").
#
#   personal  (GPT label): LUKS2 with the trustpc-tpm2 token. Unlocked by the TPM (trustpc-disk
#             unlock: signed policy for PCR 7 + 11, PCR 15 = 0, the lock counter's epoch); when the
#             TPM refuses, the reason in one line and the recovery key asked for on the console.
#             Mounted at $NEWROOT/var.
#   corporate (GPT label): LUKS2 opened with the key file var/lib/trustpc/corporate.key that lives
#             on personal (one TPM unseal per boot: PCR 15 is extended after the first, so a second
#             volume cannot be unsealed too). Mounted at $NEWROOT/var/lib/trustpc-corporate.
#             Erased (a remote wipe) or missing: "trustpc: corporate volume erased", the boot goes on.
#   Not yet LUKS (first boot): nothing is mounted; /init makes /var a tmpfs and
#             trustpc-firstboot.service sets the volumes up.
#
# Every line for the user starts with "trustpc: " (the tests read the serial log). The hook never
# stops the boot: without the personal volume the system comes up with an empty /var.
#
# Host tests (tests/vm/test-vm-device.sh --host, no device-mapper): TRUSTPC_UNLOCK_DRYRUN=1 checks
# keys without activating (trustpc-disk unlock --test, cryptsetup --test-passphrase) and mounts
# nothing; /init's functions are replaced by minimal ones when the hook is run on its own.

command -v trustpc_log >/dev/null 2>&1 || trustpc_log() { echo "trustpc-initrd: $*"; }
# Debian's busybox-static 1.35 has no mountpoint applet, and /init asks `mountpoint -q` whether a
# hook mounted /var before it puts a tmpfs there: without this the tmpfs would hide the personal
# volume. Defined only when missing (the hook is sourced: /init sees the function).
command -v mountpoint >/dev/null 2>&1 || mountpoint() {
	[ "$1" = -q ] && shift
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts
}
# Logs and the first-boot marker; /init moves /run into the new root, so the marker reaches
# trustpc-firstboot.service.
TPU_RUN=${TRUSTPC_RUN_DIR:-/run/trustpc}

# tpu_is_luks DEV
tpu_is_luks() { [ -n "$1" ] && [ -e "$1" ] && cryptsetup isLuks "$1" 2>/dev/null; }

# tpu_active_keyslots DEV: the number of keyslots in the LUKS2 header (0 after a crypto-erase).
tpu_active_keyslots() {
	cryptsetup luksDump "$1" 2>/dev/null | awk '
		/^Keyslots:/ { in_ks = 1; next }
		/^[A-Za-z]/ { in_ks = 0 }
		in_ks && /^  [0-9]+: / { n++ }
		END { print n + 0 }'
}

# tpu_refusal CODE: the one-line reason for trustpc-disk's exit code (trustpc-disk(8)), with the
# TPM's detail from its log.
tpu_refusal() {
	local detail
	detail=$(sed -n 's/^.*Cannot unlock [^:]*: //p' "$TPU_RUN/unlock-personal.log" | tail -n 1)
	[ -n "$detail" ] || detail=$(tail -n 1 "$TPU_RUN/unlock-personal.log")
	case "$1" in
	3) echo "disk locked by your organisation: $detail" ;;
	4) echo "disk refused: this boot is not the one the disk was sealed for (firmware, Secure Boot or image changed): $detail" ;;
	5) echo "disk refused: no valid signed policy for this device: $detail" ;;
	6) echo "disk refused: TPM authorization failed (PIN or lockout): $detail" ;;
	7) echo "disk refused: not the TPM this disk was sealed with, or no TPM: $detail" ;;
	8) echo "disk refused: the disk's header or token is damaged: $detail" ;;
	9) echo "disk refused: already unlocked once in this boot: $detail" ;;
	*) echo "disk refused: $detail" ;;
	esac
}

# tpu_open_key DEV NAME KEYFILE|- : opens (or in a dry run only checks) DEV with a passphrase.
tpu_open_key() {
	if [ -n "$TRUSTPC_UNLOCK_DRYRUN" ]; then
		cryptsetup open --test-passphrase --key-file="$3" "$1"
	else
		cryptsetup open --key-file="$3" "$1" "$2"
	fi
}

# tpu_recovery DEV: asks for the recovery key on the console until it opens DEV (at most
# TRUSTPC_RECOVERY_TRIES, default 5). An empty line gives up: the boot goes on without the volume.
tpu_recovery() {
	local tries key key_ok
	tries=${TRUSTPC_RECOVERY_TRIES:-5}
	while [ "$tries" -gt 0 ]; do
		tries=$((tries - 1))
		echo "trustpc: enter the recovery key (8 groups of 8 letters; your helpdesk has it), or an empty line to boot without your data:"
		key=
		IFS= read -r key || key=
		# modhex, case and separators do not matter (as in trustpc-disk's recovery_key_normalize).
		key=$(printf '%s' "$key" | tr "[:upper:]" "[:lower:]" | tr -d ' \t\r-')
		if [ -z "$key" ]; then
			echo "trustpc: no recovery key given"
			return 1
		fi
		case "$key" in
		*[!cbdefghijklnrtuv]*) key_ok= ;;
		*) [ "${#key}" -eq 64 ] && key_ok=1 || key_ok= ;;
		esac
		if [ -z "$key_ok" ]; then
			echo "trustpc: that is not a recovery key (64 letters of cbdefghijklnrtuv)"
			continue
		fi
		key=$(printf '%s' "$key" | sed 's/.\{8\}/&-/g; s/-$//')
		if printf '%s' "$key" | tpu_open_key "$1" trustpc-personal - >"$TPU_RUN/recovery.log" 2>&1; then
			key=
			echo "trustpc: recovery key accepted; the disk stays locked for the TPM until your helpdesk unlocks this device"
			return 0
		fi
		key=
		echo "trustpc: the recovery key does not open the disk"
	done
	return 1
}

# tpu_mount DEV DIR: ext4 from an opened volume (not in a dry run).
tpu_mount() {
	[ -z "$TRUSTPC_UNLOCK_DRYRUN" ] || return 0
	mkdir -p "$2" && mount -t ext4 -o nosuid,nodev "$1" "$2"
}

tpu_personal() {
	local p="$TRUSTPC_PART_PERSONAL" rc
	if ! tpu_is_luks "$p"; then
		echo "trustpc: first boot: the data partitions are not set up yet (/var is a tmpfs)"
		: >"$TPU_RUN/first-boot"
		return 1
	fi
	# The TPM driver is a module loaded by /init: give its device node a moment.
	if [ -z "$TRUSTPC_TPM2_DEVICE" ] && command -v trustpc_wait >/dev/null 2>&1; then
		trustpc_wait 10 test -e /dev/tpmrm0 || echo "trustpc: no TPM (/dev/tpmrm0) after 10 s"
	fi
	if [ -n "$TRUSTPC_UNLOCK_DRYRUN" ]; then
		set -- unlock "$p" --test
	else
		set -- unlock "$p" trustpc-personal
	fi
	if trustpc-disk "$@" >"$TPU_RUN/unlock-personal.log" 2>&1; then
		echo "trustpc: personal volume unlocked by the TPM"
	else
		rc=$?
		echo "trustpc: $(tpu_refusal "$rc")"
		tpu_recovery "$p" || {
			echo "trustpc: booting without the personal volume (/var is a tmpfs)"
			return 1
		}
	fi
	if ! tpu_mount /dev/mapper/trustpc-personal "$NEWROOT/var"; then
		echo "trustpc: the personal volume does not mount (/var is a tmpfs)"
		cryptsetup close trustpc-personal 2>/dev/null
		return 1
	fi
	return 0
}

tpu_corporate() {
	local c="$TRUSTPC_PART_CORPORATE" key
	key=$NEWROOT/var/lib/trustpc/corporate.key
	if ! tpu_is_luks "$c" || [ "$(tpu_active_keyslots "$c")" -eq 0 ]; then
		echo "trustpc: corporate volume erased"
		return 0
	fi
	if [ ! -f "$key" ]; then
		echo "trustpc: corporate volume not opened: its key is not on the personal volume"
		return 0
	fi
	if ! tpu_open_key "$c" trustpc-corporate "$key" >"$TPU_RUN/unlock-corporate.log" 2>&1; then
		echo "trustpc: corporate volume not opened: $(tail -n 1 "$TPU_RUN/unlock-corporate.log")"
		return 0
	fi
	if tpu_mount /dev/mapper/trustpc-corporate "$NEWROOT/var/lib/trustpc-corporate"; then
		echo "trustpc: corporate volume opened"
	else
		echo "trustpc: the corporate volume does not mount"
		cryptsetup close trustpc-corporate 2>/dev/null
	fi
}

tpu_main() {
	mkdir -p "$TPU_RUN" /run/cryptsetup 2>/dev/null
	if [ -z "$TRUSTPC_PART_PERSONAL" ]; then
		echo "trustpc: no partition labelled 'personal' (/var is a tmpfs)"
		return 0
	fi
	tpu_personal || return 0
	tpu_corporate
	trustpc_log "data volumes done"
}

tpu_main
