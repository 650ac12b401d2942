#include "eyetracker_settings.hpp"


#include <charconv>
#include <stdexcept>
#include <string_view>

namespace pilogger::neon {

const ModuleKind& eyetracker_kind() {
    static const ModuleKind kind = [] {
        ModuleKind k;
        k.kind = "eyetracker";
        k.summary = "a Pupil Labs Neon over its real-time API: gaze, IMU, eye events and the scene video";
        k.files = "`<name>/trial_NNN_gaze.csv`, `_imu.csv`, `_events.csv`, `_scene.mp4`, `_scene_frames.csv`, "
                  "`_time_echo.csv` ([eyetracker.md](eyetracker.md))";
        k.capabilities = {"preview", "gaze", "devices"};
        k.devices_heading = "Neon eye trackers (mDNS)";
        SettingsSchema& s = k.settings;
        Setting& address = s.text(
            "address", "auto",
            "`auto` finds the Neon by mDNS (needs `avahi-browse` from avahi-utils and a running avahi-daemon; the Pi "
            "has both); `simulator` starts `neon-sim` on loopback (it must be next to pilogger or on PATH); otherwise "
            "an IPv4 address (four numbers from 0 to 255) or a host name, optionally `:port` (1 to 65535), or an IPv6 "
            "address alone (its port in `port`). `config check` refuses anything else, with the line and column.");
        address.format = TextFormat::Address;
        address.special_words = {"auto", "simulator"};
        address.with_hint("expected auto, simulator, or the Neon's host[:port] (192.168.1.20:8080, neon.local)");
        s.integer("port", 8080, 1, 65535, "the app's HTTP port when `address` has none");
        s.text("device_name", "", "with `auto`: the phone's name when several Neons are on the network")
            .shown_default("(any)");
        s.boolean("scene", true, "record the scene video");
        s.boolean("overlay", false, "draw the gaze point into the scene video (decodes and re-encodes: costs CPU)");
        s.choice("damaged_frames", "keep", {"keep", "drop"},
                 "a scene frame that lost RTP packets: `keep` it as far as it came (players conceal the rest; the row "
                 "says `intact` 0) or `drop` it and every frame after it up to the next keyframe (a clean file with gaps)");
        s.boolean("neon_recording", false, "also start the Neon's own recording at a trial's start and save it at its stop");
        s.boolean("trial_events", true,
                  "send `trial_NNN.start` / `trial_NNN.stop` to the Neon (`POST /api/event`) with the instant on the "
                  "phone's clock");
        s.integer("time_echo_interval_s", 10, 1, 3600, "how often the clock offset is measured during the session");
        s.integer("time_echo_count", 20, 1, 1000, "round trips per measurement");
        s.boolean("preview", true, "publish the scene with the gaze point for the GUI");
        s.integer("preview_width", 320, 32, 1600, "the preview's width");
        s.number("preview_fps", 5, 0.1, 30,
                 "the preview's highest rate (keyframes only unless `overlay` decodes every frame)");
        s.text("ffmpeg", "ffmpeg",
               "no longer used: the scene MP4 is written in process (libavformat); accepted so older configs load");
        s.choice("overlay_preset", "ultrafast", {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium"},
                 "libx264 preset when `overlay` re-encodes");
        s.integer("overlay_crf", 23, 0, 51, "libx264 constant quality when `overlay` re-encodes");
        // neon-sim's knobs (tests/tools/neon_sim.py --help); only meaningful with address: simulator.
        SettingsSchema sim;
        sim.number("offset_s", 0, -1e6, 1e6, "the phone clock's offset from the host's").only_if_written();
        sim.number("skew_ppm", 0, -1000, 1000, "the phone clock's drift").only_if_written();
        sim.choice("gaze_layout", "89", {"9", "17", "25", "65", "89", "105"}, "bytes per gaze sample (the Neon's layouts)")
            .only_if_written();
        sim.number("gaze_hz", 200, 1, 1000, "gaze rate").only_if_written();
        sim.number("imu_hz", 110, 1, 1000, "IMU rate").only_if_written();
        Setting& size = sim.text("scene_size", "1600x1200", "scene video size");
        size.format = TextFormat::Size;
        size.with_hint("1600x1200").only_if_written();
        sim.number("scene_fps", 30, 1, 60, "scene video rate").only_if_written();
        sim.number("loss", 0, 0, 0.9, "share of RTP packets lost").only_if_written();
        sim.number("reorder", 0, 0, 0.9, "share of RTP packets reordered").only_if_written();
        sim.integer("rtp_ts_start", 0, 0, 4294967295, "first RTP timestamp").only_if_written();
        sim.number("first_sr_delay_s", 0, 0, 60, "delay of the first RTCP sender report").only_if_written();
        sim.number("disconnect_at_s", 0, 0, 86400, "drop the connection after this long (0: never)").only_if_written();
        sim.number("down_for_s", 5, 0, 3600, "and stay away this long").only_if_written();
        sim.text("device_name", "Neon Sim", "the name it announces").only_if_written();
        Setting& truth = sim.text("truth", "", "a file where it logs every sample it sends (the tests' ground truth)");
        truth.format = TextFormat::OutputFile;
        truth.only_if_written();
        s.section("simulator", "`neon-sim` knobs when `address: simulator`", sim);
        k.simulator = SimulatorHook{"address", "simulator", "neon-sim", "simulator"};
        // Gaze and IMU rows; a scene stream above any the Companion app sends (a few Mbit/s); the
        // overlay re-encodes the 1600x1200 scene at 30 fps: raw frames bound it.
        k.disk_rate = {{"gaze and IMU rows", {200 * 400 + 110 * 300}, "", ""},
                       {"scene video", {32e6 / 8}, "scene", ""},
                       {"overlay video", {1600, 1200, 1.5, 30}, "overlay", ""}};
        return k;
    }();
    return kind;
}

EyetrackerSettings EyetrackerSettings::from_json(const nlohmann::json& given) {
    const nlohmann::json j = eyetracker_kind().settings.apply(given, "eyetracker");
    EyetrackerSettings s;
    s.address = j["address"];
    s.port = j["port"];
    // "host:port" in address wins over port (the description checked the port is a number).
    if (auto colon = s.address.rfind(':'); colon != std::string::npos && s.address.find(':') == colon) {
        int value = 0;
        const std::string_view port = std::string_view(s.address).substr(colon + 1);
        std::from_chars(port.data(), port.data() + port.size(), value);
        s.port = value;
        s.address = s.address.substr(0, colon);
    }
    s.device_name = j["device_name"];
    s.scene = j["scene"];
    s.overlay = j["overlay"];
    s.damaged_frames = j["damaged_frames"];
    s.neon_recording = j["neon_recording"];
    s.trial_events = j["trial_events"];
    s.time_echo_interval_s = j["time_echo_interval_s"];
    s.time_echo_count = j["time_echo_count"];
    s.preview = j["preview"];
    s.preview_width = j["preview_width"];
    s.preview_fps = j["preview_fps"];
    s.overlay_preset = j["overlay_preset"];
    s.overlay_crf = j["overlay_crf"];
    return s;
}

}  // namespace pilogger::neon
