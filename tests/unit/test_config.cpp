#include "config.hpp"
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace pilogger;

namespace {
std::string error_of(const std::string& yaml) {
    try {
        load_config_text(yaml, "test.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("a valid config loads with defaults filled in") {
    Config c = load_config_text(
        "data_dir: /data\n"
        "session_label: car\n"
        "supervisor:\n"
        "  ack_timeout_ms: 1500\n"
        "modules:\n"
        "  notes: {}\n"
        "  helper:\n"
        "    type: test\n"
        "    enabled: false\n",
        "test.yaml");
    CHECK(c.data_dir == "/data");
    CHECK(c.session_label == "car");
    CHECK(c.supervisor.ack_timeout_ms == 1500);
    CHECK(c.supervisor.heartbeat_timeout_ms == 3000);
    REQUIRE(c.modules.size() == 2);
    CHECK(c.modules[0].name == "notes");
    CHECK(c.modules[0].type == "notes");
    CHECK(c.modules[0].enabled);
    CHECK(c.modules[1].type == "test");
    CHECK_FALSE(c.modules[1].enabled);
    CHECK(c.modules[1].settings.empty());
    CHECK(c.find_module("helper") != nullptr);
    // Each module carries its kind's capabilities, as the kind described itself.
    CHECK(c.modules[0].capabilities == std::vector<std::string>{"note"});
    CHECK(c.modules[0].has_capability("note"));
    CHECK_FALSE(c.modules[1].has_capability("note"));
}

TEST_CASE("an unknown key names the file, line, column and the full key") {
    std::string e = error_of("data_dir: /d\nmodules:\n  notes:\n    enabld: true\n");
    CHECK(e.find("test.yaml:4:5") != std::string::npos);
    CHECK(e.find("modules.notes.enabld") != std::string::npos);
    CHECK(e.find("unknown key") != std::string::npos);
    CHECK(e.find("enabled") != std::string::npos);  // says what was expected
}

TEST_CASE("wrong types and ranges say what was expected") {
    std::string e = error_of("data_dir: /d\nsupervisor:\n  ack_timeout_ms: soon\nmodules: {notes: {}}\n");
    CHECK(e.find("test.yaml:3:19") != std::string::npos);
    CHECK(e.find("supervisor.ack_timeout_ms") != std::string::npos);
    CHECK(e.find("whole number") != std::string::npos);

    e = error_of("data_dir: /d\nmodules:\n  notes:\n    enabled: maybe\n");
    CHECK(e.find("modules.notes.enabled: expected true or false") != std::string::npos);

    e = error_of("data_dir: /d\ndisk_reserve_mb: -3\nmodules: {notes: {}}\n");
    CHECK(e.find("from 0 to") != std::string::npos);

    e = error_of("data_dir: /d\nlog_level: loud\nmodules: {notes: {}}\n");
    CHECK(e.find("expected one of debug, info, warning, error") != std::string::npos);

    e = error_of("data_dir: [1, 2]\nmodules: {notes: {}}\n");
    CHECK(e.find("data_dir: expected text") != std::string::npos);
}

TEST_CASE("structure errors: missing keys, bad module names and types, duplicates, syntax") {
    CHECK(error_of("modules: {notes: {}}\n").find("data_dir: missing") != std::string::npos);
    CHECK(error_of("data_dir: /d\n").find("modules: missing") != std::string::npos);
    CHECK(error_of("data_dir: /d\nmodules:\n  Bad/Name: {}\n").find("module names use") != std::string::npos);
    CHECK(error_of("data_dir: /d\nmodules:\n  lidar: {}\n").find("modules.lidar.type: expected one of") != std::string::npos);
    CHECK(error_of("data_dir: /d\ndata_dir: /e\nmodules: {notes: {}}\n").find("appears twice") != std::string::npos);
    std::string syntax = error_of("data_dir: /d\nmodules:\n  notes: {enabled: true\n");
    CHECK(syntax.find("test.yaml:") != std::string::npos);
    CHECK(syntax.find("YAML syntax error") != std::string::npos);
    CHECK(error_of("").find("empty") != std::string::npos);
    CHECK(error_of("- a\n- b\n").find("expected a mapping") != std::string::npos);
}

TEST_CASE("a missing file is reported with its path") {
    try {
        load_config_file("/nonexistent/pilogger.yaml");
        FAIL("expected an error");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()).find("/nonexistent/pilogger.yaml: cannot read") != std::string::npos);
    }
}

TEST_CASE("the shipped configs are valid") {
    for (const char* name : {"demo.yaml", "pilogger.yaml"}) {
        CAPTURE(name);
        CHECK_NOTHROW(load_config_file(std::string(PILOGGER_SOURCE_DIR) + "/config/" + name));
    }
}

TEST_CASE("home folder expansion") {
    setenv("HOME", "/home/researcher", 1);
    CHECK(expand_home("~/data") == "/home/researcher/data");
    CHECK(expand_home("~") == "/home/researcher");
    CHECK(expand_home("/abs/~x") == "/abs/~x");
}

TEST_CASE("an eye tracker address with a port is checked where the file is read") {
    auto with_address = [](const std::string& address) {
        return error_of("data_dir: /d\nmodules:\n  et:\n    type: eyetracker\n    address: \"" + address + "\"\n");
    };
    CHECK(with_address("192.168.1.20:8080").empty());
    CHECK(with_address("fe80::1").empty());  // several colons: an IPv6 address, no port
    for (const char* bad : {"host:80x", "host:70000", "host:0", ":8080", "host:", "192.1# x:er"}) {
        CAPTURE(bad);
        std::string error = with_address(bad);
        CHECK(error.find("test.yaml:5:") == 0);
        CHECK(error.find("modules.et.address") != std::string::npos);
    }
}

TEST_CASE("YAML nested past yaml-cpp's depth limit is a clear error, not a stack overflow") {
    std::string deep = "data_dir: /d\nmodules: {}\nx: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
    std::string error = error_of(deep);
    CHECK(error.find("test.yaml:") == 0);
    CHECK(error.find("nested too deeply") != std::string::npos);
    deep = "data_dir: /d\nmodules: {}\nx: ";
    for (int i = 0; i < 3000; ++i) deep += "{a: ";
    deep += std::string(3000, '}') + "\n";
    CHECK(error_of(deep).find("nested too deeply") != std::string::npos);
}

namespace {
std::string host_error_of(const std::string& yaml) {
    try {
        load_config_text(yaml, "test.yaml", true);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("a folder given as the config file says it is a folder") {
    test::TempDir dir;
    try {
        load_config_file(dir.path.string());
        FAIL("expected an error");
    } catch (const ConfigError& e) {
        const std::string what = e.what();
        CHECK(what.find(dir.path.string() + ": is a folder, not a config file") != std::string::npos);
        CHECK(what.find("empty") == std::string::npos);
    }
}

TEST_CASE("a quote never closed is a syntax error at the quote, not a missing key at 1:1") {
    std::string e = error_of("data_dir: \"/tmp/x\nmodules:\n  notes: {}\n");
    CHECK(e.find("test.yaml:1:11: data_dir: YAML syntax error") != std::string::npos);
    CHECK(e.find("no closing \"") != std::string::npos);
    e = error_of("data_dir: /d\nmodules:\n  notes: {}\nsession_label: 'car\n");
    CHECK(e.find("test.yaml:4:16: session_label: YAML syntax error") != std::string::npos);
    CHECK(e.find("no closing '") != std::string::npos);
    // Closed quotes, escapes, doubled single quotes and a quote over two lines are fine.
    Config c = load_config_text("data_dir: \"/d \\\" x\"\nsession_label: 'it''s\n  here'\nmodules: {\"notes\": {}}\n", "t.yaml");
    CHECK(c.data_dir == "/d \" x");
    CHECK(c.session_label == "it's here");
}

TEST_CASE("a second YAML document is refused at its ---") {
    std::string e = error_of("data_dir: /d\nmodules:\n  notes: {}\n---\ndata_dir: /e\n");
    CHECK(e.find("test.yaml:4:1: a second YAML document") != std::string::npos);
    // One document with its markers, or an empty one after it, is fine.
    CHECK(error_of("---\ndata_dir: /d\nmodules: {notes: {}}\n...\n") == "");
    CHECK(error_of("data_dir: /d\nmodules: {notes: {}}\n---\n") == "");
}

TEST_CASE("explicit YAML tags are refused with the key and the place") {
    std::string e = error_of("data_dir: !!binary L2RhdGE=\nmodules: {notes: {}}\n");
    CHECK(e.find("test.yaml:1:11: data_dir: the YAML tag !!binary is not supported") != std::string::npos);
    e = error_of("data_dir: /d\ndisk_reserve_mb: !!str 10\nmodules: {notes: {}}\n");
    CHECK(e.find("test.yaml:2:18: disk_reserve_mb: the YAML tag !!str") != std::string::npos);
    e = error_of("data_dir: /d\nmodules:\n  cam0:\n    type: camera\n    fps: !custom 30\n");
    CHECK(e.find("test.yaml:5:10: modules.cam0.fps: the YAML tag !custom") != std::string::npos);
    e = error_of("data_dir: /d\nmodules: !!map {notes: {}}\n");
    CHECK(e.find("modules: the YAML tag !!map") != std::string::npos);
}

TEST_CASE("a module program that cannot run is refused with the file, line, column and key") {
    test::TempDir dir;
    { std::ofstream(dir.file("not-executable")) << "#!/bin/sh\n"; }
    std::string e = host_error_of("data_dir: " + dir.path.string() + "\nmodules:\n  notes:\n    executable: /no/such/pilogger-notes\n");
    CHECK(e.find("test.yaml:4:17: modules.notes.executable: '/no/such/pilogger-notes' does not exist") != std::string::npos);
    e = host_error_of("data_dir: " + dir.path.string() + "\nmodules:\n  notes:\n    executable: " + dir.file("not-executable") + "\n");
    CHECK(e.find("modules.notes.executable: '" + dir.file("not-executable") + "' is not executable (mode 0644)") !=
          std::string::npos);
    e = host_error_of("data_dir: " + dir.path.string() + "\nmodules:\n  notes:\n    executable: " + dir.path.string() + "\n");
    CHECK(e.find("is a folder, not a program") != std::string::npos);
    e = host_error_of("data_dir: " + dir.path.string() + "\nmodules:\n  notes:\n    executable: no-such-program-anywhere\n");
    CHECK(e.find("'no-such-program-anywhere' is not on PATH") != std::string::npos);
    // The defaults are next to the test executable (build/bin), as they are next to pilogger.
    CHECK(host_error_of("data_dir: " + dir.path.string() + "\nmodules:\n  notes: {}\n  cam0: {type: camera}\n"
                        "  eyetracker: {address: simulator}\npico: {device: emulator}\n") == "");
    // Without the host checks (the text alone) none of this is looked at.
    CHECK(error_of("data_dir: /d\nmodules:\n  notes:\n    executable: /no/such/pilogger-notes\n") == "");
}

TEST_CASE("a program a module's settings name, the simulators' log folders and data_dir are checked on this machine") {
    test::TempDir dir;
    const std::string top = "data_dir: " + dir.path.string() + "\nmodules:\n";
    // The eye tracker writes its scene video in process: an old config's ffmpeg is not needed.
    CHECK(host_error_of(top + "  eyetracker:\n    ffmpeg: /no/ffmpeg\n") == "");
    {
        // A kind whose setting names a program needed only while a flag is on.
        ModuleKind kind;
        kind.kind = "notes";
        Setting& helper = kind.settings.text("helper", "true", "a program");
        helper.format = TextFormat::Program;
        helper.with_hint("the video needs it").needed_when_any({"video"});
        kind.settings.boolean("video", true, "record video");
        FixedCatalog catalog;
        catalog.add(kind);
        auto error = [&](const std::string& yaml) {
            try {
                load_config_text(top + yaml, "test.yaml", true, &catalog);
            } catch (const ConfigError& e) {
                return std::string(e.what());
            }
            return std::string();
        };
        CHECK(error("  notes:\n    helper: /no/helper\n").find(
                  "test.yaml:4:13: modules.notes.helper: '/no/helper' does not exist; the video needs it") != std::string::npos);
        CHECK(error("  notes:\n    helper: /no/helper\n    video: false\n") == "");
    }
    std::string e = host_error_of(top + "  eyetracker:\n    address: simulator\n    simulator:\n      truth: /no/folder/truth.ndjson\n");
    CHECK(e.find("modules.eyetracker.simulator.truth: '/no/folder/truth.ndjson': the folder /no/folder does not exist") !=
          std::string::npos);
    e = host_error_of(top + "  notes: {}\npico:\n  device: emulator\n  emulator:\n    truth_log: /no/folder/x.log\n");
    CHECK(e.find("pico.emulator.truth_log") != std::string::npos);
    { std::ofstream(dir.file("a-file")) << "x\n"; }
    e = host_error_of("data_dir: " + dir.file("a-file") + "/sessions\nmodules: {notes: {}}\n");
    CHECK(e.find("test.yaml:1:11: data_dir: " + dir.file("a-file") + " is a file, so") != std::string::npos);
    e = host_error_of("data_dir: " + dir.file("a-file") + "\nmodules: {notes: {}}\n");
    CHECK(e.find("is a file, not a folder") != std::string::npos);
    CHECK(host_error_of("data_dir: " + dir.file("new/deeper") + "\nmodules: {notes: {}}\n") == "");
}

TEST_CASE("eye tracker addresses: IPv4 numbers up to 255, ports 1 to 65535, host names") {
    for (const char* good : {"auto", "simulator", "192.168.1.20", "192.168.1.20:8080", "neon.local", "neon-1.lan:1",
                             "phone", "10.0.0.255:65535", "fe80::1", "::1"}) {
        CAPTURE(good);
        CHECK(address_problem(good, {"auto", "simulator"}) == "");
    }
    for (const char* bad : {"999.999.999.999:99999", "192.168.1.256", "1.2.3", "1.2.3.4.5", "10.0.0.1:0", "10.0.0.1:99999",
                            "10.0.0.1:", "host:80x", ":8080", "-neon.local", "neon_phone", "neon..local", "fe80::zz"}) {
        CAPTURE(bad);
        CHECK(address_problem(bad, {"auto", "simulator"}) != "");
    }
    std::string e = error_of("data_dir: /d\nmodules:\n  eyetracker:\n    address: 999.999.999.999:99999\n");
    CHECK(e.find("test.yaml:4:14: modules.eyetracker.address: '999.999.999.999:99999' has the host '999.999.999.999', "
                 "not an IPv4 address") != std::string::npos);
    e = error_of("data_dir: /d\nmodules:\n  eyetracker:\n    address: 10.0.0.1:99999\n");
    CHECK(e.find("has the port '99999', not a number from 1 to 65535") != std::string::npos);
    e = error_of("data_dir: /d\nmodules:\n  eyetracker:\n    address: simulator\n    simulator: {scene_size: 1601x1200}\n");
    CHECK(e.find("modules.eyetracker.simulator.scene_size: expected WIDTHxHEIGHT with even numbers") != std::string::npos);
}

TEST_CASE("text yaml-cpp takes for an endless run of empty documents is a syntax error at its line") {
    // yaml-cpp 0.7's LoadAll looped forever on this, allocating until the OOM killer came.
    std::string e = error_of("# a comment\n  eds with simulated devices.\n# x:\n!otes, two sim");
    CHECK(e.find("test.yaml:4:1: YAML syntax error: this line does not continue the document above") == 0);
    CHECK(error_of(",\n").find("test.yaml:") == 0);
}

TEST_CASE("an alias inside the node it names is refused at the alias, not a stack overflow") {
    std::string e = error_of("data_dir: /d\nmodules:\n  n1: &b {type: notes, x: *b}\n");
    CHECK(e.find("test.yaml:3:27: modules.n1.x: this alias names the mapping or list it is inside") == 0);
    e = error_of("data_dir: /d\nmodules: &m\n  n1: [1, [*m]]\n");
    CHECK(e.find("modules.n1[1][0]: this alias names") != std::string::npos);
    // Aliases of other nodes are fine.
    CHECK(error_of("data_dir: /d\nbase: &cam {type: camera}\nmodules:\n  cam0: *cam\n").find("alias") == std::string::npos);
}
