// SPDX-License-Identifier: MIT
// provision: executes download plans.
//
// One file at a time per Downloader::download() call (the provisioner runs
// several calls at once). For each file:
//   * a lock per target ("<name>.lock") so two provisioners never write it together;
//   * an install record check: a file already in place is not fetched again;
//   * the bytes go to a preallocated "<name>.part" (a full disk shows up at
//     the start, not after 20 GB), over several connections when the server
//     honours Range (engine/segment_scheduler.hpp), in 1 MiB positional writes;
//   * SHA-256 is computed while the data arrives, on a thread of its own that
//     reads back the complete prefix (engine/prefix_hasher.hpp);
//   * resume state beside the .part (engine/resume_state.hpp) lets a later
//     run continue after kill -9 or a power cut;
//   * failed requests are retried with backoff, honouring Retry-After and
//     RateLimit (http/retry_policy.hpp); a connection that delivers nothing
//     for stall_timeout is dropped and its bytes fetched again;
//   * size and digest are checked before the file is synced and renamed into
//     place: nothing half-written or unverified ever sits under a final model
//     name, and a web page is never saved where a model was expected.
#ifndef PROVISION_ENGINE_DOWNLOADER_HPP
#define PROVISION_ENGINE_DOWNLOADER_HPP

#include "connection_budget.hpp"
#include "../http/content_range.hpp"
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

/// Caps the connections open at once over every file of a run; share one
/// between the Downloaders of a run (the provisioner does).
using ConnectionBudget = detail::ConnectionBudget;
/// The record of installed files (${WORKSPACE}/.provision/installed.json).
using InstallRegistry = detail::InstallRegistry;

/// How often and how patiently failed requests are tried again.
struct RetryPolicy {
    /// A connection gives up after this many failures in a row without
    /// receiving a byte; the file fails when its last connection gives up.
    int max_attempts = 8;
    std::chrono::milliseconds base_delay{1000};  ///< first backoff (doubles each time, with jitter)
    std::chrono::milliseconds max_delay{30000};  ///< backoff never waits longer
    std::chrono::milliseconds max_server_delay{std::chrono::minutes(10)};  ///< longest Retry-After / RateLimit wait honoured
};

struct DownloadOptions {
    const std::atomic<bool>* cancel = nullptr;  ///< set to stop transfers promptly (partial files are kept)
    EventHandler on_event;                      ///< reports; called on the thread that runs download()
    std::chrono::milliseconds progress_interval{250};

    /// Connections one file may use at once. CDNs cap each connection (20 MB/s
    /// and less is common), so one large file alone may take the whole run's
    /// budget (ProvisionOptions::max_connections, 16); files downloading at the
    /// same time share it, as connections give way to waiting files.
    std::size_t connections_per_file = 16;
    std::shared_ptr<ConnectionBudget> connection_budget;  ///< cap over all files; null: only the per-file cap
    std::uint64_t min_segment_size = 8u << 20;  ///< files under twice this use one connection; no piece is split below it
    std::uint64_t max_segment_size = 64u << 20; ///< largest piece handed to a connection at once
    std::chrono::milliseconds stall_timeout{30000};  ///< a connection silent this long is dropped and retried
    /// A connection must deliver at least this much per stall_timeout, or it
    /// counts as stalled: a server dripping a few bytes a second would
    /// otherwise never time out (about 550 bytes/s with the defaults).
    std::uint64_t stall_min_bytes = 16 * 1024;
    RetryPolicy retry;
    std::chrono::milliseconds checkpoint_interval{1000};  ///< how often resume state is flushed
    std::size_t write_batch = 1u << 20;         ///< bytes a connection collects per write (also its buffer)
    /// Reserve the whole .part before the first byte (fallocate), so a full
    /// disk fails at once. Off, the .part grows as bytes arrive (as on a
    /// filesystem without fallocate) and a full disk fails mid-way.
    bool preallocate = true;

    std::shared_ptr<InstallRegistry> registry;  ///< records installed files; null: none kept
    bool verify = false;                        ///< re-hash recorded files instead of trusting their records
};

/// A file that is in place and verified.
struct InstalledFile {
    std::filesystem::path path;
    std::uint64_t size = 0;
    std::string sha256;
    bool already_present = false;  ///< nothing was downloaded
};

/// What a plan still needs, found without any request.
struct PlanCheck {
    std::optional<InstalledFile> present;       ///< in place and trusted: nothing to do
    std::filesystem::path target;               ///< empty when the server chooses the name
    std::optional<std::uint64_t> bytes_needed;  ///< disk space still to be taken; nullopt: size unknown
    std::string reason;                         ///< why it is not present, for the log (may be empty)
};

class Downloader {
  public:
    Downloader(HttpClient& http, DownloadOptions options) : http_(http), options_(std::move(options)) {}

    /// Downloads one plan (or finds it in place). Thread-safe: several plans
    /// may run at once on one Downloader.
    Result<InstalledFile> download(const DownloadPlan& plan);
    /// Same, reusing a check() done just before (no second look at the disk).
    Result<InstalledFile> download(const DownloadPlan& plan, const PlanCheck& checked);

    /// Is the plan's file in place? Reads the install record (and, with
    /// options.verify or without a record, hashes the file when a digest is
    /// known). Sends no request.
    PlanCheck check(const DownloadPlan& plan);

    const DownloadOptions& options() const { return options_; }

  private:
    Result<InstalledFile> run(const DownloadPlan& plan, const PlanCheck* checked);
    PlanCheck check_target(const DownloadPlan& plan, const std::filesystem::path& target);
    void emit(const Event& event) const {
        if (options_.on_event) options_.on_event(event);
    }
    bool cancelled() const { return options_.cancel && options_.cancel->load(); }

    HttpClient& http_;
    DownloadOptions options_;
};

namespace detail {

/// True for a Content-Type that is a document, not model bytes.
inline bool is_text_content_type(std::string_view content_type) {
    std::string type = to_lower(trim(content_type.substr(0, content_type.find(';'))));
    return starts_with(type, "text/") || type == "application/json" || type == "application/xhtml+xml" ||
           type == "application/problem+json" || type == "application/xml";
}

/// Types no server gives a model file, even a misconfigured one. A bare
/// text/plain is different: nginx without its MIME map, and many object
/// stores, label every unknown file that way, so the body decides.
inline bool is_document_content_type(std::string_view content_type) {
    std::string type = to_lower(trim(content_type.substr(0, content_type.find(';'))));
    return is_text_content_type(type) && type != "text/plain";
}

/// True when a body's first bytes are plain text (an error message, a page)
/// rather than a binary model file, whose first bytes always hold a NUL or
/// another control byte (safetensors' length prefix, a zip or pickle header).
inline bool looks_like_text(std::string_view head) {
    head = head.substr(0, 512);
    if (head.empty()) return false;
    for (unsigned char c : head)
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    return true;
}

/// True when the first bytes of a body look like an HTML document.
inline bool looks_like_html(std::string_view head) {
    std::size_t i = 0;
    if (starts_with(head, "\xEF\xBB\xBF")) i = 3;
    while (i < head.size() && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
    std::string start = to_lower(head.substr(i, 14));
    return starts_with(start, "<!doctype html") || starts_with(start, "<html") || starts_with(start, "<head") ||
           starts_with(start, "<!--");
}

/// True when the first bytes are a JSON object or array: the shape of an
/// API's error answer. No model file starts that way (safetensors opens with a
/// binary length, the other formats with binary magic numbers), so this holds
/// whatever Content-Type the server claimed.
inline bool looks_like_json(std::string_view head) {
    std::size_t i = starts_with(head, "\xEF\xBB\xBF") ? 3 : 0;
    while (i < head.size() && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
    return i < head.size() && (head[i] == '{' || head[i] == '[') && looks_like_text(head);
}

/// How many first bytes of a model file are gathered before they are judged
/// (a first read can be a handful of bytes; looks_like_text reads this many).
constexpr std::size_t model_head_bytes = 512;

/// Hash a whole file (for files found in place).
inline Result<std::string> sha256_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error("cannot read " + path.string(), errno);
    auto hasher = Hasher::sha256();
    std::string buffer(1 << 20, '\0');
    while (true) {
        ssize_t got = ::read(fd, buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int code = errno;
            ::close(fd);
            return errno_error("cannot read " + path.string(), code);
        }
        if (got == 0) break;
        hasher.update(buffer.data(), static_cast<std::size_t>(got));
    }
    ::close(fd);
    return hasher.hex_digest();
}

/// The identity a plan's bytes are recorded under.
inline std::string plan_identity(const DownloadPlan& plan) {
    return plan.identity.empty() ? "url:" + plan.url.redacted() : plan.identity;
}

/// "<target>.part"
inline std::filesystem::path part_path_for(const std::filesystem::path& target) {
    auto path = target;
    path += ".part";
    return path;
}

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
             std::optional<std::filesystem::path> target, bool name_guessed, FileLock& lock, bool fresh, bool without_range)
        : http_(http), options_(options), plan_(plan), who_(plan.key_path), identity_(plan_identity(plan)),
          target_(std::move(target)), name_guessed_(name_guessed), lock_(lock), fresh_(fresh), without_range_(without_range),
          slots_(std::max<std::size_t>(options.connections_per_file, 1)),
          batch_(std::max<std::size_t>(options.write_batch, 64 * 1024)), allowed_(slots_) {
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
    Attempt fetch(std::size_t slot, bool establishing, std::uint64_t begin, std::uint64_t end, std::vector<char>& buffer);
    bool establish(const HttpResponse& response, std::uint64_t requested_from, Attempt& attempt);
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
    bool text_claimed_ = false;  ///< the answer called itself text: its first bytes decide
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
    std::uint64_t fetched_ = 0;  ///< bytes written by this run
    std::uint64_t writeback_started_at_ = 0;  ///< fetched_ when writeback was last started
    RangeSet saved_;             ///< ranges in the last state written
    std::vector<std::unique_ptr<Worker>> workers_;
    std::shared_ptr<ConnectionBudget> budget_ = options_.connection_budget;
};

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
        bool same = state && ((state->identity == identity_ && state->validator == plan_.validator && state->sha256 == plan_.sha256) ||
                              (!plan_.sha256.empty() && state->sha256 == plan_.sha256));
        bool usable = same && (!plan_.size || *plan_.size == state->size) &&
                      ::stat(part_.c_str(), &info) == 0 && static_cast<std::uint64_t>(info.st_size) >= state->done.last_end();
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
    attempt.error = plan_.explain ? plan_.explain(response)
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
            attempt.error = make_error(errc::integrity, who_ + ": " + response.url.redacted() + " sent " + file_label() +
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
            queue_event_locked(EventKind::message, who_ + ": " + response.url.redacted() + " sent an unusable Content-Range (" +
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
            attempt.error = make_error(errc::config, who_ + ": the server gave no usable file name for " + plan_.url.redacted() +
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
        attempt.error = make_error(errc::integrity, who_ + ": expected the model file " + target_->filename().string() + " but " +
                                                        response.url.redacted() + " sent a document (" +
                                                        response.header("Content-Type").value_or("") +
                                                        "); the link may need a login or point to a web page, not a file");
        return false;
    }
    if (plan_.size && total && *plan_.size != *total) {
        attempt.kind = Attempt::Kind::fatal;
        attempt.error = make_error(errc::integrity, who_ + ": the source says " + target_->filename().string() + " has " +
                                                        std::to_string(*plan_.size) + " bytes, but " + response.url.redacted() +
                                                        " serves " + std::to_string(*total));
        return false;
    }
    std::string etag = response.header("ETag").value_or("");
    std::string last_modified = response.header("Last-Modified").value_or("");
    if (resumed_) {
        bool same = total && *total == resume_.size;
        if (same && !resume_.etag.empty() && !etag.empty()) same = resume_.etag == etag;
        else if (same && !resume_.last_modified.empty() && !last_modified.empty()) same = resume_.last_modified == last_modified;
        if (!same) {
            // Never splice two versions of a file: everything from scratch.
            attempt.kind = Attempt::Kind::restart;
            std::lock_guard<std::mutex> lock(mutex_);
            restart_fresh_ = true;
            queue_event_locked(EventKind::message, who_ + ": " + file_label() +
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
            attempt.error = errno_error(who_ + ": cannot reserve " + human_size(*total) + " for " + part_.string() + " (" +
                                            free_text + ")",
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
    if (ranged && allowed_ > 1) message += std::string(message.empty() ? "" : ", ") + "up to " + std::to_string(allowed_) + " connections";
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
            if (range && range->total == total_ && range->first != begin && (etag_.empty() || etag.empty() || etag == etag_)) {
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

inline bool Transfer::flush(std::size_t slot, std::vector<char>& buffer, std::uint64_t& buffer_start, Attempt& attempt) {
    if (buffer.empty()) return true;
    if (!write_piece(slot, buffer.data(), buffer.size(), buffer_start, attempt)) return false;
    buffer.clear();
    return true;
}

inline bool Transfer::write_piece(std::size_t slot, const char* data, std::size_t size, std::uint64_t& start, Attempt& attempt) {
    std::uint64_t end = scheduler_->end_of(slot);
    std::uint64_t writable = end > start ? std::min<std::uint64_t>(size, end - start) : 0;
    if (writable > 0) {
        auto written = write_all_at(fd_, data, static_cast<std::size_t>(writable), start, part_.string());
        if (!written) {
            attempt.kind = Attempt::Kind::fatal;
            attempt.error = written.error();
            attempt.error.message = who_ + ": " + attempt.error.message;
            if (attempt.error.code == errc::disk_full) attempt.error.message += "; the partial file is kept for the next run";
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

inline Transfer::Attempt Transfer::fetch(std::size_t slot, bool establishing, std::uint64_t begin, std::uint64_t end,
                                         std::vector<char>& buffer) {
    Worker& worker = *workers_[slot];
    Attempt attempt;
    worker.abort.reset();
    worker.stalled = false;
    if (stopping_) {
        attempt.kind = Attempt::Kind::stop;
        return attempt;
    }
    HttpRequest request = make_request(begin, end, slot);
    std::uint64_t position = begin;      // next byte the response delivers
    std::uint64_t buffer_start = begin;  // file offset of buffer[0]
    std::uint64_t limit = end;           // the response delivers up to here
    bool accepted = false;
    bool piece_done = false;
    // The first bytes of the file are judged (a page? an error document?)
    // before any of them reach the disk. They are gathered first: one read can
    // hold a handful of bytes, too few to tell text from a binary header.
    std::string head;
    bool judged = false;
    auto judge_head = [&] {
        judged = true;
        std::string what;
        if (looks_like_html(head))
            what = "received an HTML page from " + plan_.url.redacted();
        else if (looks_like_json(head))
            what = plan_.url.redacted() + " sent a JSON document (\"" + detail::excerpt(head, 80) +
                   "\"); the link may need a token, or it names an API answer, not a file";
        else if (text_claimed_ && looks_like_text(head))
            what = plan_.url.redacted() + " sent text (\"" + detail::excerpt(head, 80) +
                   "\"); the link may need a login or point to a web page, not a file";
        else
            return true;
        attempt.kind = Attempt::Kind::fatal;
        attempt.error = make_error(errc::integrity, who_ + ": expected the model file " + target_->filename().string() + " but " + what);
        return false;
    };
    // Called before every write: bytes reach the disk only once the head is judged.
    auto may_write = [&] { return judged || judge_head(); };
    std::uint64_t unseen = 0;  // bytes since last_activity was moved on (see stall_min_bytes)
    auto on_response = [&](const HttpResponse& response) {
        if (establishing) {
            if (!establish(response, begin, attempt)) return false;
            std::lock_guard<std::mutex> lock(mutex_);
            if (!resumed_) position = buffer_start = 0;
            // A 200 delivers the whole file; an open-ended 206 runs to its end.
            if (!ranged_ || end == SegmentScheduler::unbounded) limit = total_.value_or(SegmentScheduler::unbounded);
        } else if (!check_piece_response(response, slot, begin, attempt)) {
            return false;
        }
        accepted = true;
        worker.last_activity = now_ns();
        return true;
    };
    auto on_body = [&](const char* data, std::size_t size) {
        if (stopping_) return false;
        unseen += size;
        if (unseen >= options_.stall_min_bytes) {
            unseen = 0;
            worker.last_activity.store(now_ns(), std::memory_order_relaxed);
        }
        if (limit == SegmentScheduler::unbounded && plan_.size && position + size > *plan_.size) {
            // No length from the server, but the source said how big the file
            // is: more than that is not this file, and must not fill the disk.
            attempt.kind = Attempt::Kind::fatal;
            attempt.error = make_error(errc::integrity, who_ + ": " + plan_.url.redacted() + " sent more than the " +
                                                            std::to_string(*plan_.size) + " bytes the source announced");
            return false;
        }
        if (!judged) {
            if (!model_expected_ || (head.empty() && position != 0)) {
                judged = true;  // not a model file, or not its first bytes
            } else {
                head.append(data, std::min(size, model_head_bytes - head.size()));
                if (head.size() >= model_head_bytes && !judge_head()) return false;
            }
        }
        attempt.received += size;
        while (size > 0) {
            std::uint64_t piece_end = scheduler_->end_of(slot);
            if (position >= piece_end) {
                if (!may_write() || !flush(slot, buffer, buffer_start, attempt)) return false;
                bool extended = false;
                {
                    std::lock_guard<std::mutex> lock(mutex_);
                    extended = scheduler_->extend(slot, limit);
                }
                if (!extended) {
                    piece_done = true;  // the rest of this response belongs to other connections
                    return false;
                }
                buffer_start = position;
                continue;
            }
            std::size_t room = batch_ > buffer.size() ? batch_ - buffer.size() : 0;
            std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>({size, piece_end - position, room}));
            if (buffer.empty() && take >= direct_write_min) {
                // A large piece (our own reader delivers up to 256 KiB) goes
                // to disk from where it is, without a copy into the batch.
                if (!may_write() || !write_piece(slot, data, take, buffer_start, attempt)) return false;
                data += take;
                size -= take;
                position += take;
                continue;
            }
            buffer.insert(buffer.end(), data, data + take);
            data += take;
            size -= take;
            position += take;
            if (buffer.size() >= batch_ && (!may_write() || !flush(slot, buffer, buffer_start, attempt))) return false;
        }
        return true;
    };
    worker.last_activity = now_ns();
    worker.in_request = true;
    auto response = http_.stream(request, on_response, on_body);
    worker.in_request = false;
    if (accepted && attempt.kind != Attempt::Kind::fatal && !judged && !head.empty()) {
        // The body ended within the first bytes: a small file is judged on all
        // of it; a cut connection's few bytes are dropped, fetched again and
        // judged whole (judged on their own, two bytes of a binary header can
        // pass for text).
        if (response)
            judge_head();
        else
            buffer.clear();
    }
    if (accepted && attempt.kind != Attempt::Kind::fatal) {
        Attempt flushed;
        if (!flush(slot, buffer, buffer_start, flushed)) return flushed;
    }
    buffer.clear();
    if (attempt.kind != Attempt::Kind::ok) return attempt;
    if (stopping_) {
        attempt.kind = Attempt::Kind::stop;
        return attempt;
    }
    if (!response) {
        // Only a network failure may pass with time; a refused certificate will not.
        attempt.kind = response.error().code == errc::network ? Attempt::Kind::retry : Attempt::Kind::fatal;
        attempt.error = make_error(response.error().code, who_ + ": " + response.error().message);
        if (worker.stalled) {
            auto seconds = std::chrono::duration<double>(options_.stall_timeout).count();
            char text[64];
            std::snprintf(text, sizeof text, "%.1f", seconds);
            attempt.error = make_error(errc::network, who_ + ": no data from " + request.url.authority() + " for " + text +
                                                          " s (stalled)");
        }
        return attempt;
    }
    if (piece_done) return attempt;
    // The response ended by itself.
    std::lock_guard<std::mutex> lock(mutex_);
    if (scheduler_ && scheduler_->total() == SegmentScheduler::unbounded) {
        scheduler_->set_total(position);
        total_ = position;
        return attempt;
    }
    if (scheduler_ && position < scheduler_->end_of(slot)) {
        attempt.kind = Attempt::Kind::retry;
        attempt.error = make_error(errc::network, who_ + ": the connection to " + request.url.authority() + " closed after " +
                                                      human_size(position - begin) + " of bytes " + std::to_string(begin) +
                                                      "-" + std::to_string(scheduler_->end_of(slot) - 1));
    }
    return attempt;
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
    auto leave = [&] {  // with mutex_ held
        leaving = true;
        ++leaving_;
    };
    while (!stopping_) {
        bool establishing = false;
        std::uint64_t begin = 0;
        std::uint64_t end = SegmentScheduler::unbounded;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            // Everyone waits out a server's "slow down" before the next request.
            while (!stopping_ && Clock::now() < not_before_) wake_.wait_until(lock, not_before_);
            if (stopping_) break;
            if (!established_) {
                // The first request also learns the size and whether Range
                // works. Its end is known when resuming (the first gap) or
                // when the source gave the size (the first piece); otherwise
                // it is open-ended and stops where other connections took over.
                establishing = true;
                begin = resume_from_;
                if (resumed_) {
                    for (const auto& gap : resume_.done.missing(resume_.size))
                        if (gap.begin == begin) end = gap.end;
                } else if (plan_.size && *plan_.size > 0) {
                    end = std::min(*plan_.size, piece_size_for(*plan_.size));
                }
            } else {
                std::size_t staying = running_ - leaving_;
                bool yield = staying > 1 && (staying > allowed_ || (budget_ && budget_->has_waiters()));
                if (yield) {
                    leave();
                    break;
                }
                auto piece = scheduler_->take(slot);
                if (!piece) {
                    leave();
                    break;
                }
                begin = piece->begin;
                end = piece->end;
            }
        }
        Attempt attempt = fetch(slot, establishing, begin, end, buffer);
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
        case Attempt::Kind::retry: {
            ++failures;
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
                    leave();
                }
                break;
            }
            auto wait = attempt.immediate ? std::chrono::milliseconds(0)
                                          : backoff_delay(failures, options_.retry.base_delay, options_.retry.max_delay, jitter_unit());
            if (attempt.server_wait > wait) wait = std::min(attempt.server_wait, options_.retry.max_server_delay);
            auto resume_at = Clock::now() + wait;
            if (attempt.slow_down) {
                not_before_ = std::max(not_before_, resume_at);
                allowed_ = std::max<std::size_t>(1, allowed_ / 2);
            }
            std::string what = established_ && end != SegmentScheduler::unbounded
                                   ? " (bytes " + std::to_string(begin) + "-" + std::to_string(end - 1) + ")"
                                   : "";
            queue_event_locked(EventKind::retry, attempt.error.message + what + "; retry " + std::to_string(failures) + " of " +
                                                     std::to_string(options_.retry.max_attempts) + " in " + describe_wait(wait));
            while (!stopping_ && Clock::now() < resume_at) wake_.wait_until(lock, resume_at);
            continue;
        }
        }
        break;
    }
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
            for (std::size_t slot = 0; slot < slots_ && running_ < allowed_ && scheduler_->has_work_for_another(); ++slot) {
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
            Event event{EventKind::progress, who_, target_ ? target_->string() : "", scheduler_->done().covered(), total_, ""};
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
        error.message += " (" + human_size(done) + " of " + human_size(*total_) + " kept in " + part_.filename().string() +
                         "; the next run continues from there)";
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
        return discard(make_error(errc::integrity, who_ + ": expected " + std::to_string(*plan_.size) + " bytes but received " +
                                                       std::to_string(size)));
    if (!plan_.sha256.empty() && digests->sha256 != plan_.sha256) {
        outcome_ = Outcome::mismatch;
        return discard(make_error(errc::integrity, who_ + ": SHA-256 mismatch for " + name + ": expected " + plan_.sha256 +
                                                       ", got " + digests->sha256));
    }
    if (!plan_.git_sha1.empty() && digests->git_sha1 != plan_.git_sha1) {
        outcome_ = Outcome::mismatch;
        return discard(make_error(errc::integrity, who_ + ": git SHA-1 mismatch for " + name + ": expected " + plan_.git_sha1 +
                                                       ", got " + digests->git_sha1));
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

inline PlanCheck Downloader::check(const DownloadPlan& plan) {
    if (plan.file_name.empty()) return check_target(plan, {});
    auto target = detail::join_inside(plan.folder, plan.file_name);
    if (!target) return PlanCheck{};
    return check_target(plan, target.value());
}

inline PlanCheck Downloader::check_target(const DownloadPlan& plan, const std::filesystem::path& target) {
    PlanCheck out;
    out.target = target;
    std::string identity = detail::plan_identity(plan);
    std::optional<detail::InstallRecord> record;
    if (options_.registry)
        record = target.empty() ? options_.registry->find_by_identity(identity, plan.folder) : options_.registry->find(target);
    if (record) {
        auto stamp = detail::stamp_of(record->path);
        // The same source, or the very bytes the source now asks for: a new
        // Hugging Face commit that did not touch this file changes the
        // identity, not the content, and must not cost a download.
        bool same_bytes = !plan.sha256.empty() && plan.sha256 == record->sha256;
        bool same_source = same_bytes || (record->identity == identity && record->validator == plan.validator &&
                                          plan.sha256.empty());
        bool untouched = stamp && *stamp == record->stamp && (!plan.size || *plan.size == stamp->size);
        bool trusted = same_source && untouched;
        if (trusted && options_.verify) {
            auto digest = detail::sha256_file(record->path);
            trusted = digest && digest.value() == record->sha256;
            if (!trusted) {
                out.reason = "its content no longer matches the SHA-256 recorded at install time";
                return out;  // just hashed: no point hashing it again below
            }
        }
        if (trusted) {
            if ((record->identity != identity || record->validator != plan.validator) && options_.registry) {
                detail::InstallRecord updated = *record;
                updated.identity = identity;
                updated.validator = plan.validator;
                (void)options_.registry->put(updated);
            }
            return PlanCheck{InstalledFile{record->path, stamp->size, record->sha256, true}, record->path, 0, ""};
        }
        if (out.reason.empty()) {
            out.reason = !same_source ? "the source changed since it was installed" : "the file was changed or removed since it was installed";
        }
    }
    // No trustworthy record: a file with a known digest can still be proven by hashing it.
    if (!target.empty() && !plan.sha256.empty()) {
        auto stamp = detail::stamp_of(target);
        if (stamp && (!plan.size || *plan.size == stamp->size)) {
            auto digest = detail::sha256_file(target);
            if (digest && digest.value() == plan.sha256) {
                if (options_.registry) {
                    detail::InstallRecord fresh;
                    fresh.path = target.string();
                    fresh.stamp = *stamp;
                    fresh.sha256 = digest.value();
                    fresh.identity = identity;
                    fresh.validator = plan.validator;
                    (void)options_.registry->put(fresh);
                }
                return PlanCheck{InstalledFile{target, stamp->size, digest.value(), true}, target, 0, ""};
            }
        }
    }
    if (plan.size) {
        std::uint64_t allocated = target.empty() ? 0 : detail::allocated_bytes(detail::part_path_for(target));
        out.bytes_needed = *plan.size - std::min(*plan.size, allocated);
    }
    return out;
}

inline Result<InstalledFile> Downloader::download(const DownloadPlan& plan) { return run(plan, nullptr); }

inline Result<InstalledFile> Downloader::download(const DownloadPlan& plan, const PlanCheck& checked) { return run(plan, &checked); }

inline Result<InstalledFile> Downloader::run(const DownloadPlan& plan, const PlanCheck* checked) {
    const std::string& who = plan.key_path;
    if (checked && checked->present) return *checked->present;
    std::error_code fs_error;
    std::filesystem::create_directories(plan.folder, fs_error);
    if (fs_error) return make_error(errc::io, who + ": cannot create " + plan.folder.string() + ": " + fs_error.message());

    auto is_cancelled = [this] { return cancelled(); };
    auto on_wait = [&](const std::filesystem::path& target) {
        return [this, &who, target](long pid) {
            // The holder may be this very process: another entry of this run
            // whose server chose the same name (planned names are checked
            // before any download; a name chosen by the server is learnt late).
            bool this_run = pid == static_cast<long>(::getpid());
            std::string holder = this_run ? "another entry of this run"
                                          : "another provision process" + (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string());
            emit(Event{EventKind::message, who, target.string(), 0, std::nullopt,
                       who + ": " + target.filename().string() + " is being downloaded by " + holder + "; waiting for it to finish"});
        };
    };
    detail::FileLock lock;
    std::optional<std::filesystem::path> target;
    bool need_check = checked == nullptr;
    auto lock_target = [&](const std::filesystem::path& path) -> Result<void> {
        std::filesystem::create_directories(path.parent_path(), fs_error);
        if (fs_error) return make_error(errc::io, who + ": cannot create " + path.parent_path().string() + ": " + fs_error.message());
        bool waited = false;
        auto acquired = detail::FileLock::acquire(detail::lock_path_for(path), is_cancelled, on_wait(path), waited);
        if (!acquired) return make_error(acquired.error().code, who + ": " + acquired.error().message);
        lock = std::move(acquired.value());
        if (waited) need_check = true;  // the other process may have installed it meanwhile
        return {};
    };
    bool name_guessed = false;
    if (!plan.file_name.empty()) {
        auto joined = detail::join_inside(plan.folder, plan.file_name);
        if (!joined) return make_error(joined.error().code, who + ": " + joined.error().message);
        target = joined.value();
    } else if (auto guess = detail::sanitize_file_name(plan.url.last_segment()); !guess.empty()) {
        // The server will name the file; most often it keeps the URL's name.
        // Taking that name now lets a resume ask for the missing bytes only
        // and a second provisioner wait without a request of its own.
        if (auto joined = detail::join_inside(plan.folder, guess)) {
            target = joined.value();
            name_guessed = true;
        }
    }
    if (target)
        if (auto locked = lock_target(*target); !locked) return locked.error();
    if (need_check) {
        auto status = target && !name_guessed ? check_target(plan, *target) : check(plan);
        if (status.present) return *status.present;
    }

    bool fresh = false;
    bool without_range = false;
    int mismatches = 0;
    int restarts = 0;
    while (true) {
        detail::Transfer transfer(http_, options_, plan, target, name_guessed, lock, fresh, without_range);
        auto result = transfer.run();
        // A name the server chose is kept (with its lock) for the next round.
        if (transfer.target()) target = transfer.target();
        if (transfer.name_confirmed()) name_guessed = false;
        switch (transfer.outcome()) {
        case detail::Transfer::Outcome::finished: return result;
        case detail::Transfer::Outcome::mismatch:
            // One fresh download: a flaky proxy or a torn write may explain
            // one mismatch; the same mismatch twice is the server's content.
            if (mismatches++ > 0) {
                if (!result) {
                    auto error = result.error();
                    error.message += "; a second download from scratch gave the same bytes, so the server's file is not "
                                     "the one this digest describes: check the entry's sha256 (or the source's), or the link";
                    return error;
                }
                return result;
            }
            emit(Event{EventKind::retry, who, target ? target->string() : "", 0, plan.size,
                       result.error().message + "; downloading it once more from scratch"});
            fresh = true;
            continue;
        case detail::Transfer::Outcome::restart:
            if (++restarts > 3)
                return make_error(errc::network, who + ": " + plan.url.redacted() +
                                                      " kept changing while it was downloaded; try again later");
            fresh = transfer.wants_fresh();
            without_range = without_range || transfer.wants_without_range();
            continue;
        case detail::Transfer::Outcome::lock_busy: {
            need_check = false;
            if (auto locked = lock_target(*target); !locked) return locked.error();
            auto status = check_target(plan, *target);
            if (status.present) return *status.present;
            continue;
        }
        }
    }
}

}  // namespace provision

#endif
