// Where a preview tile gets its frames. The tile polls a PreviewSource on a timer; the shared
// memory reader below is the one the modules use today, and a module with another channel only
// needs another PreviewSource.
#pragma once

#include <QImage>
#include <QPointF>
#include <QString>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace pilogger::gui {

struct PreviewFrame {
    QImage image;
    int64_t mono_ns = 0;     // the frame's instant on CLOCK_MONOTONIC
    uint64_t index = 0;      // the source's frame counter
    uint64_t published = 0;  // frames the writer has published so far (counts skipped ones)
    // Where the wearer looks, in the image's own coordinates scaled to 0..1; absent when the
    // source has no gaze (cameras) or no valid sample for this frame.
    std::optional<QPointF> gaze;
};

class PreviewSource {
public:
    enum class Poll { NewFrame, NoChange, Unavailable };
    virtual ~PreviewSource() = default;
    // Never waits: returns at once with a new frame, nothing new, or no source (yet).
    virtual Poll poll(PreviewFrame& out) = 0;
    // Where it reads from, for the tile's caption and error messages.
    virtual QString describe() const = 0;
};

// The camera module's preview in POSIX shared memory (modules/camera/preview.hpp):
//   0 magic "PILOGPV\0" | 8 u32 version | 12 u32 header_bytes | 16 u32 width | 20 u32 height
//   24 u32 stride | 28 u32 format (1 RGB24, 2 GRAY8) | 32 u64 sequence (odd while written)
//   40 i64 frame_mono_ns | 48 u64 frame_index | 56 u32 writer_pid | 60 u32 frame_bytes
//   header_bytes.. pixels
// A header of at least 80 bytes may carry a gaze point for the eye tracker's scene preview:
//   64 f32 gaze_x (0..1 of the width) | 68 f32 gaze_y (0..1 of the height) | 72 i64 gaze_mono_ns
//   (0: no gaze for this frame), written inside the same sequence bracket as the pixels.
// Read as a seqlock: sequence, copy, sequence again; the copy counts only if both reads agree
// and are even. The writer never waits for us. A new writer_pid (a restarted module reusing the
// object) or a new object under the name is mapped again.
class ShmPreviewSource : public PreviewSource {
public:
    explicit ShmPreviewSource(std::string shm_name);
    ~ShmPreviewSource() override;
    ShmPreviewSource(const ShmPreviewSource&) = delete;
    ShmPreviewSource& operator=(const ShmPreviewSource&) = delete;

    Poll poll(PreviewFrame& out) override;
    QString describe() const override { return QString::fromStdString(name_); }
    // The name a module's preview has unless its stats say otherwise:
    // "/pilogger-<uid>-<module>-preview", as the camera module names it.
    static std::string defaultName(const std::string& module);
    // Why the last poll found nothing, in words.
    const QString& problem() const { return problem_; }

private:
    bool open();
    void close();
    bool replacedUnderUs();

    std::string name_;
    int fd_ = -1;
    const uint8_t* map_ = nullptr;
    size_t map_bytes_ = 0;
    uint64_t inode_ = 0;
    uint32_t writer_pid_ = 0;  // 0: not read since mapping
    uint64_t last_sequence_ = UINT64_MAX;
    int64_t last_change_ns_ = 0;
    int64_t last_check_ns_ = 0;
    QString problem_;
};

}  // namespace pilogger::gui
