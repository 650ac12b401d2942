#include "reconcile.hpp"

#include "av_util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <fstream>
#include <ostream>
#include <sstream>
#include <thread>

namespace pilogger {

namespace {

std::string errno_text(const std::string& what, const std::string& path, int error) {
    return what + " " + path + ": " + std::strerror(error);
}

bool read_whole(const std::string& path, std::string* out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream text;
    text << in.rdbuf();
    *out = text.str();
    return !in.bad();
}

// Creates path with content (never over an existing file) and fsyncs it; "" or the error.
std::string write_new_synced(const std::string& path, const std::string& content) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return errno_text("cannot create", path, errno);
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            ::close(fd);
            return errno_text("cannot write", path, e);
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        const int e = errno;
        ::close(fd);
        return errno_text("cannot fsync", path, e);
    }
    ::close(fd);
    return {};
}

std::string cut_synced(const std::string& path, uint64_t size) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno_text("cannot open", path, errno);
    std::string error;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
        error = errno_text("cannot cut", path, errno);
    } else if (::fsync(fd) != 0) {
        error = errno_text("cannot fsync", path, errno);
    }
    ::close(fd);
    return error;
}

void sync_folder_of(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    const std::string folder = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
    int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

std::string base_name(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::optional<uint64_t> count_mp4_frames(const std::string& path, std::string* error) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (error != nullptr) *error = errno_text("cannot read", path, errno);
        return std::nullopt;
    }
    AVFormatContext* raw = nullptr;
    const int rc = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
    if (rc < 0) {
        // No header that parses (the process died before it was written whole): no frame.
        if (rc == AVERROR_INVALIDDATA || rc == AVERROR_EOF) return 0;
        if (error != nullptr) *error = "cannot read " + path + ": " + av_error_text(rc);
        return std::nullopt;
    }
    std::unique_ptr<AVFormatContext, void (*)(AVFormatContext*)> format(raw, [](AVFormatContext* f) {
        avformat_close_input(&f);
    });
    AVStream* video = nullptr;
    for (unsigned i = 0; i < format->nb_streams; ++i) {
        if (format->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && video == nullptr) {
            video = format->streams[i];
        } else {
            format->streams[i]->discard = AVDISCARD_ALL;
        }
    }
    if (video == nullptr) return 0;
    // Walk every fragment's index without reading the frames themselves (fast on a long file).
    video->discard = AVDISCARD_ALL;
    AvPacketPtr packet(av_packet_alloc());
    if (!packet) {
        if (error != nullptr) *error = "out of memory reading " + path;
        return std::nullopt;
    }
    while (av_read_frame(format.get(), packet.get()) >= 0) av_packet_unref(packet.get());
    // The file as it is now (it is not written any more: the caller made sure).
    if (::stat(path.c_str(), &st) != 0) {
        if (error != nullptr) *error = errno_text("cannot read", path, errno);
        return std::nullopt;
    }
    const int entries = avformat_index_get_entries_count(video);
    uint64_t whole = 0;
    for (int i = 0; i < entries; ++i) {
        const AVIndexEntry* e = avformat_index_get_entry(video, i);
        if (e == nullptr || e->pos < 0 || e->pos + e->size > st.st_size) break;
        ++whole;
    }
    return whole;
}

std::string unwritten_sidecar_path(const std::string& csv_path) {
    const std::string ext = ".csv";
    if (csv_path.size() >= ext.size() && csv_path.compare(csv_path.size() - ext.size(), ext.size(), ext) == 0) {
        return csv_path.substr(0, csv_path.size() - ext.size()) + "_unwritten.csv";
    }
    return csv_path + "_unwritten.csv";
}

bool open_in_another_process(const std::string& path) {
    struct stat target {};
    if (::stat(path.c_str(), &target) != 0) return false;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return false;
    const std::string self = std::to_string(::getpid());
    bool found = false;
    while (!found) {
        const dirent* entry = ::readdir(proc);
        if (entry == nullptr) break;
        const std::string pid = entry->d_name;
        if (pid.empty() || !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            pid == self) {
            continue;
        }
        const std::string fd_dir = "/proc/" + pid + "/fd";
        DIR* fds = ::opendir(fd_dir.c_str());
        if (fds == nullptr) continue;  // gone, or not ours
        while (const dirent* fd = ::readdir(fds)) {
            if (fd->d_name[0] == '.') continue;
            struct stat st {};
            if (::stat((fd_dir + "/" + fd->d_name).c_str(), &st) == 0 && st.st_dev == target.st_dev &&
                st.st_ino == target.st_ino) {
                found = true;
                break;
            }
        }
        ::closedir(fds);
    }
    ::closedir(proc);
    return found;
}

std::vector<std::string> list_frame_csvs(const std::string& dir, const std::string& suffix) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (const dirent* entry = ::readdir(d)) {
        const std::string name = entry->d_name;
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
            out.push_back(dir + "/" + name);
        }
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

ReconcileResult reconcile_frames_csv(const std::string& mp4_path, const std::string& csv_path) {
    using Outcome = ReconcileResult::Outcome;
    ReconcileResult r;
    auto failed = [&r](std::string message) {
        r.outcome = Outcome::Failed;
        r.message = std::move(message);
        return r;
    };
    struct stat st {};
    if (::stat(csv_path.c_str(), &st) != 0) return r;  // no CSV: nothing to match
    if (open_in_another_process(csv_path) || open_in_another_process(mp4_path)) {
        r.outcome = Outcome::Busy;
        r.message = mp4_path + " or " + csv_path + " is still open in another process";
        return r;
    }
    std::string text;
    if (!read_whole(csv_path, &text)) return failed(errno_text("cannot read", csv_path, errno));
    const size_t header_end = text.find('\n');
    if (header_end == std::string::npos) {
        if (text.empty()) return r;
        return failed(csv_path + " has no whole header line; left as it is");
    }
    // Where each row starts; a last line without its newline is a row torn by the crash.
    std::vector<size_t> starts;
    for (size_t at = header_end + 1; at < text.size();) {
        starts.push_back(at);
        const size_t nl = text.find('\n', at);
        at = nl == std::string::npos ? text.size() : nl + 1;
    }
    const bool torn = !starts.empty() && text.back() != '\n';
    const uint64_t whole_rows = starts.size() - (torn ? 1 : 0);
    r.rows = starts.size();

    if (::stat(mp4_path.c_str(), &st) == 0) {
        std::string error;
        std::optional<uint64_t> frames = count_mp4_frames(mp4_path, &error);
        if (!frames) return failed(error + "; " + base_name(csv_path) + " left as it is");
        r.frames = *frames;
    }
    if (whole_rows == r.frames && !torn) return r;
    if (whole_rows < r.frames) {
        r.outcome = Outcome::RowsMissing;
        r.message = csv_path + ": " + std::to_string(whole_rows) + " rows for the " + std::to_string(r.frames) +
                    " frames " + base_name(mp4_path) + " holds; the last " + std::to_string(r.frames - whole_rows) +
                    " frames have no row (nothing can be mended)";
        return r;
    }
    const size_t cut = starts[static_cast<size_t>(r.frames)];
    std::string moved = text.substr(0, header_end + 1) + text.substr(cut);
    if (moved.back() != '\n') moved.push_back('\n');
    r.moved = starts.size() - static_cast<size_t>(r.frames);
    r.sidecar = unwritten_sidecar_path(csv_path);
    std::string existing;
    if (::stat(r.sidecar.c_str(), &st) == 0) {
        // A reconcile that stopped between the two steps left it: the same rows, or not ours.
        if (!read_whole(r.sidecar, &existing) || existing != moved) {
            return failed(r.sidecar + " exists with other rows; " + base_name(csv_path) + " left as it is");
        }
    } else if (std::string error = write_new_synced(r.sidecar, moved); !error.empty()) {
        return failed(error + "; " + base_name(csv_path) + " left as it is");
    }
    if (std::string error = cut_synced(csv_path, cut); !error.empty()) return failed(error);
    sync_folder_of(csv_path);
    r.outcome = Outcome::Moved;
    r.message = csv_path + ": " + std::to_string(r.rows) + " rows for the " + std::to_string(r.frames) + " frames " +
                base_name(mp4_path) + " holds (the process ended before the rest reached the video); the " +
                std::to_string(r.moved) + " rows beyond it moved to " + base_name(r.sidecar);
    return r;
}

int reconcile_folder(const std::string& dir, const std::string& suffix,
                     const std::function<std::string(const std::string&)>& video_of, std::ostream& out, int wait_s) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        out << dir << ": not a folder\n";
        return 1;
    }
    std::vector<std::string> left = list_frame_csvs(dir, suffix);
    if (left.empty()) out << dir << ": no *" << suffix << " here\n";
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
    while (!left.empty()) {
        std::vector<std::string> busy;
        for (const std::string& csv : left) {
            const ReconcileResult r = reconcile_frames_csv(video_of(csv), csv);
            switch (r.outcome) {
                case ReconcileResult::Outcome::Matched:
                    out << csv << ": " << r.rows << " rows = the " << r.frames << " frames of " << video_of(csv) << "\n";
                    break;
                case ReconcileResult::Outcome::Moved:
                    out << r.message << "\n";
                    break;
                case ReconcileResult::Outcome::Busy:
                    busy.push_back(csv);
                    break;
                case ReconcileResult::Outcome::RowsMissing:
                case ReconcileResult::Outcome::Failed:
                    out << r.message << "\n";
                    status = 1;
                    break;
            }
        }
        if (busy.empty()) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            for (const std::string& csv : busy) out << csv << ": " << video_of(csv) << " is still open in another process; left as it is\n";
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        left = std::move(busy);
    }
    return status;
}

std::vector<std::string> report_reconciled(const std::vector<std::string>& csv_paths,
                                           const std::vector<ReconcileResult>& results, uint64_t& rows_moved,
                                           const std::function<void(bool is_error, const std::string& message)>& log) {
    std::vector<std::string> busy;
    for (size_t i = 0; i < results.size() && i < csv_paths.size(); ++i) {
        const ReconcileResult& r = results[i];
        switch (r.outcome) {
            case ReconcileResult::Outcome::Matched:
                break;
            case ReconcileResult::Outcome::Moved:
                rows_moved += r.moved;
                log(false, r.message);
                break;
            case ReconcileResult::Outcome::Busy:
                busy.push_back(csv_paths[i]);
                break;
            case ReconcileResult::Outcome::RowsMissing:
            case ReconcileResult::Outcome::Failed:
                log(true, r.message);
                break;
        }
    }
    return busy;
}

}  // namespace pilogger
