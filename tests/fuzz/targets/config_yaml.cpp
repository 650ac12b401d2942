// The YAML configuration (logger_core/config/config.hpp): load_config_text on the input as a file's
// text. ConfigError is the expected answer to bad input; any other exception, a crash or a hang
// is a bug. A config that loads is also snapshotted as session.json does (to_json, dumped with
// invalid UTF-8 replaced), and an eye tracker module's settings are read back the way the
// module reads them from its configure command (EyetrackerSettings::from_json).
//
// Input: the YAML text.
#include "camera_settings.hpp"
#include "config.hpp"
#include "eyetracker_settings.hpp"
#include "notes_module.hpp"
#include "fuzz_util.hpp"

#include <stdexcept>
#include <string>

namespace {
// The kinds as their modules describe them, in process (no module program is spawned per input).
pilogger::FixedCatalog& catalog() {
    static pilogger::FixedCatalog kinds = [] {
        pilogger::FixedCatalog c;
        c.add(pilogger::camera::camera_kind());
        c.add(pilogger::neon::eyetracker_kind());
        c.add(pilogger::notes_kind());
        pilogger::ModuleKind test;
        test.kind = "test";
        c.add(test);
        return c;
    }();
    return kinds;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    pilogger::Config config;
    try {
        config = pilogger::load_config_text(text, "fuzz.yaml", false, &catalog());
    } catch (const pilogger::ConfigError& e) {
        // Every error names the file (and, where it has one, the line and column).
        FUZZ_CHECK(std::string(e.what()).rfind("fuzz.yaml", 0) == 0);
        return 0;
    }
    FUZZ_CHECK(config.source_file == "fuzz.yaml");
    nlohmann::json snapshot = config.to_json();
    std::string dumped = snapshot.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    FUZZ_CHECK(!nlohmann::json::parse(dumped, nullptr, false).is_discarded());
    for (const auto& module : config.modules) {
        FUZZ_CHECK(config.find_module(module.name) != nullptr);
        if (module.type != "eyetracker") continue;
        // The loader validated these settings: the module must accept them.
        pilogger::neon::EyetrackerSettings::from_json(module.settings);
    }
    return 0;
}
