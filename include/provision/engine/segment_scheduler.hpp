// SPDX-License-Identifier: MIT
// provision: which connection fetches which bytes of a file.
//
// A file is cut into pieces handed out in file order, so the contiguous
// prefix (what the hasher can consume) grows at roughly the combined rate of
// all connections instead of waiting for the slowest one. When no unassigned
// piece is left, an idle connection takes over the second half of the piece
// that would take longest to finish: one slow connection never holds a file
// back at the end. A piece is only split when that pays: both halves keep a
// minimum size (every split costs a request) and, at its connection's pace,
// it would still take a while (on a fast link the rest of a piece is already
// in flight, and splitting it only fetches those bytes twice).
//
// Not thread-safe: the downloader holds its own mutex around every call,
// except end_of(), which a receiving connection reads on every packet.
#ifndef PROVISION_ENGINE_SEGMENT_SCHEDULER_HPP
#define PROVISION_ENGINE_SEGMENT_SCHEDULER_HPP

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace provision {
namespace detail {

/// A half-open byte range [begin, end).
struct ByteSpan {
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
    std::uint64_t size() const { return end - begin; }
    bool operator==(const ByteSpan& other) const { return begin == other.begin && end == other.end; }
};

/// Disjoint byte ranges, merged as they are added, kept in order.
class RangeSet {
  public:
    void add(std::uint64_t begin, std::uint64_t end) {
        if (begin >= end) return;
        // Absorb every range that overlaps or touches [begin, end).
        auto it = ranges_.upper_bound(begin);
        if (it != ranges_.begin()) {
            auto previous = std::prev(it);
            if (previous->second >= begin) {
                begin = previous->first;
                end = std::max(end, previous->second);
                it = ranges_.erase(previous);
            }
        }
        while (it != ranges_.end() && it->first <= end) {
            end = std::max(end, it->second);
            it = ranges_.erase(it);
        }
        ranges_.emplace(begin, end);
    }

    /// Removes [begin, end) from the set.
    void remove(std::uint64_t begin, std::uint64_t end) {
        if (begin >= end) return;
        std::vector<ByteSpan> keep;
        for (auto it = ranges_.begin(); it != ranges_.end();) {
            if (it->second <= begin || it->first >= end) {
                ++it;
                continue;
            }
            if (it->first < begin) keep.push_back({it->first, begin});
            if (it->second > end) keep.push_back({end, it->second});
            it = ranges_.erase(it);
        }
        for (const auto& span : keep) ranges_.emplace(span.begin, span.end);
    }

    std::uint64_t covered() const {
        std::uint64_t sum = 0;
        for (const auto& [begin, end] : ranges_) sum += end - begin;
        return sum;
    }
    /// End of the range that starts at byte 0: how much of the file can be read in order.
    std::uint64_t prefix() const {
        auto first = ranges_.find(0);
        return first == ranges_.end() ? 0 : first->second;
    }
    bool covers(std::uint64_t begin, std::uint64_t end) const {
        if (begin >= end) return true;
        auto it = ranges_.upper_bound(begin);
        if (it == ranges_.begin()) return false;
        --it;
        return it->first <= begin && it->second >= end;
    }
    /// The parts of [0, total) that are not in the set.
    std::vector<ByteSpan> missing(std::uint64_t total) const {
        std::vector<ByteSpan> out;
        std::uint64_t position = 0;
        for (const auto& [begin, end] : ranges_) {
            if (begin >= total) break;
            if (begin > position) out.push_back({position, begin});
            position = std::max(position, end);
        }
        if (position < total) out.push_back({position, total});
        return out;
    }
    std::vector<ByteSpan> spans() const {
        std::vector<ByteSpan> out;
        for (const auto& [begin, end] : ranges_) out.push_back({begin, end});
        return out;
    }
    bool empty() const { return ranges_.empty(); }
    std::uint64_t last_end() const { return ranges_.empty() ? 0 : ranges_.rbegin()->second; }
    void clear() { ranges_.clear(); }
    bool operator==(const RangeSet& other) const { return ranges_ == other.ranges_; }
    bool operator!=(const RangeSet& other) const { return !(*this == other); }

  private:
    std::map<std::uint64_t, std::uint64_t> ranges_;  // begin -> end
};

class SegmentScheduler {
  public:
    /// The size of a file whose length the server did not announce.
    static constexpr std::uint64_t unbounded = std::numeric_limits<std::uint64_t>::max();
    using Clock = std::chrono::steady_clock;
    /// A piece is judged only after it ran this long (connections need a moment to get going).
    static constexpr std::chrono::milliseconds judge_after{250};
    /// Split a piece only when it would otherwise take at least this long.
    static constexpr std::chrono::milliseconds worth_splitting{1000};

    struct Piece {
        std::uint64_t begin = 0;
        std::uint64_t end = 0;
    };

    /// `done`: bytes already on disk (a resumed download). `slots`: how many
    /// connections may work at once. Pieces are `piece_size` bytes; a piece
    /// in progress is only split while both halves keep `min_split` bytes.
    SegmentScheduler(std::uint64_t total, const RangeSet& done, std::size_t slots, std::uint64_t piece_size,
                     std::uint64_t min_split)
        : total_(total),
          done_(done),
          slots_(std::max<std::size_t>(slots, 1)),
          piece_size_(std::max<std::uint64_t>(piece_size, 1)),
          min_split_(std::max<std::uint64_t>(min_split, 1)) {
        for (auto& slot : slots_) slot = std::make_unique<Slot>();
        for (const auto& span : done_.missing(total_)) unassigned_.add(span.begin, span.end);
    }

    std::uint64_t total() const { return total_; }
    std::size_t slot_count() const { return slots_.size(); }
    const RangeSet& done() const { return done_; }
    bool complete() const { return total_ != unbounded && done_.covers(0, total_); }

    /// Gives `slot` its next piece: the lowest unassigned bytes, or, when every
    /// byte is assigned, the second half of the largest piece in progress.
    /// nullopt: nothing left that is worth another connection.
    std::optional<Piece> take(std::size_t slot, Clock::time_point now = Clock::now()) {
        give_back(slot);
        Slot& mine = *slots_[slot];
        auto spans = unassigned_.spans();
        if (!spans.empty()) {
            ByteSpan span = spans.front();
            std::uint64_t length = span.size();
            std::uint64_t take = std::min(length, piece_size_);
            if (length - take < min_split_) take = length;  // a tiny leftover would cost a request of its own
            unassigned_.remove(span.begin, span.begin + take);
            start(mine, span.begin, span.begin + take, now);
            return Piece{span.begin, span.begin + take};
        }
        // Work stealing: the second half of the piece that would take longest.
        Slot* victim = find_victim(slot, now);
        if (!victim) return std::nullopt;
        std::uint64_t end = victim->end.load();
        std::uint64_t remaining = end - victim->cursor;
        std::uint64_t middle = victim->cursor + remaining / 2;
        const std::uint64_t align = 64 * 1024;  // whole pages for the writes on both sides
        std::uint64_t aligned = (middle + align - 1) / align * align;
        if (aligned < end && end - aligned >= min_split_) middle = aligned;
        victim->end.store(middle);
        start(mine, middle, end, now);
        return Piece{middle, end};
    }

    /// Lets `slot`, having finished its piece, go on reading the same response
    /// when the bytes right after it are still unassigned: no new request.
    /// `limit` is the end of what that response will deliver.
    bool extend(std::size_t slot, std::uint64_t limit) {
        Slot& mine = *slots_[slot];
        std::uint64_t end = mine.end.load();
        if (!mine.active || mine.cursor != end || end >= limit) return false;
        for (const auto& span : unassigned_.spans()) {
            if (span.begin > end) break;
            if (span.begin != end) continue;
            std::uint64_t take = std::min({span.size(), piece_size_, limit - end});
            if (span.size() - take < min_split_ && span.end <= limit) take = span.size();
            unassigned_.remove(end, end + take);
            mine.end.store(end + take);
            return true;
        }
        return false;
    }

    /// Records that bytes [offset, offset + length) of slot's piece are
    /// written. Bytes past the piece's end (it may have been split meanwhile)
    /// do not count. Returns how many did.
    std::uint64_t commit(std::size_t slot, std::uint64_t offset, std::uint64_t length) {
        Slot& mine = *slots_[slot];
        std::uint64_t end = mine.end.load();
        if (!mine.active || offset != mine.cursor || offset >= end) return 0;
        std::uint64_t counted = std::min(length, end - offset);
        done_.add(offset, offset + counted);
        mine.cursor = offset + counted;
        return counted;
    }

    /// `slot` stops working on its piece; the bytes it did not write become
    /// unassigned again (and are handed out first: they are the lowest).
    void give_back(std::size_t slot) {
        Slot& mine = *slots_[slot];
        if (!mine.active) return;
        std::uint64_t end = mine.end.load();
        if (mine.cursor < end && end != unbounded) unassigned_.add(mine.cursor, end);
        mine.active = false;
    }

    /// The current end of slot's piece; it only ever shrinks while the piece
    /// is worked on (work stealing) or grows by extend(). Lock-free.
    std::uint64_t end_of(std::size_t slot) const { return slots_[slot]->end.load(std::memory_order_relaxed); }
    std::uint64_t cursor_of(std::size_t slot) const { return slots_[slot]->cursor; }

    /// True while some bytes wait for a connection, or a piece in progress is
    /// worth splitting: another connection would help.
    bool has_work_for_another(Clock::time_point now = Clock::now()) const {
        if (!unassigned_.empty()) return true;
        return const_cast<SegmentScheduler*>(this)->find_victim(slots_.size(), now) != nullptr;
    }

    /// For a file of unknown size: the stream ended after `size` bytes.
    void set_total(std::uint64_t size) {
        total_ = size;
        for (auto& slot : slots_)
            if (slot->end.load() == unbounded) slot->end.store(size);
        unassigned_.clear();
    }

  private:
    struct Slot {
        std::uint64_t begin = 0;
        std::uint64_t cursor = 0;  ///< next byte to be committed
        std::atomic<std::uint64_t> end{0};
        bool active = false;
        Clock::time_point started{};  ///< when the piece was handed out
    };

    void start(Slot& slot, std::uint64_t begin, std::uint64_t end, Clock::time_point now) {
        slot.begin = slot.cursor = begin;
        slot.end.store(end);
        slot.active = true;
        slot.started = now;
    }

    /// The piece (not `thief`'s) with the longest expected time to finish, at
    /// its connection's pace so far, if splitting it is worth a request.
    Slot* find_victim(std::size_t thief, Clock::time_point now) {
        Slot* victim = nullptr;
        double longest = 0;
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            Slot& other = *slots_[i];
            if (i == thief || !other.active) continue;
            std::uint64_t end = other.end.load();
            if (end == unbounded || end <= other.cursor || end - other.cursor < 2 * min_split_) continue;
            auto elapsed = now - other.started;
            if (elapsed < judge_after) continue;
            double seconds = std::chrono::duration<double>(elapsed).count();
            double received = static_cast<double>(other.cursor - other.begin);
            double remaining = static_cast<double>(end - other.cursor);
            double expected = received > 0 ? remaining * seconds / received : 1e9;  // nothing yet: very slow
            if (expected >= std::chrono::duration<double>(worth_splitting).count() && expected > longest) {
                longest = expected;
                victim = &other;
            }
        }
        return victim;
    }

    std::uint64_t total_;
    RangeSet done_;
    RangeSet unassigned_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::uint64_t piece_size_;
    std::uint64_t min_split_;
};

}  // namespace detail
}  // namespace provision

#endif
