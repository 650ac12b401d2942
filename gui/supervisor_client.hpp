// The supervisor's control socket on the Qt event loop.
//
// QLocalSocket does the I/O (never blocking), logger_core's ControlConnection does the framing
// and the ids, so the GUI speaks exactly what the CLI speaks. After connecting, the client
// subscribes; the answer is the whole status, then events follow on the same connection. When
// the link drops (or no supervisor runs yet) it keeps retrying on a timer.
#pragma once

#include "control_client.hpp"

#include <QLocalSocket>
#include <QObject>
#include <QString>
#include <QTimer>

#include <functional>
#include <map>
#include <string>

namespace pilogger::gui {

// One command's answer: ok with a result, or an error code and a message in words.
struct CommandReply {
    bool ok = false;
    json result;
    QString code;
    QString message;
};

class SupervisorClient : public QObject {
    Q_OBJECT
public:
    using ReplyHandler = std::function<void(const CommandReply&)>;

    explicit SupervisorClient(QString socket_path, QObject* parent = nullptr);

    // Connects now, and again every retry interval while the link is down.
    void start();
    // Subscribed and answering.
    bool isConnected() const { return subscribed_; }
    const QString& socketPath() const { return path_; }
    void setRetryInterval(int ms) { retry_timer_.setInterval(ms); }

    // The handler runs exactly once, always later on this thread: with the answer, or with an
    // error when the link is down, drops, or no answer comes within timeout_ms.
    void request(const std::string& cmd, const json& args = json::object(), ReplyHandler handler = {},
                 int timeout_ms = 30000);

Q_SIGNALS:
    // The link is up and subscribed; status is the supervisor's whole state at that moment.
    void subscribed(const pilogger::json& status);
    // A link that was up went down.
    void disconnected(const QString& why);
    // Why the last attempt to connect failed; emitted when the reason changes, not every retry.
    void connectFailed(const QString& why, bool not_running);
    // An event from the stream; received_ns is CLOCK_MONOTONIC when its bytes were read.
    void eventReceived(const pilogger::json& event, qint64 received_ns);

private:
    void connectNow();
    void onConnected();
    void onReadyRead();
    void onSocketError(QLocalSocket::LocalSocketError error);
    void linkDown(const QString& why);
    void failAll(const QString& why);
    void checkDeadlines();
    void answerLater(ReplyHandler handler, CommandReply reply);

    struct Pending {
        std::string cmd;
        ReplyHandler handler;
        qint64 deadline_ns;
    };

    QString path_;
    QLocalSocket* socket_;
    ControlConnection connection_;
    std::map<int64_t, Pending> pending_;
    QTimer retry_timer_;
    QTimer deadline_timer_;
    bool started_ = false;
    bool subscribed_ = false;
    QString last_failure_;
};

}  // namespace pilogger::gui
