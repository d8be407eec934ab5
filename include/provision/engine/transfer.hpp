// SPDX-License-Identifier: MIT
// provision: one file's transfer, declared. The coordinator (the thread that
// calls run()) starts connections (worker threads); each fetches the pieces
// the segment scheduler hands it. The definitions live beside it:
//   transfer_establish.hpp    the first response settles the file (name, size, resumability)
//   transfer_responses.hpp    requests, status classes, later pieces checked against the first
//   transfer_connections.hpp  the worker threads: writes, stalls, retries
//   transfer_fetch.hpp        one request: its head accepted, its body judged and stored
//   transfer_finish.hpp       checkpoints, the coordinator's loop, verify and install
#ifndef PROVISION_ENGINE_TRANSFER_HPP
#define PROVISION_ENGINE_TRANSFER_HPP

#include "connection_budget.hpp"
#include "../support/digest.hpp"
#include "disk_space.hpp"
#include "file_lock.hpp"
#include "../layout/file_name.hpp"
#include "../support/guarded.hpp"
#include "../support/files.hpp"
#include "install_record.hpp"
#include "prefix_hasher.hpp"
#include "../http/probe.hpp"
#include "resume_state.hpp"
#include "../http/retry_policy.hpp"
#include "segment_scheduler.hpp"
#include "../error.hpp"
#include "../events.hpp"
#include "../http/client.hpp"
#include "../plan.hpp"
#include "content_judge.hpp"
#include "download_options.hpp"
#include "part_file.hpp"
#include "../http/content_range.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace provision {
namespace detail {

/// One file's transfer: the coordinator (the thread that calls run()) and
/// the connections (worker threads) it starts.
class Transfer {
  public:
    enum class Outcome {
        finished,   ///< installed, or failed for good: run()'s result says which
        mismatch,   ///< the bytes did not match the expected digest
        restart,    ///< start the file again (the server's copy changed, Range stopped working, ...)
        lock_busy,  ///< the server named the file and another process holds its lock
    };

    /// `name_guessed`: `target` is provisional (the server names the file).
    Transfer(HttpClient& http, const DownloadOptions& options, const DownloadPlan& plan,
             std::optional<std::filesystem::path> target, bool name_guessed, FileLock& lock, bool fresh,
             bool without_range)
        : http_(http),
          options_(options),
          plan_(plan),
          who_(plan.key_path),
          identity_(plan_identity(plan)),
          target_(std::move(target)),
          name_guessed_(name_guessed),
          lock_(lock),
          fresh_(fresh),
          without_range_(without_range),
          slots_(std::max<std::size_t>(options.connections_per_file, 1)),
          batch_(std::max<std::size_t>(options.write_batch, 64 * 1024)),
          allowed_(slots_) {
        for (std::size_t i = 0; i < slots_; ++i) workers_.push_back(std::make_unique<Worker>());
    }
    ~Transfer() {
        stop_workers();
        join_workers();
        hasher_.reset();
        if (fd_ >= 0) ::close(fd_);
    }
    Transfer(const Transfer&) = delete;
    Transfer& operator=(const Transfer&) = delete;

    Result<InstalledFile> run();

    Outcome outcome() const { return outcome_; }
    bool wants_fresh() const { return restart_fresh_; }
    bool wants_without_range() const { return restart_without_range_; }
    const std::optional<std::filesystem::path>& target() const { return target_; }
    /// The server's response settled the file name (a provisional one was kept or replaced).
    bool name_confirmed() const { return name_confirmed_; }

  private:
    using Clock = std::chrono::steady_clock;

    struct Worker {
        std::thread thread;
        RequestAbort abort;
        std::atomic<bool> running{false};
        std::atomic<bool> in_request{false};
        std::atomic<bool> stalled{false};
        std::atomic<std::int64_t> last_activity{0};  ///< steady clock, ns
        bool holds_budget = false;
        std::uint64_t link_generation = 0;  ///< which link its request used (see link_generation_)
    };

    /// How one request went.
    struct Attempt {
        enum class Kind { ok, retry, fatal, stop, restart, lock_busy } kind = Kind::ok;
        Error error;
        std::chrono::milliseconds server_wait{0};
        bool slow_down = false;  ///< 429/503: fewer connections, everyone waits
        bool immediate = false;  ///< retry at once (a fresh link, not a server problem)
        std::uint64_t received = 0;
    };

    static std::int64_t now_ns() {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
    }
    bool cancel_requested() const { return options_.cancel && options_.cancel->load(); }
    void queue_event(EventKind kind, std::string message, std::uint64_t done = 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_event_locked(kind, std::move(message), done);
    }
    void queue_event_locked(EventKind kind, std::string message, std::uint64_t done = 0) {
        events_.push_back(Event{kind, who_, target_ ? target_->string() : "", done, total_, std::move(message)});
        changed_.notify_all();
    }
    std::string file_label() const { return target_ ? target_->filename().string() : plan_.url.redacted(); }

    /// Pieces of about an eighth of a connection's share, so the in-order
    /// prefix the hasher reads keeps up; never below min_segment_size (each
    /// piece costs a request) nor above max_segment_size. Small files, and
    /// transfers limited to one connection, are one piece.
    std::uint64_t piece_size_for(std::uint64_t total) const {
        std::uint64_t min_segment = std::max<std::uint64_t>(options_.min_segment_size, 1);
        if (slots_ == 1 || total < 2 * min_segment) return std::max<std::uint64_t>(total, 1);
        std::uint64_t piece = total / (slots_ * 8);
        return std::min(std::max(piece, min_segment), std::max(options_.max_segment_size, min_segment));
    }

    Result<void> prepare();
    void coordinate();
    void worker_main(std::size_t slot);
    /// The body of worker_main: requests pieces until there are none or it is told to stop.
    void worker_loop(std::size_t slot, bool& leaving);
    /// What a connection asks for next.
    struct NextPiece {
        bool establishing = false;  ///< the first request: its answer settles the file
        std::uint64_t begin = 0;
        std::uint64_t end = SegmentScheduler::unbounded;
    };
    /// Waits out a server's "slow down", then the next piece; nullopt when the
    /// connection is to end (stopping, nothing left, or it gives way to others).
    std::optional<NextPiece> next_piece(std::size_t slot, bool& leaving);
    /// After a failed attempt: gives the piece back, then either waits the
    /// backoff (true: try again) or gives up (false).
    bool wait_to_retry(std::size_t slot, Attempt& attempt, const NextPiece& asked, int failures, bool& leaving);
    /// This connection decided to end (called with mutex_ held; see leaving_).
    void leave_locked(bool& leaving) {
        leaving = true;
        ++leaving_;
    }
    /// One request for bytes [begin, end) of the file, and what became of it (transfer_fetch.hpp).
    struct Fetch;
    Attempt fetch(std::size_t slot, bool establishing, std::uint64_t begin, std::uint64_t end,
                  std::vector<char>& buffer);
    bool accept_head(Fetch& state, const HttpResponse& response);
    bool take_body(Fetch& state, const char* data, std::size_t size);
    bool store_body(Fetch& state, const char* data, std::size_t size);
    bool judge_head(Fetch& state);
    Attempt conclude(Fetch& state, const HttpRequest& request, const Result<HttpResponse>& response);
    /// What the first answer says of the file's bytes.
    struct Extent {
        std::optional<std::uint64_t> total;  ///< unknown for a body of unannounced length
        bool ranged = false;                 ///< a 206 we can place: pieces may be fetched in parallel
    };
    /// The first response settles the file; the steps, in order (transfer_establish.hpp).
    bool establish(const HttpResponse& response, std::uint64_t requested_from, Attempt& attempt);
    bool check_encoding(const HttpResponse& response, Attempt& attempt);
    std::optional<Extent> read_extent(const HttpResponse& response, std::uint64_t requested_from, Attempt& attempt);
    bool settle_name(const HttpResponse& response, Attempt& attempt);
    bool check_claims(const HttpResponse& response, std::optional<std::uint64_t> total, Attempt& attempt);
    bool open_part(std::optional<std::uint64_t> total, Attempt& attempt);
    bool start_schedule(const HttpResponse& response, const Extent& extent, std::uint64_t requested_from,
                        Attempt& attempt);
    bool check_piece_response(const HttpResponse& response, std::size_t slot, std::uint64_t begin, Attempt& attempt);
    Attempt classify_status(const HttpResponse& response, std::size_t slot);
    void establish_from_state();
    bool flush(std::size_t slot, std::vector<char>& buffer, std::uint64_t& buffer_start, Attempt& attempt);
    /// Writes bytes that belong at `start` in this connection's piece, records
    /// them as done and moves `start` past them.
    bool write_piece(std::size_t slot, const char* data, std::size_t size, std::uint64_t& start, Attempt& attempt);
    bool spawn_worker(std::size_t slot, bool holds_budget);
    void stop_workers();
    void join_workers();
    void checkpoint(std::unique_lock<std::mutex>& lock);
    void fail(Error error);
    void discard_partial();
    Result<InstalledFile> finish_complete();
    Result<InstalledFile> finish_incomplete();
    HttpRequest make_request(std::uint64_t begin, std::uint64_t end, std::size_t slot);

    HttpClient& http_;
    const DownloadOptions& options_;
    DownloadPlan plan_;
    std::string who_;
    std::string identity_;
    std::optional<std::filesystem::path> target_;
    bool name_guessed_ = false;
    bool name_confirmed_ = false;
    FileLock& lock_;
    bool fresh_;
    bool without_range_;
    std::size_t slots_;
    std::size_t batch_;  ///< write batch per connection (at least 64 KiB)
    /// Pieces of at least this size arriving with the batch empty are written
    /// straight from the reader's buffer (copying a GiB costs a tenth of a second).
    static constexpr std::size_t direct_write_min = 64 * 1024;
    /// New bytes after which the coordinator asks the kernel to start writing them out.
    static constexpr std::uint64_t writeback_step = 32u << 20;

    std::filesystem::path part_;
    std::filesystem::path state_path_;
    int fd_ = -1;
    ResumeState resume_;
    bool resumed_ = false;
    std::uint64_t resume_from_ = 0;

    // Shared between the coordinator and the connections; guarded by mutex_.
    std::mutex mutex_;
    std::condition_variable changed_;  ///< wakes the coordinator
    std::condition_variable wake_;     ///< wakes connections sleeping in a backoff
    std::vector<Event> events_;
    bool established_ = false;
    bool ranged_ = false;
    std::optional<std::uint64_t> total_;
    std::string etag_;
    std::string last_modified_;
    bool model_expected_ = false;
    bool text_claimed_ = false;      ///< the answer called itself text: its first bytes decide
    std::optional<Url> direct_url_;  ///< where the redirects led: later requests go straight there
    bool direct_scoped_ = false;     ///< every hop stayed on the plan's origin: credentials may go there too
    int refreshes_ = 0;
    std::uint64_t link_generation_ = 0;  ///< bumped whenever the link requests use is renewed
    std::unique_ptr<SegmentScheduler> scheduler_;
    std::unique_ptr<PrefixHasher> hasher_;
    std::atomic<bool> stopping_{false};
    bool cancelled_ = false;
    std::optional<Error> fatal_;
    Outcome outcome_ = Outcome::finished;
    bool restart_fresh_ = false;
    bool restart_without_range_ = false;
    Clock::time_point not_before_{};
    std::size_t allowed_;
    std::size_t running_ = 0;
    /// Connections that decided to end but have not yet left running_: every
    /// "the others carry on" decision counts only the ones that stay, or two
    /// connections giving way at the same moment would leave the file orphaned.
    std::size_t leaving_ = 0;
    std::uint64_t fetched_ = 0;               ///< bytes written by this run
    std::uint64_t writeback_started_at_ = 0;  ///< fetched_ when writeback was last started
    RangeSet saved_;                          ///< ranges in the last state written
    std::vector<std::unique_ptr<Worker>> workers_;
    std::shared_ptr<ConnectionBudget> budget_ = options_.connection_budget;
};

}  // namespace detail
}  // namespace provision

#endif  // PROVISION_ENGINE_TRANSFER_HPP
