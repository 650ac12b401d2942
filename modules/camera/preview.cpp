#include "preview.hpp"

#include "av_util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <csignal>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace pilogger::camera {

namespace {
std::atomic_ref<uint64_t> sequence_of(uint8_t* map) {
    return std::atomic_ref<uint64_t>(reinterpret_cast<PreviewHeader*>(map)->sequence);
}
}  // namespace

namespace {
// The pid of the live process (other than this one) that writes the preview object `name`, or 0.
pid_t live_writer(const std::string& name) {
    int fd = shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return 0;
    PreviewHeader header{};
    ssize_t n = pread(fd, &header, sizeof header, 0);
    ::close(fd);
    if (n != static_cast<ssize_t>(sizeof header) || std::memcmp(header.magic, kPreviewMagic, sizeof kPreviewMagic) != 0) {
        return 0;
    }
    auto pid = static_cast<pid_t>(header.writer_pid);
    if (pid <= 0 || pid == getpid()) return 0;
    return (kill(pid, 0) == 0 || errno == EPERM) ? pid : 0;
}


// Objects named <base>-<pid> whose writer died without cleaning up (kill -9) are removed.
void remove_stale_fallbacks(const std::string& base) {
    const std::string prefix = base.substr(1) + "-";  // /dev/shm names have no leading '/'
    DIR* dir = opendir("/dev/shm");
    if (dir == nullptr) return;
    while (dirent* entry = readdir(dir)) {
        std::string file = entry->d_name;
        if (file.rfind(prefix, 0) != 0) continue;
        const std::string digits = file.substr(prefix.size());
        if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
        const auto pid = static_cast<pid_t>(std::stol(digits));
        if (pid != getpid() && kill(pid, 0) < 0 && errno == ESRCH) shm_unlink(("/" + file).c_str());
    }
    closedir(dir);
}
}  // namespace

int PreviewPublisher::open_shared_memory() {
    remove_stale_fallbacks(name_);
    // Another live pilogger (same module name, same user) keeps its object: take a name of our own.
    if (pid_t other = live_writer(name_)) {
        std::string taken = name_;
        name_ += "-" + std::to_string(getpid());
        warning_ = "preview " + taken + " belongs to process " + std::to_string(other) + "; using " + name_;
    }
    // A killed predecessor's object is reused: a reader that has it open keeps working.
    int fd = shm_open(name_.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create the preview shared memory " + name_ + ": " + std::strerror(errno));
    return fd;
}

std::string PreviewPublisher::default_name(const std::string& module) {
    return "/pilogger-" + std::to_string(getuid()) + "-" + module + "-preview";
}

PreviewPublisher::PreviewPublisher(std::string shm_name, int width, int height, bool gray, double fps)
    : name_(std::move(shm_name)), width_(width), height_(height), gray_(gray) {
    period_ns_ = fps > 0 ? std::llround(1e9 / fps) : INT64_MAX;
    stride_ = static_cast<uint32_t>(width * (gray ? 1 : 3));
    const size_t frame_bytes = static_cast<size_t>(stride_) * static_cast<size_t>(height);
    map_bytes_ = sizeof(PreviewHeader) + frame_bytes;
    scratch_.resize(frame_bytes);

    int fd = open_shared_memory();
    if (ftruncate(fd, static_cast<off_t>(map_bytes_)) < 0) {
        int e = errno;
        ::close(fd);
        throw std::runtime_error("cannot size the preview shared memory " + name_ + ": " + std::strerror(e));
    }
    void* map = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    ::close(fd);
    if (map == MAP_FAILED) throw std::runtime_error("cannot map the preview shared memory " + name_ + ": " + std::strerror(e));
    map_ = static_cast<uint8_t*>(map);

    // A restarted camera reuses the object a killed one left: keep its counter moving forward so a
    // reader never mistakes a new frame for the old one.
    auto* h = reinterpret_cast<PreviewHeader*>(map_);
    uint64_t sequence = std::memcmp(h->magic, kPreviewMagic, sizeof kPreviewMagic) == 0 ? (sequence_of(map_).load() + 2) & ~uint64_t{1} : 0;
    sequence_of(map_).store(sequence | 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(h->magic, kPreviewMagic, sizeof kPreviewMagic);
    h->version = kPreviewVersion;
    h->header_bytes = sizeof(PreviewHeader);
    h->width = static_cast<uint32_t>(width);
    h->height = static_cast<uint32_t>(height);
    h->stride = stride_;
    h->format = gray ? kPreviewGray8 : kPreviewRgb24;
    h->frame_mono_ns = 0;
    h->frame_index = 0;
    h->writer_pid = static_cast<uint32_t>(getpid());
    h->frame_bytes = static_cast<uint32_t>(frame_bytes);
    std::memset(map_ + sizeof(PreviewHeader), 0, frame_bytes);
    sequence_of(map_).store(sequence, std::memory_order_release);

    thread_ = std::thread([this] { run(); });
}

PreviewPublisher::~PreviewPublisher() {
    {
        std::lock_guard lock(mutex_);
        quit_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    munmap(map_, map_bytes_);
    shm_unlink(name_.c_str());
}

void PreviewPublisher::offer(const FramePtr& frame) {
    if (frame->time_ns < next_due_ns_) return;
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || pending_) return;  // the scaler is busy: skip this one
    pending_ = frame;
    // Keep to the preview rate without drifting; after a gap, start again from this frame.
    next_due_ns_ = std::max(next_due_ns_ + period_ns_, frame->time_ns + period_ns_ / 2);
    lock.unlock();
    wake_.notify_one();
}

void PreviewPublisher::run() {
    while (true) {
        FramePtr frame;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return quit_ || pending_; });
            if (quit_) return;
            frame = pending_;
        }
        publish(*frame);
        {
            // Let the pool have the buffer back before taking the next one.
            std::lock_guard lock(mutex_);
            pending_.reset();
        }
        frame.reset();
    }
}

void PreviewPublisher::publish(const Frame& frame) {
    // Cached: rebuilt only if the camera's frame size changes.
    sws_.reset(sws_getCachedContext(sws_.release(), frame.width, frame.height, AV_PIX_FMT_YUV420P, width_, height_,
                                    gray_ ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr,
                                    nullptr));
    if (!sws_) return;
    uint8_t* dst[4] = {scratch_.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {static_cast<int>(stride_), 0, 0, 0};
    sws_scale(sws_.get(), frame.data, frame.linesize, 0, frame.height, dst, dst_stride);

    // Seqlock write: odd, data, even. The copy is short (scaled in scratch first).
    auto* h = reinterpret_cast<PreviewHeader*>(map_);
    auto seq = sequence_of(map_);
    uint64_t s = seq.load(std::memory_order_relaxed);
    seq.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(map_ + sizeof(PreviewHeader), scratch_.data(), scratch_.size());
    h->frame_mono_ns = frame.time_ns;
    h->frame_index = frame.sequence;
    seq.store(s + 2, std::memory_order_release);
    ++published_;
}

bool PreviewPublisher::read(const std::string& shm_name, Image& out) {
    int fd = shm_open(shm_name.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return false;
    struct stat st {};
    if (fstat(fd, &st) < 0 || st.st_size < static_cast<off_t>(sizeof(PreviewHeader))) {
        ::close(fd);
        return false;
    }
    const auto bytes = static_cast<size_t>(st.st_size);
    void* map = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) return false;
    auto* base = static_cast<uint8_t*>(map);
    bool ok = false;
    auto seq = sequence_of(base);
    for (int attempt = 0; attempt < 1000 && !ok; ++attempt) {
        uint64_t before = seq.load(std::memory_order_acquire);
        if (before & 1) continue;
        std::memcpy(&out.header, base, sizeof(PreviewHeader));
        size_t frame_bytes = std::min<size_t>(out.header.frame_bytes, bytes - sizeof(PreviewHeader));
        out.pixels.assign(base + sizeof(PreviewHeader), base + sizeof(PreviewHeader) + frame_bytes);
        std::atomic_thread_fence(std::memory_order_acquire);
        ok = seq.load(std::memory_order_relaxed) == before;
        out.header.sequence = before;
    }
    munmap(map, bytes);
    return ok && std::memcmp(out.header.magic, kPreviewMagic, sizeof kPreviewMagic) == 0 &&
           out.header.frame_mono_ns != 0;
}

}  // namespace pilogger::camera
