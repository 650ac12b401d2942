#include "preview_shm.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

namespace pilogger {

namespace {

std::atomic_ref<uint64_t> sequence_of(uint8_t* map) {
    return std::atomic_ref<uint64_t>(reinterpret_cast<PreviewHeader*>(map)->sequence);
}

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
        if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
        const auto pid = static_cast<pid_t>(std::stol(digits));
        if (pid != getpid() && kill(pid, 0) < 0 && errno == ESRCH) shm_unlink(("/" + file).c_str());
    }
    closedir(dir);
}

}  // namespace

std::string preview_default_name(const std::string& module) {
    return "/pilogger-" + std::to_string(getuid()) + "-" + module + "-preview";
}

int PreviewShm::open_shared_memory() {
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

PreviewShm::PreviewShm(std::string shm_name, uint32_t width, uint32_t height, uint32_t format, uint32_t header_bytes)
    : name_(std::move(shm_name)), header_bytes_(header_bytes) {
    if (header_bytes_ != kPreviewHeaderBytes && header_bytes_ != kPreviewGazeHeaderBytes) {
        throw std::invalid_argument("preview " + name_ + ": header_bytes must be 64 or 80");
    }
    if (format != kPreviewRgb24 && format != kPreviewGray8) {
        throw std::invalid_argument("preview " + name_ + ": unknown pixel format " + std::to_string(format));
    }
    stride_ = width * (format == kPreviewGray8 ? 1u : 3u);
    frame_bytes_ = static_cast<size_t>(stride_) * height;
    map_bytes_ = header_bytes_ + frame_bytes_;

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

    // A restarted module reuses the object a killed one left: keep its counter moving forward so a
    // reader never mistakes a new frame for the old one.
    auto* h = reinterpret_cast<PreviewHeader*>(map_);
    uint64_t sequence = std::memcmp(h->magic, kPreviewMagic, sizeof kPreviewMagic) == 0
                            ? (sequence_of(map_).load() + 2) & ~uint64_t{1}
                            : 0;
    sequence_of(map_).store(sequence | 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(h->magic, kPreviewMagic, sizeof kPreviewMagic);
    h->version = kPreviewVersion;
    h->header_bytes = header_bytes_;
    h->width = width;
    h->height = height;
    h->stride = stride_;
    h->format = format;
    h->frame_mono_ns = 0;
    h->frame_index = 0;
    h->writer_pid = static_cast<uint32_t>(getpid());
    h->frame_bytes = static_cast<uint32_t>(frame_bytes_);
    std::memset(map_ + sizeof(PreviewHeader), 0, map_bytes_ - sizeof(PreviewHeader));
    sequence_of(map_).store(sequence, std::memory_order_release);
}

PreviewShm::~PreviewShm() {
    munmap(map_, map_bytes_);
    shm_unlink(name_.c_str());
}

void PreviewShm::publish(const uint8_t* pixels, int64_t frame_mono_ns, uint64_t frame_index, const PreviewGaze* gaze) {
    // Seqlock write: odd, data, even. Callers hand finished pixels so the bracket stays short.
    auto* h = reinterpret_cast<PreviewHeader*>(map_);
    auto seq = sequence_of(map_);
    uint64_t s = seq.load(std::memory_order_relaxed);
    seq.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(map_ + header_bytes_, pixels, frame_bytes_);
    h->frame_mono_ns = frame_mono_ns;
    h->frame_index = frame_index;
    if (header_bytes_ >= kPreviewGazeHeaderBytes) {
        const PreviewGaze none{0.0f, 0.0f, 0};
        std::memcpy(map_ + sizeof(PreviewHeader), gaze != nullptr ? gaze : &none, sizeof(PreviewGaze));
    }
    seq.store(s + 2, std::memory_order_release);
}

bool PreviewShm::read(const std::string& shm_name, Image& out) {
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
        const size_t header_bytes = std::clamp<size_t>(out.header.header_bytes, sizeof(PreviewHeader), bytes);
        out.gaze = {};
        if (header_bytes >= kPreviewGazeHeaderBytes) std::memcpy(&out.gaze, base + sizeof(PreviewHeader), sizeof out.gaze);
        const size_t frame_bytes = std::min<size_t>(out.header.frame_bytes, bytes - header_bytes);
        out.pixels.assign(base + header_bytes, base + header_bytes + frame_bytes);
        std::atomic_thread_fence(std::memory_order_acquire);
        ok = seq.load(std::memory_order_relaxed) == before;
        out.header.sequence = before;
    }
    munmap(map, bytes);
    return ok && std::memcmp(out.header.magic, kPreviewMagic, sizeof kPreviewMagic) == 0 &&
           out.header.frame_mono_ns != 0;
}

}  // namespace pilogger
