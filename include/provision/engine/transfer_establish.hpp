// SPDX-License-Identifier: MIT
// provision: how a Transfer's first response settles the file. Six steps, in
// this order, each either accepting the answer or saying in `attempt` why not
// (fatal, restart, lock busy): the encoding, the extent (size, ranged or
// not), the name, what the answer claims to be, the .part on disk, and the
// schedule of pieces. Nothing is acted on (a resume state, a lock, the .part)
// before the steps above it accepted the answer.
#ifndef PROVISION_ENGINE_TRANSFER_ESTABLISH_HPP
#define PROVISION_ENGINE_TRANSFER_ESTABLISH_HPP

#include "transfer.hpp"

namespace provision {
namespace detail {

inline bool Transfer::establish(const HttpResponse& response, std::uint64_t requested_from, Attempt& attempt) {
    if (!check_encoding(response, attempt)) return false;
    auto extent = read_extent(response, requested_from, attempt);
    if (!extent) return false;
    if ((!target_ || name_guessed_) && !settle_name(response, attempt)) return false;
    if (!check_claims(response, extent->total, attempt)) return false;
    if (!open_part(extent->total, attempt)) return false;
    return start_schedule(response, *extent, requested_from, attempt);
}

inline bool Transfer::check_encoding(const HttpResponse& response, Attempt& attempt) {
    // Requests ask for the bytes as stored (Accept-Encoding: identity). A
    // server that compresses anyway would have its gzip stream installed
    // under the model's name, and no digest may be there to notice.
    if (response.status != 200 && response.status != 206) return true;
    std::string encoding = to_lower(std::string(trim(response.header("Content-Encoding").value_or(""))));
    if (encoding.empty() || encoding == "identity") return true;
    attempt.kind = Attempt::Kind::fatal;
    attempt.error = make_error(errc::integrity, who_ + ": " + response.url.redacted() + " sent " + file_label() +
                                                    " compressed (Content-Encoding: " + encoding +
                                                    ") although provision asked for it as stored, so the bytes are "
                                                    "not the file; the server must serve it without compression");
    return false;
}

inline std::optional<Transfer::Extent> Transfer::read_extent(const HttpResponse& response, std::uint64_t requested_from,
                                                             Attempt& attempt) {
    Extent extent;
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
            return std::nullopt;
        }
        extent.total = range->total;
        extent.ranged = true;
        return extent;
    }
    if (response.status == 200 || (response.status == 206 && without_range_)) {
        // The body is as stored (check_encoding), so Content-Length is the file's size.
        if (auto length = response.header("Content-Length"))
            if (auto size = decimal_value(trim(*length))) extent.total = size;
        if (requested_from > 0) {
            // We asked to resume and got the whole file: the server ignores
            // Range. This answer starts at byte 0, so it is used from scratch.
            resumed_ = false;
            resume_from_ = 0;
            remove_resume_state(state_path_);
            queue_event(EventKind::message, who_ + ": " + response.url.redacted() +
                                                " ignores Range requests; downloading the whole file again");
        }
        return extent;
    }
    attempt = classify_status(response, 0);
    return std::nullopt;
}

inline bool Transfer::settle_name(const HttpResponse& response, Attempt& attempt) {
    // The server chooses the name. A provisional one (the URL's, taken before
    // the request so that a resume or a lock wait needs no request) is kept
    // when the server agrees, and swapped otherwise.
    std::string name;
    if (auto disposition = response.header("Content-Disposition"))
        if (auto proposed = content_disposition_filename(*disposition)) name = sanitize_file_name(*proposed);
    if (name.empty()) name = sanitize_file_name(plan_.url.last_segment());
    if (name.empty()) {
        attempt.kind = Attempt::Kind::fatal;
        attempt.error = make_error(errc::config, who_ + ": the server gave no usable file name for " +
                                                     plan_.url.redacted() + "; set filename = \"...\" in the entry");
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
    if (same_as_guess) return true;
    target_ = joined.value();
    if (resumed_) {
        // Bytes resumed under the provisional name belong to another name:
        // start again under the server's.
        attempt.kind = Attempt::Kind::restart;
        std::lock_guard<std::mutex> lock(mutex_);
        restart_fresh_ = true;
        return false;
    }
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
    // A state from an interrupted earlier run: start over with the name
    // known, so the request asks for the missing bytes only.
    if (auto state = load_resume_state(state_path_); state && state->identity == identity_ && !fresh_) {
        attempt.kind = Attempt::Kind::restart;
        return false;
    }
    remove_resume_state(state_path_);
    return true;
}

inline bool Transfer::check_claims(const HttpResponse& response, std::optional<std::uint64_t> total, Attempt& attempt) {
    std::string content_type = response.header("Content-Type").value_or("");
    model_expected_ = is_model_file_name(target_->filename().string());
    text_claimed_ = is_text_content_type(content_type);
    if (model_expected_ && is_document_content_type(content_type)) {
        attempt.kind = Attempt::Kind::fatal;
        attempt.error =
            make_error(errc::integrity, who_ + ": expected the model file " + target_->filename().string() + " but " +
                                            response.url.redacted() + " sent a document (" + content_type +
                                            "); the link may need a login or point to a web page, not a "
                                            "file");
        return false;
    }
    if (plan_.size && total && *plan_.size != *total) {
        attempt.kind = Attempt::Kind::fatal;
        attempt.error = make_error(errc::integrity, who_ + ": the source says " + target_->filename().string() +
                                                        " has " + std::to_string(*plan_.size) + " bytes, but " +
                                                        response.url.redacted() + " serves " + std::to_string(*total));
        return false;
    }
    if (!resumed_) return true;
    std::string etag = response.header("ETag").value_or("");
    std::string last_modified = response.header("Last-Modified").value_or("");
    bool same = total && *total == resume_.size;
    if (same && !resume_.etag.empty() && !etag.empty()) same = resume_.etag == etag;
    else if (same && !resume_.last_modified.empty() && !last_modified.empty())
        same = resume_.last_modified == last_modified;
    if (same) return true;
    // Never splice two versions of a file: everything from scratch.
    attempt.kind = Attempt::Kind::restart;
    std::lock_guard<std::mutex> lock(mutex_);
    restart_fresh_ = true;
    queue_event_locked(
        EventKind::message,
        who_ + ": " + file_label() + " changed on the server since the last run; downloading it again from the start");
    return false;
}

inline bool Transfer::open_part(std::optional<std::uint64_t> total, Attempt& attempt) {
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
    if (!total || *total == 0) return true;
    // Reserve the whole file now: a full disk fails here, not after 20 GB.
    int code = -1;
    errno = EOPNOTSUPP;
    if (options_.preallocate) code = ::fallocate(fd_, 0, 0, static_cast<off_t>(*total));
    if (code != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) code = ::ftruncate(fd_, static_cast<off_t>(*total));
    if (code == 0) return true;
    int error = errno;
    auto space = filesystem_space(target_->parent_path());
    std::string free_text = space ? human_size(space->available) + " free" : "unknown free space";
    attempt.kind = Attempt::Kind::fatal;
    attempt.error = errno_error(
        who_ + ": cannot reserve " + human_size(*total) + " for " + part_.string() + " (" + free_text + ")", error);
    return false;
}

inline bool Transfer::start_schedule(const HttpResponse& response, const Extent& extent, std::uint64_t requested_from,
                                     Attempt& attempt) {
    std::lock_guard<std::mutex> lock(mutex_);
    ranged_ = extent.ranged;
    total_ = extent.total;
    etag_ = response.header("ETag").value_or("");
    last_modified_ = response.header("Last-Modified").value_or("");
    if (!response.redirects.empty()) {
        direct_url_ = response.url;
        direct_scoped_ = true;
        for (const auto& hop : response.redirects)
            if (hop.origin() != plan_.url.origin()) direct_scoped_ = false;
    }
    RangeSet done = resumed_ ? resume_.done : RangeSet{};
    if (extent.ranged && extent.total) {
        std::uint64_t piece = piece_size_for(*extent.total);
        allowed_ = piece >= *extent.total ? 1 : slots_;
        scheduler_ = std::make_unique<SegmentScheduler>(*extent.total, done, slots_, piece,
                                                        std::max<std::uint64_t>(options_.min_segment_size, 1));
    } else {
        allowed_ = 1;
        std::uint64_t size = extent.total.value_or(SegmentScheduler::unbounded);
        scheduler_ = std::make_unique<SegmentScheduler>(size, RangeSet{}, 1, size, 1);
    }
    auto first = scheduler_->take(0);
    if ((!first && !scheduler_->complete()) || (first && first->begin != requested_from)) {
        attempt.kind = Attempt::Kind::restart;
        restart_fresh_ = true;
        return false;
    }
    hasher_ = std::make_unique<PrefixHasher>(fd_, part_.string(), !plan_.git_sha1.empty(), extent.total);
    hasher_->advance(scheduler_->done().prefix());
    saved_ = resumed_ ? resume_.done : RangeSet{};
    established_ = true;
    std::string message = resumed_ ? "resuming at " + human_size(scheduler_->done().covered()) : "";
    if (extent.ranged && allowed_ > 1)
        message += std::string(message.empty() ? "" : ", ") + "up to " + std::to_string(allowed_) + " connections";
    events_.push_back(Event{EventKind::start, who_, target_->string(), scheduler_->done().covered(), total_, message});
    changed_.notify_all();
    return true;
}

}  // namespace detail
}  // namespace provision

#endif  // PROVISION_ENGINE_TRANSFER_ESTABLISH_HPP
