#include "output_file.hpp"

#include "clock.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pilogger::media {

int OutputFile::open_new(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    return fd >= 0 ? fd : -errno;
}

void OutputFile::throw_create_error(const std::string& path, int error) {
    if (error == EEXIST) throw std::runtime_error(path + " already exists; pilogger never overwrites a recording");
    throw std::runtime_error("cannot create " + path + ": " + std::strerror(error));
}

OutputFile::OutputFile(std::string path, Opened opened)
    : path_(std::move(path)), fd_(opened.fd), last_sync_ns_(mono_ns()) {}

OutputFile::OutputFile(std::string path) : path_(std::move(path)), last_sync_ns_(mono_ns()) {
    fd_ = open_new(path_);
    if (fd_ < 0) throw_create_error(path_, -fd_);
}

std::unique_ptr<OutputFile> OutputFile::create_if_free(const std::string& path) {
    int fd = open_new(path);
    if (fd == -EEXIST) return nullptr;
    if (fd < 0) throw_create_error(path, -fd);
    return std::unique_ptr<OutputFile>(new OutputFile(path, Opened{fd}));
}

OutputFile::~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
}

int OutputFile::try_write(const void* data, size_t size) noexcept {
    const auto* bytes = static_cast<const uint8_t*>(data);
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::write(fd_, bytes + done, size - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        done += static_cast<size_t>(n);
        bytes_ += static_cast<size_t>(n);
        dirty_ = true;
    }
    return 0;
}

void OutputFile::write(const void* data, size_t size) {
    if (int e = try_write(data, size); e != 0) {
        throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(e));
    }
}

void OutputFile::sync_if_due(int64_t now_ns, int64_t interval_ns) {
    if (dirty_ && now_ns - last_sync_ns_ >= interval_ns) sync();
}

void OutputFile::sync() {
    if (fd_ < 0) return;
    if (::fdatasync(fd_) < 0) throw std::runtime_error(path_ + ": fdatasync failed: " + std::strerror(errno));
    dirty_ = false;
    last_sync_ns_ = mono_ns();
}

void OutputFile::close() {
    if (fd_ < 0) return;
    sync();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) < 0) throw std::runtime_error("cannot finish " + path_ + ": " + std::strerror(errno));
}

void remove_unused_file(const std::string& path) noexcept {
    ::unlink(path.c_str());
}

}  // namespace pilogger::media
