#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/bench-image.sh — the device image (issue 5): build time (warm: debootstrap tarball cached;
# cold: empty cache, with BENCH_IMAGE_COLD=1 — downloads every .deb again), sizes, and the boot
# to multi-user.target under QEMU/TCG with OVMF Secure Boot and swtpm, broken down:
#   firmware   QEMU start → OVMF starts the UKI ("BdsDxe: starting", host clock; the Secure Boot
#              check of the UKI is before that line)
#   UKI start → kernel   the rest of the wall time before the guest kernel's clock starts
#   kernel     guest uptime at the initrd's first line
#   initrd     initrd start → switch_root (module loading, disk, dm-verity full read, hooks)
#   userspace  switch_root → the boot marker (systemd reached multi-user.target and finished)
# plus systemd-analyze's own line from the guest. BENCH_IMAGE_BOOTS=N boots (default 2).
# Needs root. Figures: bench/README.md "Device image".
set -euo pipefail
SRC=${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${TRUSTPC_BUILD_ROOT:-$SRC/build}
boots=${BENCH_IMAGE_BOOTS:-2}
[[ $(id -u) == 0 ]] || { echo "bench-image: needs root" >&2; exit 77; }

tmp=$(mktemp -d /var/tmp/bench-image.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out

now() { date +%s.%N; }
secs() { echo "scale=1; ($2 - $1) / 1" | bc; }

if [[ "${BENCH_IMAGE_COLD:-0}" == 1 ]]; then
	t=$(now)
	"$SRC/image/trustpc-image" build --out "$tmp/cold" --build-root "$BUILD" --cache "$tmp/cache" >"$tmp/cold.log" 2>&1
	echo "build cold (empty cache, debootstrap + downloads): $(secs "$t" "$(now)") s"
	rm -rf "$tmp/cold" "$tmp/cache"
fi
# With the default cache (filled by any earlier build); the log says when it was a miss.
t=$(now)
"$SRC/image/trustpc-image" build --out "$out" --build-root "$BUILD" >"$tmp/build.log" 2>&1
if grep -q 'cache miss' "$tmp/build.log"; then
	echo "build (cache was empty: debootstrap ran): $(secs "$t" "$(now)") s"
else
	echo "build warm (debootstrap tarball cached): $(secs "$t" "$(now)") s"
fi
sed -n 's/^trustpc-image: \[ *\([0-9.]*\)s\] \(.*\)/  at \1 s: \2/p' "$tmp/build.log"

mib() { echo "scale=1; $1 / 1048576" | bc; }
echo "disk image: $(mib "$(stat -c %s "$out/trustpc.img")") MiB apparent, $(mib $(($(stat -c %b "$out/trustpc.img") * 512))) MiB allocated (sparse)"
echo "root squashfs: $(mib "$(stat -c %s "$out/work/root.sqfs")") MiB, verity tree $(mib "$(stat -c %s "$out/work/root.verity")") MiB"
echo "UKI: $(mib "$(stat -c %s "$out/uki.efi")") MiB (kernel $(mib "$(stat -c %s "$out/work/vmlinuz")"), initrd $(mib "$(stat -c %s "$out/work/initrd.img")"))"

# first_seen LOG REGEX: prints the host time when REGEX first appears (polls every 0.1 s).
for ((i = 1; i <= boots; i++)); do
	disk=$tmp/boot$i.img
	log=$tmp/boot$i.log
	cp --sparse=always "$out/trustpc.img" "$disk"
	: >"$log"
	t0=$(now)
	"$SRC/image/run-vm" "$disk" --tpm-state "$tmp/tpm$i" --serial "$log" --timeout 600 \
		--until '^trustpc: booted' --fail 'trustpc: the system is stopped|Kernel panic|Access Denied' \
		>"$tmp/run$i.out" 2>&1 &
	pid=$!
	t_fw='' t_q=
	while kill -0 "$pid" 2>/dev/null; do
		if [[ -z "$t_q" ]] && grep -qs 'starting: serial' "$tmp/run$i.out"; then t_q=$(now); fi
		if [[ -z "$t_fw" ]] && grep -aq 'BdsDxe: starting' "$log"; then t_fw=$(now); fi
		sleep 0.1
	done
	rc=0
	wait "$pid" || rc=$?
	t_end=$(now)
	if ((rc != 0)); then
		echo "boot $i: FAILED (run-vm status $rc)" >&2
		tail -n 30 "$log" >&2
		exit 1
	fi
	k=$(sed -n 's/.*trustpc-initrd: start (t=\([0-9.]*\)).*/\1/p' "$log" | head -n1)
	sr=$(sed -n 's/.*trustpc-initrd: switch_root (t=\([0-9.]*\)).*/\1/p' "$log" | head -n1)
	up=$(sed -n 's/^trustpc: uptime \([0-9.]*\).*/\1/p' "$log" | tr -d '\r' | head -n1)
	sa=$(sed -n 's/^trustpc: systemd-analyze: //p' "$log" | tr -d '\r' | head -n1)
	vr=$(sed -n 's/.*trustpc-initrd: disk .*(t=\([0-9.]*\)).*/\1/p' "$log" | head -n1)
	vd=$(sed -n 's/.*trustpc-initrd: every block of the root read and verified (t=\([0-9.]*\)).*/\1/p' "$log" | head -n1)
	t_q=${t_q:-$t0}
	echo "boot $i: wall $(secs "$t_q" "$t_end") s from QEMU start (run-vm before it, TPM manufacturing: $(secs "$t0" "$t_q") s);" \
		"firmware ~$(secs "$t_q" "${t_fw:-$t_q}") s;" \
		"UKI start → kernel ~$(echo "scale=1; ($t_end - ${t_fw:-$t_q} - ${up:-0}) / 1" | bc) s (stub measuring, kernel EFI stub, decompression);" \
		"kernel ${k:-?} s;" \
		"initrd $(echo "${sr:-0} - ${k:-0}" | bc) s (of it dm-verity full read $(echo "${vd:-0} - ${vr:-0}" | bc) s);" \
		"userspace $(echo "${up:-0} - ${sr:-0}" | bc) s; guest uptime at marker ${up:-?} s"
	echo "  systemd-analyze: ${sa:-?}"
done
