// Shared by the scene video tests (test_scene_writer.cpp, test_scene_preview.cpp): a synthetic
// H.264 scene from libx264 in this process (30 fps on a 90 kHz clock with jitter, wrapping around
// 2^32), ffprobe/ffmpeg checks of the files, and probes of the writer's loop.
#pragma once

#include "helpers.hpp"
#include "scene_av.hpp"
#include "scene_writer.hpp"

extern "C" {
#include <libavutil/opt.h>
}

#include <doctest/doctest.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace scene_test {

using namespace pilogger;
using namespace pilogger::neon;

inline const bool kQuietLibav = (av_log_set_level(AV_LOG_ERROR), true);

constexpr uint32_t kRtpRate = 90000;
constexpr int kTicksPerFrame = 3000;  // 30 fps at 90 kHz
constexpr int kJitter[5] = {0, 7, -4, 11, -9};
constexpr uint32_t kFirstRtp = 0xFFFFFFFFu - 40 * kTicksPerFrame;  // wraps after 40 frames

inline int64_t steady_ns() {
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
inline Scene make_scene(int width, int height, int frames, bool strip_sets, int noise = 0, const char* preset = "ultrafast") {
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

inline std::string run_command(const std::string& command) {
    std::string out;
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buffer[4096];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    pclose(pipe);
    return out;
}

// "width,height" of the file's video stream.
inline std::string probe_size(const std::string& path) {
    std::string size = run_command("ffprobe -v error -select_streams v -show_entries stream=width,height -of csv=p=0 '" +
                                   path + "' 2>/dev/null");
    while (!size.empty() && (size.back() == '\n' || size.back() == '\r')) size.pop_back();
    return size;
}

struct ProbedPacket {
    int64_t pts_us;
    bool key;
};

inline std::vector<ProbedPacket> probe(const std::string& path) {
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
inline int64_t thread_cpu_ns() {
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

inline SceneWriter::Callbacks record_into(Recorded& r) {
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

inline void stop_and_wait(uv::Loop& loop, SceneWriter& writer, Recorded& r, int timeout_ms = 20000) {
    writer.stop([&r](bool ok, const std::string& message) {
        r.done = true;
        r.ok = ok;
        r.message = message;
    });
    REQUIRE(test::run_until(loop, [&] { return r.done; }, timeout_ms));
}

inline std::string joined(const std::vector<std::string>& lines) {
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    return all;
}

// Every frame the writer reported is in the file, in order, with the same pts (1 µs: rounding).
inline void check_file_matches(const std::string& path, const Recorded& r) {
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
inline int64_t expected_pts_us(const Scene& scene, size_t unit, size_t first) {
    const int64_t ticks = scene.ticks(unit) - scene.ticks(first);
    return (ticks * 1'000'000 + kRtpRate / 2) / kRtpRate;
}

// One frame of a video file as yuv420p, decoded by ffmpeg.
inline std::string decode_frame(const std::string& path, int index) {
    return run_command("ffmpeg -v error -i '" + path + "' -vf 'select=eq(n\\," + std::to_string(index) +
                       ")' -frames:v 1 -f rawvideo -pix_fmt yuv420p - 2>/dev/null");
}

inline bool decodes_cleanly(const std::string& path) {
    return run_command("ffmpeg -v error -i '" + path + "' -f null - 2>&1").empty();
}

inline SceneWriterOptions options_for(const std::string& path, const Scene& scene) {
    SceneWriterOptions options;
    options.output_path = path;
    options.rtp_clock_rate = kRtpRate;
    options.parameter_sets_annexb = scene.parameter_sets;
    return options;
}

}  // namespace scene_test
