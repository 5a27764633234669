#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/bench-wipe.sh — remote wipe (crypto-erase) time vs overwriting the data (the baseline).
#
#   meson test -C build --benchmark --suite bench -v      (or run this script directly;
#                                                        TRUSTPC_BUILD_ROOT=build by default)
#   BENCH_RUNS=N (default 5) timed wipes per size; BENCH_SHRED_QUICK=1 shreds only 2 GiB of the
#   8 GiB file and extrapolates (said so in the output); by default all 8 GiB are written (~15 s).
#
# trustpc: a signed `wipe` command (class corporate) through the real executor (executor_run, as
#          trustpcd runs it; tests/unit/daemon/exec-command signs it and hands it over), which calls
#          luks_erase() on the volume: tokens, every keyslot (libcryptsetup overwrites the slot
#          area) and the header's key material. Timed: the whole exec-command process (fork,
#          TPM connect, COSE verify, state files fsync'ed, the erase).
# baseline: `shred -n1` of a file of the same size (one pass of random data, what "wiping a
#          disk" costs without crypto-erase).
# Images: sparse LUKS2 files of 1 GiB and 8 GiB (header only written, as on a real disk the data
# area is whatever was there). Each run gets a freshly formatted image (untimed). The point: the
# crypto-erase time does not grow with the volume, the overwrite does. After each wipe the image's
# passphrase is checked to fail (the wipe is real). Fails only when a wipe fails.
set -euo pipefail
SRC="${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
LIB=$SRC/tests/lib
# shellcheck source=tests/lib/assert.sh
source "$LIB/assert.sh"
# shellcheck source=tests/lib/swtpm.sh
source "$LIB/swtpm.sh"
# shellcheck source=tests/lib/luks.sh
source "$LIB/luks.sh"
require_cmd shred openssl python3 cryptsetup
T=$TRUSTPC_TEST_TMP
EXE="$TRUSTPC_BUILD_ROOT/tests/unit/daemon/exec-command"
[[ -x "$EXE" ]] || skip "exec-command is not built under $TRUSTPC_BUILD_ROOT"
N=${BENCH_RUNS:-5}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNS must be a positive number" >&2; exit 2; }

elapsed_us() { # elapsed_us VAR CMD…: wall time of CMD in µs into VAR; returns CMD's status
	local -n _ret=$1
	local t0 t1 rc=0
	shift
	t0=${EPOCHREALTIME/./}
	"$@" >"$T/last.out" 2>"$T/last.err" </dev/null || rc=$?
	t1=${EPOCHREALTIME/./}
	_ret=$((t1 - t0))
	return $rc
}
stats() { # stats US…: "median min max" in ms
	python3 -c 'import statistics as s, sys; v = [int(x) / 1000 for x in sys.argv[1:]]
print(f"{s.median(v):.1f} {min(v):.1f} {max(v):.1f}")' "$@"
}

swtpm_start dev >/dev/null
S=$T/state
mkdir -m 0700 "$S"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/cmd.key" 2>/dev/null
openssl ec -in "$T/cmd.key" -pubout -out "$S/command-key.pem" 2>/dev/null
cp "$S/command-key.pem" "$S/policy-key.pem" # read at start-up; the wipe does not use it
IMG=$T/corp.img
printf 'volume.corporate = %s\n' "$IMG" >"$S/trustpcd.conf"

seq=0
wipe_once() { # wipe_once SIZE VAR: format a fresh image of SIZE, time the signed wipe into VAR
	local size=$1
	local -n _us=$2
	LUKS_IMAGE_SIZE=$size luks_image_make "$IMG"
	seq=$((seq + 1))
	if ! elapsed_us _us "$EXE" --state-dir "$S" --key "$T/cmd.key" --type wipe --seq "$seq" --class corporate; then
		echo "wipe failed:" >&2
		cat "$T/last.out" "$T/last.err" >&2
		return 1
	fi
	grep -q '^status=done$' "$T/last.out" || { cat "$T/last.out" >&2; return 1; }
	if luks_check_passphrase "$IMG" "$LUKS_TEST_PASSPHRASE"; then
		not_ok "wipe $size: the passphrase no longer opens the image"
		return 1
	fi
	ok "wipe $size (seq $seq): done in $((_us / 1000)) ms, the passphrase no longer opens the image"
}

declare -A MED
echo "# signed wipe (executor, luks_erase) of a sparse LUKS2 image, $N runs each (ms: median min max)"
for size in 1G 8G; do
	runs=()
	for ((i = 0; i < N; i++)); do
		wipe_once "$size" us
		runs+=("$us")
	done
	read -r med lo hi < <(stats "${runs[@]}")
	MED[$size]=$med
	printf '  wipe %-4s image: median %7.1f ms  (min %.1f, max %.1f)\n' "$size" "$med" "$lo" "$hi"
done
# the fixed cost around the erase: the same process with a wipe the executor refuses (an old seq:
# fork, TPM connect, COSE verify, no erase)
runs=()
for ((i = 0; i < N; i++)); do
	elapsed_us us "$EXE" --state-dir "$S" --key "$T/cmd.key" --type wipe --seq 1 --class corporate
	grep -q '^status=rejected$' "$T/last.out" || { not_ok "the old-seq wipe is rejected" "$(cat "$T/last.out")"; exit 1; }
	runs+=("$us")
done
read -r fixed lo hi < <(stats "${runs[@]}")
printf '  same process, wipe rejected (no erase): median %7.1f ms  (min %.1f, max %.1f) — the fixed part\n' "$fixed" "$lo" "$hi"
rm -f "$IMG"

# the baseline: one pass of random data over a file of the same size (page cache flushed by
# shred's own fsync at the end of the pass)
shred_ms() { # shred_ms SIZE [PART]: time shred -n1 of a SIZE file (only its first PART if given)
	local size=$1 part=${2:-} us
	truncate -s "$size" "$T/plain.img"
	elapsed_us us shred -n1 ${part:+-s "$part"} "$T/plain.img"
	rm -f "$T/plain.img"
	echo $((us / 1000))
}
echo "# baseline: shred -n1 (one random pass, fsync'ed)"
s1=$(shred_ms 1G)
printf '  shred 1G   file:  %7d ms (measured)\n' "$s1"
if [[ "${BENCH_SHRED_QUICK:-0}" != 1 ]]; then
	s8=$(shred_ms 8G)
	printf '  shred 8G   file:  %7d ms (measured)\n' "$s8"
else
	p=$(shred_ms 8G 2G)
	s8=$((p * 4))
	printf '  shred 8G   file:  %7d ms (EXTRAPOLATED: 2 GiB of it shredded in %d ms, x4)\n' "$s8" "$p"
fi
python3 - "${MED[1G]}" "${MED[8G]}" "$s1" "$s8" <<'EOF'
import sys
w1, w8, s1, s8 = (float(x) for x in sys.argv[1:])
print(f"# wipe 8G / wipe 1G = {w8 / w1:.2f} (crypto-erase: independent of the size); "
      f"shred 8G / shred 1G = {s8 / s1:.1f}")
print(f"# shred / wipe: {s1 / w1:.0f}x at 1 GiB, {s8 / w8:.0f}x at 8 GiB")
EOF
test_done
