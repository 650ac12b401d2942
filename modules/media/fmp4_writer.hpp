// The one fragmented-MP4 writer (camera trials and the eye tracker's scene video): a file a
// reader can open after a crash or power cut. Empty moov up front, then self-contained moof+mdat
// fragments of at most fragment_ms, each starting at a keyframe; the first pts kept (no edit list,
// never shifted to zero) in a track timescale the caller picks so every pts is exact.
//
// The muxer keeps a fragment's packets in memory and writes the whole fragment when the next one
// begins (or at finish). Right before those bytes go to the file, the before_write hook learns
// how many frames the file will then hold (the owner makes their CSV rows durable there), and
// right after them the file is fdatasync'd: a fragment is on the disk a moment after it leaves
// the muxer, and never before the rows of its frames.
//
// Blocking (write(2), fdatasync): used only on a worker thread.
#pragma once

#include "av_util.hpp"
#include "output_file.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace pilogger::media {

struct Fmp4Options {
    int fragment_ms = 1000;
    int track_timescale = 1'000'000;  // ticks per second of the MP4 track
    int64_t default_duration = 0;     // in the packets' time base: the last sample's duration
};

class Fmp4Writer {
public:
    // Runs before muxer bytes are written, with the number of frames the file holds once they
    // are. 0 lets the bytes go; an errno refuses them (the write fails with that error).
    using BeforeWrite = std::function<int(uint64_t frames_in_file)>;

    // Creates path (never an existing file: O_EXCL) with one video stream described by params;
    // packets come with pts in time_base. Throws std::runtime_error naming the file.
    // The header (ftyp, empty moov) is written and fdatasync'd here when params has extradata;
    // otherwise the SPS/PPS of the first packet make it (encoders without a global header).
    Fmp4Writer(std::string path, const AVCodecParameters& params, AVRational time_base, AVRational frame_rate,
               const Fmp4Options& options, BeforeWrite before_write = {});
    // Without finish(): the file keeps what was written (all complete fragments).
    ~Fmp4Writer();
    Fmp4Writer(const Fmp4Writer&) = delete;
    Fmp4Writer& operator=(const Fmp4Writer&) = delete;

    // One packet (its data is taken; the packet is left empty). When a fragment went to the file,
    // it is fdatasync'd before this returns. Throws with the file's name and the reason.
    void write(AVPacket& packet);
    // Writes the last fragment and the trailer, fdatasyncs and closes the file.
    void finish();

    const std::string& path() const { return file_.path(); }
    uint64_t bytes_written() const { return file_.bytes_written(); }
    uint64_t packets_written() const { return packets_; }  // handed to the muxer
    uint64_t frames_in_file() const { return frames_in_file_; }
    uint64_t syncs() const { return syncs_; }

private:
    static int write_callback(void* opaque, AvioWriteBuffer buf, int size);
    static int64_t seek_callback(void* opaque, int64_t offset, int whence);

    void write_header(const AVPacket* first_packet);
    // fdatasync if bytes went to the file since the last one.
    void sync_written();
    [[noreturn]] void fail(const std::string& what, int av_code);

    // Declared before the FFmpeg contexts so that it is destroyed (closed) after them.
    OutputFile file_;
    AvioContextPtr io_;          // outlives format_, which never owns it
    AvFormatContextPtr format_;
    AVStream* stream_ = nullptr;
    AVRational time_base_;
    Fmp4Options options_;
    AVDictionary* muxer_options_ = nullptr;
    bool header_written_ = false;
    bool finished_ = false;
    uint64_t packets_ = 0;
    // Frames the bytes the muxer is writing now contain: those handed to it before the current
    // packet (a fragment ends where the next begins), all of them at finish.
    uint64_t flushing_frames_ = 0;
    uint64_t frames_in_file_ = 0;
    uint64_t synced_bytes_ = 0;
    uint64_t syncs_ = 0;
    BeforeWrite before_write_;
    int write_errno_ = 0;
};

}  // namespace pilogger::media
