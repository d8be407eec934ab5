// SPDX-License-Identifier: MIT
// provision: the end of a Transfer: resume-state checkpoints, the
// coordinator's loop, and the finish: verify size and digests, sync, install
// under the final name and record it, or keep the partial file.
#ifndef PROVISION_ENGINE_TRANSFER_FINISH_HPP
#define PROVISION_ENGINE_TRANSFER_FINISH_HPP

#include "transfer.hpp"

namespace provision {
namespace detail {

inline void Transfer::checkpoint(std::unique_lock<std::mutex>& lock) {
    // Called with mutex_ held (through `lock`). Only resumable transfers keep state.
    if (!established_ || !ranged_ || !total_ || !scheduler_ || fd_ < 0) return;
    RangeSet snapshot = scheduler_->done();
    if (snapshot == saved_) return;
    ResumeState state;
    state.identity = identity_;
    state.validator = plan_.validator;
    state.sha256 = plan_.sha256;
    state.etag = etag_;
    state.last_modified = last_modified_;
    state.size = *total_;
    state.done = snapshot;
    lock.unlock();
    // The bytes first, then the record that they are there.
    bool flushed = ::fdatasync(fd_) == 0;
    bool saved = flushed && save_resume_state(state_path_, state).ok();
    lock.lock();
    if (saved) saved_ = std::move(snapshot);
}

inline void Transfer::coordinate() {
    auto last_checkpoint = Clock::now();
    auto last_progress = Clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
        changed_.wait_for(lock, std::chrono::milliseconds(50));
        if (!events_.empty()) {
            auto pending = std::move(events_);
            events_.clear();
            lock.unlock();
            for (const auto& event : pending)
                if (options_.on_event) options_.on_event(event);
            lock.lock();
        }
        if (!stopping_ && cancel_requested()) {
            cancelled_ = true;
            stopping_ = true;
            wake_.notify_all();
        }
        if (running_ == 0) break;
        // Aborting may wait for a connection that is still being set up, so
        // it happens outside the lock the connections need to make progress.
        std::vector<Worker*> to_abort;
        if (stopping_) {
            // Repeated on every tick: an abort can miss a request that was
            // just connecting; the next one catches it.
            for (auto& worker : workers_)
                if (worker->running) to_abort.push_back(worker.get());
            wake_.notify_all();
        } else {
            auto now_count = now_ns();
            auto stall_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.stall_timeout).count();
            for (auto& worker : workers_) {
                if (worker->running && worker->in_request && !worker->stalled &&
                    now_count - worker->last_activity.load() > stall_ns) {
                    worker->stalled = true;
                    to_abort.push_back(worker.get());
                }
            }
        }
        if (!to_abort.empty()) {
            lock.unlock();
            for (auto* worker : to_abort) worker->abort.abort();
            lock.lock();
        }
        if (stopping_ || running_ == 0) continue;
        auto now = Clock::now();
        // More connections while there is work to share and slots to spare.
        if (established_ && ranged_ && scheduler_ && now >= not_before_) {
            // Any free slot will do, the first one's included: once the size is
            // known, it is a connection like the others.
            for (std::size_t slot = 0; slot < slots_ && running_ < allowed_ && scheduler_->has_work_for_another();
                 ++slot) {
                if (workers_[slot]->running) continue;
                if (budget_ && !budget_->try_acquire_extra()) break;
                if (!spawn_worker(slot, budget_ != nullptr)) break;
            }
        }
        if (established_ && fd_ >= 0 && fetched_ - writeback_started_at_ >= writeback_step) {
            // The disk starts on what has arrived while the rest arrives,
            // instead of all of it at the checkpoint's fdatasync or the final
            // fsync before the rename (which then finds little left to write).
            writeback_started_at_ = fetched_;
            lock.unlock();
            detail::start_writeback(fd_);
            lock.lock();
        }
        if (now - last_checkpoint >= options_.checkpoint_interval) {
            last_checkpoint = now;
            checkpoint(lock);
        }
        if (now - last_progress >= options_.progress_interval && established_ && scheduler_) {
            last_progress = now;
            Event event{EventKind::progress,          who_,   target_ ? target_->string() : "",
                        scheduler_->done().covered(), total_, ""};
            lock.unlock();
            if (options_.on_event) options_.on_event(event);
            lock.lock();
        }
    }
    auto pending = std::move(events_);
    events_.clear();
    lock.unlock();
    for (const auto& event : pending)
        if (options_.on_event) options_.on_event(event);
}

inline void Transfer::discard_partial() {
    hasher_.reset();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!part_.empty()) {
        remove_resume_state(state_path_);
        ::unlink(part_.c_str());
    }
}

inline Result<InstalledFile> Transfer::run() {
    if (auto prepared = prepare(); !prepared) return prepared.error();
    bool cancelled = false;
    auto is_cancelled = [this, &cancelled] { return cancelled = cancel_requested(); };
    if (resumed_ && resume_from_ >= resume_.size) {
        establish_from_state();
    } else {
        if (budget_ && !budget_->acquire(is_cancelled))
            return make_error(errc::cancelled, who_ + ": stopped before the download started");
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!spawn_worker(0, budget_ != nullptr)) {
                return make_error(errc::internal, who_ + ": cannot start a thread");
            }
        }
        coordinate();
        join_workers();
    }
    if (outcome_ == Outcome::restart || outcome_ == Outcome::lock_busy) {
        if (outcome_ == Outcome::restart && restart_fresh_) discard_partial();
        hasher_.reset();
        return make_error(errc::network, who_ + ": restarting");
    }
    if (cancelled_ || fatal_ || !scheduler_ || !scheduler_->complete()) return finish_incomplete();
    return finish_complete();
}

inline Result<InstalledFile> Transfer::finish_incomplete() {
    std::unique_lock<std::mutex> lock(mutex_);
    std::uint64_t done = scheduler_ ? scheduler_->done().covered() : 0;
    bool resumable = established_ && ranged_ && total_ && fd_ >= 0;
    Error error = fatal_ ? *fatal_ : make_error(errc::network, who_ + ": the download ended before the last byte");
    if (cancelled_) error = make_error(errc::cancelled, who_ + ": stopped");
    bool keep = resumable && done > 0 && error.code != errc::integrity;
    if (keep) {
        checkpoint(lock);
        lock.unlock();
        hasher_.reset();
        ::close(fd_);
        fd_ = -1;
        error.message += " (" + human_size(done) + " of " + human_size(*total_) + " kept in " +
                         part_.filename().string() + "; the next run continues from there)";
        return error;
    }
    lock.unlock();
    discard_partial();
    return error;
}

inline Result<InstalledFile> Transfer::finish_complete() {
    std::uint64_t size = scheduler_->total();
    auto digests = hasher_->finish(size);
    hasher_.reset();
    auto discard = [&](Error error) -> Result<InstalledFile> {
        discard_partial();
        return error;
    };
    if (!digests) return discard(make_error(digests.error().code, who_ + ": " + digests.error().message));
    std::string name = target_->filename().string();
    if (plan_.size && size != *plan_.size)
        return discard(make_error(errc::integrity, who_ + ": expected " + std::to_string(*plan_.size) +
                                                       " bytes but received " + std::to_string(size)));
    if (!plan_.sha256.empty() && digests->sha256 != plan_.sha256) {
        outcome_ = Outcome::mismatch;
        return discard(make_error(errc::integrity, who_ + ": SHA-256 mismatch for " + name + ": expected " +
                                                       plan_.sha256 + ", got " + digests->sha256));
    }
    if (!plan_.git_sha1.empty() && digests->git_sha1 != plan_.git_sha1) {
        outcome_ = Outcome::mismatch;
        return discard(make_error(errc::integrity, who_ + ": git SHA-1 mismatch for " + name + ": expected " +
                                                       plan_.git_sha1 + ", got " + digests->git_sha1));
    }
    if (::fsync(fd_) != 0) return discard(errno_error(who_ + ": cannot flush " + part_.string(), errno));
    ::close(fd_);
    fd_ = -1;
    if (::rename(part_.c_str(), target_->c_str()) != 0)
        return discard(errno_error(who_ + ": cannot move " + part_.string() + " into place", errno));
    sync_folder(target_->parent_path());
    remove_resume_state(state_path_);
    if (options_.registry) {
        if (auto stamp = stamp_of(*target_)) {
            InstallRecord record;
            record.path = target_->string();
            record.stamp = *stamp;
            record.sha256 = digests->sha256;
            record.identity = identity_;
            record.validator = plan_.validator;
            (void)options_.registry->put(record);  // a lost record costs a re-check, not a wrong file
        }
    }
    return InstalledFile{*target_, size, digests->sha256, false};
}

}  // namespace detail
}  // namespace provision

#endif  // PROVISION_ENGINE_TRANSFER_FINISH_HPP
