// SPDX-License-Identifier: MIT
// provision: the cap on connections open at once, over all files of a run.
//
// A counting semaphore with one twist: a file's first connection waits for
// a slot, its extra connections only take slots nobody is waiting for. So a
// large file fetched over many connections never starves the small files
// queued behind it; its extra connections give their slots back between
// pieces as soon as someone waits (see has_waiters()).
#ifndef PROVISION_ENGINE_CONNECTION_BUDGET_HPP
#define PROVISION_ENGINE_CONNECTION_BUDGET_HPP

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>

namespace provision {
namespace detail {

class ConnectionBudget {
  public:
    explicit ConnectionBudget(std::size_t limit) : limit_(limit == 0 ? 1 : limit) {}

    std::size_t limit() const { return limit_; }
    std::size_t in_use() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return in_use_;
    }

    /// Waits for a slot; false when `cancelled` said stop first.
    bool acquire(const std::function<bool()>& cancelled) {
        std::unique_lock<std::mutex> lock(mutex_);
        ++waiting_;
        while (in_use_ >= limit_) {
            if (cancelled && cancelled()) {
                --waiting_;
                return false;
            }
            freed_.wait_for(lock, std::chrono::milliseconds(50));
        }
        --waiting_;
        ++in_use_;
        return true;
    }

    /// A slot for an extra connection: only when one is free and nobody waits.
    bool try_acquire_extra() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (in_use_ >= limit_ || waiting_ > 0) return false;
        ++in_use_;
        return true;
    }

    void release() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (in_use_ > 0) --in_use_;
        }
        freed_.notify_all();
    }

    /// Someone waits for a first connection.
    bool has_waiters() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return waiting_ > 0;
    }

  private:
    std::size_t limit_;
    mutable std::mutex mutex_;
    std::condition_variable freed_;
    std::size_t in_use_ = 0;
    std::size_t waiting_ = 0;
};

}  // namespace detail
}  // namespace provision

#endif
