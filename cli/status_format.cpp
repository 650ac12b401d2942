#include "commands.hpp"

#include "json_read.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace pilogger::cli {

std::string format_duration(double seconds) {
    if (seconds < 0) seconds = 0;
    long total = static_cast<long>(seconds);
    char buf[32];
    snprintf(buf, sizeof buf, "%02ld:%02ld:%02ld", total / 3600, (total / 60) % 60, total % 60);
    return buf;
}

namespace {
std::string number(const json& v) {
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_number_float()) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.1f", v.get<double>());
        return buf;
    }
    if (v.is_null()) return "0";
    return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string bytes(int64_t n) {
    char buf[32];
    if (n >= (1LL << 30)) {
        snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(n) / (1LL << 30));
    } else if (n >= (1LL << 20)) {
        snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / (1LL << 20));
    } else {
        snprintf(buf, sizeof buf, "%lld KiB", static_cast<long long>(n / 1024));
    }
    return buf;
}

// The stats worth a glance, in this order, when a module reports them.
std::string stats_brief(const json& stats) {
    static const std::pair<const char*, const char*> kFields[] = {
        {"fps", "fps"}, {"rate_hz", "Hz"}, {"frames", "frames"}, {"notes", "notes"}, {"drops", "drops"}};
    std::string out;
    for (const auto& [key, unit] : kFields) {
        auto it = stats.find(key);
        if (it == stats.end() || it->is_null()) continue;
        out += " " + number(*it) + " " + unit;
    }
    return out;
}
}  // namespace

// The Neon behind an eye-tracker module: "Neon Sim, battery 87 %, 100.0 GB free, clock +3700.12 ms
// drift +1.5 ppm, gaze 200 Hz, scene 30 fps" (and the damaged scene frames, when there are any).
// The stats come from the module as it sent them: every field is read leniently (a field of
// another type reads as absent), so no module can make `pilogger status` fail.
static std::string neon_summary(const json& stats) {
    if (!read::flag(stats, "connected", false)) {
        std::string why = read::text(stats, "device_error", "");
        return "; Neon not connected" + (why.empty() ? std::string() : " (" + why + ")") + ", retrying";
    }
    std::string out = "; " + read::text(stats, "device_name", "Neon");
    char buf[200];
    // Appends the number under key with format, when the device gave one (and it is not zero).
    auto append = [&](const char* key, const char* format, bool skip_zero = false) {
        const json& value = read::field(stats, key);
        if (!value.is_number() || (skip_zero && value.get<double>() == 0)) return;
        snprintf(buf, sizeof buf, format, value.get<double>());
        out += buf;
    };
    append("battery_percent", ", battery %.0f %%");
    append("free_storage_gb", ", %.1f GB free");
    append("clock_offset_ms", ", clock %+.2f ms");
    append("clock_drift_ppm", " drift %+.1f ppm", true);
    append("scene_frames_damaged", ", %.0f scene frames damaged", true);
    snprintf(buf, sizeof buf, ", gaze %.0f Hz, scene %.0f fps", read::real(stats, "gaze_rate_hz", 0.0), read::real(stats, "scene_fps", 0.0));
    return out + buf;
}

bool has_capability(const json& module, const std::string& capability) {
    const json& caps = read::field(module, "capabilities");
    return caps.is_array() && std::find(caps.begin(), caps.end(), json(capability)) != caps.end();
}

std::string module_summary(const json& m) {
    std::string out = read::text(m, "name", "?") + " (" + read::text(m, "type", "?") + "): " + read::text(m, "state", "?");
    json stats = read::field(m, "stats");
    out += stats_brief(stats);
    // The Neon line is the one gaze device pilogger has; a second kind of gaze tracker would need
    // its own summary, or the stats_brief fields.
    if (has_capability(m, "gaze") && stats.is_object() && stats.contains("connected")) out += neon_summary(stats);
    int64_t restarts = read::integer(m, "restarts", 0);
    if (restarts > 0) out += ", " + std::to_string(restarts) + " restarts";
    std::string err = read::text(m, "last_error", "");
    if (!err.empty()) out += "; last error: " + err;
    return out;
}

namespace {
// The Pico W sync link: "connected on PATH, fw 1.0.0 (segment 1), offset ..., drift ..., ..."
std::string pico_summary(const json& p) {
    std::string out = read::text(p, "state", "?");
    std::string path = read::field(p, "path").is_string() ? p["path"].get<std::string>() : read::text(p, "device", "?");
    if (!read::flag(p, "connected", false)) {
        std::string err = read::text(p, "last_error", "");
        return out + " (" + (err.empty() ? path : err) + "); retrying in the background";
    }
    out += " on " + path + ", fw " + read::text(p, "firmware", "?") + " (clock segment " + number(read::field(p, "segment")) + ")";
    json fit = read::field(p, "fit");
    char buf[160];
    if (fit.is_object()) {
        snprintf(buf, sizeof buf, ", offset %.6f s, drift %+.2f ppm, residual %.0f us", read::real(fit, "offset_us", 0.0) / 1e6,
                 read::real(fit, "drift_ppm", 0.0), read::real(fit, "residual_us", 0.0));
        out += buf;
    } else {
        out += ", no clock fit yet";
    }
    json led = read::field(p, "led");
    out += ", LED " + (led.is_string() ? led.get<std::string>() : std::string("unknown"));
    out += ", " + number(read::field(p, "lines_lost")) + " lines lost";
    // What a misbehaving device sent (docs/pico_w.md, "What the link accepts").
    for (const auto& [key, what] : {std::pair{"lines_bad", " bad"}, std::pair{"lines_out_of_order", " out of order"},
                                    std::pair{"replies_unmatched", " unasked replies"}}) {
        int64_t n = read::integer(p, key, 0);
        if (n > 0) out += ", " + std::to_string(n) + what;
    }
    return out;
}
}  // namespace

std::string status_line(const json& s) {
    std::string out;
    const json& session = read::field(s, "session");
    const json& trial = read::field(s, "trial");
    if (trial.is_object()) {
        out += "REC trial " + std::to_string(read::integer(trial, "number", 0)) + " " + format_duration(read::real(trial, "elapsed_s", 0.0));
    } else {
        out += "idle";
    }
    if (session.is_object()) out += " | session " + format_duration(read::real(session, "elapsed_s", 0.0));
    for (const auto& m : read::field(s, "modules")) {
        out += " | " + read::text(m, "name", "?") + " " + read::text(m, "state", "?") + stats_brief(read::field(m, "stats"));
    }
    json pico = read::field(s, "pico");
    if (pico.is_object()) out += " | pico " + read::text(pico, "state", "?");
    return out;
}

std::string status_report(const json& s) {
    std::string out;
    const json& sup = read::field(s, "supervisor");
    out += "supervisor  pid " + number(read::field(sup, "pid")) + ", up " + format_duration(read::real(sup, "uptime_s", 0.0)) +
           ", config " + read::text(sup, "config_file", "?") + "\n";
    const json& session = read::field(s, "session");
    if (session.is_object()) {
        out += "session     " + read::text(session, "dir", "?") + " (" + format_duration(read::real(session, "elapsed_s", 0.0)) + ", " +
               number(read::field(session, "trials")) + " trials)\n";
    } else {
        out += "session     none (start one with 'pilogger session start')\n";
    }
    const json& trial = read::field(s, "trial");
    if (trial.is_object()) {
        std::string label = read::text(trial, "label", "");
        out += "trial       " + std::to_string(read::integer(trial, "number", 0)) + (label.empty() ? "" : " (" + label + ")") +
               " recording for " + format_duration(read::real(trial, "elapsed_s", 0.0)) + "\n";
    } else {
        out += "trial       not recording\n";
    }
    const json& disk = read::field(s, "disk");
    int64_t free_bytes = read::integer(disk, "free_bytes", -1);
    if (free_bytes >= 0) {
        out += "disk        " + bytes(free_bytes) + " free (reserve " + bytes(read::integer(disk, "reserve_bytes", 0)) + ")\n";
    }
    json pico = read::field(s, "pico");
    if (pico.is_object()) out += "pico        " + pico_summary(pico) + "\n";
    out += "modules\n";
    for (const auto& m : read::field(s, "modules")) out += "  " + module_summary(m) + "\n";
    return out;
}

}  // namespace pilogger::cli
