#include "x11_frame_gate.hpp"

#include <QCoreApplication>
#include <QEvent>

#include <algorithm>
#include <QGuiApplication>
#include <QWidget>
#include <QWindow>

#if PILOGGER_GUI_XCB
#include <QtGui/qguiapplication_platform.h>

#include <xcb/xcb.h>
#include <xcb/xcbext.h>  // xcb_poll_for_reply

#include <cstdlib>
#endif

namespace pilogger::gui {

namespace {
// A server that has not answered in this long is not waited for any more: the repaint goes
// ahead (and Qt's own round trip waits, as without the gate).
constexpr qint64 kGiveUpNs = 1'000'000'000;
constexpr int kPollMs = 2;
}  // namespace

X11FrameGate* X11FrameGate::install(QWidget* top_level) {
#if PILOGGER_GUI_XCB
    if (top_level == nullptr || QGuiApplication::platformName() != QLatin1String("xcb")) return nullptr;
    auto* x11 = qGuiApp->nativeInterface<QNativeInterface::QX11Application>();
    if (x11 == nullptr || x11->connection() == nullptr) return nullptr;
    return new X11FrameGate(top_level, x11->connection());
#else
    (void)top_level;
    return nullptr;
#endif
}

X11FrameGate::X11FrameGate(QWidget* top_level, void* connection)
    : QObject(top_level), widget_(top_level), connection_(connection) {
    poll_.setObjectName(QStringLiteral("frameGatePoll"));
    poll_.setInterval(kPollMs);
    poll_.setTimerType(Qt::PreciseTimer);
    connect(&poll_, &QTimer::timeout, this, &X11FrameGate::check);
    widget_->installEventFilter(this);
}

X11FrameGate::~X11FrameGate() {
#if PILOGGER_GUI_XCB
    // An answer nobody collects would stay in xcb's queue.
    if (in_flight_) xcb_discard_reply(static_cast<xcb_connection_t*>(connection_), sequence_);
#endif
}

bool X11FrameGate::eventFilter(QObject* watched, QEvent* event) {
    if (watched == widget_) {
        switch (event->type()) {
            case QEvent::Show:
                // The first frame of a window comes from the Expose of its QWindow (made by now).
                if (QWindow* w = widget_->windowHandle(); w != nullptr && w != window_) {
                    if (window_) window_->removeEventFilter(this);
                    window_ = w;
                    window_->installEventFilter(this);
                }
                break;
            case QEvent::UpdateRequest:
                if (!serverCaughtUp()) {
                    // Held: the widgets stay dirty and Qt posts no other request meanwhile; the
                    // held one is sent again once the server has answered.
                    if (!holding_) {
                        holding_ = true;
                        hold_clock_.start();
                        ++held_count_;
                    }
                    if (!poll_.isActive()) poll_.start();
                    return true;
                }
                // This repaint paints and flushes a frame; ask about it once that is done.
                if (!probe_posted_) {
                    probe_posted_ = true;
                    QMetaObject::invokeMethod(this, &X11FrameGate::probe, Qt::QueuedConnection);
                }
                break;
            default: break;
        }
    } else if (watched == window_ && event->type() == QEvent::Expose && !probe_posted_) {
        probe_posted_ = true;
        QMetaObject::invokeMethod(this, &X11FrameGate::probe, Qt::QueuedConnection);
    }
    return false;
}

void X11FrameGate::probe() {
    probe_posted_ = false;
#if PILOGGER_GUI_XCB
    auto* c = static_cast<xcb_connection_t*>(connection_);
    if (in_flight_) xcb_discard_reply(c, sequence_);  // the newer probe covers it
    // Sent after the frame's requests, so answered only once the server has done them.
    sequence_ = xcb_get_input_focus(c).sequence;
    xcb_flush(c);
    in_flight_ = true;
    probe_clock_.start();
#endif
}

bool X11FrameGate::serverCaughtUp() {
#if PILOGGER_GUI_XCB
    if (!in_flight_) return true;
    void* reply = nullptr;
    xcb_generic_error_t* error = nullptr;
    // Never waits: Qt's event reader thread reads the socket, this only looks at what it read.
    if (xcb_poll_for_reply(static_cast<xcb_connection_t*>(connection_), sequence_, &reply, &error) != 0) {
        std::free(reply);
        std::free(error);
        in_flight_ = false;
        return true;
    }
    if (probe_clock_.nsecsElapsed() > kGiveUpNs) {
        xcb_discard_reply(static_cast<xcb_connection_t*>(connection_), sequence_);
        in_flight_ = false;
        return true;
    }
    return false;
#else
    return true;
#endif
}

bool X11FrameGate::ready() {
    if (serverCaughtUp()) return true;
    idle_wanted_ = true;
    if (!poll_.isActive()) poll_.start();
    return false;
}

void X11FrameGate::check() {
    if (!holding_ && !idle_wanted_) {
        poll_.stop();
        return;
    }
    if (!serverCaughtUp()) return;
    poll_.stop();
    if (holding_) release();
    if (idle_wanted_) {
        idle_wanted_ = false;
        Q_EMIT idle();
    }
}

void X11FrameGate::release() {
    holding_ = false;
    longest_hold_ns_ = std::max(longest_hold_ns_, hold_clock_.nsecsElapsed());
    // The request Qt posted and the gate held, sent again (Qt posts no other while one is out).
    QCoreApplication::postEvent(widget_, new QEvent(QEvent::UpdateRequest), Qt::LowEventPriority);
}

}  // namespace pilogger::gui
