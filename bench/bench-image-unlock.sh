#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/bench-image-unlock.sh — an ENROLLED device image under QEMU/TCG (issue 5's benchmark, the
# part bench-image.sh does not boot): boot to trustpcd attested, broken down, and the initrd's TPM
# unlock of the personal volume next to systemd-cryptsetup's own TPM2 unlock of the same volume,
# in the same boot of the same VM.
#
#   boot 1   first boot of the test variant (TRUSTPC_IMAGE_TEST_SESSION=1, tests/vm/lib-vm-device.sh:
#            provision.conf on the ESP, a real trustpc-server on the loopback): enrolled, sealed,
#            reboot, attested, the recovery key escrowed
#   boot 2   trustpc/bench-unlock.conf on the ESP with the escrowed recovery key: the test image's
#            trustpc-bench-enroll.service runs `systemd-cryptenroll --tpm2-device=auto
#            --tpm2-pcrs=7+11` on personal (a second token + keyslot next to ours), removes the key
#            from the ESP and powers off
#   boot 3…  BENCH_UNLOCK_BOOTS (2) boots: the initrd's bench hook (image/guest/test/initrd.d)
#            times systemd-cryptsetup attach/detach (tpm2-device=auto) and cryptsetup
#            --test-passphrase --token-type systemd-tpm2, BENCH_UNLOCK_REPEAT (3) times each (systemd's
#            token does not use PCR 15), then 50-trustpc-unlock.sh's trustpc-disk unlock — our one
#            unseal of the boot (PCR 15 = 0 in the policy) — is timed the same way. Each boot is
#            also broken down to attested:
#     firmware   QEMU start → "BdsDxe: starting" (host clock, polled every 0.2 s)
#     UKI → kernel, kernel   as in bench-image.sh (guest uptime at the initrd's first line)
#     initrd     → switch_root; of it the dm-verity full read, the bench hook (systemd's unlocks:
#                not part of a normal boot) and our unlock hook (TPM unseal, ext4 mounts, corporate)
#     userspace  switch_root → the boot marker; systemd-analyze's line from the guest
#     attested   QEMU start → the server's log line "Device … attested from …: trusted" (host clock)
#
# Needs root, TRUSTPC_BUILD_ROOT with trustpc-server, trustpcctl and the image binaries built;
# TRUSTPC_VM_IMAGE_DEVICE=DIR reuses a built test image (else built or reused as the vm tests do).
# Figures: bench/README.md "Device image".
set -euo pipefail
SRC=${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
export TRUSTPC_SOURCE_ROOT=$SRC
[[ $(id -u) == 0 ]] || { echo "bench-image-unlock: needs root" >&2; exit 77; }
TRUSTPC_VM_TESTS=1
# shellcheck source=../tests/vm/lib-vm.sh
source "$SRC/tests/vm/lib-vm.sh"
vm_require
# shellcheck source=../tests/integration/test-server-common.sh
source "$SRC/tests/integration/test-server-common.sh"
# shellcheck source=../tests/vm/lib-vm-device.sh
source "$SRC/tests/vm/lib-vm-device.sh"
boots=${BENCH_UNLOCK_BOOTS:-2}
reps=${BENCH_UNLOCK_REPEAT:-3}
T=$TRUSTPC_TEST_TMP

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
die() {
	echo "bench-image-unlock: $*" >&2
	if [[ -f "${LOG:-}" ]]; then tail -n 40 "$LOG" >&2; fi
	exit 1
}
# tval LOG REGEX: the (t=…) of the first serial line matching REGEX.
tval() { tr -d '\r' <"$1" | grep -aE -- "$2" | head -n1 | sed -nE 's/.*\(t=([0-9.]+)\).*/\1/p'; }
# bval LOG TEXT: the seconds of every "trustpc-bench: TEXT…: S s (exit 0)" line, space-separated.
bval() { tr -d '\r' <"$1" | grep -aE -- "^trustpc-bench: $2" | grep -a '(exit 0)' | sed -nE 's/.*: ([0-9.]+) s \(exit 0\).*/\1/p' | xargs; }
attested_count() { grep -acE "Device $DEV attested from .*: trusted" "$(server_log)" || true; }

echo "# $(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs" >&2
t=$(now)
vmdev_image || die "the test image"
echo "image: $IMG_DIR ($(secs "$t" "$(now)") s to build or reuse)" >&2
vmdev_server || die "the server for the VM"
vmdev_provision vm-bench >/dev/null || die "provisioning"

# ---- boot 1: first boot → enrolled, sealed, rebooted into the sealed volumes, attested ------------
LOG=$T/boot1.log
vm_start "$LOG" --reboot
vm_wait "$LOG" '^trustpc: first boot: enrolled as device [0-9a-f]{32}' || die "boot 1: not enrolled"
DEV=$(serial_value "$LOG" '^trustpc: first boot: enrolled as device ([0-9a-f]{32}).*')
vm_wait "$LOG" '^trustpc: personal volume unlocked by the TPM' || die "boot 1: the reboot did not unlock personal"
poll_until "$VMDEV_WAIT" show_has '^State: +trusted' || die "boot 1: not attested"
poll_until 300 show_has '^Recovery key: +escrowed' || die "boot 1: recovery key not escrowed"
echo "boot 1 (first boot + reboot): enrolled $DEV, attested after $(since) s" >&2
vm_stop

# ---- boot 2: systemd-cryptenroll --tpm2-device on the same volume ---------------------------------
RK=$(ctl admin --json recovery-key "$DEV" | jq -r .recovery_key)
[[ "$RK" =~ ^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$ ]] || die "no escrowed recovery key"
(umask 077 && printf 'repeat = %s\nrecovery_key = %s\n' "$reps" "$RK" >"$T/bench-unlock.conf")
vm_esp_put "$DISK" "$T/bench-unlock.conf" /trustpc/bench-unlock.conf
rm -f "$T/bench-unlock.conf"
LOG=$T/boot2.log
vm_start "$LOG"
vm_wait "$LOG" '^trustpc-bench: systemd-cryptenroll ' || die "boot 2: no systemd-cryptenroll"
echo "boot 2: $(tr -d '\r' <"$LOG" | grep -a '^trustpc-bench: systemd-cryptenroll ' | sed 's/^trustpc-bench: //')" >&2
tr -d '\r' <"$LOG" | grep -aq '^trustpc-bench: systemd-cryptenroll .*(exit 0)' || die "boot 2: systemd-cryptenroll failed"
ok "boot 2: systemd-cryptenroll --tpm2-device added systemd's TPM2 token to personal"
poll_until 300 vm_gone || true
vm_stop
esp_off=$(_vm_part_start "$DISK" esp)
if mtype -i "$DISK@@$esp_off" ::/trustpc/bench-unlock.conf | grep -q recovery_key; then
	die "the recovery key is still on the ESP"
fi
ok "boot 2: the recovery key is off the ESP"
# mean LIST…: the mean of the numbers.
mean() { echo "$@" | awk '{ for (i = 1; i <= NF; i++) s += $i; if (NF) printf "%.2f", s / NF }'; }
all_ours='' all_sd='' all_cst='' all_att='' all_nob=''

# ---- boots 3…: both unlocks, and the breakdown to attested ----------------------------------------
for ((i = 1; i <= boots; i++)); do
	LOG=$T/unlock$i.log
	n0=$(attested_count)
	r0=$(wc -l <"$T/run-vm.log")
	vm_start "$LOG"
	t0=$VM_T0 t_q='' t_fw='' t_mk='' t_att=''
	deadline=$(($(date +%s) + VMDEV_WAIT))
	while [[ -z "$t_att" || -z "$t_mk" ]]; do
		(($(date +%s) < deadline)) || die "boot $((i + 2)): no marker or no attestation within $VMDEV_WAIT s"
		vm_gone && die "boot $((i + 2)): QEMU ended"
		grep -aq '^trustpc: enter the recovery key' "$LOG" && die "boot $((i + 2)): our unlock was refused"
		[[ -z "$t_q" ]] && tail -n "+$((r0 + 1))" "$T/run-vm.log" | grep -qs 'starting: serial' && t_q=$(now)
		[[ -z "$t_fw" ]] && grep -aq 'BdsDxe: starting' "$LOG" && t_fw=$(now)
		[[ -z "$t_mk" ]] && grep -aq '^trustpc: booted' "$LOG" && t_mk=$(now)
		[[ -z "$t_att" ]] && (($(attested_count) > n0)) && t_att=$(now)
		sleep 0.2
	done
	poll_until 60 _serial_has "$LOG" '^trustpc: systemd-analyze' || true
	vm_stop
	grep -aq '^trustpc: personal volume unlocked by the TPM' "$LOG" || die "boot $((i + 2)): our unlock failed"
	t_q=${t_q:-$t0}
	k=$(tval "$LOG" 'trustpc-initrd: start ')
	sr=$(tval "$LOG" 'trustpc-initrd: switch_root')
	vr=$(tval "$LOG" 'trustpc-initrd: disk ')
	vd=$(tval "$LOG" 'trustpc-initrd: every block of the root read')
	h40=$(tval "$LOG" 'trustpc-initrd: hook 40-trustpc-bench-unlock.sh')
	h50=$(tval "$LOG" 'trustpc-initrd: hook 50-trustpc-unlock.sh')
	h50e=$(tval "$LOG" 'trustpc-initrd: data volumes done')
	up=$(tr -d '\r' <"$LOG" | sed -n 's/^trustpc: uptime \([0-9.]*\).*/\1/p' | head -n1)
	sa=$(tr -d '\r' <"$LOG" | sed -n 's/^trustpc: systemd-analyze: //p' | head -n1)
	ours=$(bval "$LOG" 'trustpc-disk unlock')
	sd=$(bval "$LOG" 'systemd-cryptsetup attach')
	sdd=$(bval "$LOG" 'systemd-cryptsetup detach')
	cst=$(bval "$LOG" 'cryptsetup open --test-passphrase')
	[[ -n "$ours" && -n "$sd" ]] || {
		tr -d '\r' <"$LOG" | grep -a 'trustpc-bench' >&2
		die "boot $((i + 2)): no unlock times in the serial log"
	}
	# The comparison is only valid when systemd's unlocks left PCR 15 alone (ours then unsealed).
	z=0000000000000000000000000000000000000000000000000000000000000000
	assert_eq "$z" "$(serial_value "$LOG" "^trustpc-bench: pcr15 after systemd's unlocks: ([0-9a-f]*).*")" \
		"boot $((i + 2)): PCR 15 still zero after systemd's unlocks (our one unseal of the boot not spent)"
	((i > 1)) || tr -d '\r' <"$LOG" | grep -aE '^trustpc-bench: (keyslot|token)' | sed 's/^trustpc-bench: /  personal: /'
	echo "boot $((i + 2)) unlock of personal in the initrd: ours (trustpc-disk unlock: signed-policy unseal + activate) ${ours} s;" \
		"systemd-cryptsetup attach tpm2-device=auto ${sd} s (mean $(mean "$sd")), detach ${sdd:-?} s;" \
		"cryptsetup --test-passphrase --token-type systemd-tpm2 ${cst:-?} s"
	all_ours+=" $ours" all_sd+=" $sd" all_cst+=" ${cst:-}"
	echo "boot $((i + 2)) to attested: $(secs "$t_q" "$t_att") s from QEMU start (marker at $(secs "$t_q" "$t_mk") s);" \
		"firmware ~$(secs "$t_q" "${t_fw:-$t_q}") s;" \
		"UKI → kernel ~$(awk -v m="$t_mk" -v f="${t_fw:-$t_q}" -v u="${up:-0}" 'BEGIN { printf "%.1f", m - f - u }') s;" \
		"kernel ${k:-?} s;" \
		"initrd $(secs "${k:-0}" "${sr:-0}") s (verity read $(secs "${vr:-0}" "${vd:-0}") s, bench hook $(secs "${h40:-0}" "${h50:-0}") s, our unlock hook $(secs "${h50:-0}" "${h50e:-0}") s);" \
		"userspace $(secs "${sr:-0}" "${up:-0}") s (to the marker);" \
		"marker → attested $(secs "$t_mk" "$t_att") s"
	nob=$(awk -v a="$(secs "$t_q" "$t_att")" -v h="$(secs "${h40:-0}" "${h50:-0}")" 'BEGIN { printf "%.1f", a - h }')
	echo "  systemd-analyze: ${sa:-?}; to attested without the bench hook ~$nob s"
	all_att+=" $(secs "$t_q" "$t_att")" all_nob+=" $nob"
done
mo=$(mean "$all_ours") ms=$(mean "$all_sd")
echo "unlock of personal, $boots boots: ours (trustpc-disk) mean $mo s over$all_ours;" \
	"systemd-cryptsetup attach tpm2-device=auto mean $ms s over$all_sd; ours/systemd $(awk -v a="$mo" -v b="$ms" 'BEGIN { printf "%.2f", a / b }');" \
	"cryptsetup --test-passphrase --token-type systemd-tpm2 mean $(mean "$all_cst") s"
echo "QEMU start → attested: mean $(mean "$all_att") s over$all_att (without the bench hook ~$(mean "$all_nob") s)"
test_done
