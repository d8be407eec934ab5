// SPDX-License-Identifier: MIT
// provision: how a Transfer reads responses: preparing the .part, building each
// request, classifying a status, letting the first response settle the file
// (name, size, resumability) and checking every later piece against it.
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

inline bool Transfer::establish(const HttpResponse& response, std::uint64_t requested_from, Attempt& attempt) {
    // Requests ask for the bytes as stored (Accept-Encoding: identity). A
    // server that compresses anyway would have its gzip stream installed
    // under the model's name, and no digest may be there to notice. Refused
    // before anything (a resume state, the target's name) is acted on.
    if (response.status == 200 || response.status == 206) {
        std::string encoding = to_lower(std::string(trim(response.header("Content-Encoding").value_or(""))));
        if (!encoding.empty() && encoding != "identity") {
            attempt.kind = Attempt::Kind::fatal;
            attempt.error = make_error(
                errc::integrity, who_ + ": " + response.url.redacted() + " sent " + file_label() +
                                     " compressed (Content-Encoding: " + encoding +
                                     ") although provision asked for it as stored, so the bytes are not the file; "
                                     "the server must serve it without compression");
            return false;
        }
    }
    std::optional<std::uint64_t> total;
    bool ranged = false;
    if (response.status == 206 && !without_range_) {
        auto range = parse_content_range(response.header("Content-Range").value_or(""));
        if (!range || range->first != requested_from || !range->total) {
            // A partial answer we cannot place: use no Range at all next time.
            attempt.kind = Attempt::Kind::restart;
            std::lock_guard<std::mutex> lock(mutex_);
            restart_fresh_ = true;
            restart_without_range_ = true;
            queue_event_locked(EventKind::message, who_ + ": " + response.url.redacted() +
                                                       " sent an unusable Content-Range (" +
                                                       response.header("Content-Range").value_or("none") +
                                                       "); downloading it in one piece");
            return false;
        }
        total = range->total;
        ranged = true;
    } else if (response.status == 200 || (response.status == 206 && without_range_)) {
        // The body is as stored (checked above), so Content-Length is the file's size.
        if (auto length = response.header("Content-Length"))
            if (auto size = decimal_value(trim(*length))) total = size;
        if (requested_from > 0) {
            // We asked to resume and got the whole file: the server ignores
            // Range. This answer starts at byte 0, so it is used from scratch.
            resumed_ = false;
            resume_from_ = 0;
            remove_resume_state(state_path_);
            queue_event(EventKind::message, who_ + ": " + response.url.redacted() +
                                                " ignores Range requests; downloading the whole file again");
        }
    } else {
        attempt = classify_status(response, 0);
        return false;
    }

    // The file name, when the server chooses it. A provisional name (the
    // URL's, taken before the request so that a resume or a lock wait needs
    // no request) is kept when the server agrees, and swapped otherwise.
    if (!target_ || name_guessed_) {
        std::string name;
        if (auto disposition = response.header("Content-Disposition"))
            if (auto proposed = content_disposition_filename(*disposition)) name = sanitize_file_name(*proposed);
        if (name.empty()) name = sanitize_file_name(plan_.url.last_segment());
        if (name.empty()) {
            attempt.kind = Attempt::Kind::fatal;
            attempt.error =
                make_error(errc::config, who_ + ": the server gave no usable file name for " + plan_.url.redacted() +
                                             "; set filename = \"...\" in the entry");
            return false;
        }
        auto joined = join_inside(plan_.folder, name);
        if (!joined) {
            attempt.kind = Attempt::Kind::fatal;
            attempt.error = make_error(joined.error().code, who_ + ": " + joined.error().message);
            return false;
        }
        bool same_as_guess = name_guessed_ && target_ && joined.value() == *target_;
        name_guessed_ = false;
        name_confirmed_ = true;
        if (!same_as_guess) {
            if (resumed_) {
                // Bytes resumed under the provisional name belong to another
                // name: start again under the server's.
                target_ = joined.value();
                attempt.kind = Attempt::Kind::restart;
                std::lock_guard<std::mutex> lock(mutex_);
                restart_fresh_ = true;
                return false;
            }
            target_ = joined.value();
            long holder = 0;
            auto lock = FileLock::try_acquire(lock_path_for(*target_), holder);
            if (!lock) {
                attempt.kind = Attempt::Kind::fatal;
                attempt.error = make_error(lock.error().code, who_ + ": " + lock.error().message);
                return false;
            }
            if (!lock->held()) {
                attempt.kind = Attempt::Kind::lock_busy;
                return false;
            }
            lock_ = std::move(lock.value());  // lets go of the provisional name's lock, if any
            if (fd_ >= 0) ::close(fd_);
            fd_ = -1;
            part_ = part_path_for(*target_);
            state_path_ = resume_state_path(part_);
            // A state from an interrupted earlier run: start over with the
            // name known, so the request asks for the missing bytes only.
            if (auto state = load_resume_state(state_path_); state && state->identity == identity_ && !fresh_) {
                attempt.kind = Attempt::Kind::restart;
                return false;
            }
            remove_resume_state(state_path_);
        }
    }

    model_expected_ = is_model_file_name(target_->filename().string());
    text_claimed_ = is_text_content_type(response.header("Content-Type").value_or(""));
    if (model_expected_ && is_document_content_type(response.header("Content-Type").value_or(""))) {
        attempt.kind = Attempt::Kind::fatal;
        attempt.error =
            make_error(errc::integrity, who_ + ": expected the model file " + target_->filename().string() + " but " +
                                            response.url.redacted() + " sent a document (" +
                                            response.header("Content-Type").value_or("") +
                                            "); the link may need a login or point to a web page, not a file");
        return false;
    }
    if (plan_.size && total && *plan_.size != *total) {
        attempt.kind = Attempt::Kind::fatal;
        attempt.error = make_error(errc::integrity, who_ + ": the source says " + target_->filename().string() +
                                                        " has " + std::to_string(*plan_.size) + " bytes, but " +
                                                        response.url.redacted() + " serves " + std::to_string(*total));
        return false;
    }
    std::string etag = response.header("ETag").value_or("");
    std::string last_modified = response.header("Last-Modified").value_or("");
    if (resumed_) {
        bool same = total && *total == resume_.size;
        if (same && !resume_.etag.empty() && !etag.empty()) same = resume_.etag == etag;
        else if (same && !resume_.last_modified.empty() && !last_modified.empty())
            same = resume_.last_modified == last_modified;
        if (!same) {
            // Never splice two versions of a file: everything from scratch.
            attempt.kind = Attempt::Kind::restart;
            std::lock_guard<std::mutex> lock(mutex_);
            restart_fresh_ = true;
            queue_event_locked(EventKind::message,
                               who_ + ": " + file_label() +
                                   " changed on the server since the last run; downloading it again from the start");
            return false;
        }
    }

    // The .part: reuse it when resuming, otherwise start empty.
    if (fd_ < 0 || !resumed_) {
        if (fd_ >= 0) ::close(fd_);
        remove_resume_state(state_path_);
        std::error_code ignored;
        std::filesystem::create_directories(target_->parent_path(), ignored);
        auto created = create_fresh(part_, O_RDWR);  // never truncates what a planted link points to
        if (!created) {
            attempt.kind = Attempt::Kind::fatal;
            attempt.error = created.error();
            attempt.error.message = who_ + ": cannot create the partial file: " + attempt.error.message;
            return false;
        }
        fd_ = created.value();
    }
    if (total && *total > 0) {
        // Reserve the whole file now: a full disk fails here, not after 20 GB.
        int code = -1;
        errno = EOPNOTSUPP;
        if (options_.preallocate) code = ::fallocate(fd_, 0, 0, static_cast<off_t>(*total));
        if (code != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) code = ::ftruncate(fd_, static_cast<off_t>(*total));
        if (code != 0) {
            int error = errno;
            auto space = filesystem_space(target_->parent_path());
            std::string free_text = space ? human_size(space->available) + " free" : "unknown free space";
            attempt.kind = Attempt::Kind::fatal;
            attempt.error = errno_error(
                who_ + ": cannot reserve " + human_size(*total) + " for " + part_.string() + " (" + free_text + ")",
                error);
            return false;
        }
    }

    std::lock_guard<std::mutex> lock(mutex_);
    ranged_ = ranged;
    total_ = total;
    etag_ = etag;
    last_modified_ = last_modified;
    if (!response.redirects.empty()) {
        direct_url_ = response.url;
        direct_scoped_ = true;
        for (const auto& hop : response.redirects)
            if (hop.origin() != plan_.url.origin()) direct_scoped_ = false;
    }
    RangeSet done = resumed_ ? resume_.done : RangeSet{};
    if (ranged && total) {
        std::uint64_t piece = piece_size_for(*total);
        allowed_ = piece >= *total ? 1 : slots_;
        scheduler_ = std::make_unique<SegmentScheduler>(*total, done, slots_, piece,
                                                        std::max<std::uint64_t>(options_.min_segment_size, 1));
    } else {
        allowed_ = 1;
        std::uint64_t size = total.value_or(SegmentScheduler::unbounded);
        scheduler_ = std::make_unique<SegmentScheduler>(size, RangeSet{}, 1, size, 1);
    }
    auto first = scheduler_->take(0);
    if ((!first && !scheduler_->complete()) || (first && first->begin != requested_from)) {
        attempt.kind = Attempt::Kind::restart;
        restart_fresh_ = true;
        return false;
    }
    hasher_ = std::make_unique<PrefixHasher>(fd_, part_.string(), !plan_.git_sha1.empty(), total);
    hasher_->advance(scheduler_->done().prefix());
    saved_ = resumed_ ? resume_.done : RangeSet{};
    established_ = true;
    std::string message = resumed_ ? "resuming at " + human_size(scheduler_->done().covered()) : "";
    if (ranged && allowed_ > 1)
        message += std::string(message.empty() ? "" : ", ") + "up to " + std::to_string(allowed_) + " connections";
    events_.push_back(Event{EventKind::start, who_, target_->string(), scheduler_->done().covered(), total_, message});
    changed_.notify_all();
    return true;
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
