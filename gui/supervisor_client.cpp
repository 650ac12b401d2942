#include "supervisor_client.hpp"

#include "clock.hpp"
#include "json_util.hpp"

namespace pilogger::gui {

SupervisorClient::SupervisorClient(QString socket_path, QObject* parent)
    : QObject(parent), path_(std::move(socket_path)), socket_(new QLocalSocket(this)) {
    connect(socket_, &QLocalSocket::connected, this, &SupervisorClient::onConnected);
    connect(socket_, &QLocalSocket::readyRead, this, &SupervisorClient::onReadyRead);
    connect(socket_, &QLocalSocket::errorOccurred, this, &SupervisorClient::onSocketError);
    connect(socket_, &QLocalSocket::disconnected, this,
            [this] { linkDown(QStringLiteral("the supervisor closed the connection")); });

    retry_timer_.setObjectName(QStringLiteral("connectRetry"));
    deadline_timer_.setObjectName(QStringLiteral("replyDeadlines"));
    retry_timer_.setInterval(500);
    retry_timer_.setSingleShot(true);
    connect(&retry_timer_, &QTimer::timeout, this, &SupervisorClient::connectNow);

    deadline_timer_.setInterval(250);
    connect(&deadline_timer_, &QTimer::timeout, this, &SupervisorClient::checkDeadlines);
}

void SupervisorClient::start() {
    started_ = true;
    connectNow();
}

void SupervisorClient::connectNow() {
    if (socket_->state() != QLocalSocket::UnconnectedState) return;
    connection_ = ControlConnection{};
    // An absolute name is used as the socket's path as it is.
    socket_->connectToServer(path_, QIODevice::ReadWrite);
}

void SupervisorClient::onConnected() {
    request("subscribe", json::object(), [this](const CommandReply& reply) {
        if (!reply.ok) {
            linkDown(QStringLiteral("the supervisor refused to subscribe: ") + reply.message);
            return;
        }
        subscribed_ = true;
        last_failure_.clear();
        Q_EMIT subscribed(reply.result);
    });
}

void SupervisorClient::onReadyRead() {
    const qint64 received_ns = mono_ns();
    const QByteArray bytes = socket_->readAll();
    connection_.feed(std::string_view(bytes.constData(), static_cast<size_t>(bytes.size())));
    // A handler may drop the link; connection_ is then a fresh, empty one and the loop ends.
    while (auto message = connection_.take()) {
        if (message->kind == Message::Kind::Event) {
            Q_EMIT eventReceived(message->body, received_ns);
            continue;
        }
        if (message->kind != Message::Kind::Reply || !message->id) continue;
        auto it = pending_.find(*message->id);
        if (it == pending_.end()) continue;  // answered after its deadline: already reported
        Pending p = std::move(it->second);
        pending_.erase(it);
        CommandReply reply;
        reply.ok = flag(message->body, "ok");
        if (reply.ok) {
            reply.result = field(message->body, "result");
        } else {
            const json& error = field(message->body, "error");
            reply.code = qstr(error, "code", QStringLiteral("error"));
            reply.message = qstr(error, "message", QStringLiteral("the supervisor refused ") + QString::fromStdString(p.cmd));
        }
        if (p.handler) p.handler(reply);
    }
    if (pending_.empty()) deadline_timer_.stop();
}

void SupervisorClient::onSocketError(QLocalSocket::LocalSocketError error) {
    if (error == QLocalSocket::PeerClosedError) return;  // disconnected() follows
    const bool not_running =
        error == QLocalSocket::ServerNotFoundError || error == QLocalSocket::ConnectionRefusedError;
    QString why = not_running ? QStringLiteral("no supervisor is running (nothing answers at %1)").arg(path_)
                              : QStringLiteral("control socket %1: %2").arg(path_, socket_->errorString());
    if (subscribed_ || socket_->state() == QLocalSocket::ConnectedState) {
        socket_->abort();
        linkDown(why);
        return;
    }
    socket_->abort();
    if (why != last_failure_) {
        last_failure_ = why;
        Q_EMIT connectFailed(why, not_running);
    }
    if (started_) retry_timer_.start();
}

void SupervisorClient::linkDown(const QString& why) {
    const bool was_subscribed = subscribed_;
    subscribed_ = false;
    if (socket_->state() != QLocalSocket::UnconnectedState) socket_->abort();
    connection_ = ControlConnection{};
    failAll(QStringLiteral("the link to the supervisor dropped (%1)").arg(why));
    if (was_subscribed) {
        last_failure_.clear();
        Q_EMIT disconnected(why);
    }
    if (started_ && !retry_timer_.isActive()) retry_timer_.start();
}

void SupervisorClient::failAll(const QString& why) {
    auto pending = std::move(pending_);
    pending_.clear();
    deadline_timer_.stop();
    for (auto& [id, p] : pending) {
        answerLater(std::move(p.handler), CommandReply{false, json(), QStringLiteral("unavailable"), why});
    }
}

void SupervisorClient::request(const std::string& cmd, const json& args, ReplyHandler handler, int timeout_ms) {
    if (socket_->state() != QLocalSocket::ConnectedState) {
        answerLater(std::move(handler),
                    CommandReply{false, json(), QStringLiteral("unavailable"),
                                 QStringLiteral("not connected to the supervisor: ") +
                                     (last_failure_.isEmpty() ? QStringLiteral("connecting") : last_failure_)});
        return;
    }
    std::string line;
    const int64_t id = connection_.make_request(cmd, args, line);
    pending_[id] = Pending{cmd, std::move(handler), mono_ns() + static_cast<qint64>(timeout_ms) * 1'000'000};
    socket_->write(line.data(), static_cast<qint64>(line.size()));
    if (!deadline_timer_.isActive()) deadline_timer_.start();
}

void SupervisorClient::checkDeadlines() {
    const qint64 now = mono_ns();
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline_ns > now) {
            ++it;
            continue;
        }
        Pending p = std::move(it->second);
        it = pending_.erase(it);
        answerLater(std::move(p.handler),
                    CommandReply{false, json(), QStringLiteral("timeout"),
                                 QStringLiteral("the supervisor did not answer '%1' in time").arg(QString::fromStdString(p.cmd))});
    }
    if (pending_.empty()) deadline_timer_.stop();
}

void SupervisorClient::answerLater(ReplyHandler handler, CommandReply reply) {
    if (!handler) return;
    // Never inside the caller's own stack: a handler may send the next command.
    QTimer::singleShot(0, this, [handler = std::move(handler), reply = std::move(reply)] { handler(reply); });
}

}  // namespace pilogger::gui
