#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Attestation against a real swtpm (tests/unit/tpm2/test-tpm2-attest-swtpm.c): the EK certificate
# from NV, software MakeCredential activated by the TPM, quotes verified in software, an event log
# that replays to the quoted PCRs; then the EK certificate index rewritten: larger than one NV_Read,
# defined but empty, undefined.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/assert.sh"
source "$here/../lib/swtpm.sh"
require_cmd tpm2_nvundefine
exe="$TRUSTPC_BUILD_ROOT/tests/unit/tpm2/test-tpm2-attest-swtpm"
[ -x "$exe" ] || { echo "missing $exe: build first" >&2; exit 1; }

swtpm_start dev >/dev/null
assert_match '.' "${SWTPM_EK_CERT_P256:-}" "the swtpm fixture made a P-256 EK certificate"
export SWTPM_EK_CERT_P256
EXPECT_NAME="attestation against swtpm (EK cert, activation, quotes, event log)" expect_ok "$exe"

# 1800 bytes: more than one NV_Read (swtpm answers at most 1024), less than swtpm's 2048 per index.
attrs="ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate"
big="$TRUSTPC_TEST_TMP/big-cert.bin"
head -c 1800 /dev/urandom >"$big"
tpm2_nvundefine -C p 0x01c0000a >/dev/null
tpm2_nvdefine -C p -s 1800 -a "$attrs" 0x01c0000a >/dev/null
tpm2_nvwrite -C p -i "$big" 0x01c0000a >/dev/null
EXPECT_NAME="EK certificate read in chunks" expect_ok env TRUSTPC_NV_EXPECT="$big" "$exe" nv
tpm2_nvundefine -C p 0x01c0000a >/dev/null
tpm2_nvdefine -C p -s 800 -a "$attrs" 0x01c0000a >/dev/null
EXPECT_NAME="EK certificate index defined, never written: -ENOENT" expect_ok env TRUSTPC_NV_EXPECT=absent "$exe" nv
tpm2_nvundefine -C p 0x01c0000a >/dev/null
EXPECT_NAME="no EK certificate index: -ENOENT" expect_ok env TRUSTPC_NV_EXPECT=absent "$exe" nv
test_done
