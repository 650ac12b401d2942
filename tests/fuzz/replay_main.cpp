// Replays fuzz inputs without libFuzzer: the gcc build links every fuzz target against this
// main, and ctest runs fuzz.<target> over its checked-in corpus and regressions.
//
//   fuzz_<target> [--timeout=SECONDS] PATH...
//
// PATH is a file or a folder (every regular file below it, in name order); a PATH that does not
// exist is skipped with a note. The empty input runs first, as libFuzzer does. Each input is
// printed before it runs, so a crash names its file. Fails (exit 1) on an exception escaping
// LLVMFuzzerTestOneInput, on a nonzero return, and on an input running past the timeout; a
// crash fails by its signal.
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

namespace fs = std::filesystem;

char g_current[4096] = "(empty input)";

void on_alarm(int) {
    // Only async-signal-safe calls here.
    const char head[] = "\nFAILED: timeout (hang?) in ";
    ssize_t ignored = ::write(STDERR_FILENO, head, sizeof head - 1);
    ignored = ::write(STDERR_FILENO, g_current, std::strlen(g_current));
    ignored = ::write(STDERR_FILENO, "\n", 1);
    (void)ignored;
    ::_exit(1);
}

bool run_one(const std::string& name, const std::vector<uint8_t>& bytes, unsigned timeout_s) {
    std::snprintf(g_current, sizeof g_current, "%s", name.c_str());
    std::printf("fuzz replay: %s (%zu bytes)\n", name.c_str(), bytes.size());
    std::fflush(stdout);
    ::alarm(timeout_s);
    int rc = 0;
    try {
        // A copy of exactly the input's size, so ASan (when built with it) sees over-reads.
        std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() + 1]);
        if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
        rc = LLVMFuzzerTestOneInput(bytes.empty() ? nullptr : copy.get(), bytes.size());
    } catch (const std::exception& e) {
        ::alarm(0);
        std::fprintf(stderr, "FAILED: %s: exception escaped: %s\n", name.c_str(), e.what());
        return false;
    } catch (...) {
        ::alarm(0);
        std::fprintf(stderr, "FAILED: %s: a non-std exception escaped\n", name.c_str());
        return false;
    }
    ::alarm(0);
    if (rc != 0) {
        std::fprintf(stderr, "FAILED: %s: LLVMFuzzerTestOneInput returned %d\n", name.c_str(), rc);
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    unsigned timeout_s = 10;
    std::vector<fs::path> files;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg.rfind("--timeout=", 0) == 0) {
            timeout_s = static_cast<unsigned>(std::strtoul(arg.c_str() + 10, nullptr, 10));
            continue;
        }
        std::error_code ec;
        if (fs::is_directory(arg, ec)) {
            std::vector<fs::path> found;
            for (const auto& entry : fs::recursive_directory_iterator(arg, ec)) {
                if (entry.is_regular_file()) found.push_back(entry.path());
            }
            std::sort(found.begin(), found.end());
            files.insert(files.end(), found.begin(), found.end());
        } else if (fs::is_regular_file(arg, ec)) {
            files.emplace_back(arg);
        } else {
            std::printf("fuzz replay: %s does not exist, skipped\n", arg.c_str());
        }
    }
    std::signal(SIGALRM, on_alarm);

    size_t runs = 0;
    if (!run_one("(empty input)", {}, timeout_s)) return 1;
    ++runs;
    for (const auto& path : files) {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "FAILED: cannot read %s\n", path.c_str());
            return 1;
        }
        std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!run_one(path.string(), bytes, timeout_s)) return 1;
        ++runs;
    }
    std::printf("fuzz replay: %zu inputs, all passed\n", runs);
    return 0;
}
