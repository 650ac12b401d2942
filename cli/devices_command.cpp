// `pilogger devices`: the cameras libcamera sees, with their modes. The camera module does the
// listing (`pilogger-camera --list-devices`), so pilogger itself never links libcamera.
#include "commands.hpp"
#include "paths.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace pilogger::cli {

int devices(bool as_json) {
    const std::string exe = find_module_executable("camera");
    std::vector<std::string> args{exe, "--list-devices"};
    if (as_json) args.push_back("--json");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    // Next to pilogger (a path) or, installed elsewhere, found on PATH.
    if (exe.find('/') != std::string::npos) {
        execv(exe.c_str(), argv.data());
    } else {
        execvp(exe.c_str(), argv.data());
    }
    std::cerr << "pilogger devices: cannot run " << exe << ": " << std::strerror(errno)
              << " (the camera module, pilogger-camera, belongs next to pilogger)\n";
    return 1;
}

}  // namespace pilogger::cli
