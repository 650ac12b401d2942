// Where the config loader learns a module kind's settings: from the module itself.
//
// The core knows no module kind by name. For `type: camera` it asks the kind's program,
// pilogger-camera (next to pilogger, else on PATH; the `executable:` given when the kind's own
// program is absent), with `--describe`, and keeps the answer for as long as that file is
// unchanged: in memory, and in ~/.cache/pilogger/describe/ between runs.
#pragma once

#include "settings_schema.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pilogger {

class ModuleCatalog {
public:
    virtual ~ModuleCatalog() = default;
    // The kind's description, or nullptr with *why (a sentence that completes "type 'x': ").
    virtual std::shared_ptr<const ModuleKind> describe(const std::string& type, const std::string& executable,
                                                       std::string* why) = 0;
};

// Asks the module programs. Thread-safe; one spawn per build of each program.
class ProgramCatalog : public ModuleCatalog {
public:
    std::shared_ptr<const ModuleKind> describe(const std::string& type, const std::string& executable,
                                               std::string* why) override;
    // A module describing itself (its standalone mode loads the whole config): no spawn for it.
    void remember(const ModuleKind& kind);

private:
    struct Entry {
        std::string stamp;  // inode, size and mtime of the program when it answered
        std::shared_ptr<const ModuleKind> kind;
    };
    std::mutex mutex_;
    std::map<std::string, Entry> by_program_;
    std::map<std::string, std::shared_ptr<const ModuleKind>> remembered_;
};

// Descriptions given in process: unit tests and fuzzing, which link the modules' libraries.
class FixedCatalog : public ModuleCatalog {
public:
    void add(const ModuleKind& kind);
    std::shared_ptr<const ModuleKind> describe(const std::string& type, const std::string& executable,
                                               std::string* why) override;

private:
    std::map<std::string, std::shared_ptr<const ModuleKind>> kinds_;
};

// The process-wide ProgramCatalog load_config_* uses unless given another.
ProgramCatalog& program_catalog();

// The kinds of module next to pilogger, sorted: programs pilogger-<kind> that carry the module
// SDK's marker (module_runtime.cpp puts it in their --describe help), found without running them.
std::vector<std::string> kinds_next_to_pilogger();

// Runs `program --describe` (at most 10 s, 1 MiB of output) and reads its answer.
std::optional<ModuleKind> describe_program(const std::string& program, std::string* why);

}  // namespace pilogger
