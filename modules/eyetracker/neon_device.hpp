// The connection to one Neon: REST status, the status WebSocket, Time Echo bursts and the RTSP
// streams (gaze, IMU, eye events and, when wanted, the scene video), with reconnection.
//
//   Disconnected -> (status answered) -> measure clock (Time Echo) -> open WebSocket and
//   streams -> Connected; any stream failing, the gaze going silent, or the status call failing
//   brings it back to Disconnected and a retry with back-off (1 s doubling to 5 s).
//
// The phone's clock is mapped to CLOCK_MONOTONIC with the latest Time Echo burst estimate, so
// every sample reaches the module with both its device time and its mono_ns.
#pragma once

#include "clock_fit.hpp"
#include "h264_depacketizer.hpp"
#include "neon_payloads.hpp"
#include "net_clients.hpp"
#include "rtsp_client.hpp"
#include "uv.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pilogger::neon {

// The phone's clock against ours: a Time Echo burst every time_echo_interval_s, each good to about
// 0.2 ms (the phone's clock in whole ms, Wi-Fi round trips of milliseconds). Drift fitted from two
// such bursts 10 s apart could be 30 ppm off, worse than none, so the line is used once the bursts
// span three intervals (four of them); until then the latest burst alone.
ClockFitOptions neon_clock_fit_options(int time_echo_interval_s);
// A burst this far from the fitted line means the phone's clock was stepped: the fit restarts.
inline constexpr int64_t kClockStepNs = 3'000'000;

// The phone's clock against CLOCK_MONOTONIC, from Time Echo bursts (above). Pure, for NeonDevice,
// the tests and the fuzz targets. Every time before the first burst maps to nullopt.
class NeonClock {
public:
    explicit NeonClock(int time_echo_interval_s) : fit_(neon_clock_fit_options(time_echo_interval_s)) {}
    // One burst's samples and their estimate (estimate_device_minus_mono_ns); samples not empty.
    void add_burst(const std::vector<TimeEchoSample>& samples, int64_t estimate);
    std::optional<int64_t> device_minus_mono_ns() const { return latest_; }  // the latest burst's
    std::optional<int64_t> to_mono_ns(int64_t device_ns) const;
    std::optional<int64_t> to_device_ns(int64_t mono_ns) const;
    // The line through the bursts is used once they span three intervals.
    bool drift_fitted() const;
    const ClockFit& fit() const { return fit_; }
    uint64_t steps() const { return steps_; }  // phone clock steps seen (the fit restarted)

private:
    int64_t device_minus_mono_at(int64_t mono) const;
    std::optional<int64_t> latest_;
    // Phone minus host over time, fitted with its drift through the bursts of the last two
    // minutes or more (offsets relative to base_ns_, so the doubles stay small).
    ClockFit fit_;
    int64_t base_ns_ = 0;
    uint64_t steps_ = 0;
};

struct NeonDeviceOptions {
    std::string host;                 // numeric address or a name (neon.local)
    int port = 8080;
    bool scene = true;                // open the world stream
    int time_echo_count = 20;         // round trips per burst
    int time_echo_interval_s = 10;    // bursts repeat during the session
    int status_interval_s = 5;        // REST status poll (also a liveness check)
    int silence_timeout_ms = 3000;    // no gaze for this long while connected: disconnected
    int request_timeout_ms = 3000;
};

// What `pilogger status` and the GUI show of the device.
struct NeonDeviceInfo {
    std::string device_name;
    std::string device_id;
    std::string ip;
    double battery_percent = -1;
    std::string battery_state;
    double free_storage_gb = -1;
    std::string hardware_version;
    std::string glasses_serial;
    std::string recording_id;         // the Neon's own recording, "" when none
    bool recording = false;
    nlohmann::json to_json() const;
};

// A DIRECT sensor stream the phone lists in its status (conn_type DIRECT: RTSP).
struct NeonSensorEndpoint {
    std::string sensor, ip, params;
    int port = 0;
};

// What the phone's status tells: GET /api/status answers an array of components, the WebSocket
// pushes one at a time. Pure, for NeonDevice, the tests and the fuzz targets.
struct NeonStatus {
    NeonDeviceInfo info;
    int time_echo_port = 0;
    std::vector<NeonSensorEndpoint> sensors;  // one per sensor name, the latest listing wins
};
// Applies an array of status components (anything else is ignored, as are components and fields
// of the wrong type or out of range); true when the device info changed.
bool apply_neon_status(const nlohmann::json& components, NeonStatus& status);

// A REST answer: ok with the "result" of a 200 JSON object, else the error text (method, path,
// status and the device's "message" when it gave one).
struct RestAnswer {
    bool ok = false;
    nlohmann::json result;
    std::string error;
};
RestAnswer read_rest_answer(const Response& response, const std::string& method, const std::string& path);

class NeonDevice {
public:
    struct Callbacks {
        std::function<void(bool connected, const std::string& why)> connection;
        std::function<void()> info_changed;
        std::function<void(const GazeSample& sample, int64_t device_ns, int64_t mono_ns)> gaze;
        std::function<void(const ImuSample& sample, int64_t device_ns, int64_t mono_ns)> imu;
        std::function<void(const EyeEvent& event, int64_t device_ns, int64_t mono_ns)> eye_event;
        // Whole access units of the scene video; device time of the frame from its RTP timestamp.
        std::function<void(AccessUnit&& unit, int64_t device_ns, int64_t mono_ns)> scene;
        // Every Time Echo burst, after the estimate was updated.
        std::function<void(const std::vector<TimeEchoSample>& samples, std::optional<int64_t> estimate)> time_echo;
    };

    NeonDevice(uv::Loop& loop, NeonDeviceOptions options, Callbacks callbacks);
    ~NeonDevice();
    NeonDevice(const NeonDevice&) = delete;
    NeonDevice& operator=(const NeonDevice&) = delete;

    void start();
    bool connected() const { return connected_; }
    const NeonDeviceInfo& info() const { return status_.info; }
    // The phone's unix ns minus CLOCK_MONOTONIC ns by the latest Time Echo burst; nullopt before
    // the first one.
    std::optional<int64_t> device_minus_mono_ns() const { return clock_.device_minus_mono_ns(); }
    // Through the fitted offset and drift (the latest burst alone until drift can be fitted).
    std::optional<int64_t> to_mono_ns(int64_t device_ns) const { return clock_.to_mono_ns(device_ns); }
    std::optional<int64_t> to_device_ns(int64_t mono_ns) const { return clock_.to_device_ns(mono_ns); }
    // SPS/PPS of the scene track in Annex B (from the SDP); "" before the world stream is described.
    const std::string& scene_parameter_sets() const { return scene_parameter_sets_; }
    uint32_t scene_clock_rate() const { return scene_clock_rate_; }

    // A Time Echo burst now (trial start/stop); ignored while one runs or when disconnected.
    void measure_clock();
    // REST calls; done(ok, result or error text).
    using RestDone = std::function<void(bool ok, const nlohmann::json& result, const std::string& error)>;
    void send_event(const std::string& name, std::optional<int64_t> device_unix_ns, RestDone done);
    void start_recording(RestDone done);
    void stop_and_save_recording(RestDone done);

    nlohmann::json stats() const;

private:
    void connect();
    void disconnect(const std::string& why);
    void schedule_retry();
    void on_status(const nlohmann::json& result);
    void open_streams();
    void on_packet(const std::string& sensor, const RtpPacket& packet, std::optional<int64_t> device_ns, bool gap);
    void on_scene_unit(AccessUnit&& unit);
    void rest(const std::string& method, const std::string& path, const std::string& body, RestDone done);
    void run_time_echo(std::function<void(bool ok)> then);
    void check_liveness();

    uv::Loop& loop_;
    NeonDeviceOptions options_;
    Callbacks callbacks_;
    std::string address_;             // numeric, once resolved
    bool connected_ = false;
    bool connecting_ = false;
    uint64_t generation_ = 0;         // bumps on every disconnect; stale callbacks check it
    NeonStatus status_;
    std::unique_ptr<HttpClient> http_;
    std::unique_ptr<WebSocketClient> websocket_;
    std::unique_ptr<TimeEchoClient> time_echo_;
    std::vector<std::unique_ptr<RtspStream>> streams_;
    std::unique_ptr<H264Depacketizer> depacketizer_;
    std::string scene_parameter_sets_;
    uint32_t scene_clock_rate_ = 90000;
    uint32_t scene_reference_ts_ = 0;
    std::optional<int64_t> scene_reference_device_ns_;
    std::unique_ptr<uv::Timer> retry_timer_;
    std::unique_ptr<uv::Timer> status_timer_;
    std::unique_ptr<uv::Timer> echo_timer_;
    std::unique_ptr<uv::Timer> liveness_timer_;
    int retry_delay_ms_ = 1000;
    NeonClock clock_;
    int64_t last_gaze_mono_ns_ = 0;
    int64_t connected_since_mono_ns_ = 0;
    std::string last_error_;
    // Rates over the last second for status.
    uint64_t gaze_count_ = 0, imu_count_ = 0, scene_count_ = 0, event_count_ = 0;
    int64_t rate_window_mono_ns_ = 0;
    double gaze_rate_hz_ = 0, imu_rate_hz_ = 0, scene_rate_hz_ = 0;
    uint64_t bad_payloads_ = 0;
    uint64_t status_pushes_ = 0;  // components the WebSocket pushed (battery, recording, events)
    uint64_t untimed_samples_ = 0;
    uint64_t disconnects_ = 0;
    uint64_t lost_packets_total_ = 0;   // of streams already closed
    uv::Requests requests_;  // the name lookup
};

}  // namespace pilogger::neon
