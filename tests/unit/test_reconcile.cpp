// Reconciling a per-frame CSV with its fragmented MP4 after a crash (modules/media/reconcile.hpp).
#include "camera_settings.hpp"
#include "frame.hpp"
#include "helpers.hpp"
#include "reconcile.hpp"
#include "test_pattern.hpp"
#include "video_writer.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <filesystem>
#include <fstream>

using namespace pilogger;
using namespace pilogger::camera;

namespace {

const bool kQuiet = (av_log_set_level(AV_LOG_ERROR), true);

// A fragmented MP4 of `frames` frames at 320x240, 30 fps, finished or (as after kill -9) not.
// Returns the file's size after each fragment the writer put out.
std::vector<uint64_t> make_video(const std::string& path, int frames, bool finish) {
    CameraSettings s;
    s.width = 320;
    s.height = 240;
    s.fps = 30;
    auto pool = FramePool::create(320, 240, 4);
    TestPatternPainter painter(320, 240);
    std::vector<uint64_t> sizes;
    VideoWriter writer(path, 320, 240, s, ColorInfo{}, [&](uint64_t) {
        sizes.push_back(std::filesystem::file_size(path));
        return 0;
    });
    for (int k = 0; k < frames; ++k) {
        auto f = pool->acquire();
        painter.paint(*f, static_cast<uint64_t>(k), k * 33'333'000LL);
        writer.write(f, k * 33333);
    }
    if (finish) writer.finish();
    return sizes;
}

std::string frames_csv(int rows, const std::string& torn_tail = "") {
    std::string text = "frame_index,pts_us\n";
    for (int k = 0; k < rows; ++k) text += std::to_string(k) + "," + std::to_string(k * 33333) + "\n";
    return text + torn_tail;
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("reconcile: the frames an MP4 holds whole, after a clean end, a kill or a cut mid-fragment") {
    test::TempDir dir;
    std::string error;
    make_video(dir.file("done.mp4"), 75, true);
    CHECK(count_mp4_frames(dir.file("done.mp4"), &error) == 75u);

    // Killed after 100 frames: the fragments of frames 0-29, 30-59 and 60-89 are in the file.
    std::vector<uint64_t> sizes = make_video(dir.file("killed.mp4"), 100, false);
    CHECK(count_mp4_frames(dir.file("killed.mp4"), &error) == 90u);

    // Cut in the middle of the third fragment: its first frames are whole, the one cut is not.
    REQUIRE(sizes.size() >= 3);
    const uint64_t end = std::filesystem::file_size(dir.file("killed.mp4"));
    std::filesystem::copy_file(dir.file("killed.mp4"), dir.file("cut.mp4"));
    std::filesystem::resize_file(dir.file("cut.mp4"), sizes[2] + (end - sizes[2]) / 2);
    auto cut = count_mp4_frames(dir.file("cut.mp4"), &error);
    REQUIRE(cut);
    CHECK(*cut > 60u);
    CHECK(*cut < 90u);
    // Only its header: no frame.
    std::filesystem::copy_file(dir.file("killed.mp4"), dir.file("header.mp4"));
    std::filesystem::resize_file(dir.file("header.mp4"), sizes[0]);
    CHECK(count_mp4_frames(dir.file("header.mp4"), &error) == 0u);
    write_text(dir.file("empty.mp4"), "");
    CHECK(count_mp4_frames(dir.file("empty.mp4"), &error) == 0u);
}

TEST_CASE("reconcile: rows beyond the video move to the _unwritten sidecar, exactly as they were") {
    test::TempDir dir;
    make_video(dir.file("trial_001.mp4"), 100, false);  // holds 90 frames
    const std::string csv = dir.file("trial_001_frames.csv");
    write_text(csv, frames_csv(118, "118,39"));  // 118 rows and one torn by the kill
    ReconcileResult r = reconcile_frames_csv(dir.file("trial_001.mp4"), csv);
    CHECK(r.outcome == ReconcileResult::Outcome::Moved);
    CHECK(r.frames == 90);
    CHECK(r.rows == 119);
    CHECK(r.moved == 29);
    CHECK(r.sidecar == dir.file("trial_001_frames_unwritten.csv"));
    CHECK(r.message.find("29 rows beyond it moved to trial_001_frames_unwritten.csv") != std::string::npos);
    CHECK(test::read_file(csv) == frames_csv(90));
    std::string expected = "frame_index,pts_us\n";
    for (int k = 90; k < 118; ++k) expected += std::to_string(k) + "," + std::to_string(k * 33333) + "\n";
    CHECK(test::read_file(r.sidecar) == expected + "118,39\n");

    // Again: nothing to do.
    ReconcileResult again = reconcile_frames_csv(dir.file("trial_001.mp4"), csv);
    CHECK(again.outcome == ReconcileResult::Outcome::Matched);
    CHECK(again.frames == 90);
    CHECK(test::read_file(csv) == frames_csv(90));
}

TEST_CASE("reconcile: a sidecar left by a reconcile that stopped half way is finished, another one is not touched") {
    test::TempDir dir;
    make_video(dir.file("a.mp4"), 100, false);
    write_text(dir.file("a_frames.csv"), frames_csv(95));
    std::string moved = "frame_index,pts_us\n";
    for (int k = 90; k < 95; ++k) moved += std::to_string(k) + "," + std::to_string(k * 33333) + "\n";
    write_text(dir.file("a_frames_unwritten.csv"), moved);
    CHECK(reconcile_frames_csv(dir.file("a.mp4"), dir.file("a_frames.csv")).outcome == ReconcileResult::Outcome::Moved);
    CHECK(test::read_file(dir.file("a_frames.csv")) == frames_csv(90));

    make_video(dir.file("b.mp4"), 100, false);
    write_text(dir.file("b_frames.csv"), frames_csv(95));
    write_text(dir.file("b_frames_unwritten.csv"), "someone else's\n");
    ReconcileResult r = reconcile_frames_csv(dir.file("b.mp4"), dir.file("b_frames.csv"));
    CHECK(r.outcome == ReconcileResult::Outcome::Failed);
    CHECK(r.message.find("exists with other rows") != std::string::npos);
    CHECK(test::read_file(dir.file("b_frames.csv")) == frames_csv(95));
    CHECK(test::read_file(dir.file("b_frames_unwritten.csv")) == "someone else's\n");
}

TEST_CASE("reconcile: no video means no frame; fewer rows than frames is only reported") {
    test::TempDir dir;
    write_text(dir.file("c_frames.csv"), frames_csv(3));
    ReconcileResult r = reconcile_frames_csv(dir.file("c.mp4"), dir.file("c_frames.csv"));
    CHECK(r.outcome == ReconcileResult::Outcome::Moved);
    CHECK(r.moved == 3);
    CHECK(test::read_file(dir.file("c_frames.csv")) == frames_csv(0));

    write_text(dir.file("d_frames.csv"), frames_csv(0));
    CHECK(reconcile_frames_csv(dir.file("d.mp4"), dir.file("d_frames.csv")).outcome == ReconcileResult::Outcome::Matched);

    make_video(dir.file("e.mp4"), 100, false);
    write_text(dir.file("e_frames.csv"), frames_csv(50));
    r = reconcile_frames_csv(dir.file("e.mp4"), dir.file("e_frames.csv"));
    CHECK(r.outcome == ReconcileResult::Outcome::RowsMissing);
    CHECK(r.message.find("the last 40 frames have no row") != std::string::npos);
    CHECK(test::read_file(dir.file("e_frames.csv")) == frames_csv(50));
    CHECK_FALSE(std::filesystem::exists(dir.file("e_frames_unwritten.csv")));
}

TEST_CASE("reconcile: a video another process still has open is left for later") {
    test::TempDir dir;
    make_video(dir.file("f.mp4"), 100, false);
    write_text(dir.file("f_frames.csv"), frames_csv(95));
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // As an ffmpeg still finishing the file would.
        int fd = ::open(dir.file("f.mp4").c_str(), O_WRONLY | O_APPEND);
        (void)::write(ready[1], fd >= 0 ? "y" : "n", 1);
        ::pause();
        ::_exit(0);
    }
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    CHECK(c == 'y');
    CHECK(open_in_another_process(dir.file("f.mp4")));
    CHECK(reconcile_frames_csv(dir.file("f.mp4"), dir.file("f_frames.csv")).outcome == ReconcileResult::Outcome::Busy);
    CHECK(test::read_file(dir.file("f_frames.csv")) == frames_csv(95));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(ready[0]);
    ::close(ready[1]);
    CHECK_FALSE(open_in_another_process(dir.file("f.mp4")));
    CHECK(reconcile_frames_csv(dir.file("f.mp4"), dir.file("f_frames.csv")).outcome == ReconcileResult::Outcome::Moved);
    CHECK(list_frame_csvs(dir.path.string(), "_frames.csv") == std::vector<std::string>{dir.file("f_frames.csv")});
}
