#!/usr/bin/env bash
# Makes sure avahi-daemon runs, for the eye tracker's mDNS discovery test. A Raspberry Pi runs it
# already; a container or a fresh CI machine usually does not (no init system), so it is started
# here with its system D-Bus when we are root. Exit 0 when the daemon answers.
set -uo pipefail
command -v avahi-browse >/dev/null || { echo "mdns: avahi-browse is missing (Debian package avahi-utils)"; exit 1; }
if avahi-browse --terminate --parsable _http._tcp >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then echo "mdns: avahi-daemon is not running and starting it needs root"; exit 1; fi
mkdir -p /run/dbus
if ! pgrep -x dbus-daemon >/dev/null; then
  # A socket and pid file left by a bus that is gone would stop a new one from starting.
  rm -f /run/dbus/system_bus_socket /run/dbus/pid
  dbus-daemon --system --fork || exit 1
fi
pgrep -x avahi-daemon >/dev/null || avahi-daemon --daemonize || avahi-daemon --daemonize --no-drop-root || exit 1
for _ in $(seq 50); do
  avahi-browse --terminate --parsable _http._tcp >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "mdns: avahi-daemon did not come up"
exit 1
