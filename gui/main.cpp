// pilogger-gui: parse the command line, open the window, run the event loop.
#include "app_options.hpp"
#include "main_window.hpp"
#include "unix_signals.hpp"

#include <QApplication>

#include <cstdio>

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("pilogger"));
    QApplication::setApplicationName(QStringLiteral("pilogger-gui"));
    QApplication::setApplicationVersion(QStringLiteral(PILOGGER_VERSION));

    QString error;
    pilogger::gui::GuiOptions options = pilogger::gui::parseOptions(QApplication::arguments(), &error);
    if (!error.isEmpty()) {
        std::fprintf(stderr, "pilogger-gui: %s\n", qPrintable(error));
        return 2;
    }
    pilogger::gui::MainWindow window(options);
    pilogger::gui::closeOnTerminationSignals(&window, [&window] { window.quitWithoutAsking(); });
    window.show();
    return QApplication::exec();
}
