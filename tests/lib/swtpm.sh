# SPDX-License-Identifier: Apache-2.0
# tests/lib/swtpm.sh — software TPMs for integration tests, one per simulated device.
#
#   swtpm_start NAME     manufacture a TPM (EK certs from a per-test local CA) on first use, start it
#                        on a free TCP port pair, wait until it answers, export its TCTI (below)
#   swtpm_reboot NAME    orderly TPM2_Shutdown, stop, start again on the same state: PCRs are reset,
#                        NV indices, persistent handles and counters are kept
#   swtpm_stop [NAME]    stop one swtpm (default: all)
#   swtpm_use NAME       export NAME's TCTI again (after working with another device)
#   swtpm_tcti NAME      print NAME's TCTI string; swtpm_port NAME, swtpm_pid NAME, swtpm_dir NAME
#   tpm_pcr_extend NAME PCR HEXDIGEST   extend the sha256 bank of PCR by a 32-byte digest
#   tpm_pcr_read NAME PCR               print the sha256 value of PCR as 64 lower-case hex digits
#   tpm_proxy_start NAME [CAPTURE]      put a recording proxy (tpm-proxy.py) in front of NAME's
#                        swtpm and point the exported TCTI at it; exports PROXY_CAPTURE (all bytes
#                        of the command port, both directions, in order; PROXY_CAPTURE.tx/.rx per
#                        direction), PROXY_PORT, PROXY_PID
#   tpm_proxy_stop [NAME]               stop the proxy (default: all) and export NAME's direct TCTI
#   tpm_capture_contains FILE HEX       exit 0 when the bytes HEX occur in FILE
#
# Exported by swtpm_start/swtpm_use (always the device started or selected last):
#   TPM_TCTI_NAME, TPM2TOOLS_TCTI, TRUSTPC_TPM2_DEVICE = swtpm:host=127.0.0.1,port=P
#   SWTPM_STATE_DIR, SWTPM_PORT (command port; control port is SWTPM_PORT+1)
#   SWTPM_EK_CERT_RSA    DER EK certificate, RSA 2048, also in NV 0x01c00002 (EK 0x81010001)
#   SWTPM_EK_CERT_P384   DER EK certificate, ECC NIST P-384, also in NV 0x01c00016 (EK 0x81010016)
#   SWTPM_EK_CERT_P256   DER EK certificate, ECC NIST P-256 (TCG default EK template, not
#                        persisted), also in NV 0x01c0000a — added by us, see below
# Exported once per test (the "TPM manufacturer" CA shared by all devices of the test):
#   SWTPM_CA_CERT        PEM bundle: issuer (intermediate) cert + root cert; verifies every EK cert:
#                        openssl verify -CAfile "$SWTPM_CA_CERT" ek.pem
#   SWTPM_CA_ROOT_CERT   PEM root CA only;  SWTPM_CA_ISSUER_CERT  PEM intermediate only
#
# swtpm_setup 0.7.1 (Debian 12) always makes an RSA 2048 EK and an ECC P-384 EK with certificates,
# with or without --ecc; it makes no P-256 EK. Most real TPMs carry a P-256 EK certificate at
# 0x01c0000a, so swtpm_start adds one, issued by the same local CA (SWTPM_EK_P256=0 skips that).
#
# Call these functions directly, not in $(…): they export variables and track processes in the
# calling shell. Everything is stopped and removed by the exit trap of common.sh.

if [[ -n "${_TRUSTPC_SWTPM_SH:-}" ]]; then
	return 0
fi
_TRUSTPC_SWTPM_SH=1
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_cmd swtpm swtpm_setup swtpm_localca swtpm_ioctl tpm2_getcap tpm2_pcrextend tpm2_pcrread \
	tpm2_createek tpm2_print tpm2_nvdefine tpm2_nvwrite tpm2_shutdown tpm2_flushcontext openssl

SWTPM_ROOT="$TRUSTPC_TEST_TMP/swtpm"
SWTPM_READY_TIMEOUT=${SWTPM_READY_TIMEOUT:-10}
declare -A _swtpm_pid=() _swtpm_port=()

_swtpm_die() {
	echo "swtpm.sh: $*" >&2
	return 1
}

_swtpm_check_name() {
	[[ "$1" =~ ^[A-Za-z0-9_-]+$ ]] || _swtpm_die "bad swtpm name '$1' (use [A-Za-z0-9_-])"
}

# The per-test local CA: swtpm_localca creates the root and issuer on first use in statedir.
_swtpm_config() {
	local d="$SWTPM_ROOT/config"
	[[ -f "$d/swtpm_setup.conf" ]] && return 0
	mkdir -p "$d" "$SWTPM_ROOT/ca"
	cat >"$d/swtpm-localca.conf" <<-EOF
		statedir = $SWTPM_ROOT/ca
		signingkey = $SWTPM_ROOT/ca/signkey.pem
		issuercert = $SWTPM_ROOT/ca/issuercert.pem
		certserial = $SWTPM_ROOT/ca/certserial
	EOF
	cat >"$d/swtpm-localca.options" <<-EOF
		--platform-manufacturer trustpc-test
		--platform-version 2.1
		--platform-model swtpm
	EOF
	cat >"$d/swtpm_setup.conf" <<-EOF
		create_certs_tool = $(command -v swtpm_localca)
		create_certs_tool_config = $d/swtpm-localca.conf
		create_certs_tool_options = $d/swtpm-localca.options
		active_pcr_banks = sha256
	EOF
}

_swtpm_export_ca() {
	SWTPM_CA_ROOT_CERT="$SWTPM_ROOT/ca/swtpm-localca-rootca-cert.pem"
	SWTPM_CA_ISSUER_CERT="$SWTPM_ROOT/ca/issuercert.pem"
	SWTPM_CA_CERT="$SWTPM_ROOT/ca/ca-bundle.pem"
	[[ -f "$SWTPM_CA_ROOT_CERT" && -f "$SWTPM_CA_ISSUER_CERT" ]] ||
		_swtpm_die "swtpm_localca made no CA in $SWTPM_ROOT/ca" || return 1
	cat "$SWTPM_CA_ISSUER_CERT" "$SWTPM_CA_ROOT_CERT" >"$SWTPM_CA_CERT"
	export SWTPM_CA_CERT SWTPM_CA_ROOT_CERT SWTPM_CA_ISSUER_CERT
}

# "Manufacturing": EK keys, EK and platform certificates. NV stays writable (no --lock-nvram): tests
# define and write their own indices, and the P-256 EK certificate is added later.
_swtpm_manufacture() {
	local name=$1 d="$SWTPM_ROOT/$1"
	mkdir -p "$d/state" "$d/ekcerts"
	_swtpm_config
	if ! swtpm_setup --tpm2 --tpmstate "$d/state" --create-ek-cert --create-platform-cert \
		--pcr-banks sha256 --config "$SWTPM_ROOT/config/swtpm_setup.conf" \
		--write-ek-cert-files "$d/ekcerts" --logfile "$d/setup.log" >/dev/null 2>&1; then
		cat "$d/setup.log" >&2
		_swtpm_die "swtpm_setup failed for '$name'"
		return 1
	fi
	_swtpm_export_ca
}

# Inodes of the TCP sockets listening on port $1 (any address).
_port_listen_inodes() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

_port_free() {
	[[ -z "$(_port_listen_inodes "$1")" ]]
}

# True when process $1 holds the listening socket of port $2: a readiness answer could otherwise
# come from someone else's server that took the port first.
_pid_owns_port() {
	local pid=$1 port=$2 ino fds
	fds=$(ls -l "/proc/$pid/fd" 2>/dev/null) || return 1
	for ino in $(_port_listen_inodes "$port"); do
		grep -q "socket:\[$ino\]" <<<"$fds" && return 0
	done
	return 1
}

_pid_alive() {
	local st
	[[ -r "/proc/$1/stat" ]] || return 1
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n "$st" && "$st" != Z ]]
}

# A random even port below the kernel's ephemeral range (so that no outgoing connection holds it),
# whose pair P, P+1 is free now.
_pick_port_pair() {
	local lo hi p i
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
	hi=$((lo - 2))
	((hi < 12000)) && hi=60000
	for ((i = 0; i < 100; i++)); do
		p=$((10000 + (RANDOM * 32768 + RANDOM) % (hi - 10000)))
		p=$((p & ~1))
		if _port_free "$p" && _port_free $((p + 1)); then
			echo "$p"
			return 0
		fi
	done
	_swtpm_die "no free port pair found"
}

_swtpm_ready() {
	local pid=$1 port=$2
	_pid_alive "$pid" || return 0 # stop polling: it died (port taken?); the caller looks
	tpm2_getcap -T "swtpm:host=127.0.0.1,port=$port" properties-fixed >/dev/null 2>&1 &&
		_pid_owns_port "$pid" "$port"
}

# _swtpm_launch NAME [PORT]: starts swtpm on PORT (or a random free pair), retrying on collision.
_swtpm_launch() {
	local name=$1 want=${2:-} d="$SWTPM_ROOT/$1" port pid attempt t0
	for ((attempt = 0; attempt < 8; attempt++)); do
		if [[ -n "$want" && $attempt == 0 ]]; then
			port=$want
		else
			port=$(_pick_port_pair) || return 1
		fi
		t0=$(now_ms)
		swtpm socket --tpm2 --tpmstate "dir=$d/state" \
			--server "type=tcp,port=$port,bindaddr=127.0.0.1" \
			--ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
			--flags not-need-init,startup-clear \
			--log "file=$d/swtpm.log,level=1" </dev/null >>"$d/swtpm.out" 2>&1 &
		pid=$!
		if ! poll_until "$SWTPM_READY_TIMEOUT" _swtpm_ready "$pid" "$port"; then
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			cat "$d/swtpm.out" "$d/swtpm.log" >&2 2>/dev/null || true
			_swtpm_die "swtpm '$name' did not answer on port $port within ${SWTPM_READY_TIMEOUT}s"
			return 1
		fi
		if _pid_alive "$pid"; then
			_swtpm_pid[$name]=$pid
			_swtpm_port[$name]=$port
			echo "$pid" >"$d/pid"
			echo "$port" >"$d/port"
			echo "# swtpm '$name' ready on 127.0.0.1:$port (pid $pid) after $(($(now_ms) - t0)) ms" >&2
			return 0
		fi
		wait "$pid" 2>/dev/null || true
		echo "# swtpm '$name' could not bind port $port, retrying" >&2
	done
	_swtpm_die "swtpm '$name' failed to start (see $d/swtpm.out)"
}

# A TCG-default-template ECC P-256 EK (the one tpm2_createek -G ecc recreates) with a certificate
# from the local CA, at the TCG EK Credential Profile index 0x01c0000a, platform-written like the
# certificates swtpm_setup stores.
_swtpm_add_ek_p256() {
	local name=$1 d="$SWTPM_ROOT/$1" tcti x y opts=()
	tcti=$(swtpm_tcti "$name")
	tpm2_createek -T "$tcti" -G ecc -c "$d/ek-p256.ctx" -u "$d/ek-p256.pub" >/dev/null &&
		tpm2_flushcontext -T "$tcti" -t >/dev/null || return 1
	x=$(tpm2_print -t TPM2B_PUBLIC "$d/ek-p256.pub" | awk '$1 == "x:" { print $2 }')
	y=$(tpm2_print -t TPM2B_PUBLIC "$d/ek-p256.pub" | awk '$1 == "y:" { print $2 }')
	[[ -n "$x" && -n "$y" ]] || _swtpm_die "cannot read the P-256 EK of '$name'" || return 1
	mkdir -p "$d/ek-p256"
	# Same TPM identity arguments as swtpm_setup passes for its own EK certificates.
	opts=(--tpm-spec-family 2.0 --tpm-spec-level 0 --tpm-spec-revision 164
		--tpm-manufacturer id:00001014 --tpm-model swtpm --tpm-version id:20191023 --tpm2)
	swtpm_localca --type ek --ek "x=$x,y=$y" --dir "$d/ek-p256" "${opts[@]}" \
		--configfile "$SWTPM_ROOT/config/swtpm-localca.conf" \
		--optsfile "$SWTPM_ROOT/config/swtpm-localca.options" >>"$d/setup.log" 2>&1 ||
		_swtpm_die "swtpm_localca failed for the P-256 EK of '$name'" || return 1
	cp "$d/ek-p256/ek.cert" "$d/ekcerts/ek-secp256r1.crt"
	tpm2_nvdefine -T "$tcti" 0x01c0000a -C p -s "$(stat -c %s "$d/ek-p256/ek.cert")" \
		-a "ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate" >/dev/null &&
		tpm2_nvwrite -T "$tcti" 0x01c0000a -C p -i "$d/ek-p256/ek.cert" ||
		_swtpm_die "cannot store the P-256 EK certificate of '$name'"
}

swtpm_tcti() {
	[[ -n "${_swtpm_port[$1]:-}" ]] || _swtpm_die "no running swtpm '$1'" || return 1
	echo "swtpm:host=127.0.0.1,port=${_swtpm_port[$1]}"
}
swtpm_port() { echo "${_swtpm_port[$1]:?no running swtpm \'$1\'}"; }
swtpm_pid() { echo "${_swtpm_pid[$1]:?no running swtpm \'$1\'}"; }
swtpm_dir() { echo "$SWTPM_ROOT/$1"; }

swtpm_use() {
	local name=$1 d="$SWTPM_ROOT/$1" f
	TPM_TCTI_NAME=$(swtpm_tcti "$name") || return 1
	TPM2TOOLS_TCTI=$TPM_TCTI_NAME
	TRUSTPC_TPM2_DEVICE=$TPM_TCTI_NAME
	SWTPM_STATE_DIR="$d/state"
	SWTPM_PORT=${_swtpm_port[$name]}
	SWTPM_EK_CERT_RSA=
	SWTPM_EK_CERT_P384=
	SWTPM_EK_CERT_P256=
	f="$d/ekcerts/ek-rsa2048.crt" && [[ -f "$f" ]] && SWTPM_EK_CERT_RSA=$f
	f="$d/ekcerts/ek-secp384r1.crt" && [[ -f "$f" ]] && SWTPM_EK_CERT_P384=$f
	f="$d/ekcerts/ek-secp256r1.crt" && [[ -f "$f" ]] && SWTPM_EK_CERT_P256=$f
	export TPM_TCTI_NAME TPM2TOOLS_TCTI TRUSTPC_TPM2_DEVICE SWTPM_STATE_DIR SWTPM_PORT \
		SWTPM_EK_CERT_RSA SWTPM_EK_CERT_P384 SWTPM_EK_CERT_P256
}

swtpm_start() {
	local name=${1:?usage: swtpm_start NAME} d first=0
	_swtpm_check_name "$name" || return 1
	[[ -z "${_swtpm_pid[$name]:-}" ]] || _swtpm_die "swtpm '$name' is already running" || return 1
	d="$SWTPM_ROOT/$name"
	if [[ ! -d "$d/state" ]]; then
		_swtpm_manufacture "$name" || return 1
		first=1
	fi
	_swtpm_launch "$name" || return 1
	if ((first)) && [[ "${SWTPM_EK_P256:-1}" == 1 ]]; then
		_swtpm_add_ek_p256 "$name" || return 1
	fi
	swtpm_use "$name"
}

# _swtpm_halt NAME: orderly shutdown (no DA "unorderly shutdown" penalty on the next start),
# then stop the process, bounded; SIGKILL as the last resort.
_swtpm_halt() {
	local name=$1 pid=${_swtpm_pid[$1]:-} port=${_swtpm_port[$1]:-}
	[[ -n "$pid" ]] || return 0
	if _pid_alive "$pid"; then
		tpm2_shutdown -T "swtpm:host=127.0.0.1,port=$port" --clear >/dev/null 2>&1 || true
		swtpm_ioctl --tcp "127.0.0.1:$((port + 1))" -s >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
		if ! poll_until 5 eval "! _pid_alive $pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			poll_until 5 eval "! _pid_alive $pid" || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
	unset "_swtpm_pid[$name]"
}

swtpm_stop() {
	local name
	if (($# == 0)); then
		for name in "${!_swtpm_pid[@]}"; do
			_swtpm_halt "$name"
			unset "_swtpm_port[$name]"
		done
		return 0
	fi
	for name in "$@"; do
		_swtpm_halt "$name"
		unset "_swtpm_port[$name]"
	done
}

# A power cycle: same state directory, same port when it can be had again (so a TCTI string held
# by the test stays valid), PCRs back to their reset values.
swtpm_reboot() {
	local name=${1:?usage: swtpm_reboot NAME} port
	port=${_swtpm_port[$name]:-}
	[[ -n "$port" ]] || _swtpm_die "no running swtpm '$name'" || return 1
	_swtpm_halt "$name"
	_swtpm_launch "$name" "$port" || return 1
	if [[ "${_swtpm_port[$name]}" != "$port" ]]; then
		echo "# swtpm '$name' moved from port $port to ${_swtpm_port[$name]} on reboot" >&2
	fi
	# Keep the exported TCTI pointing at this device if it was the current one.
	[[ "${TPM_TCTI_NAME:-}" == "swtpm:host=127.0.0.1,port=$port" ]] && swtpm_use "$name"
	return 0
}

tpm_pcr_extend() {
	local name=$1 pcr=$2 digest=$3
	[[ "$digest" =~ ^[0-9a-fA-F]{64}$ ]] || _swtpm_die "tpm_pcr_extend: need 64 hex digits" || return 1
	tpm2_pcrextend -T "$(swtpm_tcti "$name")" "$pcr:sha256=$digest"
}

tpm_pcr_read() {
	local name=$1 pcr=$2 f
	f=$(mktemp "$TRUSTPC_TEST_TMP/pcr.XXXXXX")
	tpm2_pcrread -T "$(swtpm_tcti "$name")" "sha256:$pcr" -o "$f" >/dev/null || { rm -f "$f"; return 1; }
	od -An -v -tx1 "$f" | tr -d ' \n'
	echo
	rm -f "$f"
}

declare -A _proxy_pid=()

_proxy_ready() {
	_pid_alive "$1" || return 0
	[[ -s "$2" ]]
}

tpm_proxy_start() {
	local name=${1:?usage: tpm_proxy_start NAME [CAPTURE]} capture=${2:-} d pid port
	d=$(swtpm_dir "$name")
	[[ -n "${_swtpm_port[$name]:-}" ]] || _swtpm_die "no running swtpm '$name'" || return 1
	[[ -z "${_proxy_pid[$name]:-}" ]] || _swtpm_die "proxy for '$name' already running" || return 1
	capture=${capture:-$d/capture.bin}
	rm -f "$d/proxy.port"
	python3 "$TRUSTPC_TEST_LIB/tpm-proxy.py" --target "${_swtpm_port[$name]}" --capture "$capture" \
		>"$d/proxy.port" 2>"$d/proxy.log" </dev/null &
	pid=$!
	poll_until 10 _proxy_ready "$pid" "$d/proxy.port" || true
	port=$(head -n1 "$d/proxy.port" 2>/dev/null || true)
	if ! _pid_alive "$pid" || ! [[ "$port" =~ ^[0-9]+$ ]]; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		cat "$d/proxy.log" >&2
		_swtpm_die "tpm-proxy for '$name' did not start"
		return 1
	fi
	_proxy_pid[$name]=$pid
	PROXY_PID=$pid
	PROXY_PORT=$port
	PROXY_CAPTURE=$capture
	TPM_TCTI_NAME="swtpm:host=127.0.0.1,port=$port"
	TPM2TOOLS_TCTI=$TPM_TCTI_NAME
	TRUSTPC_TPM2_DEVICE=$TPM_TCTI_NAME
	export PROXY_PID PROXY_PORT PROXY_CAPTURE TPM_TCTI_NAME TPM2TOOLS_TCTI TRUSTPC_TPM2_DEVICE
	echo "# tpm-proxy for '$name' on 127.0.0.1:$port (pid $pid), capture $capture" >&2
}

tpm_proxy_stop() {
	local name names=("$@") pid
	(($# == 0)) && names=("${!_proxy_pid[@]}")
	for name in "${names[@]}"; do
		pid=${_proxy_pid[$name]:-}
		[[ -n "$pid" ]] || continue
		kill -TERM "$pid" 2>/dev/null || true
		poll_until 5 eval "! _pid_alive $pid" || kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		unset "_proxy_pid[$name]"
		[[ -n "${_swtpm_port[$name]:-}" ]] && swtpm_use "$name"
	done
	return 0
}

tpm_capture_contains() {
	python3 -c 'import sys; sys.exit(0 if bytes.fromhex(sys.argv[2]) in open(sys.argv[1], "rb").read() else 1)' "$1" "$2"
}

cleanup_push swtpm_stop
cleanup_push tpm_proxy_stop
