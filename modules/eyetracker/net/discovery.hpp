// Finding a Neon on the network by mDNS/DNS-SD: the Companion app announces an _http._tcp service
// named "PI monitor:<phone name>:<hardware id>". Browsing is done by `avahi-browse` (Debian's
// avahi-utils, talking to the system's avahi-daemon) as a child process; this parses its
// --parsable output.
#pragma once

#include "child_output.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger::neon {

struct NeonService {
    std::string name;        // "PI monitor:Neon Companion:abc123"
    std::string phone_name;  // "Neon Companion"
    std::string host;        // "neon.local"
    std::string address;     // numeric
    int port = 0;
    bool ipv6 = false;
};

// argv for a one-shot browse that resolves and terminates: avahi-browse -rpt _http._tcp
std::vector<std::string> avahi_browse_arguments();
// avahi-browse is killed after this long (it answers from avahi-daemon's cache at once).
inline constexpr uint64_t kAvahiBrowseTimeoutMs = 10000;

// Why a browse that found nothing failed, in words for the user; empty when it ran fine.
std::string avahi_browse_failure(const ChildOutput::Result& result);

// Resolved ("=") lines of Neon services; other services and malformed lines are skipped.
std::vector<NeonService> parse_avahi_browse(std::string_view output);

// The service to use: the named phone if a name is given, else the first; IPv4 before IPv6; and
// another than `avoid` ("address:port", the one that stopped answering) when there is one.
std::optional<NeonService> choose_service(const std::vector<NeonService>& found, const std::string& phone_name,
                                          const std::string& avoid = {});
std::string endpoint_of(const NeonService& service);  // "address:port"

// avahi's label escaping: "\032" (decimal) and "\." style.
std::string avahi_unescape(std::string_view text);

}  // namespace pilogger::neon
