# SPDX-License-Identifier: Apache-2.0
# tests/lib/dbus.sh — a private D-Bus "system bus" for tests and the demo.
#
#   bus_start    starts dbus-daemon with a system-bus-like policy plus trustpcd's own policy file
#                (daemon/org.trustpc.Agent1.conf, with the agent's user replaced by nobody, the
#                user the tests run the network process as); exports BUS_ADDRESS and BUS_PID; the
#                bus is stopped by common.sh's exit trap. Point trustpcd at it with
#                DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS", busctl with --address="$BUS_ADDRESS".

if [[ -n "${_TRUSTPC_DBUS_SH:-}" ]]; then
	return 0
fi
_TRUSTPC_DBUS_SH=1
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bus_start() {
	local dir="$TRUSTPC_TEST_TMP/bus"
	mkdir -p "$dir"
	chmod 755 "$TRUSTPC_TEST_TMP" "$dir" # the network process (nobody) must reach the socket
	sed 's/user="trustpcd"/user="nobody"/' "$TRUSTPC_SOURCE_ROOT/daemon/org.trustpc.Agent1.conf" >"$dir/agent.conf"
	cat >"$dir/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>$dir/agent.conf</include>
</busconfig>
CONF
	dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile >"$dir/log" 2>&1 &
	BUS_PID=$!
	cleanup_push "kill $BUS_PID 2>/dev/null; wait $BUS_PID 2>/dev/null"
	BUS_ADDRESS="unix:path=$dir/socket"
	poll_until 10 test -S "$dir/socket" || { cat "$dir/log" >&2; return 1; }
	poll_until 10 busctl --address="$BUS_ADDRESS" list --no-pager >/dev/null 2>&1
}
