#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Remote lock under load (issue 4, "Benchmark"): K connected simulated devices (bench/load-devices
# `serve`: software TPMs, they verify and execute lock/unlock commands and answer with signed
# results, a software quote over the lock result) against a real trustpc-server on 127.0.0.1.
# For each K of BENCH_K:
#   (a) lock latency of ONE device (device 0) while K are connected: BENCH_ROUNDS rounds of
#       `trustpcctl lock DEV --reason …` → the command `done` in the server's database (the
#       device's signed result verified and committed), each followed by an unlock timed the same
#       way; p50/p99/max. Target: p99 < 250 ms with 10,000 connected.
#   (b) fleet-wide: `trustpcctl lock --all` (for K below the number of enrolled devices: the K
#       connected ones as a device list, since --all would also queue for the offline ones) → time
#       until all K are queued, delivered and done, and the rate; then the fleet unlock, the same
#       way. Target: all 10,000 locked in < 60 s.
#
#   BENCH_K="1 1000 10000"  connected devices per measurement (default; every K needs that many
#                           enrolled: the largest is enrolled once, ≈ 0.11 s a device)
#   BENCH_ROUNDS=N          lock/unlock rounds on one device (default 20)
#   BENCH_STATE=DIR         server + device state kept between runs (default
#                           $TRUSTPC_BUILD_ROOT/bench-fleet-lock; delete it to start over)
#   BENCH_ENROLL_ONLY=1     enroll the largest K and stop (to prepare the state ahead)
#   BENCH_EVENTS=N          events in the log every device sends (default 40)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../tests/lib/common.sh"
require_cmd python3
KS=${BENCH_K:-"1 1000 10000"}
ROUNDS=${BENCH_ROUNDS:-20}
EVENTS=${BENCH_EVENTS:-40}
STATE=${BENCH_STATE:-$TRUSTPC_BUILD_ROOT/bench-fleet-lock}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive number" >&2; exit 2; }
KMAX=0
for k in $KS; do
	[[ "$k" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_K: '$k' is not a positive number" >&2; exit 2; }
	((k > KMAX)) && KMAX=$k
done
server=$(find_binary trustpc-server || true)
load=$(find_binary load-devices || true)
CTL=$(find_binary trustpcctl || true)
[[ -n "$server" && -n "$load" && -n "$CTL" ]] || skip "trustpc-server, trustpcctl or load-devices not built"

# Both processes hold one socket per device (the server: plus listeners, database, admin clients).
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < KMAX + 256)); then
	echo "# open-file limit $(ulimit -n) is too low for $KMAX devices: raise the hard limit (ulimit -Hn)" >&2
	exit 1
fi

S="$STATE/server"
D="$STATE/devices"
mkdir -p "$STATE"
if [[ ! -f "$S/trustpc-server.db" || "$(cat "$STATE/events" 2>/dev/null)" != "$EVENTS" ]]; then
	# A new fleet (or another event log, hence other PCR values): start over.
	rm -rf "$S" "$D" "$STATE/helpdesk.token"
	"$load" prepare --state "$D" --events "$EVENTS" >/dev/null
	"$server" init --state-dir "$S" --hostname localhost >"$TRUSTPC_TEST_TMP/init.log" 2>&1
	echo "$EVENTS" >"$STATE/events"
fi
pcrs=$("$load" prepare --state "$D" --events "$EVENTS")
# shellcheck disable=SC2086 # "7=HEX 11=HEX": one argument each
"$server" image set load $pcrs --state-dir "$S" >/dev/null 2>&1
if [[ ! -s "$STATE/helpdesk.token" ]]; then
	(umask 077 && "$server" operator add op-bench --role helpdesk --state-dir "$S" >"$STATE/helpdesk.token.new")
	mv "$STATE/helpdesk.token.new" "$STATE/helpdesk.token"
fi
cat >"$S/bench.conf" <<CONF
listen = 127.0.0.1
tpm_ca = $D/tpm-ca.pem
default_image = load
# The simulated devices send no heartbeats: keep them connected for the whole run.
heartbeat = 86400
max_connections = $((KMAX + 64))
CONF

# shellcheck source=tests/integration/test-server-common.sh
source "$here/../tests/integration/test-server-common.sh"
server_start "$S" --config "$S/bench.conf"
server_pid=$SERVER_PID enroll_port=$ENROLL_PORT device_port=$DEVICE_PORT admin_port=$ADMIN_PORT

missing=$("$load" missing --state "$D" -k "$KMAX")
if ((missing > 0)); then
	echo "# enrolling $missing devices (once; kept in $STATE)"
	t0=$(date +%s.%N)
	for ((i = 0; i < missing; i++)); do
		"$server" token create --image load --state-dir "$S" 2>/dev/null
	done >"$TRUSTPC_TEST_TMP/tokens"
	"$load" enroll --state "$D" -k "$KMAX" --server "127.0.0.1:$enroll_port" --ca "$S/ca.pem" \
		--tokens "$TRUSTPC_TEST_TMP/tokens" --events "$EVENTS"
	echo "# enrolled in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s"
fi
# The server's exit status: 0 after SIGTERM unless it failed.
server_stopped() {
	server_stop
	if ((SERVER_RC == 0)); then ok "trustpc-server stopped cleanly"; else not_ok "trustpc-server stopped cleanly" "exit $SERVER_RC"; fi
}
if [[ "${BENCH_ENROLL_ONLY:-0}" != 0 ]]; then
	server_stopped
	test_done
fi

export TRUSTPC_SERVER="localhost:$admin_port" TRUSTPC_CA="$S/ca.pem"
enrolled=$(find "$D" -maxdepth 1 -name 'dev-*' | wc -l)
echo "# $(nproc) CPUs; $enrolled devices enrolled in $STATE; server pid $server_pid"
for K in $KS; do
	serve_log="$TRUSTPC_TEST_TMP/serve-$K.log"
	echo
	echo "## K = $K connected devices (load average before connecting: $(cut -d' ' -f1-3 /proc/loadavg))"
	"$load" serve --state "$D" -k "$K" --server "127.0.0.1:$device_port" --server-pid "$server_pid" \
		--events "$EVENTS" --timeout 3600 >"$serve_log" 2>"$TRUSTPC_TEST_TMP/serve-$K.err" &
	serve_pid=$!
	cleanup_push "kill $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null"
	# shellcheck disable=SC2317 # called through poll_until
	serve_ready() { grep -q '^ready' "$serve_log" || ! kill -0 "$serve_pid" 2>/dev/null; }
	poll_until 3600 serve_ready
	if ! grep -q '^ready' "$serve_log"; then
		echo "# load-devices serve did not get all $K devices attested:" >&2
		cat "$serve_log" "$TRUSTPC_TEST_TMP/serve-$K.err" >&2
		exit 1
	fi
	grep '^connect' "$serve_log" | sed 's/^/# /'
	python3 - "$CTL" "$STATE/helpdesk.token" "$S/trustpc-server.db" "$D" "$K" "$ROUNDS" "$serve_log" \
		"$enrolled" "$server_pid" "$serve_pid" <<'EOF'
import json, os, sqlite3, subprocess, sys, time
ctl, token, dbpath, devdir, K, rounds, serve_log, enrolled, server_pid, serve_pid = sys.argv[1:11]
K, rounds, enrolled = int(K), int(rounds), int(enrolled)
TARGET_P99_MS, TARGET_FLEET_S = 250, 60
# Autocommit: an open transaction would keep reading the same snapshot of the WAL.
db = sqlite3.connect(f"file:{dbpath}?mode=ro", uri=True, timeout=30, isolation_level=None)

def device_id(i):
    with open(os.path.join(devdir, f"dev-{i:05d}")) as f:
        for line in f:
            if line.startswith("id="):
                return bytes.fromhex(line[3:].strip()).decode()
    sys.exit(f"no id in device file {i}")

# "command ID INDEX TYPE RECEIVED SENT" lines of load-devices serve (CLOCK_MONOTONIC ms, the clock
# of time.monotonic()).
seen, log_off = {}, 0
def read_serve_log():
    global log_off
    with open(serve_log) as f:
        f.seek(log_off)
        while True:
            line = f.readline()
            if not line.endswith("\n"):
                break
            log_off = f.tell()
            w = line.split()
            if len(w) == 6 and w[0] == "command":
                seen[w[1]] = (int(w[2]), w[3], float(w[4]) / 1000, float(w[5]) / 1000)

def ctl_json(*args):
    p = subprocess.run([ctl, "--token-file", token, "--json", *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"trustpcctl {args[0]} failed ({p.returncode}): {p.stderr.strip()[:2000]}")
    return json.loads(p.stdout)

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]

TICK = os.sysconf("SC_CLK_TCK")
def cpu_s(pid):
    """User + system CPU seconds of a process, all its threads (/proc/PID/stat fields 14, 15)."""
    with open(f"/proc/{pid}/stat") as f:
        w = f.read().rsplit(")", 1)[1].split()
    return (int(w[11]) + int(w[12])) / TICK

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

FINISHED = ("done", "rejected", "failed")

# ---- (a) one device, K connected ----
dev = device_id(0)
def one(verb, *extra):
    t0 = time.monotonic()
    cid = ctl_json(verb, dev, *extra)[0]["id"]
    t1 = time.monotonic()
    while True:
        row = db.execute("SELECT state, epoch FROM commands WHERE id = ?", (cid,)).fetchone()
        if row and row[0] in FINISHED:
            break
        if time.monotonic() - t0 > 60:
            sys.exit(f"{verb} {cid}: not finished after 60 s (state {row[0] if row else '?'})")
        time.sleep(0.001)
    t2 = time.monotonic()
    if row[0] != "done":
        reason = db.execute("SELECT reason FROM commands WHERE id = ?", (cid,)).fetchone()[0]
        sys.exit(f"{verb} {cid}: {row[0]}: {reason}")
    # load-devices writes its line right after sending the result: it may come a moment after done.
    deadline = time.monotonic() + 5
    while read_serve_log() or cid not in seen:
        if time.monotonic() > deadline:
            sys.exit(f"{verb} {cid}: done, but load-devices did not log it")
        time.sleep(0.001)
    _, _, recv, sent = seen[cid]
    # whole path, trustpcctl exit → done, start → device got it, device's handling, result sent → done seen
    return dict(total=(t2 - t0) * 1000, after_ctl=(t2 - t1) * 1000, to_device=(recv - t0) * 1000,
                device=(sent - recv) * 1000, back=(t2 - sent) * 1000, epoch=row[1])

la0 = loadavg()
res = {"lock": [], "unlock": []}
for i in range(rounds):
    res["lock"].append(one("lock", "--reason", f"bench-fleet-lock K={K} round {i}"))
    res["unlock"].append(one("unlock"))
epochs = [r["epoch"] for r in res["lock"]]
assert epochs == list(range(epochs[0], epochs[0] + rounds)), f"the lock epochs are not consecutive: {epochs}"
print(f"# (a) one device, {K} connected: {rounds} lock + unlock rounds (p99 = max below 100 rounds); "
      f"epochs {epochs[0]} … {epochs[-1]}; load average {la0} → {loadavg()}")
labels = (("total", "trustpcctl start → done"), ("after_ctl", "trustpcctl exit → done"),
          ("to_device", "trustpcctl start → device has it"), ("device", "device: verify, execute, sign, quote"),
          ("back", "result sent → done in the database"))
for verb, rows in res.items():
    for k, label in labels:
        v = [r[k] for r in rows]
        print(f"  {verb:6} {label:38} p50 {pct(v, 50):7.1f} ms  p99 {pct(v, 99):7.1f} ms  max {max(v):7.1f} ms")
p99 = pct([r["total"] for r in res["lock"]], 99)
print(f"  target: lock p99 < {TARGET_P99_MS} ms for one device with 10,000 connected — K={K}: "
      f"{p99:.1f} ms, {'met' if p99 < TARGET_P99_MS else 'NOT met'}")
sys.stdout.flush()

# ---- (b) the whole connected fleet ----
ids = [device_id(i) for i in range(K)]
db.execute("CREATE TEMP TABLE batch(id TEXT PRIMARY KEY) WITHOUT ROWID")

def fleet(verb, *extra):
    la = loadavg()
    cpu0 = cpu_s(server_pid), cpu_s(serve_pid)
    rowid0 = db.execute("SELECT coalesce(max(rowid), 0) FROM commands").fetchone()[0]
    t0 = time.monotonic()
    if K == enrolled:
        how = f"{verb} --all"
        p = subprocess.Popen([ctl, "--token-file", token, "--json", verb, "--all", *extra],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Another operator's request while the fleet command is being queued.
        time.sleep(1)
        ts = time.monotonic()
        ctl_json("show", dev)
        show_ms = (time.monotonic() - ts) * 1000
        queued_then = db.execute("SELECT count(*) FROM commands WHERE rowid > ?", (rowid0,)).fetchone()[0]
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            sys.exit(f"trustpcctl {verb} --all failed ({p.returncode}): {stderr.strip()[:2000]}")
        out = json.loads(stdout)
        print(f"  during the queueing: trustpcctl show DEV answered in {show_ms:.0f} ms "
              f"(started 1 s into it; about {queued_then} of {K} commands queued when it was answered)")
    else:
        # --all would also queue for the enrolled devices that are not connected: the K as lists
        # (a request body holds at most 64 KiB: 1,500 ids a call).
        how = f"{verb} DEV… ({K} ids{', in calls of 1,500' if K > 1500 else ''})"
        out = []
        for k in range(0, K, 1500):
            out += ctl_json(verb, *ids[k:k + 1500], *extra)
    t_queued = time.monotonic()
    cids = [e["id"] for e in out if "error" not in e]
    errors = [e for e in out if "error" in e]
    if errors:
        print(f"  {len(errors)} devices refused: {errors[0]}")
    db.execute("DELETE FROM batch")
    db.executemany("INSERT INTO batch VALUES (?)", [(c,) for c in cids])
    t_delivered = t_done = None
    n = len(cids)
    while t_done is None:
        counts = dict(db.execute("SELECT state, count(*) FROM commands JOIN batch USING (id) GROUP BY state").fetchall())
        now = time.monotonic()
        if t_delivered is None and counts.get("queued", 0) == 0:
            t_delivered = now
        if sum(counts.get(s, 0) for s in FINISHED) == n:
            t_done = now
            break
        if now - t0 > 900:
            sys.exit(f"{how}: not all finished after 900 s: {counts}")
        time.sleep(0.02)
    cpu1 = cpu_s(server_pid), cpu_s(serve_pid)
    bad = db.execute("SELECT state, reason, count(*) FROM commands JOIN batch USING (id) WHERE state != 'done' "
                     "GROUP BY state, reason").fetchall()
    deadline = time.monotonic() + 5
    while read_serve_log() or (any(c not in seen for c in cids) and time.monotonic() < deadline):
        time.sleep(0.01)
    got = [seen[c] for c in cids if c in seen]
    first_recv = min(g[2] for g in got) - t0 if got else float("nan")
    last_recv = max(g[2] for g in got) - t0 if got else float("nan")
    last_sent = max(g[3] for g in got) - t0 if got else float("nan")
    total = t_done - t0
    print(f"  {how}: {n} commands ({len(got)} answered by the devices); load average {la} → {loadavg()}")
    print(f"    all queued (trustpcctl exit)   {t_queued - t0:8.2f} s")
    print(f"    all delivered (none queued)    {t_delivered - t0:8.2f} s   (database, polled every 20 ms)")
    print(f"    devices got first / last       {first_recv:8.2f} s / {last_recv:.2f} s")
    print(f"    devices sent last result       {last_sent:8.2f} s")
    print(f"    all done                       {total:8.2f} s   → {n / total:.0f} commands/s end to end")
    srv, sim = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    print(f"    CPU: trustpc-server {srv:.1f} s ({srv / n * 1000:.2f} ms a device, all its threads), "
          f"the simulated devices {sim:.1f} s ({sim / n * 1000:.2f} ms a device), "
          f"of {total * os.cpu_count():.0f} CPU-s")
    if bad:
        sys.exit(f"{how}: not all done: {bad}")
    return total

t_lock = fleet("lock", "--reason", f"bench-fleet-lock K={K} fleet")
t_unlock = fleet("unlock")
print(f"# (b) fleet lock of {K}: {t_lock:.2f} s, unlock {t_unlock:.2f} s   target: all 10,000 locked in "
      f"< {TARGET_FLEET_S} s — K={K}: {'met' if t_lock < TARGET_FLEET_S else 'NOT met'}"
      f"{f' (≈ {t_lock * 10000 / K:.0f} s for 10,000 if linear)' if 1000 <= K < 10000 else ''}")
EOF
	kill "$serve_pid"
	wait "$serve_pid" || { echo "# load-devices serve exited with $?" >&2; exit 1; }
	tail -n1 "$serve_log" | sed 's/^/# load-devices: /'
done
server_stopped
test_done
