// The eye tracker's scene video: SceneWriter (H.264 access units -> fragmented MP4 in process,
// copy or gaze overlay) on a real libuv loop, checked with ffprobe; ScenePreview's
// shared memory with the gaze fields. The access units come from libx264 in this process: a
// synthetic 30 fps scene on a 90 kHz clock with jitter, wrapping around 2^32.
#include "helpers.hpp"
#include "preview_shm.hpp"
#include "scene_av.hpp"
#include "scene_preview.hpp"
#include "scene_writer.hpp"

extern "C" {
#include <libavutil/opt.h>
}

#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

using namespace pilogger;
using namespace pilogger::neon;

namespace {

const bool kQuietLibav = (av_log_set_level(AV_LOG_ERROR), true);

constexpr uint32_t kRtpRate = 90000;
constexpr int kTicksPerFrame = 3000;  // 30 fps at 90 kHz
constexpr int kJitter[5] = {0, 7, -4, 11, -9};
constexpr uint32_t kFirstRtp = 0xFFFFFFFFu - 40 * kTicksPerFrame;  // wraps after 40 frames

int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct Scene {
    std::vector<AccessUnit> units;
    std::string parameter_sets;  // from the first keyframe, as an SDP would give them
    int64_t ticks(size_t i) const { return static_cast<int64_t>(i) * kTicksPerFrame + kJitter[i % 5]; }
};

// A grey gradient with a bright square moving along the top; `noise` makes frames large (full
// pipe tests). SPS/PPS are taken out of the keyframes when strip_sets is set.
Scene make_scene(int width, int height, int frames, bool strip_sets, int noise = 0, const char* preset = "ultrafast") {
    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    REQUIRE(codec != nullptr);
    AvCodecContextPtr encoder(avcodec_alloc_context3(codec));
    encoder->width = width;
    encoder->height = height;
    encoder->pix_fmt = AV_PIX_FMT_YUV420P;
    encoder->time_base = {1, static_cast<int>(kRtpRate)};
    encoder->framerate = {30, 1};
    encoder->gop_size = 30;
    encoder->max_b_frames = 0;
    encoder->thread_count = 1;
    av_opt_set(encoder->priv_data, "preset", preset, 0);
    av_opt_set(encoder->priv_data, "tune", "zerolatency", 0);
    REQUIRE(avcodec_open2(encoder.get(), codec, nullptr) == 0);

    AvFramePtr frame(av_frame_alloc());
    frame->format = AV_PIX_FMT_YUV420P;
    frame->width = width;
    frame->height = height;
    REQUIRE(av_frame_get_buffer(frame.get(), 0) == 0);
    AvPacketPtr packet(av_packet_alloc());
    std::mt19937 random(42);
    Scene scene;
    auto take_packets = [&] {
        while (avcodec_receive_packet(encoder.get(), packet.get()) == 0) {
            AccessUnit unit;
            const auto ticks = static_cast<uint32_t>(packet->pts);
            unit.rtp_timestamp = kFirstRtp + ticks;
            unit.keyframe = (packet->flags & AV_PKT_FLAG_KEY) != 0;
            std::string_view data(reinterpret_cast<const char*>(packet->data), static_cast<size_t>(packet->size));
            bool sps = false;
            bool pps = false;
            for_each_nal(data, [&](uint8_t type, std::string_view nal) {
                if (type == 7) sps = true;
                if (type == 8) pps = true;
                if ((type == 7 || type == 8) && strip_sets) return;
                unit.annexb.append("\0\0\0\1", 4);
                unit.annexb.append(nal);
            });
            if (scene.parameter_sets.empty() && sps && pps) scene.parameter_sets = parameter_sets_of(data);
            unit.has_sps_pps = sps && pps && !strip_sets;
            scene.units.push_back(std::move(unit));
            av_packet_unref(packet.get());
        }
    };
    for (int i = 0; i < frames; ++i) {
        REQUIRE(av_frame_make_writable(frame.get()) == 0);
        for (int y = 0; y < height; ++y) {
            uint8_t* row = frame->data[0] + static_cast<ptrdiff_t>(y) * frame->linesize[0];
            for (int x = 0; x < width; ++x) {
                int v = 60 + (x + y) * 100 / (width + height);
                const int square_x = (i * 8) % std::max(1, width - 40);
                if (y >= 4 && y < 36 && x >= square_x && x < square_x + 32) v = 230;
                if (noise > 0) v += static_cast<int>(random() % static_cast<unsigned>(noise)) - noise / 2;
                row[x] = static_cast<uint8_t>(std::clamp(v, 16, 235));
            }
        }
        for (int p = 1; p < 3; ++p) {
            for (int y = 0; y < (height + 1) / 2; ++y) {
                std::memset(frame->data[p] + static_cast<ptrdiff_t>(y) * frame->linesize[p], 128,
                            static_cast<size_t>((width + 1) / 2));
            }
        }
        frame->pts = scene.ticks(static_cast<size_t>(i));
        REQUIRE(avcodec_send_frame(encoder.get(), frame.get()) == 0);
        take_packets();
    }
    avcodec_send_frame(encoder.get(), nullptr);
    take_packets();
    REQUIRE(scene.units.size() == static_cast<size_t>(frames));
    REQUIRE(scene.units[0].keyframe);
    REQUIRE_FALSE(scene.parameter_sets.empty());
    return scene;
}

std::string run_command(const std::string& command);

// "width,height" of the file's video stream.
std::string probe_size(const std::string& path);

std::string run_command(const std::string& command) {
    std::string out;
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buffer[4096];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    pclose(pipe);
    return out;
}

std::string probe_size(const std::string& path) {
    std::string size = run_command("ffprobe -v error -select_streams v -show_entries stream=width,height -of csv=p=0 '" +
                                   path + "' 2>/dev/null");
    while (!size.empty() && (size.back() == '\n' || size.back() == '\r')) size.pop_back();
    return size;
}

struct ProbedPacket {
    int64_t pts_us;
    bool key;
};

std::vector<ProbedPacket> probe(const std::string& path) {
    std::istringstream lines(run_command("ffprobe -v error -select_streams v -show_entries packet=pts_time,flags -of csv=p=0 '" +
                                         path + "' 2>/dev/null"));
    std::vector<ProbedPacket> packets;
    std::string line;
    while (std::getline(lines, line)) {
        const size_t comma = line.find(',');
        if (comma == std::string::npos) continue;
        packets.push_back({std::llround(std::stod(line.substr(0, comma)) * 1e6), line[comma + 1] == 'K'});
    }
    return packets;
}

// CPU time of the calling thread: what the loop itself spends, apart from waiting for a CPU on a
// loaded machine.
int64_t thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// The longest time between two runs of a 1 ms timer: how long the loop was kept from turning,
// in wall time (includes waiting for a CPU) and in the loop thread's own CPU time.
struct LoopWatch {
    explicit LoopWatch(uv::Loop& loop) : timer(loop) {
        timer.start(1, 1, [this] {
            const int64_t now = steady_ns();
            const int64_t cpu = thread_cpu_ns();
            if (last != 0) {
                longest_ns = std::max(longest_ns, now - last);
                if (cpu - last_cpu > longest_cpu_ns) worst_at_ms = (now - created) / 1'000'000;
                longest_cpu_ns = std::max(longest_cpu_ns, cpu - last_cpu);
                ++turns;
                if (cpu - last_cpu > 1'000'000) ++turns_over_1ms_cpu;
            }
            last = now;
            last_cpu = cpu;
        });
    }
    uv::Timer timer;
    int64_t last = 0;
    int64_t last_cpu = 0;
    int64_t longest_ns = 0;
    int64_t longest_cpu_ns = 0;
    int64_t created = steady_ns();
    int64_t worst_at_ms = 0;
    int turns = 0;
    int turns_over_1ms_cpu = 0;
};

// Feeds units to a writer from a repeating timer, measuring how long each write() takes.
struct Feeder {
    Feeder(uv::Loop& loop, SceneWriter& writer, const Scene& scene, size_t from, size_t to, uint64_t every_ms)
        : timer(loop) {
        next = from;
        timer.start(every_ms, every_ms, [this, &writer, &scene, to] {
            if (next >= to) {
                timer.stop();
                return;
            }
            AccessUnit unit = scene.units[next];
            const int64_t before = thread_cpu_ns();
            if (writer.write(std::move(unit), SceneFrameTimes{static_cast<int64_t>(next), steady_ns()})) ++accepted;
            const int64_t spent = thread_cpu_ns() - before;
            if (spent > longest_write_ns) {
                longest_write_ns = spent;
                longest_write_index = next;
            }
            ++next;
        });
    }
    bool finished() const { return !timer.active(); }
    uv::Timer timer;
    size_t next = 0;
    size_t accepted = 0;
    int64_t longest_write_ns = 0;  // thread CPU time
    size_t longest_write_index = 0;
};

struct Recorded {
    std::vector<int64_t> pts_us;
    std::vector<int64_t> device_ns;
    std::vector<bool> intact;
    std::vector<std::string> log;
    std::string failure;
    bool done = false;
    bool ok = false;
    std::string message;
};

SceneWriter::Callbacks record_into(Recorded& r) {
    SceneWriter::Callbacks callbacks;
    callbacks.frame_written = [&r](uint64_t index, int64_t pts_us, const SceneFrameTimes& times, bool intact) {
        CHECK(index == r.pts_us.size());
        r.pts_us.push_back(pts_us);
        r.device_ns.push_back(times.device_time_ns);
        r.intact.push_back(intact);
    };
    callbacks.log = [&r](const std::string& level, const std::string& line) { r.log.push_back(level + ": " + line); };
    callbacks.failed = [&r](const std::string& why) { r.failure = why; };
    return callbacks;
}

void stop_and_wait(uv::Loop& loop, SceneWriter& writer, Recorded& r, int timeout_ms = 20000) {
    writer.stop([&r](bool ok, const std::string& message) {
        r.done = true;
        r.ok = ok;
        r.message = message;
    });
    REQUIRE(test::run_until(loop, [&] { return r.done; }, timeout_ms));
}

std::string joined(const std::vector<std::string>& lines) {
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    return all;
}

// Every frame the writer reported is in the file, in order, with the same pts (1 µs: rounding).
void check_file_matches(const std::string& path, const Recorded& r) {
    const auto packets = probe(path);
    REQUIRE(packets.size() == r.pts_us.size());
    REQUIRE_FALSE(packets.empty());
    CHECK(packets.front().key);
    for (size_t i = 0; i < packets.size(); ++i) {
        INFO("frame " << i);
        CHECK(std::llabs(packets[i].pts_us - r.pts_us[i]) <= 1);
    }
}

// The pts a scene unit gets in a file whose first frame is scene unit `first`.
int64_t expected_pts_us(const Scene& scene, size_t unit, size_t first) {
    const int64_t ticks = scene.ticks(unit) - scene.ticks(first);
    return (ticks * 1'000'000 + kRtpRate / 2) / kRtpRate;
}

// One frame of a video file as yuv420p, decoded by ffmpeg.
std::string decode_frame(const std::string& path, int index) {
    return run_command("ffmpeg -v error -i '" + path + "' -vf 'select=eq(n\\," + std::to_string(index) +
                       ")' -frames:v 1 -f rawvideo -pix_fmt yuv420p - 2>/dev/null");
}

bool decodes_cleanly(const std::string& path) {
    return run_command("ffmpeg -v error -i '" + path + "' -f null - 2>&1").empty();
}

SceneWriterOptions options_for(const std::string& path, const Scene& scene) {
    SceneWriterOptions options;
    options.output_path = path;
    options.rtp_clock_rate = kRtpRate;
    options.parameter_sets_annexb = scene.parameter_sets;
    return options;
}

}  // namespace

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

TEST_CASE("scene preview: keyframes scaled into shared memory with the gaze fields") {
    const Scene scene = make_scene(640, 480, 31, /*strip_sets=*/true);
    const std::string name = "/pilogger-unit-" + std::to_string(getpid()) + "-scene-preview";
    PreviewShm::Image image;
    {
        ScenePreview preview(name, 160, 120, 30, scene.parameter_sets);
        CHECK(preview.name() == name);
        CHECK_FALSE(PreviewShm::read(name, image));  // made, no frame yet
        preview.set_gaze(320.0f, 120.0f, 1'000'000'000);
        preview.offer(scene.units[1], 1'000'000'000);  // not a keyframe: not decoded
        preview.offer(scene.units[0], 1'010'000'000);
        for (int i = 0; i < 400 && preview.published() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        REQUIRE(preview.published() == 1);
        REQUIRE(PreviewShm::read(name, image));
        CHECK(image.header.header_bytes == 80);
        CHECK(image.header.width == 160);
        CHECK(image.header.height == 120);
        CHECK(image.header.stride == 480);
        CHECK(image.header.format == kPreviewRgb24);
        CHECK(image.header.frame_mono_ns == 1'010'000'000);
        CHECK(image.header.frame_index == 1);
        CHECK(image.header.writer_pid == static_cast<uint32_t>(getpid()));
        CHECK(image.gaze.x == doctest::Approx(0.5));
        CHECK(image.gaze.y == doctest::Approx(0.25));
        CHECK(image.gaze.mono_ns == 1'000'000'000);
        REQUIRE(image.pixels.size() == 160u * 120u * 3u);
        // The gradient: darker top left than bottom right, grey (R = G = B within a few levels).
        const auto pixel = [&](int x, int y) { return &image.pixels[static_cast<size_t>(y) * 480u + static_cast<size_t>(x) * 3u]; };
        CHECK(pixel(2, 60)[0] + 30 < pixel(157, 117)[0]);
        CHECK(std::abs(pixel(80, 80)[0] - pixel(80, 80)[2]) < 8);

        // A gaze sample far from the frame's instant is not shown with it.
        preview.set_gaze(10.0f, 10.0f, 1'000'000'000);
        preview.offer(scene.units[30], 3'000'000'000);
        for (int i = 0; i < 400 && preview.published() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        REQUIRE(preview.published() == 2);
        REQUIRE(PreviewShm::read(name, image));
        CHECK(image.header.frame_index == 2);
        CHECK(image.gaze.mono_ns == 0);
    }
    CHECK_FALSE(PreviewShm::read(name, image));  // removed
    CHECK_THROWS_AS(ScenePreview(name, 0, 120, 10, scene.parameter_sets), std::invalid_argument);
    CHECK_FALSE(PreviewShm::read(name, image));
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
