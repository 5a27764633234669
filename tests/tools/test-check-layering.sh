#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# tools/check-layering must catch each kind of violation (and accept a clean tree): a checker that
# cannot fail would let the layering rot silently.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/assert.sh"
require_cmd python3
CHECK="$TRUSTPC_SOURCE_ROOT/tools/check-layering"
R=$TRUSTPC_TEST_TMP/tree

mk() { # mk FILE LINE…
	mkdir -p "$R/$(dirname "$1")"
	local f=$1
	shift
	printf '%s\n' "$@" >"$R/$f"
}
mk lib/basic/log.h '#pragma once' '#include <stdio.h>' '#include "macro.h"'
mk lib/basic/macro.h '#pragma once'
mk lib/crypto/crypto.h '#pragma once' '#include "basic/macro.h"'
mk lib/crypto/crypto-hash.c '#include <mbedtls/md.h>' '#include "crypto/crypto.h"'
mk lib/proto/cose.c '#include "basic/log.h"'
mk lib/tpm2/tpm2.c '#include <tss2/tss2_esys.h>' '#include "crypto/crypto.h"' '#include "basic/log.h"'
mk lib/luks/luks.c '#include <libcryptsetup.h>' '#include "crypto/crypto.h"'
mk lib/tls/tls.c '#include <mbedtls/ssl.h>' '#include "crypto/crypto.h"'
mk boot/disk.c '#include "tpm2/tpm2.h"' '#include "luks/luks.h"'
mk tests/unit/tpm2/t.c '#include <tss2/tss2_mu.h>'

EXPECT_NAME="a clean tree passes" expect_ok "$CHECK" --root "$R"

# bad_case NAME FILE LINE EXPECTED-MESSAGE-REGEX: one violation added to the clean tree must be found.
bad_case() {
	local name=$1 file=$2 line=$3 pattern=$4
	cp -a "$R" "$R.bad"
	printf '%s\n' "$line" >>"$R.bad/$file"
	EXPECT_NAME="$name" expect_fail 1 '' "$CHECK" --root "$R.bad" || true
	assert_file_contains "$EXPECT_STDOUT" "^$file:[0-9]+: .*$pattern" "$name: reported as $file:LINE" || true
	rm -rf "$R.bad"
}
bad_case "basic includes crypto" lib/basic/log.h '#include "crypto/crypto.h"' 'lib/basic may use only no other'
bad_case "crypto includes tpm2" lib/crypto/crypto-hash.c '#include "tpm2/tpm2.h"' 'lib/crypto includes lib/tpm2/tpm2.h'
bad_case "proto includes tpm2" lib/proto/cose.c '#include <tpm2/tpm2.h>' 'lib/proto may use only basic, crypto'
bad_case "tpm2 includes luks" lib/tpm2/tpm2.c '#include "luks/luks.h"' 'lib/tpm2 includes lib/luks'
bad_case "luks includes tpm2 via ../" lib/luks/luks.c '#include "../tpm2/tpm2.h"' 'lib/luks includes lib/tpm2'
bad_case "lib includes boot" lib/tpm2/tpm2.c '#include "boot/disk.h"' 'must not depend on boot/'
bad_case "lib includes daemon" lib/basic/log.h '#include "../../daemon/agent.h"' 'must not depend on daemon/'
bad_case "tss2 outside lib/tpm2" lib/luks/luks.c '#include <tss2/tss2_rc.h>' 'allowed only in lib/tpm2'
bad_case "tss2 in boot" boot/disk.c '#include <tss2/tss2_esys.h>' 'allowed only in lib/tpm2'
bad_case "libcryptsetup outside lib/luks" boot/disk.c '#include <libcryptsetup.h>' 'allowed only in lib/luks'
bad_case "mbedtls outside crypto/tls" lib/tpm2/tpm2.c '#include <mbedtls/sha256.h>' 'allowed only in lib/crypto, lib/tls'
bad_case "psa outside crypto/tls" boot/disk.c '#  include <psa/crypto.h>' 'allowed only in lib/crypto, lib/tls'
mkdir -p "$R/lib/util2" && echo '#include "basic/log.h"' >"$R/lib/util2/x.c"
EXPECT_NAME="an unknown lib module is reported" expect_fail 1 'violation' "$CHECK" --root "$R"
assert_file_contains "$EXPECT_STDOUT" "lib module 'util2' is missing" "unknown module named"
rm -rf "$R/lib/util2"
EXPECT_NAME="the real tree passes" expect_ok "$CHECK"
test_done
