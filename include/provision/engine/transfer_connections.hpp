// SPDX-License-Identifier: MIT
// provision: a Transfer's connections: each worker thread requests its pieces
// (one request: transfer_fetch.hpp), writes what arrives in batches, is
// dropped when it stalls and retries with backoff; the connection budget
// decides how many run.
#ifndef PROVISION_ENGINE_TRANSFER_CONNECTIONS_HPP
#define PROVISION_ENGINE_TRANSFER_CONNECTIONS_HPP

#include "transfer.hpp"

namespace provision {
namespace detail {

inline bool Transfer::flush(std::size_t slot, std::vector<char>& buffer, std::uint64_t& buffer_start,
                            Attempt& attempt) {
    if (buffer.empty()) return true;
    if (!write_piece(slot, buffer.data(), buffer.size(), buffer_start, attempt)) return false;
    buffer.clear();
    return true;
}

inline bool Transfer::write_piece(std::size_t slot, const char* data, std::size_t size, std::uint64_t& start,
                                  Attempt& attempt) {
    std::uint64_t end = scheduler_->end_of(slot);
    std::uint64_t writable = end > start ? std::min<std::uint64_t>(size, end - start) : 0;
    if (writable > 0) {
        auto written = write_all_at(fd_, data, static_cast<std::size_t>(writable), start, part_.string());
        if (!written) {
            attempt.kind = Attempt::Kind::fatal;
            attempt.error = written.error();
            attempt.error.message = who_ + ": " + attempt.error.message;
            if (attempt.error.code == errc::disk_full)
                attempt.error.message += "; the partial file is kept for the next run";
            return false;
        }
    }
    std::uint64_t prefix = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        std::uint64_t counted = scheduler_->commit(slot, start, writable);
        fetched_ += counted;
        prefix = scheduler_->done().prefix();
    }
    hasher_->advance(prefix);
    start += size;
    return true;
}

inline void Transfer::worker_main(std::size_t slot) {
    Worker& worker = *workers_[slot];
    bool leaving = false;  // counted in leaving_
    // Whatever escapes the loop fails this file, not the process.
    run_guarded([&] { worker_loop(slot, leaving); },
                [&](const std::string& what) {
                    std::lock_guard<std::mutex> lock(mutex_);
                    fail(make_error(errc::internal, who_ + ": " + what));
                });
    std::lock_guard<std::mutex> lock(mutex_);
    if (scheduler_) scheduler_->give_back(slot);
    --running_;
    if (leaving) --leaving_;
    worker.running = false;
    if (worker.holds_budget && budget_) budget_->release();
    worker.holds_budget = false;
    changed_.notify_all();
}

inline void Transfer::worker_loop(std::size_t slot, bool& leaving) {
    Worker& worker = *workers_[slot];
    std::vector<char> buffer;
    buffer.reserve(batch_);
    int failures = 0;  // in a row, without a byte received
    while (!stopping_) {
        auto next = next_piece(slot, leaving);
        if (!next) break;
        Attempt attempt = fetch(slot, next->establishing, next->begin, next->end, buffer);
        {
            // Only bytes that are kept are progress, and a stalled attempt
            // (a drip) is none. Without Range a retry starts from byte 0 again,
            // so a server that always breaks off mid-way, or drips, would
            // otherwise be retried forever.
            std::lock_guard<std::mutex> lock(mutex_);
            if (attempt.received > 0 && !worker.stalled && established_ && ranged_) failures = 0;
        }
        switch (attempt.kind) {
        case Attempt::Kind::ok: continue;
        case Attempt::Kind::stop: break;
        case Attempt::Kind::fatal: {
            std::lock_guard<std::mutex> lock(mutex_);
            fail(attempt.error);
            break;
        }
        case Attempt::Kind::restart:
        case Attempt::Kind::lock_busy: {
            std::lock_guard<std::mutex> lock(mutex_);
            if (outcome_ == Outcome::finished)
                outcome_ = attempt.kind == Attempt::Kind::restart ? Outcome::restart : Outcome::lock_busy;
            stopping_ = true;
            wake_.notify_all();
            changed_.notify_all();
            break;
        }
        case Attempt::Kind::retry:
            if (wait_to_retry(slot, attempt, *next, ++failures, leaving)) continue;
            break;
        }
        break;
    }
}

inline std::optional<Transfer::NextPiece> Transfer::next_piece(std::size_t slot, bool& leaving) {
    std::unique_lock<std::mutex> lock(mutex_);
    // Everyone waits out a server's "slow down" before the next request.
    while (!stopping_ && Clock::now() < not_before_) wake_.wait_until(lock, not_before_);
    if (stopping_) return std::nullopt;
    NextPiece next;
    if (!established_) {
        // The first request also learns the size and whether Range works. Its
        // end is known when resuming (the first gap) or when the source gave
        // the size (the first piece); otherwise it is open-ended and stops
        // where other connections took over.
        next.establishing = true;
        next.begin = resume_from_;
        if (resumed_) {
            for (const auto& gap : resume_.done.missing(resume_.size))
                if (gap.begin == next.begin) next.end = gap.end;
        } else if (plan_.size && *plan_.size > 0) {
            next.end = std::min(*plan_.size, piece_size_for(*plan_.size));
        }
        return next;
    }
    std::size_t staying = running_ - leaving_;
    bool yield = staying > 1 && (staying > allowed_ || (budget_ && budget_->has_waiters()));
    auto piece = yield ? std::nullopt : scheduler_->take(slot);
    if (!piece) {
        leave_locked(leaving);
        return std::nullopt;
    }
    next.begin = piece->begin;
    next.end = piece->end;
    return next;
}

inline bool Transfer::wait_to_retry(std::size_t slot, Attempt& attempt, const NextPiece& asked, int failures,
                                    bool& leaving) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (scheduler_) scheduler_->give_back(slot);
    if (established_ && !ranged_) {
        // Without Range the only way on is from byte 0 again.
        hasher_.reset();
        established_ = false;
        resumed_ = false;
        resume_from_ = 0;
    }
    if (failures > options_.retry.max_attempts) {
        std::size_t staying = running_ - leaving_;
        if (staying <= 1) {
            attempt.error.message += " (gave up after " + std::to_string(failures) + " attempts)";
            fail(attempt.error);
        } else {
            allowed_ = std::max<std::size_t>(1, std::min(allowed_, staying - 1));  // the others carry on
            leave_locked(leaving);
        }
        return false;
    }
    auto wait = attempt.immediate
                    ? std::chrono::milliseconds(0)
                    : backoff_delay(failures, options_.retry.base_delay, options_.retry.max_delay, jitter_unit());
    if (attempt.server_wait > wait) wait = std::min(attempt.server_wait, options_.retry.max_server_delay);
    auto resume_at = Clock::now() + wait;
    if (attempt.slow_down) {
        not_before_ = std::max(not_before_, resume_at);
        allowed_ = std::max<std::size_t>(1, allowed_ / 2);
    }
    std::string what = established_ && asked.end != SegmentScheduler::unbounded
                           ? " (bytes " + std::to_string(asked.begin) + "-" + std::to_string(asked.end - 1) + ")"
                           : "";
    queue_event_locked(EventKind::retry, attempt.error.message + what + "; retry " + std::to_string(failures) + " of " +
                                             std::to_string(options_.retry.max_attempts) + " in " +
                                             describe_wait(wait));
    while (!stopping_ && Clock::now() < resume_at) wake_.wait_until(lock, resume_at);
    return true;
}

inline bool Transfer::spawn_worker(std::size_t slot, bool holds_budget) {
    // Called with mutex_ held.
    Worker& worker = *workers_[slot];
    if (worker.thread.joinable()) worker.thread.join();  // it has exited: running is false
    worker.running = true;
    worker.holds_budget = holds_budget;
    ++running_;
    try {
        worker.thread = std::thread([this, slot] { worker_main(slot); });
    } catch (const std::system_error&) {
        worker.running = false;
        --running_;
        if (holds_budget && budget_) budget_->release();
        worker.holds_budget = false;
        return false;
    }
    return true;
}

inline void Transfer::stop_workers() {
    stopping_ = true;
    for (auto& worker : workers_)
        if (worker->running) worker->abort.abort();
    wake_.notify_all();
}

inline void Transfer::join_workers() {
    for (auto& worker : workers_)
        if (worker->thread.joinable()) worker->thread.join();
}

}  // namespace detail
}  // namespace provision

#endif  // PROVISION_ENGINE_TRANSFER_CONNECTIONS_HPP
