// SIGTERM, SIGINT and SIGHUP close the window like File > Quit, without asking (the recording
// goes on). A signal handler may only write to a pipe; the event loop reads the other end.
#pragma once

#include <QObject>

#include <functional>

namespace pilogger::gui {

// Calls on_signal on the GUI thread when one of the signals arrives. Call once, after the
// QApplication exists.
void closeOnTerminationSignals(QObject* context, std::function<void()> on_signal);

}  // namespace pilogger::gui
