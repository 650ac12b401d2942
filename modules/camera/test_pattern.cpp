#include "clock.hpp"
#include "frame_source.hpp"
#include "test_pattern.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace pilogger::camera {

namespace {

constexpr int kGlyphW = 5;
constexpr int kGlyphH = 7;
constexpr int kMargin = 16;
constexpr uint8_t kInk = 235;
constexpr uint8_t kPaper = 16;

// 5x7 glyphs, one byte per row, bit 4 = leftmost column.
struct Glyph {
    char c;
    uint8_t rows[kGlyphH];
};
constexpr Glyph kFont[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
};

const Glyph* glyph(char c) {
    for (const auto& g : kFont) {
        if (g.c == c) return &g;
    }
    return nullptr;
}

constexpr size_t kLabelChars = 24;  // room for the longest label

// 75 % colour bars (BT.709 limited range): white, yellow, cyan, green, magenta, red, blue, black.
constexpr uint8_t kBarY[8] = {180, 168, 145, 133, 63, 51, 28, 16};
constexpr uint8_t kBarU[8] = {128, 44, 147, 63, 193, 109, 212, 128};
constexpr uint8_t kBarV[8] = {128, 136, 44, 52, 204, 212, 120, 128};

void fill_rect(uint8_t* plane, int linesize, int x0, int y0, int w, int h, uint8_t value) {
    for (int y = y0; y < y0 + h; ++y) std::memset(plane + static_cast<ptrdiff_t>(y) * linesize + x0, value, static_cast<size_t>(w));
}

}  // namespace

TestPatternPainter::TestPatternPainter(int width, int height) : width_(width), height_(height) {
    // Big enough to read in a small preview, never wider than the frame.
    scale_ = std::clamp(width / static_cast<int>(kLabelChars * (kGlyphW + 1)) , 1, 4);
    background_y_.resize(static_cast<size_t>(width) * static_cast<size_t>(height));
    background_u_.resize(static_cast<size_t>(width / 2) * static_cast<size_t>(height / 2));
    background_v_.resize(background_u_.size());
    // Colour bars on top, a luma ramp below: cheap to encode, easy to recognise.
    for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
            uint8_t value;
            if (y < height * 2 / 3) {
                value = kBarY[x * 8 / width];
            } else {
                value = static_cast<uint8_t>(16 + x * 219 / std::max(1, width - 1));
            }
            background_y_[static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)] = value;
        }
    }
    for (int y = 0; y < height / 2; ++y) {
        for (int x = 0; x < width / 2; ++x) {
            bool bars = y * 2 < height * 2 / 3;
            size_t i = static_cast<size_t>(y) * static_cast<size_t>(width / 2) + static_cast<size_t>(x);
            background_u_[i] = bars ? kBarU[x * 2 * 8 / width] : 128;
            background_v_[i] = bars ? kBarV[x * 2 * 8 / width] : 128;
        }
    }
}

std::string TestPatternPainter::label(uint64_t index, int64_t timestamp_ns) {
    char text[64];
    const char* sign = timestamp_ns < 0 ? "-" : "";
    uint64_t t = timestamp_ns < 0 ? static_cast<uint64_t>(-timestamp_ns) : static_cast<uint64_t>(timestamp_ns);
    snprintf(text, sizeof text, "%08" PRIu64 " %s%" PRIu64 ".%06" PRIu64, index % 100000000, sign, t / 1000000000,
             (t % 1000000000) / 1000);
    return text;
}

void TestPatternPainter::paint(Frame& frame, uint64_t index, int64_t timestamp_ns) const {
    // Background, row by row (the frame's rows are padded).
    for (int y = 0; y < height_; ++y) {
        std::memcpy(frame.data[0] + static_cast<ptrdiff_t>(y) * frame.linesize[0],
                    background_y_.data() + static_cast<size_t>(y) * static_cast<size_t>(width_),
                    static_cast<size_t>(width_));
    }
    const int cw = width_ / 2;
    for (int y = 0; y < height_ / 2; ++y) {
        std::memcpy(frame.data[1] + static_cast<ptrdiff_t>(y) * frame.linesize[1],
                    background_u_.data() + static_cast<size_t>(y) * static_cast<size_t>(cw), static_cast<size_t>(cw));
        std::memcpy(frame.data[2] + static_cast<ptrdiff_t>(y) * frame.linesize[2],
                    background_v_.data() + static_cast<size_t>(y) * static_cast<size_t>(cw), static_cast<size_t>(cw));
    }
    // A white bar sweeping right, 8 px a frame.
    const int bar_w = std::min(16, width_);
    const int bar_x = static_cast<int>((index * 8) % static_cast<uint64_t>(std::max(1, width_ - bar_w))) & ~1;
    fill_rect(frame.data[0], frame.linesize[0], bar_x, 0, bar_w, height_, kInk);
    fill_rect(frame.data[1], frame.linesize[1], bar_x / 2, 0, bar_w / 2, height_ / 2, 128);
    fill_rect(frame.data[2], frame.linesize[2], bar_x / 2, 0, bar_w / 2, height_ / 2, 128);
    // A dark square bouncing up and down on the right.
    const int side = std::min({64, width_ / 4, height_ / 4}) & ~1;
    if (side >= 2) {
        const int travel = height_ - side;
        const int pos = static_cast<int>((index * 6) % static_cast<uint64_t>(2 * travel));
        const int y = (pos < travel ? pos : 2 * travel - pos) & ~1;
        // Inside the frame however narrow it is (16 px wide put it at x = -4, before the row).
        const int x = std::max(0, width_ - side - kMargin) & ~1;
        fill_rect(frame.data[0], frame.linesize[0], x, y, side, side, kPaper);
        fill_rect(frame.data[1], frame.linesize[1], x / 2, y / 2, side / 2, side / 2, 128);
        fill_rect(frame.data[2], frame.linesize[2], x / 2, y / 2, side / 2, side / 2, 128);
    }
    draw_text(frame, label(index, timestamp_ns));
}

void TestPatternPainter::draw_text(Frame& frame, const std::string& text) const {
    const int advance = (kGlyphW + 1) * scale_;
    const int chars = static_cast<int>(std::min(text.size(), static_cast<size_t>((width_ - 2 * kMargin) / advance)));
    const int box_w = (chars * advance + scale_ * 2) & ~1;
    const int box_h = ((kGlyphH + 2) * scale_ + 1) & ~1;
    const int x0 = kMargin;
    const int y0 = kMargin;
    if (chars <= 0 || y0 + box_h > height_) return;
    fill_rect(frame.data[0], frame.linesize[0], x0, y0, box_w, box_h, kPaper);
    fill_rect(frame.data[1], frame.linesize[1], x0 / 2, y0 / 2, box_w / 2, box_h / 2, 128);
    fill_rect(frame.data[2], frame.linesize[2], x0 / 2, y0 / 2, box_w / 2, box_h / 2, 128);
    for (int i = 0; i < chars; ++i) {
        const Glyph* g = glyph(text[static_cast<size_t>(i)]);
        if (g == nullptr) continue;
        const int gx = x0 + scale_ + i * advance;
        const int gy = y0 + scale_;
        for (int r = 0; r < kGlyphH; ++r) {
            for (int c = 0; c < kGlyphW; ++c) {
                if ((g->rows[r] >> (kGlyphW - 1 - c) & 1) == 0) continue;
                fill_rect(frame.data[0], frame.linesize[0], gx + c * scale_, gy + r * scale_, scale_, scale_, kInk);
            }
        }
    }
}

std::string TestPatternPainter::read_label(const uint8_t* luma, int linesize, size_t chars) const {
    const int advance = (kGlyphW + 1) * scale_;
    std::string out;
    for (size_t i = 0; i < chars; ++i) {
        const int gx = kMargin + scale_ + static_cast<int>(i) * advance;
        const int gy = kMargin + scale_;
        if (gx + kGlyphW * scale_ > width_) break;
        // Sample the middle of every dot; the closest glyph wins if it is close enough.
        uint8_t rows[kGlyphH] = {};
        for (int r = 0; r < kGlyphH; ++r) {
            for (int c = 0; c < kGlyphW; ++c) {
                const int px = gx + c * scale_ + scale_ / 2;
                const int py = gy + r * scale_ + scale_ / 2;
                if (luma[static_cast<ptrdiff_t>(py) * linesize + px] > (kInk + kPaper) / 2) {
                    rows[r] = static_cast<uint8_t>(rows[r] | 1 << (kGlyphW - 1 - c));
                }
            }
        }
        char best = '?';
        int best_errors = 3;
        for (const auto& g : kFont) {
            int errors = 0;
            for (int r = 0; r < kGlyphH; ++r) errors += __builtin_popcount(static_cast<unsigned>(rows[r] ^ g.rows[r]));
            if (errors < best_errors) {
                best_errors = errors;
                best = g.c;
            }
        }
        out.push_back(best);
    }
    return out;
}

// ---- the source ----

namespace {

class TestPatternSource : public FrameSource {
public:
    explicit TestPatternSource(const CameraSettings& settings) : settings_(settings) {}
    ~TestPatternSource() override { stop(); }

    SourceInfo start(FrameSink& sink) override {
        stop();
        sink_ = &sink;
        pool_ = FramePool::create(settings_.width, settings_.height, static_cast<size_t>(settings_.queue_frames) + 6);
        painter_ = std::make_unique<TestPatternPainter>(settings_.width, settings_.height);
        quit_ = false;
        thread_ = std::thread([this] { run(); });
        SourceInfo info;
        char text[96];
        snprintf(text, sizeof text, "test pattern %dx%d YUV420 at %.3g fps", settings_.width, settings_.height,
                 settings_.fps);
        info.description = text;
        info.width = settings_.width;
        info.height = settings_.height;
        info.pixel_format = "YUV420";
        return info;
    }

    void stop() override {
        {
            std::lock_guard lock(mutex_);
            quit_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    nlohmann::json stats() const override {
        return {{"frames_made", frames_made_.load()}, {"overrun_frames", overrun_.load()}};
    }

private:
    // The k-th frame is due at start + k * period exactly (no accumulated sleep error); the wait is
    // an absolute deadline on CLOCK_MONOTONIC (steady_clock), interruptible by stop().
    void run() {
        const long double period_ns = 1e9L / static_cast<long double>(settings_.fps);
        // Beyond this lag the thread was starved: skip ahead (counted) instead of bursting.
        const int64_t max_lag_ns = std::max<int64_t>(500'000'000, 3 * static_cast<int64_t>(period_ns));
        const int64_t start_ns = mono_ns() + 1'000'000;
        uint64_t k = 0;
        auto due_of = [&](uint64_t n) { return start_ns + static_cast<int64_t>(std::llround(static_cast<long double>(n) * period_ns)); };
        while (true) {
            int64_t due = due_of(k);
            {
                std::unique_lock lock(mutex_);
                auto deadline = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(due));
                if (wake_.wait_until(lock, deadline, [this] { return quit_; })) return;
            }
            int64_t now = mono_ns();
            if (now - due > max_lag_ns) {
                auto behind = static_cast<uint64_t>(static_cast<long double>(now - start_ns) / period_ns);
                if (behind > k) {
                    overrun_ += behind - k;
                    sink_->on_frames_lost(behind - k);
                    k = behind;
                    due = due_of(k);
                }
            }
            std::shared_ptr<Frame> frame = pool_->acquire();
            if (!frame) {
                sink_->on_frames_lost(1);
                ++k;
                continue;
            }
            painter_->paint(*frame, k, due);
            frame->sequence = k;
            frame->sensor_ns = due;  // the scheduled instant, CLOCK_MONOTONIC
            frame->time_ns = due;
            frame->exposure_us = -1;
            // The frame's instant on the host clock, as libcamera's mapped SensorTimestamp is: the
            // painted image shows `due`, however late this thread woke to paint it.
            frame->mono_ns = due;
            ++frames_made_;
            sink_->on_frame(std::move(frame));
            ++k;
        }
    }

    CameraSettings settings_;
    FrameSink* sink_ = nullptr;
    std::shared_ptr<FramePool> pool_;
    std::unique_ptr<TestPatternPainter> painter_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool quit_ = false;
    std::atomic<uint64_t> frames_made_{0};
    std::atomic<uint64_t> overrun_{0};
};

}  // namespace

std::unique_ptr<FrameSource> make_test_pattern_source(const CameraSettings& settings) {
    return std::make_unique<TestPatternSource>(settings);
}

}  // namespace pilogger::camera
