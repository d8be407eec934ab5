// SPDX-License-Identifier: MIT
// provision: one request of a Transfer's connection, from the request to what
// became of it. Its state (where the response is, what is batched, whether the
// first bytes were judged) lives in a Fetch; the response's head is accepted
// (the first settles the file, later ones are checked against it), its body is
// judged, batched and written piece by piece, and its end is classified.
#ifndef PROVISION_ENGINE_TRANSFER_FETCH_HPP
#define PROVISION_ENGINE_TRANSFER_FETCH_HPP

#include "transfer.hpp"

#include <cstdio>

namespace provision {
namespace detail {

/// One request's progress through its response.
struct Transfer::Fetch {
    Fetch(std::size_t slot_, bool establishing_, std::uint64_t begin_, std::uint64_t end_, std::vector<char>& buffer_)
        : slot(slot_),
          establishing(establishing_),
          begin(begin_),
          buffer(buffer_),
          position(begin_),
          buffer_start(begin_),
          limit(end_),
          end(end_) {}
    std::size_t slot;
    bool establishing;    ///< the first request: its answer settles the file
    std::uint64_t begin;  ///< the first byte asked for
    std::vector<char>& buffer;
    std::uint64_t position;      ///< next byte the response delivers
    std::uint64_t buffer_start;  ///< file offset of buffer[0]
    std::uint64_t limit;         ///< the response delivers up to here
    std::uint64_t end;           ///< the end asked for (SegmentScheduler::unbounded: open-ended)
    Attempt attempt;
    bool accepted = false;    ///< the response's head was accepted
    bool piece_done = false;  ///< the rest of the response belongs to other connections
    // The first bytes of the file are judged (a page? an error document?)
    // before any of them reach the disk. They are gathered first: one read can
    // hold a handful of bytes, too few to tell text from a binary header.
    std::string head;
    bool judged = false;
    std::uint64_t unseen = 0;  ///< bytes since last_activity was moved on (see stall_min_bytes)
};

inline Transfer::Attempt Transfer::fetch(std::size_t slot, bool establishing, std::uint64_t begin, std::uint64_t end,
                                         std::vector<char>& buffer) {
    Worker& worker = *workers_[slot];
    worker.abort.reset();
    worker.stalled = false;
    Fetch state(slot, establishing, begin, end, buffer);
    if (stopping_) {
        state.attempt.kind = Attempt::Kind::stop;
        return state.attempt;
    }
    HttpRequest request = make_request(begin, end, slot);
    worker.last_activity = now_ns();
    worker.in_request = true;
    auto response = http_.stream(
        request, [&](const HttpResponse& head) { return accept_head(state, head); },
        [&](const char* data, std::size_t size) { return take_body(state, data, size); });
    worker.in_request = false;
    return conclude(state, request, response);
}

inline bool Transfer::judge_head(Fetch& state) {
    state.judged = true;
    auto problem = judge_model_head(state.head, text_claimed_, plan_.url.redacted());
    if (!problem) return true;
    state.attempt.kind = Attempt::Kind::fatal;
    state.attempt.error = make_error(
        errc::integrity, who_ + ": expected the model file " + target_->filename().string() + " but " + *problem);
    return false;
}

inline bool Transfer::accept_head(Fetch& state, const HttpResponse& response) {
    if (state.establishing) {
        if (!establish(response, state.begin, state.attempt)) return false;
        std::lock_guard<std::mutex> lock(mutex_);
        if (!resumed_) state.position = state.buffer_start = 0;
        // A 200 delivers the whole file; an open-ended 206 runs to its end.
        if (!ranged_ || state.end == SegmentScheduler::unbounded)
            state.limit = total_.value_or(SegmentScheduler::unbounded);
    } else if (!check_piece_response(response, state.slot, state.begin, state.attempt)) {
        return false;
    }
    state.accepted = true;
    workers_[state.slot]->last_activity = now_ns();
    return true;
}

inline bool Transfer::take_body(Fetch& state, const char* data, std::size_t size) {
    if (stopping_) return false;
    state.unseen += size;
    if (state.unseen >= options_.stall_min_bytes) {
        state.unseen = 0;
        workers_[state.slot]->last_activity.store(now_ns(), std::memory_order_relaxed);
    }
    if (state.limit == SegmentScheduler::unbounded && plan_.size && state.position + size > *plan_.size) {
        // No length from the server, but the source said how big the file
        // is: more than that is not this file, and must not fill the disk.
        state.attempt.kind = Attempt::Kind::fatal;
        state.attempt.error =
            make_error(errc::integrity, who_ + ": " + plan_.url.redacted() + " sent more than the " +
                                            std::to_string(*plan_.size) + " bytes the source announced");
        return false;
    }
    if (!state.judged) {
        if (!model_expected_ || (state.head.empty() && state.position != 0)) {
            state.judged = true;  // not a model file, or not its first bytes
        } else {
            state.head.append(data, std::min(size, model_head_bytes - state.head.size()));
            if (state.head.size() >= model_head_bytes && !judge_head(state)) return false;
        }
    }
    state.attempt.received += size;
    return store_body(state, data, size);
}

inline bool Transfer::store_body(Fetch& state, const char* data, std::size_t size) {
    // Called before every write: bytes reach the disk only once the head is judged.
    auto may_write = [&] { return state.judged || judge_head(state); };
    std::vector<char>& buffer = state.buffer;
    while (size > 0) {
        std::uint64_t piece_end = scheduler_->end_of(state.slot);
        if (state.position >= piece_end) {
            if (!may_write() || !flush(state.slot, buffer, state.buffer_start, state.attempt)) return false;
            bool extended = false;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                extended = scheduler_->extend(state.slot, state.limit);
            }
            if (!extended) {
                state.piece_done = true;
                return false;
            }
            state.buffer_start = state.position;
            continue;
        }
        std::size_t room = batch_ > buffer.size() ? batch_ - buffer.size() : 0;
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>({size, piece_end - state.position, room}));
        if (buffer.empty() && take >= direct_write_min) {
            // A large piece (our own reader delivers up to 256 KiB) goes
            // to disk from where it is, without a copy into the batch.
            if (!may_write() || !write_piece(state.slot, data, take, state.buffer_start, state.attempt)) return false;
        } else {
            buffer.insert(buffer.end(), data, data + take);
        }
        data += take;
        size -= take;
        state.position += take;
        if (buffer.size() >= batch_ && (!may_write() || !flush(state.slot, buffer, state.buffer_start, state.attempt)))
            return false;
    }
    return true;
}

inline Transfer::Attempt Transfer::conclude(Fetch& state, const HttpRequest& request,
                                            const Result<HttpResponse>& response) {
    Attempt& attempt = state.attempt;
    if (state.accepted && attempt.kind != Attempt::Kind::fatal && !state.judged && !state.head.empty()) {
        // The body ended within the first bytes: a small file is judged on all
        // of it; a cut connection's few bytes are dropped, fetched again and
        // judged whole (judged on their own, two bytes of a binary header can
        // pass for text).
        if (response) judge_head(state);
        else state.buffer.clear();
    }
    if (state.accepted && attempt.kind != Attempt::Kind::fatal) {
        Attempt flushed;
        if (!flush(state.slot, state.buffer, state.buffer_start, flushed)) return flushed;
    }
    state.buffer.clear();
    if (attempt.kind != Attempt::Kind::ok) return attempt;
    if (stopping_) {
        attempt.kind = Attempt::Kind::stop;
        return attempt;
    }
    if (!response) {
        // Only a network failure may pass with time; a refused certificate will not.
        attempt.kind = response.error().code == errc::network ? Attempt::Kind::retry : Attempt::Kind::fatal;
        attempt.error = make_error(response.error().code, who_ + ": " + response.error().message);
        if (workers_[state.slot]->stalled) {
            auto seconds = std::chrono::duration<double>(options_.stall_timeout).count();
            char text[64];
            std::snprintf(text, sizeof text, "%.1f", seconds);
            attempt.error = make_error(
                errc::network, who_ + ": no data from " + request.url.authority() + " for " + text + " s (stalled)");
        }
        return attempt;
    }
    if (state.piece_done) return attempt;
    // The response ended by itself.
    std::lock_guard<std::mutex> lock(mutex_);
    if (scheduler_ && scheduler_->total() == SegmentScheduler::unbounded) {
        scheduler_->set_total(state.position);
        total_ = state.position;
        return attempt;
    }
    if (scheduler_ && state.position < scheduler_->end_of(state.slot)) {
        attempt.kind = Attempt::Kind::retry;
        attempt.error = make_error(errc::network, who_ + ": the connection to " + request.url.authority() +
                                                      " closed after " + human_size(state.position - state.begin) +
                                                      " of bytes " + std::to_string(state.begin) + "-" +
                                                      std::to_string(scheduler_->end_of(state.slot) - 1));
    }
    return attempt;
}

}  // namespace detail
}  // namespace provision

#endif  // PROVISION_ENGINE_TRANSFER_FETCH_HPP
