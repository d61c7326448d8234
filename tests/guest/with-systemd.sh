#!/bin/sh
# Run "$@" under systemd inside the cgroup v2 guest (../shared/tools/cgroup2-vm).
#
# The guest's PID 1 is a small init, not systemd; systemd runs as PID 1 of a
# new pid + mount namespace (as in a container), with only the D-Bus system
# bus started (--unit=dbus.socket).  The command then joins those namespaces
# so that the pids it hands to systemd (StartTransientUnit's PIDs) are
# systemd's.  Everything the guest writes is thrown away with it.
set -eu
[ "$(cat /proc/1/comm)" != systemd ] || { echo "with-systemd.sh: already under systemd" >&2; exit 125; }
log=/run/with-systemd.log
unshare --pid --fork --mount-proc --propagation private \
	env container=ocirt-test /lib/systemd/systemd --system --unit=dbus.socket \
	--log-target=console --show-status=0 >"$log" 2>&1 &
unshare_pid=$!
sd=""
for _ in $(seq 1 1200); do    # up to 120 s: the guest's CPU is emulated
	[ -n "$sd" ] || sd=$(cat /proc/$unshare_pid/task/$unshare_pid/children 2>/dev/null | cut -d' ' -f1)
	if [ -n "$sd" ] && [ -S /run/dbus/system_bus_socket ] && [ -d /run/systemd/system ]; then break; fi
	sleep 0.1
done
if [ -z "$sd" ] || [ ! -S /run/dbus/system_bus_socket ]; then
	echo "with-systemd.sh: systemd did not come up; its log:" >&2; cat "$log" >&2; exit 125
fi
# The bus is socket-activated: start dbus-daemon now, not in the first test.
nsenter -t "$sd" -p -m -- timeout 120 busctl --system list >/dev/null 2>&1 || true
status=0
nsenter -t "$sd" -p -m --wd="$PWD" -- "$@" || status=$?
kill -TERM "$sd" 2>/dev/null || true
exit $status
