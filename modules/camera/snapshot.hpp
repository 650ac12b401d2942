// Still images from a frame: PNG (RGB) or JPEG. Blocking; runs on the libuv thread pool.
#pragma once

#include "frame.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace pilogger::camera {

// Throws std::runtime_error with the reason.
std::vector<uint8_t> encode_image(const Frame& frame, const std::string& format);

// Writes <dir>/snapshot_<UTC compact>_<n>.<png|jpg> (never over an existing file: the next n is
// taken instead), fdatasyncs it and returns its path. counter is the first n to try and is
// advanced past the one used. Throws std::runtime_error naming the file.
std::string write_snapshot(const Frame& frame, const std::string& dir, const std::string& format,
                           int64_t realtime_ns, uint64_t& counter);

}  // namespace pilogger::camera
