// The eye tracker's scene video: SceneWriter (H.264 access units -> fragmented MP4 in process,
// copy or gaze overlay) on a real libuv loop, checked with ffprobe. The access units come from
// libx264 in this process (scene_support.hpp).
#include "scene_support.hpp"

#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

using namespace scene_test;

TEST_CASE("scene writer copy, damaged frames dropped: every frame in the file with the pts frame_written gave") {
    test::TempDir dir;
    // A size with cropping in the SPS, High profile: what the NUT header gets from the SPS.
    const Scene scene = make_scene(328, 236, 120, /*strip_sets=*/true, 0, "veryfast");
    uv::Loop loop;
    Recorded r;
    const std::string path = dir.file("trial_001_scene.mp4");
    const auto started = std::chrono::steady_clock::now();
    {
        SceneWriterOptions options = options_for(path, scene);
        options.keep_damaged = false;
        SceneWriter writer(loop, options, record_into(r));
        CHECK(writer.output_path() == path);
        size_t accepted = 0;
        // From unit 5: dropped until the keyframe at 30. Unit 50 is damaged: dropped until 60.
        for (size_t i = 5; i < scene.units.size(); ++i) {
            AccessUnit unit = scene.units[i];
            unit.damaged = i == 50;
            if (writer.write(std::move(unit), SceneFrameTimes{static_cast<int64_t>(i), 0})) ++accepted;
            uv_run(loop.get(), UV_RUN_NOWAIT);
        }
        CHECK(accepted == 80);
        CHECK(writer.frames_written() == 80);
        CHECK(writer.frames_dropped() == 35);
        stop_and_wait(loop, writer, r);
        INFO(joined(r.log));
        CHECK(r.ok);
        CHECK(r.message.find("80 frames") != std::string::npos);
        CHECK(r.failure.empty());
    }
    MESSAGE("copy: 80 frames in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
            << " ms");
    REQUIRE(r.pts_us.size() == 80);
    // Frame k of the file is scene unit 30..49, then 60..119, with pts from unit 30's timestamp.
    std::vector<size_t> units;
    for (size_t i = 30; i < 120; ++i) {
        if (i < 50 || i >= 60) units.push_back(i);
    }
    for (size_t k = 0; k < units.size(); ++k) {
        INFO("frame " << k);
        CHECK(r.device_ns[k] == static_cast<int64_t>(units[k]));
        CHECK(r.pts_us[k] == expected_pts_us(scene, units[k], 30));
    }
    check_file_matches(path, r);
    CHECK(std::all_of(r.intact.begin(), r.intact.end(), [](bool b) { return b; }));
    CHECK(probe_size(path) == "328,236");
    CHECK(decodes_cleanly(path));
}

TEST_CASE("scene writer copy, held until released: frames wait for their rows, the file is synced at the end") {
    test::TempDir dir;
    const Scene scene = make_scene(320, 240, 90, false, 0, "veryfast");
    uv::Loop loop;
    Recorded r;
    const std::string path = dir.file("held_scene.mp4");
    SceneWriterOptions options = options_for(path, scene);
    options.hold_until_released = true;
    SceneWriter writer(loop, options, record_into(r));
    for (size_t i = 0; i < scene.units.size(); ++i) {
        AccessUnit unit = scene.units[i];
        CHECK(writer.write(std::move(unit), SceneFrameTimes{static_cast<int64_t>(i), 0}));
    }
    // Every frame has been handed to the owner for its row; none has gone to the file yet.
    CHECK(r.pts_us.size() == 90);
    CHECK(writer.frames_held() == 90);
    CHECK(writer.pipe_bytes() > 0);
    writer.release_through(45);
    CHECK(writer.frames_held() == 45);
    writer.release_through(40);  // never backwards
    CHECK(writer.frames_held() == 45);
    // stop() lets the rest go (the owner has their rows), then finishes and fdatasyncs the file.
    stop_and_wait(loop, writer, r);
    INFO(joined(r.log));
    CHECK(r.ok);
    CHECK(writer.frames_held() == 0);
    CHECK(writer.output_syncs() >= 1);
    check_file_matches(path, r);
}

TEST_CASE("scene writer copy, damaged frames kept: cut short, concealed, and reported not intact") {
    test::TempDir dir;
    const Scene scene = make_scene(328, 236, 120, /*strip_sets=*/true, 0, "veryfast");
    uv::Loop loop;
    Recorded r;
    const std::string path = dir.file("trial_001_scene.mp4");
    {
        SceneWriter writer(loop, options_for(path, scene), record_into(r));
        size_t accepted = 0;
        for (size_t i = 0; i < scene.units.size(); ++i) {
            AccessUnit unit = scene.units[i];
            if (i == 40) {
                // Its slice lost from the middle on: the depacketizer keeps the first part.
                unit.annexb.resize(unit.annexb.size() / 2);
                unit.damaged = true;
            } else if (i == 70) {
                unit.annexb.clear();  // nothing of the picture came
                unit.damaged = true;
            }
            if (writer.write(std::move(unit), SceneFrameTimes{static_cast<int64_t>(i), 0})) ++accepted;
            uv_run(loop.get(), UV_RUN_NOWAIT);
        }
        CHECK(accepted == 119);
        CHECK(writer.frames_dropped() == 1);
        // 40 up to the keyframe at 60, and after the lost 70 up to the keyframe at 90.
        CHECK(writer.frames_damaged() == 20 + 19);
        stop_and_wait(loop, writer, r);
        INFO(joined(r.log));
        CHECK(r.ok);
    }
    REQUIRE(r.pts_us.size() == 119);
    for (size_t k = 0; k < r.device_ns.size(); ++k) {
        const int64_t unit = r.device_ns[k];
        INFO("unit " << unit);
        CHECK(unit != 70);
        CHECK(r.intact[k] == !((unit >= 40 && unit < 60) || (unit > 70 && unit < 90)));
        CHECK(r.pts_us[k] == expected_pts_us(scene, static_cast<size_t>(unit), 0));
    }
    check_file_matches(path, r);
    // The decoder gives a picture for every frame in the file, the damaged ones concealed.
    const std::string counted = run_command("ffprobe -v quiet -count_frames -select_streams v -show_entries "
                                            "stream=nb_read_frames -of csv=p=0 '" + path + "'");
    CHECK(std::stoi(counted) == 119);
}

TEST_CASE("scene writer overlay: re-encoded with the gaze ring, every frame with its pts") {
    test::TempDir dir;
    const Scene scene = make_scene(320, 240, 60, /*strip_sets=*/false);
    uv::Loop loop;
    Recorded r;
    const std::string path = dir.file("trial_001_scene.mp4");
    {
        SceneWriterOptions options = options_for(path, scene);
        options.overlay = true;
        SceneWriter writer(loop, options, record_into(r));
        writer.set_gaze(100.0f, 120.0f, true);
        Feeder feeder(loop, writer, scene, 0, scene.units.size(), 2);
        REQUIRE(test::run_until(loop, [&] { return feeder.finished(); }, 10000));
        CHECK(feeder.accepted == 60);
        stop_and_wait(loop, writer, r);
        INFO(joined(r.log));
        CHECK(r.ok);
        CHECK(writer.frames_written() == 60);
        CHECK(writer.frames_dropped() == 0);
    }
    REQUIRE(r.pts_us.size() == 60);
    for (size_t k = 0; k < 60; ++k) CHECK(r.pts_us[k] == expected_pts_us(scene, k, 0));
    check_file_matches(path, r);
    CHECK(decodes_cleanly(path));

    // The ring (8 px radius at this size) is red in the file; its centre and the rest are not.
    const std::string frame = decode_frame(path, 10);
    REQUIRE(frame.size() == 320u * 240u * 3u / 2u);
    auto v_at = [&](int x, int y) {
        return static_cast<uint8_t>(frame[320u * 240u + 160u * 120u + static_cast<size_t>(y / 2) * 160u + static_cast<size_t>(x / 2)]);
    };
    auto u_at = [&](int x, int y) {
        return static_cast<uint8_t>(frame[320u * 240u + static_cast<size_t>(y / 2) * 160u + static_cast<size_t>(x / 2)]);
    };
    CHECK(v_at(108, 120) > 200);
    CHECK(u_at(108, 120) < 110);
    CHECK(v_at(100, 112) > 200);
    CHECK(v_at(100, 120) < 140);  // the centre shows the scene
    CHECK(v_at(200, 200) < 140);
}

TEST_CASE("scene writer copy: a full pipe drops and counts, never blocking the loop") {
    test::TempDir dir;
    // Noisy frames (~40-60 kB) so the backlog fills soon. Rows never released stand for a writer
    // that cannot keep up (formerly: a SIGSTOPped ffmpeg child).
    const Scene scene = make_scene(320, 240, 240, false, 60);
    uv::Loop loop;
    Recorded r;
    const std::string path = dir.file("full.mp4");
    SceneWriterOptions options = options_for(path, scene);
    options.max_pipe_bytes = 512 * 1024;
    options.hold_until_released = true;
    size_t largest_unit = 0;
    for (const auto& u : scene.units) largest_unit = std::max(largest_unit, u.annexb.size());
    {
        SceneWriter writer(loop, options, record_into(r));
        LoopWatch watch(loop);
        Feeder feeder(loop, writer, scene, 0, 180, 3);
        REQUIRE(test::run_until(loop, [&] { return feeder.finished(); }, 10000));
        const uint64_t dropped_while_stopped = writer.frames_dropped();
        CHECK(dropped_while_stopped > 0);
        CHECK(writer.pipe_bytes() > options.max_pipe_bytes);
        CHECK(writer.pipe_bytes_max() <= options.max_pipe_bytes + largest_unit + 1024);  // + NUT framing
        MESSAGE("copy, writer stalled: " << writer.frames_written() << " written, " << dropped_while_stopped
                                         << " dropped, pipe high-water " << writer.pipe_bytes_max() / 1024
                                         << " KiB; longest loop turn " << watch.longest_ns / 1000 << " us wall, "
                                         << watch.longest_cpu_ns / 1000 << " us CPU; longest write() "
                                         << feeder.longest_write_ns / 1000 << " us CPU (unit " << feeder.longest_write_index << ")");
        CHECK(watch.longest_cpu_ns < 20'000'000);
        writer.release_through(UINT64_MAX);
        REQUIRE(test::run_until(loop, [&] { return writer.pipe_bytes() == 0; }, 10000));
        // Back in business: the rest goes in (unit 180 is a keyframe).
        Feeder rest(loop, writer, scene, 180, 240, 3);
        REQUIRE(test::run_until(loop, [&] { return rest.finished(); }, 10000));
        CHECK(rest.accepted == 60);
        stop_and_wait(loop, writer, r);
        INFO(joined(r.log));
        CHECK(r.ok);
        CHECK(writer.frames_written() + writer.frames_dropped() == 240);
    }
    check_file_matches(path, r);
    CHECK(decodes_cleanly(path));  // skipped to keyframes: nothing undecodable in the file
}

TEST_CASE("scene writer overlay: a full pipe drops raw frames, never blocking the loop") {
    test::TempDir dir;
    const Scene scene = make_scene(320, 240, 120, false);
    uv::Loop loop;
    Recorded r;
    const std::string path = dir.file("full_overlay.mp4");
    SceneWriterOptions options = options_for(path, scene);
    options.overlay = true;
    // Rows never released stall the worker at its first fragment (formerly: a SIGSTOPped ffmpeg
    // child); a short queue fills soon after.
    options.hold_until_released = true;
    options.overlay_queue_frames = 8;
    {
        SceneWriter writer(loop, options, record_into(r));
        writer.set_gaze(160.0f, 120.0f, true);
        LoopWatch watch(loop);
        Feeder feeder(loop, writer, scene, 0, 60, 3);
        REQUIRE(test::run_until(loop, [&] { return feeder.finished(); }, 10000));
        CHECK(writer.frames_dropped() > 0);
        MESSAGE("overlay, writer stalled: " << writer.frames_written() << " written, " << writer.frames_dropped()
                                            << " dropped; longest loop turn " << watch.longest_ns / 1000 << " us wall, "
                                            << watch.longest_cpu_ns / 1000 << " us CPU; longest write() "
                                            << feeder.longest_write_ns / 1000 << " us CPU");
        CHECK(watch.longest_cpu_ns < 20'000'000);
        writer.release_through(UINT64_MAX);
        // Once the worker runs again, frames given no faster than it takes them are
        // all written. The worker's decoder holds one frame (two frame threads).
        for (size_t i = 60; i < 120; ++i) {
            REQUIRE(test::run_until(loop, [&] {
                return writer.pipe_bytes() == 0 && writer.frames_written() + writer.frames_dropped() + 1 >= i;
            }, 10000));
            AccessUnit unit = scene.units[i];
            writer.write(std::move(unit), SceneFrameTimes{static_cast<int64_t>(i), steady_ns()});
            uv_run(loop.get(), UV_RUN_NOWAIT);
        }
        stop_and_wait(loop, writer, r);
        INFO(joined(r.log));
        CHECK(r.ok);
        CHECK(writer.frames_written() + writer.frames_dropped() == 120);
        CHECK(std::count_if(r.device_ns.begin(), r.device_ns.end(), [](int64_t unit) { return unit >= 60; }) == 60);
    }
    check_file_matches(path, r);
    CHECK(decodes_cleanly(path));
}

TEST_CASE("scene writer: a writer that goes away mid-stream (as in a kill) leaves the file its fragments") {
    // Formerly: ffmpeg SIGKILLed mid-stream. With no child, the writer itself stopping short is
    // what a kill of the module does to the file.
    test::TempDir dir;
    const Scene scene = make_scene(320, 240, 100, false);
    uv::Loop loop;
    Recorded r;
    const std::string path = dir.file("killed.mp4");
    {
        SceneWriter writer(loop, options_for(path, scene), record_into(r));
        for (size_t i = 0; i < scene.units.size(); ++i) {
            AccessUnit unit = scene.units[i];
            CHECK(writer.write(std::move(unit), SceneFrameTimes{}));
        }
        // Wait until the worker has taken everything and the file stopped growing (200 ms).
        uv::Timer tick(loop);
        tick.start(20, 20, [] {});
        off_t size = -1;
        int steady = 0;
        REQUIRE(test::run_until(
            loop,
            [&] {
                struct stat st {};
                const off_t now = ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
                steady = (now > 0 && now == size && writer.pipe_bytes() == 0) ? steady + 1 : 0;
                size = now;
                return steady >= 10;
            },
            10000));
        tick.stop();
    }  // no stop(): the last fragment is lost
    const auto packets = probe(path);
    MESSAGE("gone after 100 frames: " << packets.size() << " in the file");
    CHECK(packets.size() >= 60);
    CHECK(packets.size() <= 100);
    for (size_t i = 0; i < packets.size(); ++i) CHECK(std::llabs(packets[i].pts_us - r.pts_us[i]) <= 1);
}

TEST_CASE("scene writer: a file that cannot be made is reported with its name, and later frames refused") {
    // Replaces "a missing ffmpeg executable is named in the error": there is no executable now;
    // the failure path (failed(), stop() not ok) is reached through the file instead.
    test::TempDir dir;
    const Scene scene = make_scene(320, 240, 30, false);
    uv::Loop loop;
    Recorded r;
    const std::string folder = dir.file("gone");
    std::filesystem::create_directory(folder);
    const std::string path = folder + "/trial_001_scene.mp4";
    {
        SceneWriter writer(loop, options_for(path, scene), record_into(r));
        std::filesystem::remove(folder);  // after the checks at construction, before the first frame
        AccessUnit unit = scene.units[0];
        CHECK(writer.write(std::move(unit), SceneFrameTimes{}));
        REQUIRE(test::run_until(loop, [&] { return !r.failure.empty(); }, 5000));
        CHECK(r.failure.find(path) != std::string::npos);
        AccessUnit late = scene.units[1];
        CHECK_FALSE(writer.write(std::move(late), SceneFrameTimes{}));
        stop_and_wait(loop, writer, r);
        CHECK_FALSE(r.ok);
    }
    CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("scene writer: an existing output file is refused and left alone") {
    test::TempDir dir;
    uv::Loop loop;
    const std::string path = dir.file("trial_001_scene.mp4");
    { std::ofstream(path) << "precious\n"; }
    SceneWriterOptions options;
    options.output_path = path;
    std::string error;
    try {
        SceneWriter writer(loop, options, {});
    } catch (const std::runtime_error& e) {
        error = e.what();
    }
    CHECK(error.find(path + " already exists") != std::string::npos);
    CHECK(test::read_file(path) == "precious\n");
}

TEST_CASE("scene bench: copy vs overlay CPU at 1600x1200@30" * doctest::skip()) {
    const Scene scene = make_scene(1600, 1200, 150, false, 14);
    size_t bytes = 0;
    for (const auto& u : scene.units) bytes += u.annexb.size();
    MESSAGE("input: 150 frames, " << bytes / 150 / 1024 << " KiB per frame");
    for (const bool overlay : {false, true}) {
        const std::string mode = overlay ? "overlay" : "copy";
        test::TempDir dir;
        uv::Loop loop;
        Recorded r;
        SceneWriterOptions options = options_for(dir.file("bench.mp4"), scene);
        options.overlay = overlay;
        rusage self_before{}, children_before{}, self_after{}, children_after{};
        getrusage(RUSAGE_SELF, &self_before);
        getrusage(RUSAGE_CHILDREN, &children_before);
        const int64_t started = steady_ns();
        {
            SceneWriter writer(loop, options, record_into(r));
            writer.set_gaze(800.0f, 600.0f, true);
            LoopWatch watch(loop);
            Feeder feeder(loop, writer, scene, 0, scene.units.size(), 33);
            REQUIRE(test::run_until(loop, [&] { return feeder.finished(); }, 60000));
            stop_and_wait(loop, writer, r, 60000);
            CHECK(r.ok);
            MESSAGE(mode << ": " << writer.frames_written() << " written, "
                                                   << writer.frames_dropped() << " dropped, longest loop turn "
                                                   << watch.longest_ns / 1000 << " us wall, " << watch.longest_cpu_ns / 1000
                                                   << " us CPU at " << watch.worst_at_ms << " ms (" << watch.turns_over_1ms_cpu << " of " << watch.turns
                                                   << " timer turns over 1 ms CPU); longest write() "
                                                   << feeder.longest_write_ns / 1000 << " us CPU (unit "
                                                   << feeder.longest_write_index << ")");
        }
        getrusage(RUSAGE_SELF, &self_after);
        getrusage(RUSAGE_CHILDREN, &children_after);
        auto cpu_s = [](const rusage& a, const rusage& b) {
            return static_cast<double>(b.ru_utime.tv_sec - a.ru_utime.tv_sec + b.ru_stime.tv_sec - a.ru_stime.tv_sec) +
                   static_cast<double>(b.ru_utime.tv_usec - a.ru_utime.tv_usec + b.ru_stime.tv_usec - a.ru_stime.tv_usec) / 1e6;
        };
        const double wall = static_cast<double>(steady_ns() - started) / 1e9;
        MESSAGE(mode << ": wall " << wall << " s (5 s of video), pilogger "
                                               << cpu_s(self_before, self_after) / wall * 100 << " % CPU, ffmpeg "
                                               << cpu_s(children_before, children_after) / wall * 100 << " % CPU");
    }
}
