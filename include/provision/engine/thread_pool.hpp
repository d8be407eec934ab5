// SPDX-License-Identifier: MIT
// provision: a small fixed-size thread pool.
//
// Each task comes with what to do if it throws anyway (fail the entry it
// serves), so no exception reaches std::terminate. Tasks must never wait on
// the pool they run in. The destructor drains the queue.
#ifndef PROVISION_ENGINE_THREAD_POOL_HPP
#define PROVISION_ENGINE_THREAD_POOL_HPP

#include "../support/guarded.hpp"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace provision {
namespace detail {

class ThreadPool {
  public:
    explicit ThreadPool(std::size_t threads) {
        if (threads == 0) threads = 1;
        for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
    }
    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& worker : workers_) worker.join();
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    using Task = std::function<void()>;
    /// Told, on the pool's thread, what escaped the task.
    using OnEscape = std::function<void(const std::string& what)>;

    void submit(Task task, OnEscape on_escape) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            queue_.push_back({std::move(task), std::move(on_escape)});
            ++pending_;
        }
        wake_.notify_one();
    }

    /// Blocks until every submitted task has finished. Never call from a task.
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        idle_.wait(lock, [this] { return pending_ == 0; });
    }

  private:
    void run() {
        while (true) {
            Job job;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;  // stopping and drained
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            run_guarded(job.task, job.on_escape);
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (--pending_ == 0) idle_.notify_all();
            }
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable idle_;
    struct Job {
        Task task;
        OnEscape on_escape;
    };
    std::deque<Job> queue_;
    std::size_t pending_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

}  // namespace detail
}  // namespace provision

#endif
