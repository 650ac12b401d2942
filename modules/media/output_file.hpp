// A recording file written with blocking calls from a worker thread (the camera's encoder and
// snapshot writer, the scene writer): created new (never an existing file), written in full, synced,
// closed. Every error names the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pilogger::media {

class OutputFile {
public:
    // O_EXCL: throws "<path> already exists; pilogger never overwrites a recording" or
    // "cannot create <path>: <reason>".
    explicit OutputFile(std::string path);
    // Null when the name is taken (the caller picks another); other errors throw as above.
    static std::unique_ptr<OutputFile> create_if_free(const std::string& path);
    // Without close(): the file keeps what was written.
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    // For C callbacks that must not throw: 0, or the errno of the failed write.
    int try_write(const void* data, size_t size) noexcept;
    void write(const void* data, size_t size);
    void write(const std::string& text) { write(text.data(), text.size()); }
    // fdatasync when something was written since the last sync and that sync is interval_ns old.
    void sync_if_due(int64_t now_ns, int64_t interval_ns);
    void sync();
    void close();

    int fd() const { return fd_; }
    const std::string& path() const { return path_; }
    uint64_t bytes_written() const { return bytes_; }

private:
    struct Opened {
        int fd;
    };
    OutputFile(std::string path, Opened opened);
    // The new file's descriptor, or -errno.
    static int open_new(const std::string& path);
    [[noreturn]] static void throw_create_error(const std::string& path, int error);

    std::string path_;
    int fd_ = -1;
    uint64_t bytes_ = 0;
    bool dirty_ = false;
    int64_t last_sync_ns_ = 0;
};

// Removes a file this process just created and could not use (best effort, never throws).
void remove_unused_file(const std::string& path) noexcept;

}  // namespace pilogger::media
