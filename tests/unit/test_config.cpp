#include "config.hpp"
#include "helpers.hpp"

#include <doctest/doctest.h>

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
