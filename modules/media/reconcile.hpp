// After a crash, a per-frame CSV can be ahead of its fragmented MP4: the rows of a frame are on
// the disk before its fragment is (they must be: a frame in the video never lacks its row), so a
// process killed, or a machine losing power, between the two leaves rows for frames the video
// never got. Reconciling puts back "row k is video frame k" for such a pair of files:
//
//   - the frames the MP4 holds are counted with libavformat: samples whose bytes lie whole in the
//     file (a fragment cut short keeps its complete frames; a frame cut in the middle is not held);
//   - the CSV rows beyond that count (a last line torn mid-row too) move, exactly as they were, to
//     a sidecar next to the CSV, `<name>_unwritten.csv` (trial_001_frames.csv ->
//     trial_001_frames_unwritten.csv), with the same header; the sidecar is fsync'd, then the CSV
//     is cut after its row for the video's last frame and fsync'd. Nothing is lost: the timing
//     rows of frames that never reached the video stay readable.
//   - a CSV with fewer rows than the video has frames cannot be mended and is only reported.
//
// Blocking (reads the MP4's index, fsyncs): call it on the thread pool. It never touches a file
// another process holds open (an ffmpeg still finishing the MP4): that is a Busy result, to try
// again later. Running it again on reconciled files changes nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace pilogger {

struct ReconcileResult {
    enum class Outcome {
        Matched,      // row k is frame k already
        Moved,        // the rows beyond the video went to the sidecar
        RowsMissing,  // fewer rows than frames: reported, nothing changed
        Busy,         // a file is open in another process: try again later
        Failed,       // could not read or write: message says why; nothing changed, or the sidecar only
    };
    Outcome outcome = Outcome::Matched;
    uint64_t frames = 0;    // frames the MP4 holds
    uint64_t rows = 0;      // rows the CSV had (a torn last line counts as one)
    uint64_t moved = 0;     // rows moved to the sidecar
    std::string sidecar;    // its path, when rows moved
    std::string message;    // for the module log (empty when Matched)
};

// The frames (video samples) whose data lies whole in the MP4 at path; 0 for a file without a
// readable header (a process killed while it started). nullopt and *error when it cannot be read.
std::optional<uint64_t> count_mp4_frames(const std::string& path, std::string* error);

// "<dir>/trial_001_frames.csv" -> "<dir>/trial_001_frames_unwritten.csv"
std::string unwritten_sidecar_path(const std::string& csv_path);

// Makes csv_path's rows match the frames of mp4_path (a missing MP4 holds no frame). The CSV's
// first line is its header.
ReconcileResult reconcile_frames_csv(const std::string& mp4_path, const std::string& csv_path);

// One round of a module's reconciling, reported: a part whose rows moved is a warning, rows
// missing or a failure an error (log(is_error, message)); moved rows are added to rows_moved.
// Returns the CSVs whose video another process still has open, to try again.
std::vector<std::string> report_reconciled(const std::vector<std::string>& csv_paths,
                                           const std::vector<ReconcileResult>& results, uint64_t& rows_moved,
                                           const std::function<void(bool is_error, const std::string& message)>& log);

// True when a process other than this one has path open (Linux: /proc/<pid>/fd, our own
// processes only, which is all that can write our files).
bool open_in_another_process(const std::string& path);

// The per-frame CSVs in dir whose name ends with suffix (e.g. "_frames.csv"), sidecars excluded,
// sorted; blocking.
std::vector<std::string> list_frame_csvs(const std::string& dir, const std::string& suffix);

// `pilogger-camera --reconcile DIR` and `pilogger-eyetracker --reconcile DIR`: reconciles every
// per-frame CSV in dir ending with suffix against video_of(csv), waiting up to wait_s for files
// still open elsewhere, and says what it did on out. Exit status: 0 when every pair matches now,
// 1 otherwise.
int reconcile_folder(const std::string& dir, const std::string& suffix,
                     const std::function<std::string(const std::string&)>& video_of, std::ostream& out, int wait_s);

}  // namespace pilogger
