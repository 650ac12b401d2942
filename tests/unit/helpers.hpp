// Small helpers shared by the unit tests.
#pragma once

#include "uv.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace test {

// A fresh temporary folder, removed with everything in it at the end of the test.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        // mkdtemp replaces the trailing six X characters.
        std::string tmpl = (std::filesystem::temp_directory_path() / "pilogger-test-").string() + std::string(6, 'X');
        path = mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Runs the loop until pred() holds or timeout_ms passes; returns pred().
template <typename Pred>
bool run_until(pilogger::uv::Loop& loop, Pred pred, int timeout_ms = 5000) {
    pilogger::uv::Timer guard(loop);
    bool timed_out = false;
    guard.start(static_cast<uint64_t>(timeout_ms), 0, [&] { timed_out = true; });
    while (!pred() && !timed_out) uv_run(loop.get(), UV_RUN_ONCE);
    return pred();
}

}  // namespace test
