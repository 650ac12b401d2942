// pilogger-gui's command line.
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>

namespace pilogger::gui {

struct GuiOptions {
    QString socket_path;           // empty: the control socket every pilogger command uses
    QString config_file;           // a supervisor is started with it when none runs
    bool start_supervisor = true;  // with --config: start one at launch if none answers
    QSize window_size;             // empty: the remembered geometry
    QString screenshot_file;       // save the window as PNG, then quit
    double screenshot_after_s = 3;
    double quit_after_s = 0;       // > 0: quit by itself (benchmarks)
    QString trace_file;            // latency trace (see latency_trace.hpp)
    bool watch_event_loop = false; // measure event-loop gaps, print the longest at exit
};

// Throws nothing: on a bad command line, error says why (and --help/--version exit in Qt).
GuiOptions parseOptions(const QStringList& arguments, QString* error);

}  // namespace pilogger::gui
