# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=dash
# TEST IMAGES ONLY (TRUSTPC_IMAGE_TEST_SESSION=1; bench/bench-image-unlock.sh). Sourced by the
# initrd's /init before 50-trustpc-unlock.sh. Does nothing unless trustpc/bench-unlock.conf is on
# the ESP (the bench writes it; tests/vm/test-vm-device.sh never does).
#
# With the file:
#   - personal has no systemd-tpm2 token yet and the file holds recovery_key = …: leaves the marker
#     /run/trustpc/bench-enroll, and trustpc-bench-enroll.service runs systemd-cryptenroll
#     --tpm2-device=auto --tpm2-pcrs=7+11 in userspace (then powers off)
#   - personal has the systemd-tpm2 token: times systemd's own TPM2 unlock of personal —
#     systemd-cryptsetup attach/detach and cryptsetup --test-passphrase --token-type systemd-tpm2,
#     `repeat = N` times (default 3; the systemd token does not use PCR 15, so it unseals again and
#     again) — then wraps trustpc-disk (PATH) so that 50-trustpc-unlock.sh's one unlock of the boot
#     (PCR 15 = 0 in our policy) is timed the same way. Lines: "trustpc-bench: …" on the console.

TPB_CONF=/run/trustpc/esp/trustpc/bench-unlock.conf

tpb_t() { cut -d' ' -f1 /proc/uptime; }
tpb_dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
tpb_say() { echo "trustpc-bench: $*"; }
tpb_pcr15() { tr 'A-F' 'a-f' </sys/class/tpm/tpm0/pcr-sha256/15 2>/dev/null; }
TPB_PLUGIN=/usr/lib/x86_64-linux-gnu/cryptsetup/libcryptsetup-token-trustpc-tpm2.so

# tpb_keyslots DEV: one line per keyslot (its PBKDF and cost) and per token (its type, keyslot).
tpb_keyslots() {
	cryptsetup luksDump "$1" 2>/dev/null | awk '
		/^Keyslots:/ { s = "k"; next }
		/^Tokens:/ { s = "t"; next }
		/^[A-Za-z]/ { s = "" }
		s == "k" && /^  [0-9]+: / { if (k != "") print k; k = "keyslot " $1 " " $2 }
		s == "k" && /PBKDF:/ { k = k " " $2 }
		s == "k" && /Time cost:|Iterations:/ { k = k " " $1 " " $NF }
		s == "k" && /Memory:/ { k = k " mem " $2 " KiB" }
		s == "t" && /^  [0-9]+: / { if (k != "") print k; k = "token " $1 " " $2 }
		s == "t" && /Keyslot:/ { k = k " keyslot " $2 }
		END { if (k != "") print k }'
}

tpb_main() {
	local p="$TRUSTPC_PART_PERSONAL" n i t0 t1 rc
	[ -f "$TPB_CONF" ] || return 0
	if [ -z "$p" ] || ! cryptsetup isLuks "$p" 2>/dev/null; then
		tpb_say "personal is not LUKS yet: nothing to measure"
		return 0
	fi
	trustpc_wait 10 test -e /dev/tpmrm0 || tpb_say "no TPM (/dev/tpmrm0) after 10 s"
	if ! cryptsetup luksDump "$p" 2>/dev/null | grep -q 'systemd-tpm2'; then
		if grep -q '^[[:space:]]*recovery_key[[:space:]]*=' "$TPB_CONF"; then
			: >/run/trustpc/bench-enroll
			tpb_say "personal has no systemd-tpm2 token: systemd-cryptenroll runs in userspace this boot"
		else
			tpb_say "personal has no systemd-tpm2 token and bench-unlock.conf no recovery_key: nothing to measure"
		fi
		return 0
	fi
	tpb_keyslots "$p" | sed 's/^/trustpc-bench: /'
	n=$(sed -n 's/^[[:space:]]*repeat[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$TPB_CONF" | tail -n 1)
	# systemd-cryptsetup attach (252) reaches our token too through libcryptsetup's plugins: with
	# our plugin in place PCR 15 was extended and our one unlock of the boot below was refused.
	# Our plugin is out of libcryptsetup's directory while systemd's unlocks run (a ramfs).
	mkdir -p /tmp/trustpc-bench
	mv "$TPB_PLUGIN" /tmp/trustpc-bench/ 2>/dev/null
	tpb_say "pcr15 before systemd's unlocks: $(tpb_pcr15)"
	i=0
	while [ "$i" -lt "${n:-3}" ]; do
		i=$((i + 1))
		t0=$(tpb_t)
		SYSTEMD_LOG_TARGET=console /usr/lib/systemd/systemd-cryptsetup attach bench-sd "$p" - \
			tpm2-device=auto,headless=true >/run/trustpc/bench-sd.log 2>&1
		rc=$?
		t1=$(tpb_t)
		tpb_say "systemd-cryptsetup attach tpm2-device=auto #$i: $(tpb_dt "$t0" "$t1") s (exit $rc)"
		if [ "$rc" -ne 0 ]; then
			tail -n 5 /run/trustpc/bench-sd.log | sed 's/^/trustpc-bench: | /'
			break
		fi
		t0=$(tpb_t)
		/usr/lib/systemd/systemd-cryptsetup detach bench-sd >>/run/trustpc/bench-sd.log 2>&1
		rc=$?
		t1=$(tpb_t)
		tpb_say "systemd-cryptsetup detach #$i: $(tpb_dt "$t0" "$t1") s (exit $rc)"
		t0=$(tpb_t)
		cryptsetup open --test-passphrase --token-only --token-type systemd-tpm2 "$p" >>/run/trustpc/bench-sd.log 2>&1
		rc=$?
		t1=$(tpb_t)
		tpb_say "cryptsetup open --test-passphrase --token-type systemd-tpm2 #$i: $(tpb_dt "$t0" "$t1") s (exit $rc)"
	done
	mv "/tmp/trustpc-bench/${TPB_PLUGIN##*/}" "$TPB_PLUGIN" 2>/dev/null
	# systemd's token does not extend PCR 15: still zero, our unseal below is allowed.
	tpb_say "pcr15 after systemd's unlocks: $(tpb_pcr15)"
	# Our unlock: 50-trustpc-unlock.sh runs trustpc-disk by name (its output to a log file): this
	# wrapper, first in PATH for the rest of the initrd, puts the time on the console.
	cat >/tmp/trustpc-bench/trustpc-disk <<-'EOT'
		#!/bin/sh
		t0=$(cut -d' ' -f1 /proc/uptime)
		/usr/sbin/trustpc-disk "$@"
		rc=$?
		t1=$(cut -d' ' -f1 /proc/uptime)
		echo "trustpc-bench: trustpc-disk $1: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s (exit $rc)" >/dev/console
		exit $rc
	EOT
	chmod 0755 /tmp/trustpc-bench/trustpc-disk
	PATH=/tmp/trustpc-bench:$PATH
	export PATH
}

tpb_main
