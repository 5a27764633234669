#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lib/tpm2 against a real swtpm: the TPM itself enforces device binding, key, PCRs, epoch, PIN
# and the pinned SRK (tests/unit/tpm2/test-tpm2-swtpm.c).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/common.sh"
source "$here/../lib/swtpm.sh"
exe="$TRUSTPC_BUILD_ROOT/tests/unit/tpm2/test-tpm2-swtpm"
[ -x "$exe" ] || { echo "missing $exe: build first" >&2; exit 1; }
swtpm_start dev >/dev/null
# An NV index at the neighbouring handle with other attributes: lib/tpm2 must refuse it as a counter.
tpm2_nvdefine -C o -s 8 -a "ownerread|ownerwrite" 0x01807c51 >/dev/null
"$exe"
