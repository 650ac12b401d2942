// The device connection: to a given address, or to the Neon mDNS finds (address: auto), looked
// for again when it stays unreachable; a trial's files follow the connection.
#include "eyetracker_module.hpp"

#include "discovery.hpp"

namespace pilogger::neon {

namespace {

// With address: auto, a Neon unreachable this long is looked for again by mDNS.
constexpr uint64_t kRediscoverAfterMs = 10000;

}  // namespace

void EyetrackerModule::connect_device(const std::string& host, int port) {
    NeonDeviceOptions options;
    options.host = host;
    options.port = port;
    options.scene = settings_.scene;
    options.time_echo_count = settings_.time_echo_count;
    options.time_echo_interval_s = settings_.time_echo_interval_s;
    NeonDevice::Callbacks callbacks;
    callbacks.connection = [this](bool connected, const std::string& why) { on_connection(connected, why); };
    callbacks.gaze = [this](const GazeSample& s, int64_t d, int64_t m) { on_gaze(s, d, m); };
    callbacks.imu = [this](const ImuSample& s, int64_t d, int64_t m) { on_imu(s, d, m); };
    callbacks.eye_event = [this](const EyeEvent& e, int64_t d, int64_t m) { on_eye_event(e, d, m); };
    callbacks.scene = [this](AccessUnit&& u, int64_t d, int64_t m) { on_scene(std::move(u), d, m); };
    callbacks.time_echo = [this](const std::vector<TimeEchoSample>& samples, std::optional<int64_t> estimate) {
        on_time_echo(samples, estimate);
    };
    device_ = std::make_unique<NeonDevice>(runtime_.loop(), options, std::move(callbacks));
    runtime_.log("info", "connecting to the Neon at " + host + ":" + std::to_string(port));
    device_->start();
}

void EyetrackerModule::discover() {
    if (!discovery_retry_) discovery_retry_ = std::make_unique<uv::Timer>(runtime_.loop());
    if (!browser_) browser_ = std::make_unique<ChildOutput>(runtime_.loop());
    const std::vector<std::string> args = avahi_browse_arguments();
    browser_->start(args.front(), args, kAvahiBrowseTimeoutMs, [this](ChildOutput::Result&& result) {
        if (finishing_) return;
        auto retry = [this](const std::string& why) {
            last_error_ = why;
            runtime_.log("warning", why + "; looking again in 5 s");
            discovery_retry_->start(5000, 0, [this] { discover(); });
        };
        const std::vector<NeonService> found = parse_avahi_browse(result.out);
        if (found.empty() && !result.ok()) {
            retry("address: auto cannot look for the Neon by mDNS: " + avahi_browse_failure(result) +
                  "; or give the Neon's address in the config");
            return;
        }
        auto chosen = choose_service(found, settings_.device_name, unreachable_endpoint_);
        if (!chosen) {
            retry(settings_.device_name.empty()
                      ? "no Neon found by mDNS (is the Companion app open, on the same network?)"
                      : "no Neon named '" + settings_.device_name + "' found by mDNS");
            return;
        }
        runtime_.log("info", "found " + chosen->name + " at " + chosen->address + ":" + std::to_string(chosen->port));
        found_endpoint_ = endpoint_of(*chosen);
        connect_device(chosen->address, chosen->port);
        watch_found_device();
    });
}

// A phone found by mDNS can come back at another address (a new Wi-Fi lease, another hotspot):
// when it stays unreachable, it is looked for again instead of being waited for where it was.
void EyetrackerModule::watch_found_device() {
    if (!rediscover_timer_) rediscover_timer_ = std::make_unique<uv::Timer>(runtime_.loop());
    rediscover_timer_->start(kRediscoverAfterMs, 0, [this] {
        if (finishing_ || !device_ || device_->connected()) return;
        runtime_.log("warning", "the Neon at " + found_endpoint_ + " has not answered for " +
                                    std::to_string(kRediscoverAfterMs / 1000) + " s; looking for it again by mDNS");
        unreachable_endpoint_ = found_endpoint_;
        device_.reset();
        discover();
    });
}

void EyetrackerModule::on_connection(bool connected, const std::string& why) {
    if (connected) {
        const NeonDeviceInfo& info = device_->info();
        runtime_.log("info", "connected to " + (info.device_name.empty() ? std::string("the Neon") : info.device_name) +
                                 (info.ip.empty() ? "" : " (" + info.ip + ")"));
        runtime_.emit("device", json{{"connected", true}, {"device_name", info.device_name}});
        if (rediscover_timer_) rediscover_timer_->stop();
        unreachable_endpoint_.clear();
        if (trial_ && !trial_->files && !trial_->stopping && !trial_->opening) {
            open_part(trial_->part, [this](const std::string& error) {
                if (!error.empty()) {
                    file_error(error);
                    return;
                }
                announce_trial_start();
            });
        }
        return;
    }
    runtime_.log("warning", "the Neon disconnected: " + why +
                                (trial_ && trial_->files ? "; the trial goes on and continues in a part file when it returns"
                                                         : ""));
    runtime_.emit("device", json{{"connected", false}, {"why", why}});
    if (settings_.address == "auto") watch_found_device();
    scene_preroll_.clear();
    if (trial_ && trial_->files) {
        trial_->part += 1;
        close_files(std::move(trial_->files), [] {});
    }
}

}  // namespace pilogger::neon
