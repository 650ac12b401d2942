// Work that may wait (reading or writing a file, parsing YAML, starting a process) runs on a
// thread pool of the window's own, never on the GUI thread; its result comes back to the GUI
// thread.
//
// Not on Qt's global pool: Qt's raster paint engine splits large fills and image conversions
// across that pool and waits for the pieces on the GUI thread, so a file read queued there
// would hold a repaint.
#pragma once

#include <QCoreApplication>
#include <QMetaObject>
#include <QPointer>
#include <QThreadPool>

#include <utility>

namespace pilogger::gui {

// The pool for the window's waiting work (two threads, made on first use).
QThreadPool* ioThreadPool();

// Qt's raster engine hands pieces of a large fill to the global pool and waits for them: a pool
// thread made on demand in the middle of a paint (and retired after 30 s idle) made the GUI
// thread wait for thread creation. Starts every pool thread now, without waiting for them, and
// keeps them.
void keepPaintThreadsStarted();

// Runs work() on ioThreadPool(), then done(result) on the GUI thread, unless context is gone by
// then. work must not touch widgets or anything else the GUI thread owns. The pool belongs to
// the application, which waits for it when it ends, so a started write is finished even when
// the window closes.
template <typename Work, typename Done>
void runOffThread(QObject* context, Work work, Done done) {
    QPointer<QObject> guard(context);
    ioThreadPool()->start([guard, work = std::move(work), done = std::move(done)]() mutable {
        auto result = work();
        QCoreApplication* app = QCoreApplication::instance();
        if (app == nullptr) return;  // the application is ending: nobody to tell
        // Back through the application object, which outlives the pool's work.
        QMetaObject::invokeMethod(
            app,
            [guard, done = std::move(done), result = std::move(result)]() mutable {
                if (guard) done(std::move(result));
            },
            Qt::QueuedConnection);
    });
}

}  // namespace pilogger::gui
