// What the GUI unit test programs (test_units.cpp, test_preview.cpp) share: a supervisor status
// like the real one, and a test program kept away from the user's settings and supervisor.
#pragma once

#include "ndjson.hpp"

#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include <string>

namespace gui_test {

// Call from initTestCase: QSettings away from the user's own, and the window under test looks for
// a supervisor at a socket under `runtime` that is never there.
inline bool isolate(const QTemporaryDir& runtime) {
    QStandardPaths::setTestModeEnabled(true);
    if (!runtime.isValid()) return false;
    qputenv("XDG_RUNTIME_DIR", runtime.path().toUtf8());
    return true;
}

inline pilogger::json sampleStatus(const std::string& session_dir) {
    pilogger::json status = pilogger::json::parse(R"({
      "supervisor": {"pid": 42, "version": "0.1.0", "uptime_s": 3.5, "config_file": "/etc/demo.yaml",
                     "data_dir": "/data", "shutting_down": false, "mono_ns": 1},
      "session": null, "trial": null,
      "modules": [
        {"name": "notes", "type": "notes", "enabled": true, "state": "ready", "pid": 100, "restarts": 0,
         "last_error": "", "stats": {"notes": 2, "drops": 0, "bytes_written": 100}},
        {"name": "cam0", "type": "camera", "enabled": true, "state": "recording", "pid": 101, "restarts": 1,
         "last_error": "crashed: exit status 1", "capabilities": ["snapshot", "preview"],
         "stats": {"fps": 29.97, "dropped": 3, "csv_rows_dropped": 1, "bytes_written": 5000000}}
      ],
      "notes": {"next_id": 3, "queued": 0, "dropped": 0},
      "disk": {"free_bytes": 2000000000, "reserve_bytes": 200000000},
      "pico": null
    })");
    if (!session_dir.empty()) {
        status["session"] = pilogger::json{{"name", "s1"}, {"dir", session_dir}, {"label", ""},
                                 {"start_mono_ns", 1000}, {"elapsed_s", 3.0}, {"trials", 0}};
    }
    return status;
}

}  // namespace gui_test
