#include "list_devices.hpp"

#include "child_output.hpp"
#include "discovery.hpp"
#include "uv.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>
#include <iterator>

namespace pilogger::neon {

int list_neon_devices(bool as_json) {
    uv::Loop loop;
    ChildOutput::Result result;
    {
        ChildOutput browse(loop);
        const std::vector<std::string> args = avahi_browse_arguments();
        browse.start(args.front(), args, kAvahiBrowseTimeoutMs, [&result](ChildOutput::Result&& r) { result = std::move(r); });
        loop.run();
    }
    loop.run();  // the handles' close callbacks
    const std::vector<NeonService> found = parse_avahi_browse(result.out);
    if (found.empty() && !result.ok()) {
        std::cerr << "cannot look for Neons by mDNS: " << avahi_browse_failure(result) << "\n";
        return 1;
    }
    // mDNS answers once per interface and protocol: one entry per phone, with every address and
    // the one `address: auto` would use.
    struct Neon {
        NeonService chosen;
        std::vector<std::string> addresses;
    };
    std::vector<Neon> neons;
    for (const NeonService& s : found) {
        auto same = std::find_if(neons.begin(), neons.end(), [&](const Neon& n) { return n.chosen.name == s.name; });
        if (same == neons.end()) {
            std::vector<NeonService> all;
            std::copy_if(found.begin(), found.end(), std::back_inserter(all),
                         [&](const NeonService& other) { return other.name == s.name; });
            neons.push_back({*choose_service(all, ""), {}});
            same = neons.end() - 1;
        }
        same->addresses.push_back(s.address);
    }
    if (as_json) {
        nlohmann::json list = nlohmann::json::array();
        for (const Neon& n : neons) {
            list.push_back({{"name", n.chosen.name},
                            {"phone_name", n.chosen.phone_name},
                            {"host", n.chosen.host},
                            {"address", n.chosen.address},
                            {"port", n.chosen.port},
                            {"addresses", n.addresses}});
        }
        std::cout << nlohmann::json{{"neons", list}}.dump(2) << "\n";
        return 0;
    }
    if (neons.empty()) {
        std::cout << "No Neon found by mDNS (is the Companion app open, on the same network as this computer?).\n";
    }
    for (size_t i = 0; i < neons.size(); ++i) {
        const NeonService& s = neons[i].chosen;
        const std::string address = s.ipv6 ? "[" + s.address + "]" : s.address;
        std::cout << i << ": " << s.phone_name << "  " << address << ":" << s.port << "  (" << s.host << ", "
                  << s.name << ")\n";
    }
    return 0;
}

}  // namespace pilogger::neon
