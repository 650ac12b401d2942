// The camera module: one process per camera. Capture (source thread) -> router -> encoder thread
// (fragmented MP4 and its frames CSV), preview in shared memory,
// snapshots on the thread pool. Nothing here blocks the event loop: starting and stopping the
// camera and joining threads run on libuv's thread pool.
#pragma once

#include "camera_settings.hpp"
#include "frame_router.hpp"
#include "frame_source.hpp"
#include "loop_queue.hpp"
#include "module_runtime.hpp"
#include "preview.hpp"
#include "recorder.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace pilogger::camera {

class CameraModule : public Module {
public:
    explicit CameraModule(ModuleRuntime& runtime);
    ~CameraModule() override;

    void configure(const json& settings, Reply reply) override;
    void start_session(const SessionInfo& session, Reply reply) override;
    void start_recording(const RecordingInfo& recording, Reply reply) override;
    void stop_recording(int64_t stop_at_mono_ns, Reply reply) override;
    void stop_session(Reply reply) override;
    bool command(const std::string& name, const json& args, Reply& reply) override;
    json stats() override;
    void finish(std::function<void()> done) override;
    void standalone_input(const std::string& line) override;

private:
    // Everything that runs on threads of its own; built at configure, torn down off the loop.
    // Members are destroyed bottom-up: the source stops before anything it feeds.
    struct Pipeline {
        CameraSettings settings;
        SourceInfo info;
        bool running = false;
        std::unique_ptr<Recorder> recorder;
        std::unique_ptr<PreviewPublisher> preview;
        std::unique_ptr<FrameRouter> router;
        std::unique_ptr<FrameSource> source;
    };

    struct Recording {
        uint64_t generation = 0;
        RecordingInfo info;
        std::string video_path;
        std::string csv_path;
        bool opened = false;
        bool stopping = false;
        Reply start_reply;
        Reply stop_reply;
        std::string error;
    };

    struct WarningEvent {
        std::string message;
    };
    struct SnapshotEvent {
        FramePtr frame;
    };
    using Event = std::variant<RecorderEvent, WarningEvent, SnapshotEvent>;

    void handle(Event& event);
    void on_recorder(RecorderEvent& event);
    void on_snapshot_frame(FramePtr frame);
    void begin_stop(int64_t stop_at_ns, Reply reply);
    void recording_closed(RecorderEvent& event);
    void fail_snapshots(const std::string& code, const std::string& message);
    // Runs `work` (blocking) on the thread pool, then `then` on the loop.
    void off_loop(std::function<std::string()> work, std::function<void(const std::string&)> then);
    void continue_finish();
    // Puts back "row k is video frame k" in these frames CSVs (and their MP4s), left ahead of
    // their video by a process that died (reconcile.hpp); retried while a file is still open.
    void reconcile(std::vector<std::string> csv_paths, int attempt = 0);
    std::unique_ptr<Pipeline> build_pipeline(const CameraSettings& settings);
    void start_pipeline(const CameraSettings& settings, const std::shared_ptr<Reply>& reply);

    ModuleRuntime& runtime_;
    std::unique_ptr<LoopQueue<Event>> events_;
    std::unique_ptr<Pipeline> pipeline_;
    std::unique_ptr<Recording> recording_;
    std::unique_ptr<uv::Timer> stop_timer_;
    std::unique_ptr<uv::Timer> snapshot_timer_;
    std::unique_ptr<uv::Timer> reconcile_timer_;
    std::vector<std::string> reconcile_waiting_;  // still open elsewhere: looked at again
    uint64_t rows_moved_unwritten_ = 0;
    std::string camera_dir_;
    uint64_t generation_ = 0;
    int off_loop_jobs_ = 0;  // pipeline start/stop, mkdir, snapshots in flight
    uv::Requests requests_;
    bool pipeline_busy_ = false;
    std::vector<Reply> snapshot_replies_;
    uint64_t snapshot_counter_ = 1;
    uint64_t snapshots_written_ = 0;
    std::string last_error_;
    std::function<void()> finish_done_;
    bool finishing_ = false;
};

}  // namespace pilogger::camera
