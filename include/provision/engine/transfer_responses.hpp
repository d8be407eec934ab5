// SPDX-License-Identifier: MIT
// provision: how a Transfer reads responses: preparing the .part, building each
// request, classifying a status and checking every piece after the first
// against what the first settled (transfer_establish.hpp).
#ifndef PROVISION_ENGINE_TRANSFER_RESPONSES_HPP
#define PROVISION_ENGINE_TRANSFER_RESPONSES_HPP

#include "transfer.hpp"

namespace provision {
namespace detail {

inline void Transfer::fail(Error error) {
    // Called with mutex_ held. The first fatal error wins: it is the cause,
    // later ones are usually its consequences.
    if (!fatal_) fatal_ = std::move(error);
    stopping_ = true;
    wake_.notify_all();
    changed_.notify_all();
}

inline Result<void> Transfer::prepare() {
    if (!target_) return {};
    part_ = part_path_for(*target_);
    state_path_ = resume_state_path(part_);
    if (!fresh_) {
        auto state = load_resume_state(state_path_);
        struct stat info {};
        // Same source, or (a new commit, a new signed link) the same bytes.
        bool same =
            state &&
            ((state->identity == identity_ && state->validator == plan_.validator && state->sha256 == plan_.sha256) ||
             (!plan_.sha256.empty() && state->sha256 == plan_.sha256));
        bool usable = same && (!plan_.size || *plan_.size == state->size) && ::stat(part_.c_str(), &info) == 0 &&
                      static_cast<std::uint64_t>(info.st_size) >= state->done.last_end();
        if (usable) {
            auto reopened = open_for_writing(part_, O_RDWR);  // a link planted in its place is not resumed into
            fd_ = reopened ? reopened.value() : -1;
            if (fd_ >= 0) {
                resume_ = *state;
                resumed_ = !resume_.done.empty();
                auto missing = resume_.done.missing(resume_.size);
                resume_from_ = missing.empty() ? resume_.size : missing.front().begin;
            }
        }
    }
    if (!resumed_) {
        // The old state must go before the .part is rewritten: a state must
        // never describe bytes of another download. (Under a provisional
        // name it may be another entry's; establish() removes it once the
        // server has confirmed the name.)
        if (!name_guessed_) remove_resume_state(state_path_);
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        resume_from_ = 0;
    }
    return {};
}

inline HttpRequest Transfer::make_request(std::uint64_t begin, std::uint64_t end, std::size_t slot) {
    HttpRequest request;
    std::lock_guard<std::mutex> lock(mutex_);
    if (direct_url_) {
        request.url = *direct_url_;
        if (direct_scoped_) request.scoped_headers = plan_.scoped_headers;
    } else {
        request.url = plan_.url;
        request.scoped_headers = plan_.scoped_headers;
    }
    request.headers = plan_.headers;
    if (!without_range_) {
        std::string range = "bytes=" + std::to_string(begin) + "-";
        if (end != SegmentScheduler::unbounded) range += std::to_string(end - 1);
        request.headers.emplace_back("Range", range);
    }
    request.abort = &workers_[slot]->abort;
    workers_[slot]->link_generation = link_generation_;
    return request;
}

inline Transfer::Attempt Transfer::classify_status(const HttpResponse& response, std::size_t slot) {
    Attempt attempt;
    int status = response.status;
    std::string where = response.url.redacted();
    if (is_retryable_status(status)) {
        attempt.kind = Attempt::Kind::retry;
        attempt.error = make_error(status == 429 ? errc::rate_limited : errc::network,
                                   who_ + ": " + where + " answered HTTP " + std::to_string(status));
        auto now = std::chrono::system_clock::now();
        if (auto value = response.header("Retry-After"))
            if (auto wait = parse_retry_after(*value, now)) attempt.server_wait = *wait;
        if (auto value = response.header("RateLimit"))
            if (auto wait = parse_ratelimit_wait(*value)) attempt.server_wait = std::max(attempt.server_wait, *wait);
        attempt.slow_down = status == 429 || status == 503;
        return attempt;
    }
    bool link_problem = status == 400 || status == 401 || status == 403 || status == 404 || status == 410;
    std::unique_lock<std::mutex> lock(mutex_);
    if (link_problem && workers_[slot]->link_generation != link_generation_) {
        // Another connection renewed the link since this request went out.
        attempt.kind = Attempt::Kind::retry;
        attempt.immediate = true;
        attempt.error = make_error(errc::network, who_ + ": " + where + " answered HTTP " + std::to_string(status) +
                                                      "; retrying with the renewed link");
        return attempt;
    }
    if (link_problem && direct_url_) {
        // Signed CDN links expire: go through the original URL again, which
        // redirects to a fresh one.
        direct_url_.reset();
        ++link_generation_;
        attempt.kind = Attempt::Kind::retry;
        attempt.immediate = true;
        attempt.error = make_error(errc::network, who_ + ": " + where + " answered HTTP " + std::to_string(status) +
                                                      " (the signed link has probably expired); following " +
                                                      plan_.url.redacted() + " again");
        return attempt;
    }
    if (link_problem && plan_.refresh && refreshes_ < 2 && established_) {
        // The source may hand out a fresh link (its metadata request); the
        // other connections must not wait for that request.
        ++refreshes_;
        auto refresh = plan_.refresh;
        lock.unlock();
        auto fresh = refresh();
        lock.lock();
        if (fresh && plan_identity(fresh.value()) == identity_) {
            ++link_generation_;
            direct_url_.reset();
            plan_.url = fresh->url;
            plan_.headers = fresh->headers;
            plan_.scoped_headers = fresh->scoped_headers;
            attempt.kind = Attempt::Kind::retry;
            attempt.immediate = true;
            attempt.error = make_error(errc::network, who_ + ": " + where + " answered HTTP " + std::to_string(status) +
                                                          "; resolved the entry again for a fresh link");
            return attempt;
        }
    }
    attempt.kind = Attempt::Kind::fatal;
    attempt.error = plan_.explain
                        ? plan_.explain(response)
                        : make_error(errc::network, who_ + ": " + where + " answered HTTP " + std::to_string(status));
    return attempt;
}

inline void Transfer::establish_from_state() {
    // Every byte is already on disk from an earlier run: verify, no request.
    std::lock_guard<std::mutex> lock(mutex_);
    total_ = resume_.size;
    ranged_ = true;
    etag_ = resume_.etag;
    last_modified_ = resume_.last_modified;
    scheduler_ = std::make_unique<SegmentScheduler>(resume_.size, resume_.done, 1, resume_.size, 1);
    hasher_ = std::make_unique<PrefixHasher>(fd_, part_.string(), !plan_.git_sha1.empty(), total_);
    hasher_->advance(scheduler_->done().prefix());
    saved_ = resume_.done;
    established_ = true;
}

inline bool Transfer::check_piece_response(const HttpResponse& response, std::size_t slot, std::uint64_t begin,
                                           Attempt& attempt) {
    if (response.status == 206) {
        auto range = parse_content_range(response.header("Content-Range").value_or(""));
        std::lock_guard<std::mutex> lock(mutex_);
        std::string etag = response.header("ETag").value_or("");
        bool changed = !range || !range->total || range->total != total_ || range->first != begin ||
                       (!etag_.empty() && !etag.empty() && etag != etag_);
        if (changed) {
            attempt.kind = Attempt::Kind::restart;
            restart_fresh_ = true;
            if (range && range->total == total_ && range->first != begin &&
                (etag_.empty() || etag.empty() || etag == etag_)) {
                // Same file, wrong bytes: the server's Range support is broken,
                // and asking again would splice garbage or loop. One piece.
                restart_without_range_ = true;
                queue_event_locked(EventKind::message, who_ + ": " + response.url.redacted() + " answered bytes " +
                                                           std::to_string(range->first) + "- when asked for " +
                                                           std::to_string(begin) + "-; downloading it in one piece");
                return false;
            }
            queue_event_locked(EventKind::message, who_ + ": " + file_label() +
                                                       " changed on the server during the download; starting it again");
            return false;
        }
        if (!response.redirects.empty() && !direct_url_) {
            // A renewed link: later requests go straight there again.
            direct_url_ = response.url;
            direct_scoped_ = true;
            for (const auto& hop : response.redirects)
                if (hop.origin() != plan_.url.origin()) direct_scoped_ = false;
        }
        return true;
    }
    if (response.status == 200 || response.status == 416) {
        // Range worked a moment ago and now does not: a different server or
        // a different file answered. Start again, in one piece.
        attempt.kind = Attempt::Kind::restart;
        std::lock_guard<std::mutex> lock(mutex_);
        restart_fresh_ = true;
        restart_without_range_ = response.status == 200;
        queue_event_locked(EventKind::message, who_ + ": " + response.url.redacted() + " answered HTTP " +
                                                   std::to_string(response.status) +
                                                   " to a Range request it honoured before; starting the file again");
        return false;
    }
    attempt = classify_status(response, slot);
    return false;
}

}  // namespace detail
}  // namespace provision

#endif  // PROVISION_ENGINE_TRANSFER_RESPONSES_HPP
