#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trustpcctl image register against a real trustpc-server: the JSON of a real
# `systemd-measure calculate` (the file the image build writes next to the image) becomes the
# image's expected PCR 11; PCR 7 from --pcr 7=HEX or kept from the registered image of the same
# name; audited as image.set. What the registration is for: the server signs an unlock's disk
# policy for the image only once PCR 7 and 11 are known (409 no-policy-data before, 202 after).
# Refusals (phase-only measurement, no name, not JSON, PCR 11 on the command line, helpdesk role)
# change nothing on the server.
set -euo pipefail
source "${TRUSTPC_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/assert.sh"
require_cmd jq sqlite3
MEASURE=/usr/lib/systemd/systemd-measure
[[ -x $MEASURE ]] || MEASURE=/lib/systemd/systemd-measure
[[ -x $MEASURE ]] || skip "systemd-measure (systemd 252) is not installed"

SERVER=$(find_binary trustpc-server)
CTL=$(find_binary trustpcctl)
[[ -n "$SERVER" && -n "$CTL" ]] || { not_ok "trustpc-server and trustpcctl are built"; exit 1; }
T=$TRUSTPC_TEST_TMP
st=$T/state
db() { sqlite3 -bail "$st/trustpc-server.db" "$1"; }

expect_ok "$SERVER" init --state-dir "$st"
for role in admin helpdesk; do
	(umask 077 && "$SERVER" operator add "op-$role" --role "$role" --state-dir "$st" >"$T/$role.token")
done
# A device of image fleet-a that reported epoch 3 (seeded the way enrollment writes it).
ID=ab12cd34ef56ab12cd34ef56ab12cd34
db "INSERT INTO devices(device_id, hostname, image, state, reason, enrolled_at, last_seen, attested_at, posture, escrow)
    VALUES ('$ID', 'pc-1', 'fleet-a', 'trusted', NULL, 1700000000, 1700000300, 1700000200, '{\"epoch\":3,\"locked\":true}', NULL)"
NOTIFY_SOCKET='' "$SERVER" run --state-dir "$st" --listen 127.0.0.1 --enroll-port 0 --device-port 0 --admin-port 0 \
	--tpm-ca "$st/ca.pem" 2>"$T/server.log" &
cleanup_push "kill -9 $! 2>/dev/null"
admin_port() { grep -oE 'admin port [0-9]+' "$T/server.log" | grep -oE '[0-9]+$'; }
poll_until 10 admin_port >/dev/null || { not_ok "server listening" "$(cat "$T/server.log")"; exit 1; }
export TRUSTPC_SERVER="localhost:$(admin_port)" TRUSTPC_CA="$st/ca.pem"
ctl() { local role=$1; shift; "$CTL" --token-file "$T/$role.token" "$@"; }

# A UKI's sections, measured the way the build does (empty phase: the image extends no phase).
head -c 4096 /dev/urandom >"$T/linux"
echo "root=PARTLABEL=root ro roothash=00" >"$T/cmdline"
"$MEASURE" calculate --linux="$T/linux" --cmdline="$T/cmdline" --bank=sha256 --phase= --json=short >"$T/pcr11.json"
H11=$(jq -r '.sha256[0].hash' "$T/pcr11.json")
assert_match '^[0-9a-f]{64}$' "$H11" "systemd-measure wrote a PCR 11 value"
H7=$(printf 'secure boot state' | sha256sum | cut -d' ' -f1)

images_json() { ctl admin --json images; }
# Refusals first: each leaves the server without any image and without an audit row.
audit0=$(db "SELECT count(*) FROM audit")
"$MEASURE" calculate --linux="$T/linux" --cmdline="$T/cmdline" --bank=sha256 --json=short >"$T/phases.json"
expect_fail 2 "PCR 11 only for 4 boot phase\(s\).*--phase=" ctl admin image register "$T/phases.json" fleet-a
expect_fail 2 "names no image" ctl admin image register "$T/pcr11.json"
echo '{"sha256": [' >"$T/broken.json"
expect_fail 2 "is not JSON" ctl admin image register "$T/broken.json" fleet-a
expect_fail 2 "only 7=HEX" ctl admin image register "$T/pcr11.json" fleet-a --pcr 11="$H11"
expect_fail 2 "only 7=HEX" ctl admin image register "$T/pcr11.json" fleet-a --pcr 7=abcd
expect_fail 3 "Cannot read" ctl admin image register "$T/missing.json" fleet-a
expect_fail 4 "needs the admin role" ctl helpdesk image register "$T/pcr11.json" fleet-a
expect_fail 2 "Usage: trustpcctl image register" ctl admin image register
expect_fail 2 "takes only --pcr" ctl admin image register "$T/pcr11.json" fleet-a --ttl 1h
assert_eq "[]" "$(images_json | jq -c .)" "refusals: no image registered"
assert_eq "$audit0" "$(db "SELECT count(*) FROM audit")" "refusals: nothing audited"

# PCR 11 only: registered, with the warning that unlocks cannot be signed yet.
expect_ok ctl admin image register "$T/pcr11.json" fleet-a
assert_match "Image 'fleet-a' registered: PCR 11 $H11" "$(cat "$EXPECT_STDOUT")" "register: PCR 11 from the file"
assert_match "no PCR 7 for 'fleet-a'.*no-policy-data" "$(cat "$EXPECT_STDERR")" "register without PCR 7: the warning says what follows"
assert_eq "$H11" "$(images_json | jq -r '.[] | select(.name == "fleet-a") | .pcrs["11"]')" "the server has PCR 11"
assert_eq "null" "$(images_json | jq -r '.[] | select(.name == "fleet-a") | .pcrs["7"]')" "and no PCR 7"
assert_eq "image.set|op-admin|fleet-a" "$(db "SELECT action, actor, subject FROM audit ORDER BY seq DESC LIMIT 1")" "register is audited"
expect_fail '*' "no-policy-data|no expected value for every PCR" ctl helpdesk unlock "$ID"
assert_eq 0 "$(db "SELECT count(*) FROM commands")" "no unlock queued without PCR 7"

# PCR 7 given: the server now signs the unlock's disk policy for the image.
expect_ok ctl admin image register "$T/pcr11.json" fleet-a --pcr 7="${H7^^}"
assert_match "PCR 7 $H7 \(--pcr 7\)" "$(cat "$EXPECT_STDOUT")" "register: PCR 7 from --pcr (lower-cased)"
assert_eq "$H7" "$(images_json | jq -r '.[] | select(.name == "fleet-a") | .pcrs["7"]')" "the server has PCR 7"
EXPECT_NAME="unlock signed for the registered image" expect_ok ctl helpdesk --json unlock "$ID"
assert_eq "3" "$(jq -r '.[0].args.epoch' "$EXPECT_STDOUT")" "the unlock's policy is for the device's epoch"
assert_eq "fleet-a" "$(jq -r '.[0].args.image' "$EXPECT_STDOUT")" "the unlock's policy is for the device's image"

# A rebuilt image (new kernel command line) under the same name keeps the fleet's PCR 7.
echo "root=PARTLABEL=root ro roothash=01" >"$T/cmdline"
"$MEASURE" calculate --linux="$T/linux" --cmdline="$T/cmdline" --bank=sha256 --phase= --json=short |
	jq '. + {name: "fleet-a"}' >"$T/pcr11-b.json"
H11B=$(jq -r '.sha256[0].hash' "$T/pcr11-b.json")
assert_ne "$H11" "$H11B" "another command line, another PCR 11"
expect_ok ctl admin image register "$T/pcr11-b.json"
assert_match "PCR 7 $H7 \(kept from the registered image\)" "$(cat "$EXPECT_STDOUT")" "re-register: PCR 7 kept, name from the file"
assert_eq "$H11B $H7" "$(images_json | jq -r '.[] | select(.name == "fleet-a") | "\(.pcrs["11"]) \(.pcrs["7"])"')" "re-register: new PCR 11, same PCR 7"
expect_ok ctl admin --json image register "$T/pcr11-b.json" fleet-b
assert_eq "$H11B" "$(jq -r '.pcrs["11"]' "$EXPECT_STDOUT")" "--json prints the API's answer"
assert_eq 2 "$(images_json | jq length)" "a second name is a second image"
test_done
