#include "app_options.hpp"

#include <QCommandLineParser>
#include <QFileInfo>
#include <QRegularExpression>

namespace pilogger::gui {

GuiOptions parseOptions(const QStringList& arguments, QString* error) {
    QCommandLineParser p;
    p.setApplicationDescription(QStringLiteral(
        "pilogger-gui: the desktop window of pilogger. It connects to the running supervisor, or starts one "
        "with --config when none runs. Closing it never stops a recording."));
    p.addHelpOption();
    p.addVersionOption();
    QCommandLineOption config({QStringLiteral("c"), QStringLiteral("config")},
                              QStringLiteral("Config file to start a supervisor with when none runs."), QStringLiteral("FILE"));
    QCommandLineOption no_start(QStringLiteral("no-start"), QStringLiteral("Never start a supervisor at launch."));
    QCommandLineOption socket(QStringLiteral("socket"), QStringLiteral("Control socket path (default: the one pilogger uses)."),
                              QStringLiteral("PATH"));
    QCommandLineOption size(QStringLiteral("size"), QStringLiteral("Window size, e.g. 800x480."), QStringLiteral("WxH"));
    QCommandLineOption shot(QStringLiteral("screenshot"), QStringLiteral("Save the window as a PNG, then quit."),
                            QStringLiteral("FILE"));
    QCommandLineOption shot_after(QStringLiteral("screenshot-after"), QStringLiteral("Seconds before the screenshot (3)."),
                                  QStringLiteral("SECONDS"));
    QCommandLineOption quit_after(QStringLiteral("quit-after"), QStringLiteral("Quit after SECONDS (benchmarks)."),
                                  QStringLiteral("SECONDS"));
    QCommandLineOption trace(QStringLiteral("trace-latency"),
                             QStringLiteral("Append when each event reached the screen to FILE (JSON lines)."),
                             QStringLiteral("FILE"));
    QCommandLineOption watch(QStringLiteral("watch-event-loop"),
                             QStringLiteral("Measure event-loop gaps; print the longest on exit."));
    p.addOptions({config, no_start, socket, size, shot, shot_after, quit_after, trace, watch});
    p.process(arguments);  // --help and --version print and exit here

    GuiOptions o;
    o.socket_path = p.value(socket);
    if (p.isSet(config)) o.config_file = QFileInfo(p.value(config)).absoluteFilePath();
    o.start_supervisor = !p.isSet(no_start);
    if (p.isSet(size)) {
        static const QRegularExpression wxh(QStringLiteral("^(\\d+)x(\\d+)$"));
        auto m = wxh.match(p.value(size));
        if (!m.hasMatch()) {
            *error = QStringLiteral("--size wants WIDTHxHEIGHT, e.g. 800x480");
            return o;
        }
        o.window_size = QSize(m.captured(1).toInt(), m.captured(2).toInt());
    }
    o.screenshot_file = p.value(shot);
    bool ok = true;
    if (p.isSet(shot_after)) o.screenshot_after_s = p.value(shot_after).toDouble(&ok);
    if (ok && p.isSet(quit_after)) o.quit_after_s = p.value(quit_after).toDouble(&ok);
    if (!ok) *error = QStringLiteral("--screenshot-after and --quit-after want a number of seconds");
    o.trace_file = p.value(trace);
    o.watch_event_loop = p.isSet(watch);
    return o;
}

}  // namespace pilogger::gui
