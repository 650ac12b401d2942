#include "preview_source.hpp"

#include "clock.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>

namespace pilogger::gui {

namespace {

constexpr char kMagic[8] = {'P', 'I', 'L', 'O', 'G', 'P', 'V', '\0'};
constexpr size_t kHeaderBytes = 64;
constexpr size_t kGazeHeaderBytes = 80;
constexpr uint32_t kRgb24 = 1;
constexpr uint32_t kGray8 = 2;
// A missing object is looked for again this often, not on every poll.
constexpr int64_t kRetryNs = 1'000'000'000;
// No new frame for this long: the writer may have been replaced by a new object of the same name.
constexpr int64_t kStaleNs = 2'000'000'000;

template <typename T>
T field(const uint8_t* base, size_t offset) {
    T v;
    std::memcpy(&v, base + offset, sizeof v);
    return v;
}

uint64_t loadSequence(const uint8_t* base) {
    // The writer updates it with atomic stores; read it the same way (a plain load on the CPU).
    return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(const_cast<uint8_t*>(base) + 32))
        .load(std::memory_order_acquire);
}

}  // namespace

ShmPreviewSource::ShmPreviewSource(std::string shm_name) : name_(std::move(shm_name)) {}

ShmPreviewSource::~ShmPreviewSource() { close(); }

std::string ShmPreviewSource::defaultName(const std::string& module) {
    return "/pilogger-" + std::to_string(getuid()) + "-" + module + "-preview";
}

bool ShmPreviewSource::open() {
    const int64_t now = mono_ns();
    if (last_check_ns_ != 0 && now - last_check_ns_ < kRetryNs) return false;
    last_check_ns_ = now;
    int fd = shm_open(name_.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        problem_ = QStringLiteral("no preview yet (%1: %2)").arg(describe(), QString::fromLocal8Bit(std::strerror(errno)));
        return false;
    }
    struct stat st {};
    if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kHeaderBytes)) {
        ::close(fd);
        problem_ = QStringLiteral("the preview %1 is not ready").arg(describe());
        return false;
    }
    void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        problem_ = QStringLiteral("cannot map %1: %2").arg(describe(), QString::fromLocal8Bit(std::strerror(errno)));
        ::close(fd);
        return false;
    }
    fd_ = fd;
    map_ = static_cast<const uint8_t*>(map);
    map_bytes_ = static_cast<size_t>(st.st_size);
    inode_ = static_cast<uint64_t>(st.st_ino);
    writer_pid_ = 0;
    last_sequence_ = UINT64_MAX;
    last_change_ns_ = now;
    problem_.clear();
    return true;
}

void ShmPreviewSource::close() {
    if (map_ != nullptr) munmap(const_cast<uint8_t*>(map_), map_bytes_);
    if (fd_ >= 0) ::close(fd_);
    map_ = nullptr;
    fd_ = -1;
    map_bytes_ = 0;
}

bool ShmPreviewSource::replacedUnderUs() {
    // A restarted module may unlink the old object and make a new one under the same name; the
    // old mapping then never changes again.
    const int64_t now = mono_ns();
    if (now - last_change_ns_ < kStaleNs || now - last_check_ns_ < kRetryNs) return false;
    last_check_ns_ = now;
    int fd = shm_open(name_.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return true;
    struct stat st {};
    const bool other = fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_ino) != inode_ ||
                       static_cast<size_t>(st.st_size) != map_bytes_;
    ::close(fd);
    return other;
}

ShmPreviewSource::Poll ShmPreviewSource::poll(PreviewFrame& out) {
    if (map_ == nullptr && !open()) return Poll::Unavailable;

    const uint64_t before = loadSequence(map_);
    if (before == last_sequence_ || (before & 1) != 0) {
        if (replacedUnderUs()) {
            close();
            last_check_ns_ = 0;  // look for the new object on the next poll
        }
        return Poll::NoChange;
    }

    // The object may have been resized by a new writer: never read past its end.
    struct stat st {};
    if (fstat(fd_, &st) != 0 || static_cast<size_t>(st.st_size) < map_bytes_) {
        close();
        last_check_ns_ = 0;
        return Poll::NoChange;
    }

    if (std::memcmp(map_, kMagic, sizeof kMagic) != 0) {
        problem_ = QStringLiteral("%1 is not a pilogger preview").arg(describe());
        return Poll::NoChange;
    }
    const auto header_bytes = field<uint32_t>(map_, 12);
    const auto width = field<uint32_t>(map_, 16);
    const auto height = field<uint32_t>(map_, 20);
    const auto stride = field<uint32_t>(map_, 24);
    const auto format = field<uint32_t>(map_, 28);
    const auto frame_mono_ns = field<int64_t>(map_, 40);
    const auto frame_index = field<uint64_t>(map_, 48);
    const auto writer_pid = field<uint32_t>(map_, 56);
    const uint32_t bytes_per_pixel = format == kRgb24 ? 3 : 1;
    const size_t needed = static_cast<size_t>(header_bytes) + static_cast<size_t>(stride) * height;
    // A restarted module reuses the object (and may resize it): map it again when the writer changed.
    if (writer_pid_ != 0 && writer_pid != writer_pid_) {
        close();
        last_check_ns_ = 0;
        return Poll::NoChange;
    }
    writer_pid_ = writer_pid;
    if ((format != kRgb24 && format != kGray8) || header_bytes < kHeaderBytes || width == 0 || height == 0 ||
        width > 8192 || height > 8192 || stride < width * bytes_per_pixel || needed > map_bytes_) {
        problem_ = QStringLiteral("%1 has a layout this GUI does not know").arg(describe());
        return Poll::NoChange;
    }
    if (frame_mono_ns == 0) return Poll::NoChange;  // made, but no frame in it yet

    QImage image(static_cast<int>(width), static_cast<int>(height),
                 format == kRgb24 ? QImage::Format_RGB888 : QImage::Format_Grayscale8);
    const uint8_t* pixels = map_ + header_bytes;
    const size_t row_bytes = static_cast<size_t>(width) * bytes_per_pixel;
    for (uint32_t y = 0; y < height; ++y) {
        std::memcpy(image.scanLine(static_cast<int>(y)), pixels + static_cast<size_t>(y) * stride, row_bytes);
    }
    std::optional<QPointF> gaze;
    if (header_bytes >= kGazeHeaderBytes) {
        const auto gx = field<float>(map_, 64);
        const auto gy = field<float>(map_, 68);
        const auto gaze_ns = field<int64_t>(map_, 72);
        if (gaze_ns != 0 && std::isfinite(gx) && std::isfinite(gy)) gaze = QPointF(gx, gy);
    }

    std::atomic_thread_fence(std::memory_order_acquire);
    if (loadSequence(map_) != before) return Poll::NoChange;  // written meanwhile: next poll

    last_sequence_ = before;
    last_change_ns_ = mono_ns();
    out.image = std::move(image);
    out.mono_ns = frame_mono_ns;
    out.index = frame_index;
    out.published = before / 2;
    out.gaze = gaze;
    return Poll::NewFrame;
}

}  // namespace pilogger::gui
