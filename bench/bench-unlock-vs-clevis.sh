#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/bench-unlock-vs-clevis.sh — TPM unlock of a LUKS2 image: trustpc vs clevis (the baseline).
#
#   meson test -C build --benchmark --suite bench -v      (or run this script directly;
#                                                        TRUSTPC_BUILD_ROOT=build by default)
#   BENCH_RUNS=N (default 15) timed unlocks of each.
#
# Same swtpm, same kind of image (16 MiB LUKS2 file, the TPM keyslot is PBKDF2 with 1000 iterations
# for both: trustpc-disk makes it so, and clevis luks bind adds its keyslot the same way):
#   trustpc: trustpc-disk unlock IMAGE --test  (the policy stored in the token; the full check:
#            PCR policy, lock counter, signed PolicyAuthorize, salted encrypted session, keyslot
#            check, then the PCR 15 extend)
#   clevis:  clevis luks pass -d IMAGE -s SLOT | cryptsetup open --test-passphrase IMAGE
#            --key-file=- --key-slot SLOT     (clevis-tpm2 bound to PCR 7, sha256 bank)
# trustpc unseals once per boot (PCR 15), so every run of either starts from a TPM reboot
# (swtpm_reboot, untimed); only the unlock command is timed (wall clock, the whole process). Runs
# alternate between the two so that load on the machine hits both alike.
# Also printed: the TPM commands of one unlock of each (a tpm-proxy capture, parsed by
# tests/lib/tpm-commands.py), the processes each starts (strace, when installed) and what a few
# of clevis' steps cost alone. Fails only when an unlock fails; the speed target is reported, not
# enforced (a benchmark, not a test).
# shellcheck disable=SC2317 # helpers called through expect_ok/expect_fail look unreachable to it
set -euo pipefail
SRC="${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
LIB=$SRC/tests/lib
# shellcheck source=tests/lib/assert.sh
source "$LIB/assert.sh"
# shellcheck source=tests/lib/swtpm.sh
source "$LIB/swtpm.sh"
# shellcheck source=tests/lib/luks.sh
source "$LIB/luks.sh"
require_cmd clevis clevis-luks-bind clevis-luks-pass clevis-decrypt-tpm2 jose luksmeta \
	tpm2_createprimary python3 openssl
T=$TRUSTPC_TEST_TMP
DISK=$(find_binary trustpc-disk) || true
[[ -n "$DISK" ]] || skip "trustpc-disk is not built under $TRUSTPC_BUILD_ROOT"
N=${BENCH_RUNS:-15}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNS must be a positive number" >&2; exit 2; }
TARGET_RATIO=5

# elapsed_us VAR CMD…: runs CMD (output to $T/last.out/.err), stores its wall time in µs in VAR;
# returns CMD's status.
elapsed_us() {
	local -n _ret=$1
	local t0 t1 rc=0
	shift
	t0=${EPOCHREALTIME/./}
	"$@" >"$T/last.out" 2>"$T/last.err" </dev/null || rc=$?
	t1=${EPOCHREALTIME/./}
	_ret=$((t1 - t0))
	return $rc
}
# stats US…: "median min max" in ms.
stats() {
	python3 -c 'import statistics as s, sys; v = [int(x) / 1000 for x in sys.argv[1:]]
print(f"{s.median(v):.1f} {min(v):.1f} {max(v):.1f}")' "$@"
}

# ---- set-up: one swtpm, two images of the same kind -------------------------------------------------
SWTPM_EK_P256=0 swtpm_start bench
openssl ecparam -name prime256v1 -genkey -noout -out "$T/policy.key" 2>/dev/null
openssl ec -in "$T/policy.key" -pubout -out "$T/policy.pub" 2>/dev/null
printf 'bench-passphrase' >"$T/pass"
luks_image_make "$T/trustpc.img" bench-passphrase
luks_image_make "$T/clevis.img" bench-passphrase

expect_ok "$DISK" enroll "$T/trustpc.img" --policy-key "$T/policy.pub" --no-recovery-key \
	--unlock-key-file "$T/pass"
device_id='' epoch='' pcr7='' pcr11='' # set by the eval of tpm-status below
eval "$("$DISK" tpm-status | grep -E '^(device_id|epoch|pcr7|pcr11)=')"
"$DISK" sign-policy --key "$T/policy.key" --device-id "$device_id" --epoch "$epoch" \
	--pcr 7="$pcr7" --pcr 11="$pcr11" -o "$T/policy.json"
# The first unlock stores the policy in the token: the timed ones need no --policy (a normal boot).
expect_ok "$DISK" unlock "$T/trustpc.img" --test --policy "$T/policy.json"

# clevis-tpm2 talks to the TPM named by TPM2TOOLS_TCTI (exported by swtpm_start), like tpm2-tools.
EXPECT_NAME="clevis luks bind (tpm2, PCR 7, sha256 bank)" expect_ok clevis luks bind -y -d "$T/clevis.img" \
	-k "$T/pass" tpm2 '{"pcr_bank":"sha256","pcr_ids":"7"}'
CLEVIS_SLOT=$(clevis luks list -d "$T/clevis.img" | sed -n 's/^\([0-9]\{1,\}\): tpm2 .*/\1/p' | head -n1)
assert_match '^[0-9]+$' "$CLEVIS_SLOT" "clevis bound keyslot ${CLEVIS_SLOT:-?}"
clevis luks list -d "$T/clevis.img" | sed 's/^/# clevis: /'
cryptsetup luksDump "$T/clevis.img" | awk -v s="  $CLEVIS_SLOT: luks2" '$0 == s { f = 1 } f && /PBKDF:|Iterations:/ { print "# clevis keyslot " $0 } f && /AF hash/ { exit }'

trustpc_unlock() { "$DISK" unlock "$T/trustpc.img" --test; }
clevis_unlock() {
	clevis luks pass -d "$T/clevis.img" -s "$CLEVIS_SLOT" |
		cryptsetup open --test-passphrase "$T/clevis.img" --key-file=- --key-slot "$CLEVIS_SLOT"
}
# Each must work, and the trustpc one must really be once per boot (else the reboots are needless).
swtpm_reboot bench
EXPECT_NAME="trustpc unlock works" expect_ok trustpc_unlock
EXPECT_NAME="trustpc unlock refuses a second unseal in the same boot (so each run needs a reboot)" \
	expect_fail '*' 'PCR 15' trustpc_unlock
EXPECT_NAME="clevis luks pass | cryptsetup open --test-passphrase works" expect_ok clevis_unlock

# ---- timed runs ---------------------------------------------------------------------------------------
t_tp=() t_cl=()
failed=0
for ((i = 0; i < N; i++)); do
	swtpm_reboot bench 2>/dev/null
	if elapsed_us us trustpc_unlock; then t_tp+=("$us"); else failed=$((failed + 1)); cat "$T/last.err" >&2; fi
	swtpm_reboot bench 2>/dev/null
	if elapsed_us us clevis_unlock; then t_cl+=("$us"); else failed=$((failed + 1)); cat "$T/last.err" >&2; fi
done
assert_eq 0 "$failed" "all $((2 * N)) timed unlocks succeeded"

# ---- TPM commands of one unlock of each (recording proxy) ----------------------------------------------
swtpm_reboot bench 2>/dev/null
tpm_proxy_start bench "$T/cap-trustpc" 2>/dev/null
EXPECT_NAME="trustpc unlock through the recording proxy" expect_ok trustpc_unlock
tpm_proxy_stop bench
swtpm_reboot bench 2>/dev/null
tpm_proxy_start bench "$T/cap-clevis" 2>/dev/null
EXPECT_NAME="clevis unlock through the recording proxy" expect_ok clevis_unlock
tpm_proxy_stop bench
for w in trustpc clevis; do
	EXPECT_NAME="the $w capture parses as TPM commands" expect_ok python3 "$LIB/tpm-commands.py" --summary "$T/cap-$w.tx"
	cp "$EXPECT_STDOUT" "$T/cmds-$w"
	python3 "$LIB/tpm-commands.py" "$T/cap-$w.tx" | awk '{ print $4 }' | paste -sd' ' >"$T/seq-$w"
done
n_tp=$(awk '$1 == "total" { print $2 }' "$T/cmds-trustpc")
n_cl=$(awk '$1 == "total" { print $2 }' "$T/cmds-clevis")

# ---- processes started per unlock (strace, optional) ---------------------------------------------------
execs() {
	strace -f -qq -e trace=execve -e signal=none -o "$T/strace.raw" bash -c "$(declare -f "$1"); $(declare -p T DISK CLEVIS_SLOT); $1" \
		>/dev/null 2>&1 || true
	# One line per successful exec (an exec may be split into "unfinished"/"resumed" lines; failed
	# ones end in "= -1 E…"), minus the bash -c wrapper itself.
	grep 'execve("' "$T/strace.raw" | grep -v '= -1 [A-Z]' | tail -n +2 >"$T/strace"
	wc -l <"$T/strace"
}
p_tp=- p_cl=-
if command -v strace >/dev/null; then
	swtpm_reboot bench 2>/dev/null
	p_tp=$(execs trustpc_unlock)
	p_cl=$(execs clevis_unlock)
	grep -o 'execve("[^"]*"' "$T/strace" | sed 's/execve("//; s/"$//; s|.*/||' | sort | uniq -c | sort -rn |
		awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 } END { print "" }' >"$T/procs-clevis"
	n_jose=$(grep -c 'execve("[^"]*/jose"' "$T/strace" || true)
fi

# ---- what clevis' steps cost alone (median of 5) -------------------------------------------------------
part() {
	local v=() k us
	for ((k = 0; k < 5; k++)); do
		elapsed_us us "$@" || { echo "failed: $*" >&2; return 1; }
		v+=("$us")
	done
	stats "${v[@]}" | awk '{ print $1 }'
}
c_luks=$(part cryptsetup open --test-passphrase "$T/clevis.img" --key-file "$T/pass" --key-slot 0)
c_jose=$(part jose fmt -j '{}' -Oo-)
# Without a resource manager a created primary stays loaded: flush it, as clevis does each time.
prim_and_flush() { tpm2_createprimary -Q -C o -G ecc -c "$T/prim.ctx" && tpm2_flushcontext -t; }
c_prim=$(part prim_and_flush)
c_version=$(part tpm2_createprimary -v)
c_pass=$(part clevis luks pass -d "$T/clevis.img" -s "$CLEVIS_SLOT")

# ---- report ----------------------------------------------------------------------------------------------
read -r tp_med tp_min tp_max <<<"$(stats "${t_tp[@]}")"
read -r cl_med cl_min cl_max <<<"$(stats "${t_cl[@]}")"
ratio=$(python3 -c "print(f'{$cl_med / $tp_med:.1f}')")
met=$(python3 -c "print('met' if $cl_med / $tp_med >= $TARGET_RATIO else 'NOT met')")
cat <<EOF

TPM unlock of a LUKS2 image, swtpm $(swtpm --version 2>/dev/null | grep -o 'version [0-9.]*' | head -n1 | cut -d' ' -f2) over TCP, $N runs each, each from a fresh TPM boot (untimed)
                          trustpc-disk unlock --test   clevis luks pass | cryptsetup (baseline)
  median wall time        $(printf '%10s ms' "$tp_med")                $(printf '%10s ms' "$cl_med")
  min / max               $(printf '%6s / %-6s ms' "$tp_min" "$tp_max")           $(printf '%6s / %-6s ms' "$cl_min" "$cl_max")
  TPM commands / unlock   $(printf '%10s' "$n_tp")                   $(printf '%10s' "$n_cl")
  processes / unlock      $(printf '%10s' "$p_tp")                   $(printf '%10s' "$p_cl")
  speed-up (clevis median / trustpc median): ${ratio}x   target >= ${TARGET_RATIO}x: $met

TPM commands, trustpc ($n_tp): $(cat "$T/seq-trustpc")
TPM commands, clevis  ($n_cl): $(cat "$T/seq-clevis")
$(paste "$T/cmds-trustpc" "$T/cmds-clevis" | awk -F'\t' 'BEGIN { printf "  %-32s %s\n", "trustpc (count name)", "clevis (count name)" } { printf "  %-32s %s\n", $1, $2 }')
Processes started by one clevis unlock: $(cat "$T/procs-clevis" 2>/dev/null || echo "(strace not installed)")

Where clevis' time goes (each step alone, median of 5):
  cryptsetup open --test-passphrase (the same PBKDF2-1000 keyslot check trustpc does in-process): $c_luks ms
  one 'jose fmt' process: $c_jose ms (clevis starts jose ${n_jose:-?} times per unlock)
  tpm2_createprimary -G ecc + tpm2_flushcontext -t (2 processes, an ECC primary on swtpm): $c_prim ms
  'tpm2_createprimary -v' (clevis' tools-version probe, no TPM command): $c_version ms
  clevis luks pass alone: $c_pass ms
EOF
test_done
