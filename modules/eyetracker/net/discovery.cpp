#include "discovery.hpp"

#include <cctype>

namespace pilogger::neon {

std::vector<std::string> avahi_browse_arguments() {
    return {"avahi-browse", "--resolve", "--parsable", "--terminate", "--no-db-lookup", "_http._tcp"};
}

std::string avahi_browse_failure(const ChildOutput::Result& result) {
    if (!result.error.empty()) return result.error + " (avahi-browse is in the Debian package avahi-utils)";
    if (result.timed_out) return "avahi-browse gave no answer in " + std::to_string(kAvahiBrowseTimeoutMs / 1000) + " s";
    if (result.ok()) return {};
    std::string said = result.err.substr(0, result.err.find('\n'));
    return "avahi-browse failed (" + (said.empty() ? "exit status " + std::to_string(result.exit_status) : said) +
           "): is avahi-daemon running? (scripts/mdns-up.sh starts it)";
}

std::string avahi_unescape(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\' || i + 1 >= text.size()) {
            out.push_back(text[i]);
            continue;
        }
        if (i + 3 < text.size() + 0 && std::isdigit(static_cast<unsigned char>(text[i + 1])) &&
            std::isdigit(static_cast<unsigned char>(text[i + 2])) && std::isdigit(static_cast<unsigned char>(text[i + 3]))) {
            int code = (text[i + 1] - '0') * 100 + (text[i + 2] - '0') * 10 + (text[i + 3] - '0');
            out.push_back(static_cast<char>(code));
            i += 3;
        } else {
            out.push_back(text[i + 1]);
            i += 1;
        }
    }
    return out;
}

std::vector<NeonService> parse_avahi_browse(std::string_view output) {
    std::vector<NeonService> found;
    size_t start = 0;
    while (start < output.size()) {
        size_t end = output.find('\n', start);
        std::string_view line = output.substr(start, end == std::string_view::npos ? output.npos : end - start);
        start = end == std::string_view::npos ? output.size() : end + 1;
        // =;iface;protocol;name;type;domain;host;address;port;txt
        std::vector<std::string_view> fields;
        size_t field_start = 0;
        while (fields.size() < 9) {
            size_t semicolon = line.find(';', field_start);
            if (semicolon == std::string_view::npos) break;
            fields.push_back(line.substr(field_start, semicolon - field_start));
            field_start = semicolon + 1;
        }
        fields.push_back(line.substr(std::min(field_start, line.size())));
        if (fields.size() < 9 || fields[0] != "=" || fields[4] != "_http._tcp") continue;
        NeonService service;
        service.name = avahi_unescape(fields[3]);
        size_t colon = service.name.find(':');
        if (colon == std::string::npos || service.name.substr(0, colon) != "PI monitor") continue;
        size_t second = service.name.find(':', colon + 1);
        service.phone_name = service.name.substr(colon + 1, second == std::string::npos ? std::string::npos : second - colon - 1);
        service.ipv6 = fields[2] == "IPv6";
        service.host = std::string(fields[6]);
        service.address = std::string(fields[7]);
        try {
            service.port = std::stoi(std::string(fields[8]));
        } catch (const std::exception&) {
            continue;
        }
        if (service.address.empty() || service.port <= 0 || service.port > 65535) continue;
        found.push_back(std::move(service));
    }
    return found;
}

std::string endpoint_of(const NeonService& service) { return service.address + ":" + std::to_string(service.port); }

std::optional<NeonService> choose_service(const std::vector<NeonService>& found, const std::string& phone_name,
                                          const std::string& avoid) {
    // Lower is better: an endpoint other than the one to avoid, then IPv4.
    auto rank = [&](const NeonService& s) { return (endpoint_of(s) == avoid ? 2 : 0) + (s.ipv6 ? 1 : 0); };
    std::optional<NeonService> chosen;
    for (const NeonService& service : found) {
        if (!phone_name.empty() && service.phone_name != phone_name) continue;
        if (!chosen || rank(service) < rank(*chosen)) chosen = service;
    }
    return chosen;
}

}  // namespace pilogger::neon
