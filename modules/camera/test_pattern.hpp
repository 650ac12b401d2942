// The simulated camera: a moving pattern with the frame number and timestamp drawn in, at an
// exact frame rate paced on CLOCK_MONOTONIC.
#pragma once

#include "frame.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace pilogger::camera {

// Draws test-pattern frames straight into YUV420: a copy of a precomputed background, a moving
// bar and square, and a label with a built-in 5x7 digit font (a few thousand pixels per frame).
class TestPatternPainter {
public:
    TestPatternPainter(int width, int height);
    void paint(Frame& frame, uint64_t index, int64_t timestamp_ns) const;

    // "00000042 1234.567890": the frame index, then the timestamp in seconds.
    static std::string label(uint64_t index, int64_t timestamp_ns);
    // Reads the label back from a painted (or decoded) luma plane; '?' for an unreadable cell.
    std::string read_label(const uint8_t* luma, int linesize, size_t chars) const;

    int scale() const { return scale_; }

private:
    void draw_text(Frame& frame, const std::string& text) const;

    int width_;
    int height_;
    int scale_;  // font pixels per glyph dot
    std::vector<uint8_t> background_y_;
    std::vector<uint8_t> background_u_;
    std::vector<uint8_t> background_v_;
};

}  // namespace pilogger::camera
