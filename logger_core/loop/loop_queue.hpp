// Hands items from any thread to the event loop: a mutex-protected queue and a uv_async that the
// loop drains completely on each wake-up (libuv coalesces sends). Used by the camera (capture and
// recorder events) and the eye tracker (scene frames back from the overlay worker).
#pragma once

#include "uv.hpp"

#include <deque>
#include <functional>
#include <mutex>

namespace pilogger {

template <typename T>
class LoopQueue {
public:
    LoopQueue(uv::Loop& loop, std::function<void(T&)> handler)
        : handler_(std::move(handler)), async_(loop, [this] { drain(); }) {}
    LoopQueue(const LoopQueue&) = delete;
    LoopQueue& operator=(const LoopQueue&) = delete;

    // Any thread. Every thread that posts must be joined before the queue is destroyed.
    void post(T item) {
        {
            std::lock_guard lock(mutex_);
            items_.push_back(std::move(item));
        }
        async_.send();
    }

    // Loop thread.
    void drain() {
        std::deque<T> batch;
        {
            std::lock_guard lock(mutex_);
            batch.swap(items_);
        }
        for (T& item : batch) handler_(item);
    }

private:
    std::function<void(T&)> handler_;
    std::mutex mutex_;
    std::deque<T> items_;
    uv::Async async_;
};

}  // namespace pilogger
