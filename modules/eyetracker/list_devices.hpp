// `pilogger-eyetracker --list-devices [--json]` (what `pilogger devices` runs): the Neons that
// announce themselves by mDNS, as `address: auto` would find them.
#pragma once

namespace pilogger::neon {

// Prints the list (or JSON {"neons": [...]}) on stdout. 0, also when none is found; 1 when mDNS
// cannot be browsed (no avahi-browse, no avahi-daemon), with the reason on stderr.
int list_neon_devices(bool as_json);

}  // namespace pilogger::neon
