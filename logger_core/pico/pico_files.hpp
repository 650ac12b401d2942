// pico/sync.csv and pico/led.csv of the open session. Rows that come while the folder is still
// being created wait (up to kMaxPendingRows each) and are written once the files are open.
#pragma once

#include "csv_writer.hpp"
#include "pico_report.hpp"
#include "uv.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pilogger {

inline const std::vector<std::string> kPicoSyncColumns = {
    "host_t1_ns", "pico_rx_us", "pico_tx_us", "host_t4_ns", "rtt_us",     "kept",
    "offset_us",  "drift_ppm",  "residual_us", "fit_points", "segment",   "boot"};
inline const std::vector<std::string> kPicoLedColumns = {"seq",   "pico_us", "mono_ns", "channel",
                                                         "level", "cmd_id",  "segment"};

class PicoFiles {
public:
    PicoFiles(uv::Loop& loop, PicoReporter report);
    PicoFiles(const PicoFiles&) = delete;
    PicoFiles& operator=(const PicoFiles&) = delete;

    // Creates <session_dir>/pico on the thread pool, then opens both files.
    void open(const std::string& session_dir);
    // done runs once both files are closed (at once if none is open). Rows written afterwards,
    // until the next open(), are dropped.
    void close(std::function<void()> done);

    void write_sync(const CsvRow& row);
    void write_led(const CsvRow& row);

private:
    uv::Loop& loop_;
    PicoReporter report_;
    int generation_ = 0;  // an open() overtaken by a close() or another open() does nothing
    bool opening_ = false;
    std::unique_ptr<AsyncFileWriter> sync_csv_;
    std::unique_ptr<AsyncFileWriter> led_csv_;
    std::vector<std::unique_ptr<AsyncFileWriter>> closing_writers_;
    std::vector<std::string> pending_sync_;
    std::vector<std::string> pending_led_;
    uv::Requests requests_;  // the folder's mkdir
};

}  // namespace pilogger
