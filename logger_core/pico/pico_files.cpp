#include "pico_files.hpp"

#include <sys/stat.h>

#include <cerrno>

namespace pilogger {

namespace {
constexpr size_t kMaxPendingRows = 10000;
}  // namespace

PicoFiles::PicoFiles(uv::Loop& loop, PicoReporter report) : loop_(loop), report_(std::move(report)), requests_(loop) {}

void PicoFiles::open(const std::string& session_dir) {
    closing_writers_.clear();
    pending_sync_.clear();
    pending_led_.clear();
    int generation = ++generation_;
    opening_ = true;
    std::string dir = session_dir + "/pico";
    requests_.work(
        [dir]() -> std::string {
            if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return "cannot create " + dir + ": " + errno_text(errno);
            return {};
        },
        [this, generation, dir](const std::string& error) {
            if (generation != generation_) return;  // a newer open (another session) took over
            opening_ = false;
            if (!error.empty()) {
                report_.log("error", "Pico W files: " + error);
                report_.event("pico_file_error", error);
                pending_sync_.clear();
                pending_led_.clear();
                return;
            }
            // The writers are ours: their callbacks end with them.
            auto on_error = [this](const std::string& message) { report_.log("error", "Pico W files: " + message); };
            sync_csv_ = std::make_unique<AsyncFileWriter>(loop_, dir + "/sync.csv", kPicoSyncColumns,
                                                          FileWriterOptions{}, on_error);
            led_csv_ = std::make_unique<AsyncFileWriter>(loop_, dir + "/led.csv", kPicoLedColumns,
                                                         FileWriterOptions{}, on_error);
            for (const auto& line : pending_sync_) sync_csv_->write_text(line);
            for (const auto& line : pending_led_) led_csv_->write_text(line);
            pending_sync_.clear();
            pending_led_.clear();
        });
}

void PicoFiles::close(std::function<void()> done) {
    ++generation_;
    opening_ = false;
    pending_sync_.clear();
    pending_led_.clear();
    std::vector<AsyncFileWriter*> open;
    for (auto* w : {&sync_csv_, &led_csv_}) {
        if (*w) {
            open.push_back(w->get());
            closing_writers_.push_back(std::move(*w));
        }
    }
    if (open.empty()) {
        if (done) done();
        return;
    }
    auto remaining = std::make_shared<size_t>(open.size());
    auto finished = std::make_shared<std::function<void()>>(std::move(done));
    for (AsyncFileWriter* w : open) {
        w->close([remaining, finished] {
            if (--*remaining == 0 && *finished) (*finished)();
        });
    }
}

void PicoFiles::write_sync(const CsvRow& row) {
    if (sync_csv_) {
        sync_csv_->write_row(row);
    } else if (opening_ && pending_sync_.size() < kMaxPendingRows) {
        pending_sync_.push_back(row.line());
    }
}

void PicoFiles::write_led(const CsvRow& row) {
    if (led_csv_) {
        led_csv_->write_row(row);
    } else if (opening_ && pending_led_.size() < kMaxPendingRows) {
        pending_led_.push_back(row.line());
    }
}

}  // namespace pilogger
