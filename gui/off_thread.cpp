#include "off_thread.hpp"

#include <QSemaphore>

#include <atomic>
#include <memory>

namespace pilogger::gui {

QThreadPool* ioThreadPool() {
    // A child of the application: destroyed (after waiting for its work) when it ends.
    static QPointer<QThreadPool> pool;
    if (pool.isNull()) {
        pool = new QThreadPool(QCoreApplication::instance());
        pool->setObjectName(QStringLiteral("pilogger-io"));
        pool->setMaxThreadCount(2);
    }
    return pool;
}

void keepPaintThreadsStarted() {
    QThreadPool* pool = QThreadPool::globalInstance();
    pool->setExpiryTimeout(-1);  // threads made from now on stay (idle, asleep)
    const int threads = pool->maxThreadCount();
    if (threads < 1) return;
    // One short task per thread: each waits until all have started, so the pool makes every
    // thread now (the GUI thread does not wait for any of it).
    struct Gate {
        std::atomic<int> arrived{0};
        QSemaphore open;
    };
    auto gate = std::make_shared<Gate>();
    for (int i = 0; i < threads; ++i) {
        pool->start([gate, threads] {
            if (++gate->arrived == threads) gate->open.release(threads);
            gate->open.tryAcquire(1, 2000);  // never holds a thread for long
        });
    }
}

}  // namespace pilogger::gui
