// pilogger-ticker: the smallest real module kind, built from the module SDK only, to show (and
// test) that a new kind of device is one folder and touches nothing in the core. It lives in
// tests/ and is not installed. docs/architecture.md ("Writing a module") walks through it.
//
// Each trial it writes <session>/ticker/<name>/trial_NNN_ticks.csv: one row per tick at
// rate_hz, stamped on the host's monotonic clock, with the configured label.
#include "clock.hpp"
#include "csv_writer.hpp"
#include "module_runtime.hpp"
#include "paths.hpp"

#include <cstring>
#include <iostream>
#include <memory>

namespace {

using pilogger::json;
using pilogger::Reply;

// 1. The kind, described once: the supervisor, `pilogger config check` and the docs read it
//    from `pilogger-ticker --describe`.
const pilogger::ModuleKind& ticker_kind() {
    static const pilogger::ModuleKind kind = [] {
        pilogger::ModuleKind k;
        k.kind = "ticker";
        k.summary = "an example module: a row per tick on the host's clock";
        k.files = "`ticker/<name>/trial_NNN_ticks.csv`";
        // `pilogger devices` runs `pilogger-ticker --list-devices` under the summary as heading.
        k.capabilities = {"devices"};
        k.settings.number("rate_hz", 10, 0.1, 1000, "ticks per second");
        k.settings.text("label", "tick", "written into every row");
        k.disk_rate = {{"rows", {64, "rate_hz"}, "", ""}};
        return k;
    }();
    return kind;
}

const std::vector<std::string> kColumns = {"tick", "mono_ns", "label"};

// 2. The module: the lifecycle hooks, each answered through its Reply.
class TickerModule : public pilogger::Module {
public:
    explicit TickerModule(pilogger::ModuleRuntime& runtime) : runtime_(runtime), timer_(runtime.loop()) {}

    void configure(const json& given, Reply reply) override {
        try {
            // The same description checks a hand-made configure and fills in the defaults.
            const json settings = ticker_kind().settings.apply(given, "ticker");
            period_ns_ = static_cast<int64_t>(1e9 / settings["rate_hz"].get<double>());
            label_ = settings["label"];
        } catch (const std::exception& e) {
            reply.error(pilogger::errc::kBadRequest, e.what());
            return;
        }
        reply.ok();
    }

    void start_session(const pilogger::SessionInfo& session, Reply reply) override {
        folder_ = session.session_dir + "/ticker/" + runtime_.name();
        auto shared = std::make_shared<Reply>(std::move(reply));
        // Off the loop: mkdir may block on a slow disk.
        pilogger::uv::queue_work(
            runtime_.loop(), [folder = folder_] { return pilogger::create_directories(folder); },
            [shared](const std::string& error) {
                if (error.empty()) {
                    shared->ok();
                } else {
                    shared->error(pilogger::errc::kIoError, error);
                }
            });
    }

    void start_recording(const pilogger::RecordingInfo& recording, Reply reply) override {
        const std::string path = folder_ + "/" + pilogger::trial_file_stem(recording.trial, recording.part) + "_ticks.csv";
        writer_ = std::make_unique<pilogger::AsyncFileWriter>(
            runtime_.loop(), path, kColumns, pilogger::FileWriterOptions{},
            [this](const std::string& message) { runtime_.log("error", message); });
        next_tick_ns_ = recording.start_at_mono_ns;
        tick_ = 0;
        timer_.start(1, 1, [this] { tick(); });
        reply.ok(json{{"file", path}});
    }

    void stop_recording(int64_t stop_at_mono_ns, Reply reply) override {
        stop_at_ns_ = stop_at_mono_ns;
        tick();  // rows due before the stop instant
        timer_.stop();
        close_file([shared = std::make_shared<Reply>(std::move(reply))] { shared->ok(); });
    }

    void stop_session(Reply reply) override { reply.ok(); }

    json stats() override { return json{{"ticks", tick_}}; }

    void finish(std::function<void()> done) override {
        timer_.stop();
        close_file(std::move(done));
    }

private:
    void tick() {
        const int64_t now = pilogger::mono_ns();
        while (writer_ && next_tick_ns_ <= now && (stop_at_ns_ == 0 || next_tick_ns_ < stop_at_ns_)) {
            pilogger::CsvRow row;
            row.add(tick_).add(next_tick_ns_).add(label_);
            writer_->write_row(row);
            ++tick_;
            next_tick_ns_ += period_ns_;
        }
    }

    void close_file(std::function<void()> done) {
        stop_at_ns_ = 0;
        if (!writer_) {
            done();
            return;
        }
        writer_->close([this, done = std::move(done)] {
            writer_.reset();
            done();
        });
    }

    pilogger::ModuleRuntime& runtime_;
    pilogger::uv::Timer timer_;
    std::unique_ptr<pilogger::AsyncFileWriter> writer_;
    std::string folder_;
    std::string label_;
    int64_t period_ns_ = 100'000'000;
    int64_t next_tick_ns_ = 0;
    int64_t stop_at_ns_ = 0;
    int64_t tick_ = 0;
};

}  // namespace

// What it can record from, for `pilogger devices`: text for people, or one JSON object whose
// keys join the others' in `pilogger devices --json`.
int list_devices(bool as_json) {
    if (as_json) {
        std::cout << json{{"clocks", json::array({json{{"name", "CLOCK_MONOTONIC"}}})}}.dump(2) << "\n";
    } else {
        std::cout << "CLOCK_MONOTONIC (the host's clock)\n";
    }
    return 0;
}

// 3. A thin main.
int main(int argc, char** argv) {
    bool list = false;
    bool as_json = false;
    for (int i = 1; i < argc; ++i) {
        list = list || std::strcmp(argv[i], "--list-devices") == 0;
        as_json = as_json || std::strcmp(argv[i], "--json") == 0;
    }
    if (list) return list_devices(as_json);
    return pilogger::run_module(argc, argv, ticker_kind(), "pilogger-ticker: an example module (tests only)",
                                [](pilogger::ModuleRuntime& rt) { return std::make_unique<TickerModule>(rt); });
}
