// The camera module's parts without a supervisor: settings, test pattern, pool, video writer,
// recorder, preview shared memory and snapshots.
#include "camera_settings.hpp"
#include "config.hpp"
#include "frame.hpp"
#include "helpers.hpp"
#include "preview.hpp"
#include "recorder.hpp"
#include "snapshot.hpp"
#include "test_pattern.hpp"
#include "video_writer.hpp"

#include <fstream>

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace pilogger;
using namespace pilogger::camera;

namespace {

// x264's banner and summary would bury doctest's report.
const bool kQuietFfmpeg = (av_log_set_level(AV_LOG_WARNING), true);

std::string config_error(const std::string& yaml) {
    try {
        load_config_text(yaml, "cam.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

std::shared_ptr<Frame> painted(FramePool& pool, const TestPatternPainter& painter, uint64_t index, int64_t t_ns) {
    std::shared_ptr<Frame> f = pool.acquire();
    REQUIRE(f);
    painter.paint(*f, index, t_ns);
    f->sequence = index;
    f->sensor_ns = t_ns;
    f->time_ns = t_ns;
    f->mono_ns = t_ns;
    return f;
}

struct Packet {
    int64_t pts;
    bool key;
};

// Reads a video file back with libavformat: every packet's pts (stream time base) and key flag.
std::vector<Packet> read_packets(const std::string& path, AVRational* time_base = nullptr) {
    std::vector<Packet> out;
    AVFormatContext* ctx = nullptr;
    if (avformat_open_input(&ctx, path.c_str(), nullptr, nullptr) < 0) return out;
    if (avformat_find_stream_info(ctx, nullptr) >= 0) {
        if (time_base != nullptr) *time_base = ctx->streams[0]->time_base;
        AvPacketPtr packet(av_packet_alloc());
        while (av_read_frame(ctx, packet.get()) >= 0) {
            out.push_back({packet->pts, (packet->flags & AV_PKT_FLAG_KEY) != 0});
            av_packet_unref(packet.get());
        }
    }
    avformat_close_input(&ctx);
    return out;
}

}  // namespace

TEST_CASE("the camera kind's description says it lists devices, under its own heading") {
    std::string why;
    std::optional<ModuleKind> back = ModuleKind::from_json(camera_kind().to_json(), &why);
    REQUIRE_MESSAGE(back, why);
    const auto& caps = back->capabilities;
    CHECK(std::find(caps.begin(), caps.end(), "devices") != caps.end());
    CHECK(back->devices_heading == "Cameras (libcamera)");
}

TEST_CASE("camera settings: the config loader and the module agree on every default") {
    Config c = load_config_text("data_dir: /d\nmodules:\n  cam0: {type: camera}\n", "cam.yaml");
    REQUIRE(c.modules.size() == 1);
    CHECK(c.modules[0].type == "camera");
    CameraSettings from_config = CameraSettings::from_json(c.modules[0].settings);
    CHECK(from_config.to_json() == CameraSettings{}.to_json());
    // Every key the loader writes is one the module reads.
    CHECK(c.modules[0].settings.size() == CameraSettings{}.to_json().size());
}

TEST_CASE("camera settings: values, and mistakes named with file and line") {
    Config c = load_config_text(
        "data_dir: /d\nmodules:\n  cam1:\n    type: camera\n    backend: test_pattern\n    camera: 0\n"
        "    width: 640\n    height: 480\n    fps: 29.97\n    encoder: h264_v4l2m2m\n    bitrate_kbps: 8000\n",
        "cam.yaml");
    CameraSettings s = CameraSettings::from_json(c.modules[0].settings);
    CHECK(s.backend == "test_pattern");
    CHECK(s.camera == "0");
    CHECK(s.width == 640);
    CHECK(s.fps == doctest::Approx(29.97));
    CHECK(s.gop_frames() == 29);  // a keyframe at least once a second
    CHECK(s.frame_period_ns() == 33366700);
    CHECK(s.encoder == "h264_v4l2m2m");

    CHECK(config_error("data_dir: /d\nmodules:\n  cam0:\n    type: camera\n    width: 641\n") ==
          "cam.yaml:5:12: modules.cam0.width: must be even (YUV 4:2:0 video)");
    std::string e = config_error("data_dir: /d\nmodules:\n  cam0:\n    type: camera\n    framerate: 30\n");
    CHECK(e.find("cam.yaml:5:5: modules.cam0.framerate: unknown key") == 0);
    e = config_error("data_dir: /d\nmodules:\n  cam0:\n    type: camera\n    backend: v4l2\n");
    CHECK(e.find("expected one of libcamera, test_pattern, got 'v4l2'") != std::string::npos);
    CHECK_THROWS_AS(CameraSettings::from_json(nlohmann::json{{"fps", 0}}), std::invalid_argument);
    CHECK_THROWS_AS(CameraSettings::from_json(nlohmann::json{{"width", "wide"}}), std::invalid_argument);
}

TEST_CASE("the shipped configs with cameras load") {
    for (const char* name : {"demo.yaml", "pilogger.yaml"}) {
        Config c = load_config_file(std::string(PILOGGER_SOURCE_DIR) + "/config/" + name);
        int cameras = 0;
        for (const auto& m : c.modules) {
            if (m.type != "camera") continue;
            ++cameras;
            CHECK_NOTHROW(CameraSettings::from_json(m.settings));
        }
        CHECK(cameras >= 1);
    }
}

TEST_CASE("frame pool: bounded, buffers come back when the last holder lets go") {
    auto pool = FramePool::create(64, 48, 2);
    auto a = pool->acquire();
    auto b = pool->acquire();
    REQUIRE(a);
    REQUIRE(b);
    CHECK_FALSE(pool->acquire());  // full: the caller counts a drop
    CHECK(pool->in_use() == 2);
    uint8_t* pixels = a->data[0];
    FramePtr shared = a;
    a.reset();
    CHECK_FALSE(pool->acquire());  // still held through `shared`
    shared.reset();
    auto c = pool->acquire();
    REQUIRE(c);
    CHECK(c->data[0] == pixels);
    CHECK(c->linesize[0] % 64 == 0);
    CHECK(c->data[1] - c->data[0] == c->linesize[0] * 48);
}

TEST_CASE("test pattern: the label drawn into the frame reads back") {
    auto pool = FramePool::create(1456, 1088, 2);
    TestPatternPainter painter(1456, 1088);
    CHECK(painter.scale() == 4);
    const int64_t t = 1234567891234567;
    auto f = painted(*pool, painter, 42, t);
    CHECK(TestPatternPainter::label(42, t) == "00000042 1234567.891234");
    CHECK(painter.read_label(f->data[0], f->linesize[0], 23) == "00000042 1234567.891234");
    // Small frames get a smaller font that still reads.
    auto small_pool = FramePool::create(320, 240, 1);
    TestPatternPainter small(320, 240);
    auto g = painted(*small_pool, small, 7, 5'000'000'000);
    CHECK(small.read_label(g->data[0], g->linesize[0], 17) == TestPatternPainter::label(7, 5'000'000'000));
}

TEST_CASE("test pattern: the smallest frames the config allows are painted inside their planes") {
    // Planes in one buffer with guard bytes around each: a write outside shows up as a changed guard.
    for (auto [w, h] : {std::pair{16, 16}, std::pair{18, 1000}, std::pair{8192, 16}, std::pair{30, 40}}) {
        CAPTURE(w);
        CAPTURE(h);
        constexpr size_t kGuard = 4096;
        const size_t sizes[3] = {static_cast<size_t>(w) * h, static_cast<size_t>(w / 2) * (h / 2),
                                 static_cast<size_t>(w / 2) * (h / 2)};
        std::vector<uint8_t> buffer(kGuard * 4 + sizes[0] + sizes[1] + sizes[2], 0xA5);
        Frame f;
        f.width = w;
        f.height = h;
        size_t at = kGuard;
        for (int p = 0; p < 3; ++p) {
            f.data[p] = buffer.data() + at;
            f.linesize[p] = p == 0 ? w : w / 2;
            at += sizes[p] + kGuard;
        }
        TestPatternPainter painter(w, h);
        for (uint64_t k = 0; k < 400; k += 7) painter.paint(f, k, static_cast<int64_t>(k) * 33'333'333);
        // The guard before each plane, and the one after the last.
        for (int p = 0; p <= 3; ++p) {
            const size_t end = p < 3 ? static_cast<size_t>(f.data[p] - buffer.data()) : buffer.size();
            CHECK(std::all_of(buffer.begin() + static_cast<ptrdiff_t>(end - kGuard), buffer.begin() + static_cast<ptrdiff_t>(end),
                              [](uint8_t b) { return b == 0xA5; }));
        }
    }
}

TEST_CASE("video writer: fragmented MP4 with the frames' own pts, never over an existing file") {
    test::TempDir dir;
    const std::string path = dir.file("trial_001.mp4");
    CameraSettings s;
    s.width = 320;
    s.height = 240;
    s.fps = 30;
    auto pool = FramePool::create(320, 240, 4);
    TestPatternPainter painter(320, 240);
    std::vector<int64_t> pts;
    {
        VideoWriter writer(path, 320, 240, s, ColorInfo{});
        for (int k = 0; k < 75; ++k) {
            // Irregular intervals on purpose: the file keeps them exactly.
            int64_t p = 1234 + k * 33333 + (k % 3) * 7;
            pts.push_back(p);
            writer.write(painted(*pool, painter, static_cast<uint64_t>(k), p * 1000), p);
        }
        CHECK_THROWS_AS(writer.write(painted(*pool, painter, 99, 0), pts.back()), std::runtime_error);
        writer.finish();
        CHECK(writer.packets_written() == 75);
        CHECK(writer.bytes_written() > 0);
    }
    CHECK(pool->in_use() == 0);  // the encoder let go of every frame

    AVRational tb{0, 1};
    std::vector<Packet> packets = read_packets(path, &tb);
    REQUIRE(packets.size() == 75);
    CHECK(tb.num == 1);
    CHECK(tb.den == 1000000);
    for (size_t k = 0; k < packets.size(); ++k) CHECK(packets[k].pts == pts[k]);
    // A keyframe at least once a second (every 30 frames at 30 fps).
    for (size_t k = 0; k < packets.size(); k += 30) CHECK(packets[k].key);

    const std::string content = test::read_file(path);
    CHECK(content.find("moof") != std::string::npos);
    CHECK(content.find("mfra") != std::string::npos);

    try {
        VideoWriter again(path, 320, 240, s, ColorInfo{});
        FAIL("an existing file was opened for writing");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("already exists") != std::string::npos);
    }
    CHECK(test::read_file(path) == content);
}

TEST_CASE("video writer: a file cut short keeps its complete fragments") {
    test::TempDir dir;
    const std::string path = dir.file("cut.mp4");
    CameraSettings s;
    s.width = 320;
    s.height = 240;
    s.fps = 30;
    auto pool = FramePool::create(320, 240, 4);
    TestPatternPainter painter(320, 240);
    {
        VideoWriter writer(path, 320, 240, s, ColorInfo{});
        for (int k = 0; k < 100; ++k) writer.write(painted(*pool, painter, static_cast<uint64_t>(k), k * 33'333'000LL), k * 33333);
        // No finish(): as if the process died. Fragments of frames 0-29, 30-59 and 60-89 are out.
    }
    std::vector<Packet> packets = read_packets(path);
    CHECK(packets.size() == 90);
}

TEST_CASE("video writer: before each fragment the hook learns how many frames the file will hold") {
    test::TempDir dir;
    const std::string path = dir.file("hooked.mp4");
    CameraSettings s;
    s.width = 320;
    s.height = 240;
    s.fps = 30;
    auto pool = FramePool::create(320, 240, 4);
    TestPatternPainter painter(320, 240);
    std::vector<uint64_t> told;
    std::vector<size_t> held_then;
    bool refuse = false;
    {
        VideoWriter writer(path, 320, 240, s, ColorInfo{}, [&](uint64_t frames) {
            told.push_back(frames);
            held_then.push_back(read_packets(path).size());
            return refuse ? ENOSPC : 0;
        });
        for (int k = 0; k < 100; ++k) writer.write(painted(*pool, painter, static_cast<uint64_t>(k), k * 33'333'000LL), k * 33333);
        CHECK(writer.frames_in_file() == 90);
        // A refusal keeps the fragment out of the file and fails the write.
        refuse = true;
        const uint64_t bytes = writer.bytes_written();
        bool threw = false;
        for (int k = 100; k < 130 && !threw; ++k) {
            try {
                writer.write(painted(*pool, painter, static_cast<uint64_t>(k), k * 33'333'000LL), k * 33333);
            } catch (const std::runtime_error& e) {
                threw = true;
                CHECK(std::string(e.what()).find("No space left") != std::string::npos);
            }
        }
        CHECK(threw);
        CHECK(writer.bytes_written() == bytes);
    }
    // Told before each fragment (frames 0-29, 30-59, 60-89), while the file held the earlier ones.
    REQUIRE(told.size() >= 3);
    CHECK(told[0] == 30);
    CHECK(told[1] == 60);
    CHECK(told[2] == 90);
    CHECK(held_then[0] == 0);
    CHECK(held_then[1] == 30);
    CHECK(held_then[2] == 60);
    CHECK(read_packets(path).size() == 90);
}

TEST_CASE("recorder: one CSV row per encoded frame, in order, in the frames CSV beside the video") {
    test::TempDir dir;
    std::mutex m;
    std::condition_variable cv;
    std::vector<RecorderEvent> events;
    Recorder recorder("camtest", 8, [&](RecorderEvent&& e) {
        std::lock_guard lock(m);
        events.push_back(std::move(e));
        cv.notify_all();
    });
    CameraSettings s;
    s.width = 320;
    s.height = 240;
    RecordingRequest request;
    request.generation = 1;
    request.video_path = dir.file("trial_001.mp4");
    request.csv_path = dir.file("trial_001_frames.csv");
    request.start_at_ns = 10'000'000'000;
    request.width = 320;
    request.height = 240;
    request.settings = s;
    recorder.open(request);

    auto pool = FramePool::create(320, 240, 16);
    TestPatternPainter painter(320, 240);
    int pushed = 0;
    for (int k = 0; k < 40; ++k) {
        // Two frames with the same instant: pts still strictly increase.
        int64_t t = request.start_at_ns + 5'000'000 + (k == 1 ? 0 : k) * 33'333'333LL;
        auto f = painted(*pool, painter, static_cast<uint64_t>(k), t);
        f->exposure_us = k == 2 ? 8000 : -1;
        size_t depth = 0;
        while (!recorder.push(f, 1, k == 3 ? 2 : 0, &depth)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        CHECK(depth >= 1);
        ++pushed;
    }
    recorder.close(1);
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(20), [&] {
        return !events.empty() && events.back().kind == RecorderEvent::Kind::Closed;
    }));
    REQUIRE(events.front().kind == RecorderEvent::Kind::Opened);
    CHECK(events.front().ok);
    // The file the recorder thread wrote: the header, then one row per frame.
    std::vector<std::vector<std::string>> rows;
    std::string field;
    std::vector<std::string> fields;
    for (char c : test::read_file(request.csv_path)) {
        if (c == ',' || c == '\n') {
            fields.push_back(field);
            field.clear();
            if (c == '\n') rows.push_back(std::exchange(fields, {}));
        } else {
            field.push_back(c);
        }
    }
    REQUIRE(!rows.empty());
    CHECK(rows.front() == kFrameColumns);
    rows.erase(rows.begin());
    REQUIRE(rows.size() == static_cast<size_t>(pushed));
    CHECK(events.back().frames == static_cast<uint64_t>(pushed));
    CHECK(events.back().ok);
    for (size_t k = 0; k < rows.size(); ++k) {
        REQUIRE(rows[k].size() == kFrameColumns.size());
        CHECK(rows[k][0] == std::to_string(k));
    }
    CHECK(rows[0][4] == "5000");   // pts_us: 5 ms after the trial start
    CHECK(rows[1][4] == "5001");   // same instant as frame 0: one microsecond later
    CHECK(rows[2][6] == "8000");   // exposure_us
    CHECK(rows[0][6].empty());     // unknown exposure stays empty
    CHECK(rows[3][5] == "2");      // dropped_before
    CHECK(rows[0][3].size() == 27);  // wall_time_utc, microseconds, Z

    std::vector<Packet> packets = read_packets(request.video_path);
    REQUIRE(packets.size() == rows.size());
    for (size_t k = 0; k < rows.size(); ++k) CHECK(packets[k].pts == std::stoll(rows[k][4]));
}

namespace {

// What a recorder answers when it opens trial `stem` in dir (320x240): its Opened event.
RecorderEvent open_reply(const test::TempDir& dir, const std::string& stem) {
    std::mutex m;
    std::condition_variable cv;
    std::vector<RecorderEvent> events;
    Recorder recorder("camtest", 4, [&](RecorderEvent&& e) {
        std::lock_guard lock(m);
        events.push_back(std::move(e));
        cv.notify_all();
    });
    RecordingRequest request;
    request.generation = 7;
    request.video_path = dir.file(stem + ".mp4");
    request.csv_path = dir.file(stem + "_frames.csv");
    request.width = 320;
    request.height = 240;
    request.settings.width = 320;
    request.settings.height = 240;
    recorder.open(request);
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !events.empty(); }));
    return events.front();
}

}  // namespace

TEST_CASE("recorder: an existing frames CSV is refused, never overwritten") {
    test::TempDir dir;
    { std::ofstream(dir.file("trial_002_frames.csv")) << "precious\n"; }
    const RecorderEvent reply = open_reply(dir, "trial_002");
    CHECK_FALSE(reply.ok);
    CHECK(reply.text.find("trial_002_frames.csv already exists") != std::string::npos);
    CHECK(test::read_file(dir.file("trial_002_frames.csv")) == "precious\n");
    CHECK_FALSE(std::filesystem::exists(dir.file("trial_002.mp4")));
}

TEST_CASE("recorder: an existing video is refused, and no frames CSV is left without it") {
    test::TempDir dir;
    { std::ofstream(dir.file("trial_003.mp4")) << "precious\n"; }
    const RecorderEvent reply = open_reply(dir, "trial_003");
    CHECK_FALSE(reply.ok);
    CHECK(reply.text.find("trial_003.mp4 already exists") != std::string::npos);
    CHECK(test::read_file(dir.file("trial_003.mp4")) == "precious\n");
    CHECK_FALSE(std::filesystem::exists(dir.file("trial_003_frames.csv")));
}

TEST_CASE("preview: seqlocked frames in shared memory, removed at the end") {
    const std::string name = "/pilogger-unit-" + std::to_string(getpid()) + "-preview";
    auto pool = FramePool::create(320, 240, 4);
    TestPatternPainter painter(320, 240);
    PreviewPublisher::Image image;
    {
        PreviewPublisher preview(name, 160, 120, false, 1000);
        CHECK(preview.warning().empty());
        CHECK_FALSE(PreviewPublisher::read(name, image));  // no frame yet
        preview.offer(painted(*pool, painter, 5, 1'000'000'000));
        for (int i = 0; i < 200 && preview.published() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        REQUIRE(PreviewPublisher::read(name, image));
        CHECK(image.header.version == kPreviewVersion);
        CHECK(image.header.width == 160);
        CHECK(image.header.height == 120);
        CHECK(image.header.stride == 480);
        CHECK(image.header.format == kPreviewRgb24);
        CHECK(image.header.frame_mono_ns == 1'000'000'000);
        CHECK(image.header.frame_index == 5);
        CHECK(image.header.writer_pid == static_cast<uint32_t>(getpid()));
        CHECK(image.header.sequence % 2 == 0);
        CHECK(image.pixels.size() == 160u * 120u * 3u);
        const uint64_t first = image.header.sequence;
        // Too soon for the preview rate (1000 fps here: 1 ms): skipped; later: taken.
        preview.offer(painted(*pool, painter, 6, 1'000'000'000 + 100'000));
        preview.offer(painted(*pool, painter, 7, 1'000'000'000 + 2'000'000));
        for (int i = 0; i < 200 && preview.published() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        REQUIRE(PreviewPublisher::read(name, image));
        CHECK(image.header.frame_index == 7);
        CHECK(image.header.sequence == first + 2);
    }
    CHECK_FALSE(PreviewPublisher::read(name, image));  // unlinked
    CHECK(pool->in_use() == 0);
}

TEST_CASE("snapshot: PNG and JPEG from a frame, never over an existing file") {
    test::TempDir dir;
    auto pool = FramePool::create(320, 240, 2);
    TestPatternPainter painter(320, 240);
    auto f = painted(*pool, painter, 1, 1);
    std::vector<uint8_t> png = encode_image(*f, "png");
    REQUIRE(png.size() > 8);
    CHECK(png[1] == 'P');
    CHECK(png[2] == 'N');
    std::vector<uint8_t> jpg = encode_image(*f, "jpg");
    REQUIRE(jpg.size() > 2);
    CHECK(jpg[0] == 0xFF);
    CHECK(jpg[1] == 0xD8);

    uint64_t counter = 1;
    const int64_t at = 1'700'000'000'000'000'000;
    std::string a = write_snapshot(*f, dir.path.string(), "png", at, counter);
    uint64_t again = 1;  // same counter, same second: the next free name is taken
    std::string b = write_snapshot(*f, dir.path.string(), "png", at, again);
    CHECK(a == dir.file("snapshot_20231114T221320Z_1.png"));
    CHECK(b == dir.file("snapshot_20231114T221320Z_2.png"));
    CHECK(test::read_file(a).size() == png.size());
}
