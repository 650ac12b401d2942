// The pico: section of the configuration (the Pico W sync link). No pico: section means no Pico.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace pilogger {

class YamlMap;

// Knobs of tests/tools/pico_emulator.py, used when device is "emulator".
struct PicoEmulatorConfig {
    std::string executable;         // empty: pilogger-pico-emulator next to pilogger
    int64_t offset_us = 0;          // Pico clock at boot
    double skew_ppm = 0;            // the Pico clock runs fast by this much
    double latency_us = 0;          // one-way delay per direction
    double jitter_us = 0;           // extra random delay per line
    std::string jitter_dist = "normal";  // normal: |N(0, jitter)|, uniform: U(0, jitter)
    double loss = 0;                // fraction of Pico lines lost
    bool split = false;             // lines arrive in fragments
    bool crlf = false;              // lines end in \r\n
    std::optional<int64_t> seed;
    std::optional<double> reboot_after_s;
    std::optional<double> repl_after_s;
    std::optional<double> unplug_after_s;
    std::optional<double> replug_after_s;
    std::string truth_log;          // emulator's ground-truth LED log (tests, benchmarks)
};

struct PicoConfig {
    // A path, "auto" (the first /dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_*) or
    // "emulator" (the supervisor runs the emulator on a pseudo-terminal).
    std::string device = "auto";
    // The GPIO the sync LED is wired to. The firmware has its own pin table (LED_PINS in
    // firmware/pico_w/main.py); this key records the wiring in session.json and must match it.
    int led_pin = 15;
    int led_channel = 0;            // PSYNC channel of the sync LED (index into LED_PINS)
    int64_t ping_interval_ms = 1000;  // one burst of PINGs this often
    int ping_burst = 8;             // PINGs per burst; the lowest round trip is kept
    int64_t ping_spacing_ms = 5;    // between the PINGs of a burst
    int64_t fit_window_s = 60;      // sliding window of the clock fit
    int code_bit_ms = 100;          // bit length of the coded flash at each trial start
    PicoEmulatorConfig emulator;
};

// Reads a pico: mapping (throws ConfigError with file, line and key on anything wrong).
// check_host: also refuse what this machine cannot run (the emulator's program, its log folder).
PicoConfig parse_pico_config(YamlMap& m, bool check_host = false);
nlohmann::json pico_config_json(const PicoConfig& config);

}  // namespace pilogger
