// Keeps a window's repaints from blocking the GUI thread on the X server.
//
// Qt's X11 backing store shares its pixels with the X server (MIT-SHM). Before it paints over
// pixels it has handed to the server, it waits for the server with a blocking round trip
// (QXcbBackingStoreImage::preparePaint: connection()->sync()). When the server is slow to take
// the last frame (its first frame of a window; a server starved of CPU on a busy machine), the
// event loop stops for as long: 60-170 ms were measured on a loaded 2-core machine right after
// the window first appeared.
//
// The gate asks the server, without waiting, to answer once it has caught up with the last
// frame (an asynchronous GetInputFocus sent right after the frame went out). Until that answer
// is in, the window's next repaint is held back and the event loop goes on; then the held
// repaint runs, and Qt's own round trip finds the server idle. Off X11 (Wayland, offscreen) or
// without libxcb at build time, it does nothing.
//
// Qt makes other blocking round trips too: showing a widget asks the server where the pointer is
// (QApplicationPrivate::sendSyntheticEnterLeave -> QCursor::pos). Changes that show or hide
// widgets are therefore paced with ready()/idle(): they are made once the server has caught up.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QPointer>
#include <QTimer>

class QWidget;
class QWindow;

namespace pilogger::gui {

class X11FrameGate : public QObject {
    Q_OBJECT
public:
    // Gates the repaints of a top-level widget; null when the platform is not X11 (or the build
    // has no libxcb). The gate is a child of the widget.
    static X11FrameGate* install(QWidget* top_level);
    ~X11FrameGate() override;

    // True when the X server has taken the last frame (never waits). When false, idle() follows
    // once it has.
    bool ready();
    // Repaints held back so far, and the longest hold.
    qint64 heldRepaints() const { return held_count_; }
    double longestHoldMs() const { return static_cast<double>(longest_hold_ns_) / 1e6; }

Q_SIGNALS:
    // The server has caught up after ready() said it had not.
    void idle();

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    X11FrameGate(QWidget* top_level, void* connection);
    // A frame went out: ask the server to say when it has taken it.
    void probe();
    // True once the server answered the last probe (or gave up on it); never waits.
    bool serverCaughtUp();
    void check();
    void release();

    QWidget* widget_;
    QPointer<QWindow> window_;
    void* connection_;        // xcb_connection_t*, Qt's own
    unsigned sequence_ = 0;   // of the probe in flight
    bool in_flight_ = false;
    bool probe_posted_ = false;
    bool holding_ = false;
    bool idle_wanted_ = false;
    QElapsedTimer probe_clock_;
    QElapsedTimer hold_clock_;
    QTimer poll_;
    qint64 held_count_ = 0;
    qint64 longest_hold_ns_ = 0;
};

}  // namespace pilogger::gui
