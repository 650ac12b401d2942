#include "neon_device.hpp"

#include "checked_math.hpp"
#include "clock.hpp"
#include "sdp.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace pilogger::neon {

using nlohmann::json;

namespace {
constexpr int kMaxRetryDelayMs = 5000;

// A field of the phone's JSON, the fallback when absent, null, of another type or (numbers) out
// of T's range.
template <typename T>
T value_or(const json& object, const char* key, T fallback) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        // get<int>() casts a double unchecked (undefined for 1e300) and wraps large integers.
        using limits = std::numeric_limits<T>;
        if (it->is_number_unsigned()) {
            uint64_t v = it->get<uint64_t>();
            return v <= static_cast<uint64_t>(limits::max()) ? static_cast<T>(v) : fallback;
        }
        if (it->is_number_integer()) {
            int64_t v = it->get<int64_t>();
            return v >= static_cast<int64_t>(limits::min()) && v <= static_cast<int64_t>(limits::max()) ? static_cast<T>(v)
                                                                                                      : fallback;
        }
        if (it->is_number_float()) {
            double v = it->get<double>();
            // max + 1 is a power of two, exact as a double; the check is false for NaN too.
            return v >= static_cast<double>(limits::min()) && v < static_cast<double>(limits::max()) + 1.0
                       ? static_cast<T>(v)
                       : fallback;
        }
        return fallback;
    } else {
        try {
            return it->get<T>();
        } catch (const json::exception&) {
            return fallback;
        }
    }
}
}  // namespace

json NeonDeviceInfo::to_json() const {
    json out = {{"device_name", device_name}, {"device_id", device_id}, {"ip", ip},
                {"battery_state", battery_state}, {"hardware_version", hardware_version},
                {"glasses_serial", glasses_serial}, {"neon_recording", recording}};
    out["battery_percent"] = battery_percent >= 0 ? json(battery_percent) : json(nullptr);
    out["free_storage_gb"] = free_storage_gb >= 0 ? json(std::round(free_storage_gb * 10) / 10) : json(nullptr);
    if (!recording_id.empty()) out["neon_recording_id"] = recording_id;
    return out;
}

ClockFitOptions neon_clock_fit_options(int time_echo_interval_s) {
    ClockFitOptions o;
    o.window_ns = std::max<int64_t>(120'000'000'000, 6 * int64_t{time_echo_interval_s} * 1'000'000'000);
    o.max_points = 64;
    o.min_drift_span_ns = 3 * int64_t{time_echo_interval_s} * 1'000'000'000 - 1'000'000'000;
    o.rtt_floor_us = 1000;
    return o;
}

NeonDevice::NeonDevice(uv::Loop& loop, NeonDeviceOptions options, Callbacks callbacks)
    : loop_(loop),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      clock_(options_.time_echo_interval_s),
      requests_(loop) {}

NeonDevice::~NeonDevice() {
    ++generation_;
    streams_.clear();
}

bool NeonClock::drift_fitted() const {
    return fit_.valid() && fit_.span_ns() >= fit_.options().min_drift_span_ns;
}

int64_t NeonClock::device_minus_mono_at(int64_t mono) const {
    if (!drift_fitted()) return *latest_;
    return saturating_add(base_ns_, std::llround(fit_.offset_us_at(mono) * 1000.0));
}

std::optional<int64_t> NeonClock::to_mono_ns(int64_t device_ns) const {
    if (!latest_) return std::nullopt;
    // The offset drifts by a few parts per million: two steps settle mono to well under 1 ns.
    // A device time that lands outside int64 on our clock has no host time.
    std::optional<int64_t> mono = checked_sub(device_ns, *latest_);
    if (mono) mono = checked_sub(device_ns, device_minus_mono_at(*mono));
    if (mono) mono = checked_sub(device_ns, device_minus_mono_at(*mono));
    return mono;
}

std::optional<int64_t> NeonClock::to_device_ns(int64_t mono) const {
    if (!latest_) return std::nullopt;
    return checked_add(mono, device_minus_mono_at(mono));
}

void NeonClock::add_burst(const std::vector<TimeEchoSample>& samples, int64_t estimate) {
    latest_ = estimate;
    int64_t mid_sum = 0;
    int64_t rtt_min = samples.front().rtt_ns();
    for (const TimeEchoSample& s : samples) {
        mid_sum += (s.send_mono_ns + s.receive_mono_ns) / 2 - samples.front().send_mono_ns;
        rtt_min = std::min(rtt_min, s.rtt_ns());
    }
    const int64_t at = samples.front().send_mono_ns + mid_sum / static_cast<int64_t>(samples.size());
    // A phone clock stepped (by NTP, or by hand) breaks the line: start a new one from here.
    // In doubles: the phone's estimate is the phone's word, and may be anything.
    if (drift_fitted() && std::fabs(static_cast<double>(estimate) - static_cast<double>(device_minus_mono_at(at))) > kClockStepNs) {
        ++steps_;
        fit_.reset();
    }
    if (!fit_.valid()) base_ns_ = estimate;
    fit_.add(at, static_cast<double>(saturating_sub(estimate, base_ns_)) / 1000.0, static_cast<double>(rtt_min) / 1000.0);
}

void NeonDevice::start() {
    retry_timer_ = std::make_unique<uv::Timer>(loop_);
    status_timer_ = std::make_unique<uv::Timer>(loop_);
    echo_timer_ = std::make_unique<uv::Timer>(loop_);
    liveness_timer_ = std::make_unique<uv::Timer>(loop_);
    liveness_timer_->start(500, 500, [this] { check_liveness(); });
    connect();
}

void NeonDevice::schedule_retry() {
    retry_timer_->start(static_cast<uint64_t>(retry_delay_ms_), 0, [this] { connect(); });
    retry_delay_ms_ = std::min(retry_delay_ms_ * 2, kMaxRetryDelayMs);
}

void NeonDevice::connect() {
    if (connected_ || connecting_) return;
    connecting_ = true;
    uint64_t generation = generation_;
    requests_.resolve(options_.host, [this, generation](int status, std::string address) {
        if (generation != generation_) return;
        if (status < 0) {
            connecting_ = false;
            last_error_ = "cannot resolve " + options_.host + ": " + uv::error_text(status);
            schedule_retry();
            return;
        }
        address_ = address;
        http_ = std::make_unique<HttpClient>(loop_, address_, options_.port);
        rest("GET", "/api/status", "", [this, generation](bool ok, const json& result, const std::string& error) {
            if (generation != generation_) return;
            if (!ok) {
                connecting_ = false;
                last_error_ = error;
                schedule_retry();
                return;
            }
            on_status(result);
            run_time_echo([this, generation](bool echo_ok) {
                if (generation != generation_) return;
                if (!echo_ok) {
                    connecting_ = false;
                    schedule_retry();
                    return;
                }
                open_streams();
            });
        });
    });
}

void NeonDevice::rest(const std::string& method, const std::string& path, const std::string& body, RestDone done) {
    if (!http_) {
        done(false, json(), "not connected to the Neon");
        return;
    }
    http_->request(method, path, body, options_.request_timeout_ms,
                   [done = std::move(done), method, path](const Response& response, const std::string& error) {
                       if (!error.empty()) {
                           done(false, json(), error);
                           return;
                       }
                       RestAnswer answer = read_rest_answer(response, method, path);
                       done(answer.ok, answer.result, answer.error);
                   });
}

void NeonDevice::on_status(const json& result) {
    if (apply_neon_status(result, status_) && callbacks_.info_changed) callbacks_.info_changed();
}

bool apply_neon_status(const json& result, NeonStatus& status) {
    if (!result.is_array()) return false;
    NeonDeviceInfo& info = status.info;
    bool changed = false;
    for (const auto& component : result) {
        if (!component.is_object()) continue;
        std::string model = value_or<std::string>(component, "model", "");
        const json data = component.value("data", json::object());
        if (!data.is_object()) continue;
        if (model == "Phone") {
            info.device_name = value_or<std::string>(data, "device_name", info.device_name);
            info.device_id = value_or<std::string>(data, "device_id", info.device_id);
            info.ip = value_or<std::string>(data, "ip", info.ip);
            info.battery_percent = value_or<double>(data, "battery_level", info.battery_percent);
            info.battery_state = value_or<std::string>(data, "battery_state", info.battery_state);
            double memory = value_or<double>(data, "memory", -1);
            if (memory >= 0) info.free_storage_gb = memory / 1e9;
            status.time_echo_port = value_or<int>(data, "time_echo_port", status.time_echo_port);
            changed = true;
        } else if (model == "Hardware") {
            info.hardware_version = value_or<std::string>(data, "version", info.hardware_version);
            info.glasses_serial = value_or<std::string>(data, "glasses_serial", info.glasses_serial);
            changed = true;
        } else if (model == "Sensor") {
            if (value_or<std::string>(data, "conn_type", "") != "DIRECT") continue;
            NeonSensorEndpoint endpoint{value_or<std::string>(data, "sensor", ""), value_or<std::string>(data, "ip", ""),
                                        value_or<std::string>(data, "params", ""), value_or<int>(data, "port", 0)};
            if (endpoint.sensor.empty() || endpoint.port <= 0) continue;
            auto same = [&](const NeonSensorEndpoint& e) { return e.sensor == endpoint.sensor; };
            auto it = std::find_if(status.sensors.begin(), status.sensors.end(), same);
            if (it == status.sensors.end()) {
                status.sensors.push_back(endpoint);
            } else {
                *it = endpoint;
            }
        } else if (model == "Recording") {
            std::string action = value_or<std::string>(data, "action", "");
            info.recording = action == "START";
            info.recording_id = info.recording ? value_or<std::string>(data, "id", "") : "";
            changed = true;
        }
    }
    return changed;
}

RestAnswer read_rest_answer(const Response& response, const std::string& method, const std::string& path) {
    json parsed = json::parse(response.body, nullptr, false);
    std::string message = parsed.is_object() ? value_or<std::string>(parsed, "message", "") : "";
    if (response.status != 200) {
        return {false, json(), method + " " + path + " answered " + std::to_string(response.status) +
                                   (message.empty() ? "" : ": " + message)};
    }
    if (!parsed.is_object()) return {false, json(), method + " " + path + " answered with something that is not JSON"};
    return {true, parsed.value("result", json()), ""};
}

void NeonDevice::run_time_echo(std::function<void(bool ok)> then) {
    if (status_.time_echo_port <= 0) {
        last_error_ = "the Neon's status gives no time_echo_port";
        then(false);
        return;
    }
    if (!time_echo_) time_echo_ = std::make_unique<TimeEchoClient>(loop_);
    uint64_t generation = generation_;
    time_echo_->burst(address_, status_.time_echo_port, options_.time_echo_count, options_.request_timeout_ms,
                      [this, generation, then = std::move(then)](const std::vector<TimeEchoSample>& samples,
                                                                  const std::string& error) {
                          if (generation != generation_) return;
                          auto estimate = estimate_device_minus_mono_ns(samples);
                          if (estimate) {
                              clock_.add_burst(samples, *estimate);
                          }
                          if (!error.empty()) last_error_ = error;
                          if (callbacks_.time_echo) callbacks_.time_echo(samples, estimate);
                          if (then) then(estimate.has_value());
                      });
}

void NeonDevice::measure_clock() {
    if (!connected_ || !time_echo_ || time_echo_->busy()) return;
    run_time_echo(nullptr);
}

void NeonDevice::open_streams() {
    uint64_t generation = generation_;
    auto has = [this](const std::string& sensor) {
        return std::any_of(status_.sensors.begin(), status_.sensors.end(), [&](const auto& e) { return e.sensor == sensor; });
    };
    if (!has("gaze")) {
        connecting_ = false;
        last_error_ = "the Neon lists no direct gaze sensor (are the glasses connected to the phone?)";
        schedule_retry();
        return;
    }
    for (const NeonSensorEndpoint& endpoint : status_.sensors) {
        bool wanted = endpoint.sensor == "gaze" || endpoint.sensor == "imu" || endpoint.sensor == "eye_events" ||
                      (endpoint.sensor == "world" && options_.scene);
        if (!wanted) continue;
        std::string sensor = endpoint.sensor;
        RtspStream::Callbacks callbacks;
        callbacks.described = [this, sensor](const SdpMedia& media) {
            if (sensor != "world") return;
            scene_parameter_sets_ = sprop_parameter_sets_annexb(media.fmtp);
            scene_clock_rate_ = media.clock_rate;
        };
        callbacks.packet = [this, sensor](const RtpPacket& packet, std::optional<int64_t> device_ns, bool gap) {
            on_packet(sensor, packet, device_ns, gap);
        };
        callbacks.failed = [this, generation](const std::string& why) {
            if (generation == generation_) disconnect(why);
        };
        auto stream = std::make_unique<RtspStream>(loop_, sensor, std::move(callbacks));
        std::string host = endpoint.ip.empty() ? address_ : endpoint.ip;
        std::string url = "rtsp://" + host + ":" + std::to_string(endpoint.port) + "/" +
                          (endpoint.params.empty() ? "" : "?" + endpoint.params);
        stream->open(address_, url);
        streams_.push_back(std::move(stream));
    }
    depacketizer_ = std::make_unique<H264Depacketizer>([this](AccessUnit&& unit) { on_scene_unit(std::move(unit)); });

    websocket_ = std::make_unique<WebSocketClient>(
        loop_, WebSocketClient::Callbacks{
                   nullptr,
                   [this](const std::string& text) {
                       json component = json::parse(text, nullptr, false);
                       if (!component.is_object()) return;
                       ++status_pushes_;
                       on_status(json::array({component}));
                   },
                   nullptr});
    websocket_->open(address_, options_.port, "/api/status", options_.request_timeout_ms);

    connecting_ = false;
    connected_ = true;
    connected_since_mono_ns_ = mono_ns();
    last_gaze_mono_ns_ = 0;
    retry_delay_ms_ = 1000;
    auto status_period = static_cast<uint64_t>(options_.status_interval_s) * 1000;
    status_timer_->start(status_period, status_period, [this, generation] {
        rest("GET", "/api/status", "", [this, generation](bool ok, const json& result, const std::string& error) {
            if (generation != generation_) return;
            if (!ok) {
                disconnect(error);
                return;
            }
            on_status(result);
            // The push channel is a convenience; reopen it quietly when it dropped.
            if (websocket_ && !websocket_->is_open()) {
                websocket_->open(address_, options_.port, "/api/status", options_.request_timeout_ms);
            }
        });
    });
    auto echo_period = static_cast<uint64_t>(options_.time_echo_interval_s) * 1000;
    echo_timer_->start(echo_period, echo_period, [this] { measure_clock(); });
    if (callbacks_.connection) callbacks_.connection(true, "");
}

void NeonDevice::on_packet(const std::string& sensor, const RtpPacket& packet, std::optional<int64_t> device_ns,
                           bool gap) {
    if (sensor == "world") {
        if (!depacketizer_) return;
        // Units come out of push() synchronously; they are timed from this packet's mapping.
        scene_reference_ts_ = packet.timestamp;
        scene_reference_device_ns_ = device_ns;
        depacketizer_->push(packet.payload, packet.timestamp, packet.marker, gap);
        return;
    }
    if (!device_ns) {
        ++untimed_samples_;
        return;
    }
    if (sensor == "gaze") {
        auto sample = parse_gaze(packet.payload);
        if (!sample) {
            ++bad_payloads_;
            return;
        }
        int64_t now_mono = mono_ns();
        last_gaze_mono_ns_ = now_mono;
        ++gaze_count_;
        auto mono = to_mono_ns(*device_ns);
        if (mono && callbacks_.gaze) callbacks_.gaze(*sample, *device_ns, *mono);
    } else if (sensor == "imu") {
        auto sample = parse_imu(packet.payload);
        if (!sample) {
            ++bad_payloads_;
            return;
        }
        ++imu_count_;
        int64_t sample_device_ns = sample->timestamp_ns != 0 ? static_cast<int64_t>(sample->timestamp_ns) : *device_ns;
        auto mono = to_mono_ns(sample_device_ns);
        if (mono && callbacks_.imu) callbacks_.imu(*sample, sample_device_ns, *mono);
    } else if (sensor == "eye_events") {
        auto event = parse_eye_event(packet.payload);
        if (!event) {
            ++bad_payloads_;
            return;
        }
        if (event->type == EyeEventType::KeepAlive) return;
        ++event_count_;
        auto mono = to_mono_ns(*device_ns);
        if (mono && callbacks_.eye_event) callbacks_.eye_event(*event, *device_ns, *mono);
    }
}

void NeonDevice::on_scene_unit(AccessUnit&& unit) {
    ++scene_count_;
    if (!scene_reference_device_ns_) {
        ++untimed_samples_;
        return;
    }
    uint32_t rate = scene_clock_rate_ == 0 ? 90000 : scene_clock_rate_;
    auto delta_ticks = static_cast<int32_t>(unit.rtp_timestamp - scene_reference_ts_);
    int64_t device_ns = *scene_reference_device_ns_ + int64_t{delta_ticks} * 1'000'000'000 / rate;
    auto mono = to_mono_ns(device_ns);
    if (mono && callbacks_.scene) callbacks_.scene(std::move(unit), device_ns, *mono);
}

void NeonDevice::check_liveness() {
    int64_t now = mono_ns();
    if (now - rate_window_mono_ns_ >= 1'000'000'000) {
        double seconds = rate_window_mono_ns_ == 0 ? 1.0 : static_cast<double>(now - rate_window_mono_ns_) / 1e9;
        gaze_rate_hz_ = static_cast<double>(gaze_count_) / seconds;
        imu_rate_hz_ = static_cast<double>(imu_count_) / seconds;
        scene_rate_hz_ = static_cast<double>(scene_count_) / seconds;
        gaze_count_ = imu_count_ = scene_count_ = 0;
        rate_window_mono_ns_ = now;
    }
    if (!connected_) return;
    int64_t last = std::max(last_gaze_mono_ns_, connected_since_mono_ns_);
    if (now - last > int64_t{options_.silence_timeout_ms} * 1'000'000) {
        disconnect("no gaze data for " + std::to_string(options_.silence_timeout_ms / 1000) + " s");
    }
}

void NeonDevice::disconnect(const std::string& why) {
    bool was_connected = connected_;
    ++generation_;
    ++disconnects_;
    for (const auto& stream : streams_) lost_packets_total_ += stream->stats().lost;
    streams_.clear();
    websocket_.reset();
    if (time_echo_) time_echo_->cancel();
    if (http_) http_->cancel_all();
    depacketizer_.reset();
    status_timer_->stop();
    echo_timer_->stop();
    connected_ = false;
    connecting_ = false;
    last_error_ = why;
    gaze_rate_hz_ = imu_rate_hz_ = scene_rate_hz_ = 0;
    schedule_retry();
    if (was_connected && callbacks_.connection) callbacks_.connection(false, why);
}

void NeonDevice::send_event(const std::string& name, std::optional<int64_t> device_unix_ns, RestDone done) {
    json body = {{"name", name}};
    if (device_unix_ns) body["timestamp"] = *device_unix_ns;
    rest("POST", "/api/event", body.dump(), std::move(done));
}

void NeonDevice::start_recording(RestDone done) { rest("POST", "/api/recording:start", "", std::move(done)); }

void NeonDevice::stop_and_save_recording(RestDone done) {
    rest("POST", "/api/recording:stop_and_save", "", std::move(done));
}

json NeonDevice::stats() const {
    json out = status_.info.to_json();
    out["connected"] = connected_;
    out["gaze_rate_hz"] = std::round(gaze_rate_hz_ * 10) / 10;
    out["imu_rate_hz"] = std::round(imu_rate_hz_ * 10) / 10;
    out["scene_fps"] = std::round(scene_rate_hz_ * 10) / 10;
    // The phone's clock minus ours (CLOCK_REALTIME), as the Neon's own tools state it.
    if (std::optional<int64_t> device_minus_mono_ns = clock_.device_minus_mono_ns()) {
        ClockTriple clocks = read_clock_triple();
        int64_t phone_minus_host_ns = *device_minus_mono_ns - (clocks.realtime_ns - clocks.mono_ns);
        out["clock_offset_ms"] = std::round(static_cast<double>(phone_minus_host_ns) / 1e4) / 100;
    } else {
        out["clock_offset_ms"] = nullptr;
    }
    uint64_t lost = lost_packets_total_, reordered = 0, late = 0;
    for (const auto& stream : streams_) {
        lost += stream->stats().lost;
        reordered += stream->stats().reordered;
        late += stream->stats().late;
    }
    out["packets_lost"] = lost;
    out["packets_reordered"] = reordered;
    out["packets_late"] = late;
    out["bad_payloads"] = bad_payloads_;
    out["untimed_samples"] = untimed_samples_;
    out["disconnects"] = disconnects_;
    out["clock_drift_ppm"] = clock_.drift_fitted() ? json(std::round(clock_.fit().drift_ppm() * 100) / 100) : json(nullptr);
    out["clock_residual_us"] = clock_.drift_fitted() ? json(std::round(clock_.fit().residual_us())) : json(nullptr);
    out["clock_steps"] = clock_.steps();
    out["status_pushes"] = status_pushes_;
    if (!last_error_.empty()) out["device_error"] = last_error_;
    return out;
}

}  // namespace pilogger::neon
