#include "notes_module.hpp"

int main(int argc, char** argv) {
    return pilogger::run_module(argc, argv, pilogger::notes_kind(), "pilogger notes module: timestamped notes into notes/notes.csv",
                                [](pilogger::ModuleRuntime& rt) { return std::make_unique<pilogger::NotesModule>(rt); });
}
