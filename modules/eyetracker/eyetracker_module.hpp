// The eye-tracker module: one process per Neon. The device connection (NeonDevice) runs on the
// module's event loop; samples inside a trial's [start_at, stop_at) go to the trial's CSV files
// and the scene video to its fragmented MP4 (SceneWriter, in process). When the device disappears the
// session goes on; the files of the trial so far are closed and continue in a part file when the
// device returns.
#pragma once

#include "child_output.hpp"
#include "csv_writer.hpp"
#include "eyetracker_settings.hpp"
#include "module_runtime.hpp"
#include "neon_device.hpp"
#include "scene_preview.hpp"
#include "scene_writer.hpp"

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>

namespace pilogger::neon {

class EyetrackerModule : public Module {
public:
    explicit EyetrackerModule(ModuleRuntime& runtime);
    ~EyetrackerModule() override;

    void configure(const json& settings, Reply reply) override;
    void start_session(const SessionInfo& session, Reply reply) override;
    void start_recording(const RecordingInfo& recording, Reply reply) override;
    void stop_recording(int64_t stop_at_mono_ns, Reply reply) override;
    void stop_session(Reply reply) override;
    json stats() override;
    void finish(std::function<void()> done) override;

private:
    // The files of one part of a trial.
    struct TrialFiles {
        std::string stem;  // <dir>/trial_001 or <dir>/trial_001_p2
        std::unique_ptr<AsyncFileWriter> gaze, imu, events, frames, time_echo;
        std::unique_ptr<SceneWriter> scene;
        bool scene_failed = false;
        uint64_t gaze_rows = 0, imu_rows = 0, event_rows = 0, frame_rows = 0;
        // Scene frames go to the MP4 once their rows are fdatasync'd (group commit, at most every
        // kRowSyncMinMs): frames with a row written, and the count whose rows a sync covers.
        uint64_t rows_made = 0;
        bool rows_syncing = false;
        int64_t rows_sync_started_ns = 0;
        std::unique_ptr<uv::Timer> rows_timer;
    };
    struct Trial {
        RecordingInfo info;
        int part = 1;
        int64_t stop_at_mono_ns = INT64_MAX;
        bool stopping = false;
        bool opening = false;
        bool announced = false;       // trial start sent to the Neon
        std::unique_ptr<TrialFiles> files;
        Reply stop_reply;
        std::unique_ptr<uv::Timer> stop_timer;
    };

    // eyetracker_connection.cpp
    void connect_device(const std::string& host, int port);
    void discover();
    void watch_found_device();
    void on_connection(bool connected, const std::string& why);
    // eyetracker_trial_files.cpp
    void open_part(int first_part, std::function<void(const std::string& error)> done);
    void close_files(std::unique_ptr<TrialFiles> files, std::function<void()> done);
    // Puts back "row k is video frame k" in these scene frames CSVs (reconcile.hpp), retried while
    // another process still has the MP4 open.
    void reconcile(std::vector<std::string> csv_paths, int attempt = 0);
    // eyetracker_samples.cpp
    bool in_trial(int64_t mono) const;
    // Counts a row the writer took in `rows`, one it refused in rows_dropped_.
    void write_counted(AsyncFileWriter& writer, const CsvRow& row, uint64_t& rows);
    void on_gaze(const GazeSample& sample, int64_t device_ns, int64_t mono);
    void on_imu(const ImuSample& sample, int64_t device_ns, int64_t mono);
    void on_eye_event(const EyeEvent& event, int64_t device_ns, int64_t mono);
    void on_time_echo(const std::vector<TimeEchoSample>& samples, std::optional<int64_t> estimate);
    // eyetracker_scene.cpp
    void on_scene(AccessUnit&& unit, int64_t device_ns, int64_t mono);
    // Syncs the scene frames CSV and lets the frames whose rows it covers go to the MP4.
    void sync_scene_rows(TrialFiles& files);
    // eyetracker_module.cpp
    void finish_stop();
    void announce_trial_start();
    void post_trial_event(const std::string& what, int64_t mono);
    void file_error(const std::string& message);
    // Runs `then` once no trial is open and no files are closing.
    void when_idle(std::function<void()> then);
    void maybe_idle();

    ModuleRuntime& runtime_;
    EyetrackerSettings settings_;
    std::unique_ptr<NeonDevice> device_;
    std::unique_ptr<ScenePreview> preview_;
    std::string preview_name_;
    // avahi-browse when address is "auto"
    std::unique_ptr<ChildOutput> browser_;  // avahi-browse, for address: auto
    std::unique_ptr<uv::Timer> rediscover_timer_;
    std::string found_endpoint_;        // "address:port" mDNS gave for the device in use
    std::string unreachable_endpoint_;  // the one that stopped answering: passed over next time
    std::unique_ptr<uv::Timer> discovery_retry_;

    std::string dir_;
    std::unique_ptr<Trial> trial_;
    struct PrerollFrame {
        AccessUnit unit;
        int64_t device_ns = 0;
        int64_t mono_ns = 0;
    };
    std::deque<PrerollFrame> scene_preroll_;
    int closing_ = 0;                  // file sets still closing
    std::function<void()> after_closing_;
    uint64_t time_echo_burst_ = 0;
    uint64_t rows_dropped_ = 0;
    uint64_t scene_dropped_closed_ = 0;
    uint64_t scene_damaged_closed_ = 0;  // written, not intact (lost packets, concealed)
    std::string last_error_;
    bool finishing_ = false;
    std::unique_ptr<uv::Timer> reconcile_timer_;
    std::vector<std::string> reconcile_waiting_;
    uint64_t rows_moved_unwritten_ = 0;
    uv::Requests requests_;  // thread-pool work: folders, part numbers, reconciling
};

}  // namespace pilogger::neon
