// What the end-to-end GUI tests share: a private folder per test with its own XDG_RUNTIME_DIR
// (so its control socket never meets another test's supervisor), a data folder, and
// config/demo.yaml with data_dir pointed into it.
#pragma once

#include "control_client.hpp"

#include <QDir>
#include <QFile>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include <sys/stat.h>

#include <optional>

namespace gui_test {

inline QString bin(const QString& name) { return QStringLiteral(PILOGGER_BIN_DIR "/") + name; }

struct Rig {
    QTemporaryDir tmp;  // under the temp folder, named after the test executable
    QString runtime;
    QString data;
    QString config;
    QString socket;

    // Returns an empty string, or what went wrong.
    QString make() {
        if (!tmp.isValid()) return QStringLiteral("no temporary folder");
        runtime = tmp.filePath(QStringLiteral("run"));
        data = tmp.filePath(QStringLiteral("data"));
        config = tmp.filePath(QStringLiteral("demo.yaml"));
        socket = runtime + QStringLiteral("/pilogger/control.sock");
        if (::mkdir(runtime.toUtf8().constData(), 0700) != 0) return QStringLiteral("cannot make ") + runtime;
        QFile demo(QStringLiteral(PILOGGER_SOURCE_DIR "/config/demo.yaml"));
        if (!demo.open(QIODevice::ReadOnly)) return QStringLiteral("cannot read config/demo.yaml");
        QString text = QString::fromUtf8(demo.readAll());
        static const QRegularExpression data_dir(QStringLiteral("^data_dir:.*$"), QRegularExpression::MultilineOption);
        text.replace(data_dir, QStringLiteral("data_dir: ") + data);
        QFile out(config);
        if (!out.open(QIODevice::WriteOnly) || out.write(text.toUtf8()) < 0) return QStringLiteral("cannot write ") + config;
        return {};
    }

    // The supervisor's status, or nothing when none answers (blocking, for the test's own checks).
    std::optional<pilogger::json> status() const {
        try {
            pilogger::ControlClient client(socket.toStdString());
            return client.request("status", pilogger::json::object(), std::chrono::seconds(10));
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }

    pilogger::json request(const std::string& cmd, const pilogger::json& args = pilogger::json::object()) const {
        pilogger::ControlClient client(socket.toStdString());
        return client.request(cmd, args, std::chrono::seconds(30));
    }

    // Control-socket clients the supervisor counts (this request's own included); -1: no answer.
    int64_t controlClients() const {
        const auto s = status();
        return s ? (*s)["control"].value("clients", int64_t{-1}) : -1;
    }

    QString sessionDir() const {
        const QStringList sessions = QDir(data).entryList({QStringLiteral("session_*")}, QDir::Dirs, QDir::Name);
        return sessions.isEmpty() ? QString() : data + QLatin1Char('/') + sessions.last();
    }
};

// Every enabled module of the status is in `state`.
inline bool allModules(const pilogger::json& status, const std::string& state) {
    const auto& modules = status.at("modules");
    if (modules.empty()) return false;
    for (const auto& m : modules) {
        if (m.value("enabled", true) && m.value("state", std::string()) != state) return false;
    }
    return true;
}

// Rows of a CSV file as Python's csv module reads them (the reader researchers use).
inline pilogger::json readCsvWithPython(const QString& path) {
    QProcess py;
    py.start(QStringLiteral(PYTHON3),
             {QStringLiteral("-c"),
              QStringLiteral("import csv, json, sys; print(json.dumps(list(csv.DictReader(open(sys.argv[1], newline='', encoding='utf-8')))))"),
              path});
    if (!py.waitForFinished(30000) || py.exitCode() != 0) return pilogger::json::array();
    return pilogger::json::parse(py.readAllStandardOutput().toStdString(), nullptr, false);
}

}  // namespace gui_test
