// A preview image for the GUI in POSIX shared memory, guarded by a sequence counter (a seqlock):
// the writer never waits for a reader, and a reader retries when the counter moved under it.
// Used by the camera (modules/camera/preview.cpp) and the eye tracker's scene
// (modules/eyetracker/scene_preview.cpp); read by gui/preview_source.cpp.
//
// Layout (little-endian, docs/gui.md):
//   0  char[8]  magic "PILOGPV" + NUL
//   8  u32      version (1)
//  12  u32      header_bytes (64, or 80 with the gaze fields): pixels start here
//  16  u32      width
//  20  u32      height
//  24  u32      stride (bytes per pixel row)
//  28  u32      format: 1 = RGB24, 2 = GRAY8
//  32  u64      sequence: odd while a frame is being written, even when stable; +2 per frame
//  40  i64      frame_mono_ns: the frame's instant on CLOCK_MONOTONIC (0: no frame yet)
//  48  u64      frame_index: the source's frame counter
//  56  u32      writer_pid
//  60  u32      frame_bytes (height * stride)
// with header_bytes 80 (the eye tracker's scene):
//  64  f32      gaze_x (0..1 of the width)
//  68  f32      gaze_y (0..1 of the height)
//  72  i64      gaze_mono_ns (0: no gaze for this frame)
//  header_bytes  pixels
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pilogger {

struct PreviewHeader {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint32_t width;
    uint32_t height;
    uint32_t stride;
    uint32_t format;
    uint64_t sequence;
    int64_t frame_mono_ns;
    uint64_t frame_index;
    uint32_t writer_pid;
    uint32_t frame_bytes;
};
static_assert(sizeof(PreviewHeader) == 64, "the preview header is part of the GUI contract");

// Follows PreviewHeader when header_bytes is 80.
struct PreviewGaze {
    float x;               // 0..1 of the width
    float y;               // 0..1 of the height
    int64_t mono_ns;       // 0: no gaze for this frame
};
static_assert(sizeof(PreviewHeader) + sizeof(PreviewGaze) == 80, "the gaze fields are part of the GUI contract");

inline constexpr char kPreviewMagic[8] = {'P', 'I', 'L', 'O', 'G', 'P', 'V', '\0'};
inline constexpr uint32_t kPreviewVersion = 1;
inline constexpr uint32_t kPreviewRgb24 = 1;
inline constexpr uint32_t kPreviewGray8 = 2;
inline constexpr uint32_t kPreviewHeaderBytes = sizeof(PreviewHeader);
inline constexpr uint32_t kPreviewGazeHeaderBytes = sizeof(PreviewHeader) + sizeof(PreviewGaze);

// "/pilogger-<uid>-<module>-preview"
std::string preview_default_name(const std::string& module);

// The writer's side of one shared-memory object. publish() belongs to one thread at a time.
class PreviewShm {
public:
    // Creates (or takes over from a killed writer) the object; when another live process writes
    // under that name, takes "<name>-<pid>" instead and says so in warning().
    // Throws std::runtime_error naming the shared-memory object when it cannot be made.
    PreviewShm(std::string shm_name, uint32_t width, uint32_t height, uint32_t format,
               uint32_t header_bytes = kPreviewHeaderBytes);
    // Unmaps and removes the object.
    ~PreviewShm();
    PreviewShm(const PreviewShm&) = delete;
    PreviewShm& operator=(const PreviewShm&) = delete;

    // One frame of frame_bytes() bytes (rows of stride()), with gaze when the header has room
    // for it, written inside the sequence bracket.
    void publish(const uint8_t* pixels, int64_t frame_mono_ns, uint64_t frame_index,
                 const PreviewGaze* gaze = nullptr);

    const std::string& name() const { return name_; }
    const std::string& warning() const { return warning_; }
    uint32_t stride() const { return stride_; }
    size_t frame_bytes() const { return frame_bytes_; }

    // A reader's copy of the latest stable frame (tests; the GUI does the same in its own code).
    struct Image {
        PreviewHeader header{};
        PreviewGaze gaze{};  // zero unless header_bytes >= 80
        std::vector<uint8_t> pixels;
    };
    // False when there is no such object, no frame yet, or the writer kept it busy.
    static bool read(const std::string& shm_name, Image& out);

private:
    int open_shared_memory();

    std::string name_;
    std::string warning_;
    uint32_t header_bytes_;
    uint32_t stride_;
    size_t frame_bytes_;
    size_t map_bytes_ = 0;
    uint8_t* map_ = nullptr;
};

}  // namespace pilogger
