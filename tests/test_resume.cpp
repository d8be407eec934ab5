// SPDX-License-Identifier: MIT
// The engine's parts (scheduler, retry rules, resume state, install record,
// locks, disk space) and resuming across runs, at library level.
#include "common.hpp"
#include "support/engine_fixtures.hpp"
#include "support/hf_emulator.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"
#include "support/skip.hpp"

#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

namespace suite_resume {  // apart from the suites compiled with it (tests/meson.build)

using provision::Downloader;
using provision::DownloadPlan;
using provision::HttpClient;
using provision::detail::ByteSpan;
using provision::detail::RangeSet;
using provision::detail::SegmentScheduler;
using provision_test::LoopbackServer;
using provision_test::TempDir;
using provision_test::test_bytes;
using provision_test::trusting_options;

namespace {

/// The entry is a checkpoint with an identity, as the url source gives one:
/// the resume state and the install record are keyed by it.
DownloadPlan plan_for(const std::string& url, const std::filesystem::path& folder, const std::string& name) {
    auto plan = provision_test::plan_for(url, folder, name, "models.checkpoints.test");
    plan.identity = "url:" + plan.url.redacted();
    return plan;
}

/// Progress every 5 ms: download_until stops a download at a byte count.
provision::DownloadOptions fast_options(std::size_t connections) {
    auto options = provision_test::fast_options(connections);
    options.progress_interval = std::chrono::milliseconds(5);
    return options;
}

/// Runs a download and cancels it once `after` bytes are on disk.
provision::Result<provision::InstalledFile> download_until(HttpClient& http, provision::DownloadOptions options,
                                                           const DownloadPlan& plan, std::uint64_t after) {
    std::atomic<bool> cancel{false};
    options.cancel = &cancel;
    options.on_event = [&](const provision::Event& event) {
        if (event.kind == provision::EventKind::progress && event.bytes_done >= after) cancel = true;
    };
    return Downloader{http, options}.download(plan);
}

/// A tmpfs of `size` bytes mounted at a fresh folder, or an explanation why not.
class SmallFilesystem {
  public:
    explicit SmallFilesystem(const std::string& size) {
        std::string options = "size=" + size;
        if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0) {
            mounted_ = true;
        } else {
            why_ = std::strerror(errno);
        }
    }
    ~SmallFilesystem() {
        if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
    }
    bool mounted() const { return mounted_; }
    const std::string& why() const { return why_; }
    const std::filesystem::path& path() const { return dir_.path(); }
    bool resize(const std::string& size) {
        std::string options = "size=" + size;
        return ::mount("tmpfs", dir_.path().c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
    }

  private:
    TempDir dir_;
    bool mounted_ = false;
    std::string why_;
};

}  // namespace

TEST_CASE("range set: merges, reports the prefix and what is missing") {
    RangeSet set;
    set.add(10, 20);
    set.add(30, 40);
    set.add(20, 25);  // touches [10,20): merged
    CHECK(set.spans() == std::vector<ByteSpan>{{10, 25}, {30, 40}});
    CHECK(set.prefix() == 0);
    set.add(0, 10);
    CHECK(set.prefix() == 25);
    CHECK(set.covered() == 35);
    CHECK(set.missing(50) == std::vector<ByteSpan>{{25, 30}, {40, 50}});
    CHECK(set.covers(30, 40));
    CHECK_FALSE(set.covers(24, 31));
    set.add(5, 45);
    CHECK(set.spans() == std::vector<ByteSpan>{{0, 45}});
    set.remove(10, 20);
    CHECK(set.spans() == std::vector<ByteSpan>{{0, 10}, {20, 45}});
}

TEST_CASE("segment scheduler: pieces in file order, then the largest remainder is split") {
    SegmentScheduler scheduler(1000, RangeSet{}, 3, 300, 150);
    auto t0 = SegmentScheduler::Clock::now();
    auto a = scheduler.take(0, t0);
    auto b = scheduler.take(1, t0);
    auto c = scheduler.take(2, t0);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    CHECK(a->begin == 0);
    CHECK(a->end == 300);
    CHECK(b->begin == 300);
    CHECK(b->end == 600);
    CHECK(c->begin == 600);
    CHECK(c->end == 1000);  // the 100-byte leftover would be too small: it joins the last piece
    // Slot 0 finishes; nothing is unassigned. Too early to judge the others:
    // nothing to do yet.
    CHECK(scheduler.commit(0, 0, 300) == 300);
    CHECK(scheduler.commit(1, 300, 100) == 100);
    CHECK(scheduler.commit(2, 600, 50) == 50);
    CHECK_FALSE(scheduler.take(0, t0 + std::chrono::milliseconds(100)));
    // Two seconds in, slot 2 would need 14 s more, slot 1 4 s: slot 0 takes
    // the second half of slot 2's piece.
    auto stolen = scheduler.take(0, t0 + std::chrono::seconds(2));
    REQUIRE(stolen);
    CHECK(stolen->begin == 650 + (1000 - 650) / 2);
    CHECK(stolen->end == 1000);
    CHECK(scheduler.end_of(2) == stolen->begin);
    // Bytes past a shrunk end do not count.
    CHECK(scheduler.commit(2, 650, 1000) == stolen->begin - 650);
    CHECK(scheduler.done().prefix() == 400);
    // A connection that fails gives its remainder back; it is handed out first.
    scheduler.give_back(1);
    auto again = scheduler.take(2, t0 + std::chrono::seconds(2));
    REQUIRE(again);
    CHECK(again->begin == 400);
    CHECK(again->end == 600);
    CHECK(scheduler.commit(2, 400, 200) == 200);
    CHECK(scheduler.commit(0, stolen->begin, 1000 - stolen->begin) == 1000 - stolen->begin);
    CHECK(scheduler.complete());
    CHECK_FALSE(scheduler.take(1));
}

TEST_CASE("segment scheduler: a piece that will finish soon is not split") {
    SegmentScheduler scheduler(4000, RangeSet{}, 2, 4000, 100);
    auto t0 = SegmentScheduler::Clock::now();
    REQUIRE(scheduler.take(0, t0));
    CHECK(scheduler.commit(0, 0, 3000) == 3000);  // 3000 bytes in 2 s: the last 1000 take about 0.7 s
    CHECK_FALSE(scheduler.take(1, t0 + std::chrono::seconds(2)));
    CHECK_FALSE(scheduler.has_work_for_another(t0 + std::chrono::seconds(2)));
    // A connection that has delivered nothing for a while is worth helping.
    SegmentScheduler slow(4000, RangeSet{}, 2, 4000, 100);
    REQUIRE(slow.take(0, t0));
    CHECK(slow.has_work_for_another(t0 + std::chrono::seconds(1)));
    auto helped = slow.take(1, t0 + std::chrono::seconds(1));
    REQUIRE(helped);
    CHECK(helped->begin == 2000);
}

TEST_CASE("segment scheduler: resumes around the bytes already done and extends open responses") {
    RangeSet done;
    done.add(0, 100);
    done.add(500, 600);
    SegmentScheduler scheduler(1000, done, 2, 200, 100);
    auto first = scheduler.take(0);
    REQUIRE(first);
    CHECK(first->begin == 100);
    CHECK(first->end == 300);
    CHECK(scheduler.commit(0, 100, 200) == 200);
    // The bytes right after are still unassigned: the same response may go on.
    CHECK(scheduler.extend(0, 1000));
    CHECK(scheduler.end_of(0) == 500);  // the 200-byte piece plus nothing more: 500 is done already
    CHECK(scheduler.commit(0, 300, 200) == 200);
    CHECK_FALSE(scheduler.extend(0, 1000));  // 500-600 is done: a new request must skip it
    auto next = scheduler.take(0);
    REQUIRE(next);
    CHECK(next->begin == 600);
    CHECK(scheduler.has_work_for_another());  // 800-1000 waits for a connection
}

TEST_CASE("retry rules: statuses, Retry-After in both forms, RateLimit, backoff bounds") {
    using provision::detail::is_retryable_status;
    for (int status : {408, 429, 500, 502, 503, 504}) CHECK(is_retryable_status(status));
    for (int status : {400, 401, 403, 404, 410, 416}) CHECK_FALSE(is_retryable_status(status));

    using std::chrono::milliseconds;
    auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
    using provision::detail::parse_retry_after;
    CHECK(parse_retry_after("120", now) == milliseconds(120000));
    CHECK(parse_retry_after(" 0 ", now) == milliseconds(0));
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now) == milliseconds(10000));
    CHECK(parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now) == milliseconds(60000));
    CHECK(parse_retry_after("Sun Nov  6 08:49:38 1994", now) == milliseconds(1000));
    CHECK(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now) == milliseconds(0));  // in the past: at once
    CHECK_FALSE(parse_retry_after("soon", now));
    // Years no answer means and system_clock's nanoseconds cannot hold.
    CHECK_FALSE(parse_retry_after("Wed, 03 Dec 0100 00:01:00 GMT", now));
    CHECK_FALSE(parse_retry_after("Wed, 03 Dec 9999 00:01:00 GMT", now));
    CHECK_FALSE(parse_retry_after("", now));

    using provision::detail::parse_ratelimit_wait;
    CHECK(parse_ratelimit_wait("\"api\";r=0;t=55") == milliseconds(55000));
    CHECK_FALSE(parse_ratelimit_wait("\"api\";r=12;t=55"));  // requests remain: no wait implied
    CHECK_FALSE(parse_ratelimit_wait("\"api\";r=0"));
    CHECK_FALSE(parse_ratelimit_wait("garbage"));

    using provision::detail::backoff_delay;
    for (int retry = 1; retry <= 12; ++retry) {
        auto low = backoff_delay(retry, milliseconds(100), milliseconds(3000), 0.0);
        auto high = backoff_delay(retry, milliseconds(100), milliseconds(3000), 0.999);
        auto ceiling = std::min<long long>(3000, 100LL << (retry - 1));
        CHECK(low.count() == ceiling / 2);
        CHECK(high.count() <= ceiling);
        CHECK(high.count() >= ceiling * 9 / 10);
    }
}

TEST_CASE("content range: parsed strictly") {
    using provision::detail::parse_content_range;
    auto range = parse_content_range("bytes 100-199/1000");
    REQUIRE(range);
    CHECK(range->first == 100);
    CHECK(range->last == 199);
    CHECK(range->total == std::optional<std::uint64_t>(1000));
    auto unknown = parse_content_range("bytes 0-9/*");
    REQUIRE(unknown);
    CHECK_FALSE(unknown->total);
    CHECK_FALSE(parse_content_range("bytes 10-5/100"));
    CHECK_FALSE(parse_content_range("bytes 0-99/50"));
    CHECK_FALSE(parse_content_range("items 0-9/10"));
    CHECK_FALSE(parse_content_range("bytes */1000"));
}

TEST_CASE("resume state: round trip; other versions and impossible ranges are ignored") {
    TempDir dir;
    provision::detail::ResumeState state;
    state.identity = "hf:model/a/b@c:d.safetensors";
    state.validator = "\"etag\"";
    state.sha256 = std::string(64, 'a');
    state.etag = "\"v1\"";
    state.size = 1000;
    state.done.add(0, 100);
    state.done.add(200, 300);
    auto path = dir / "x.safetensors.part.state";
    REQUIRE(provision::detail::save_resume_state(path, state));
    auto loaded = provision::detail::load_resume_state(path);
    REQUIRE(loaded);
    CHECK(loaded->identity == state.identity);
    CHECK(loaded->validator == state.validator);
    CHECK(loaded->etag == state.etag);
    CHECK(loaded->size == 1000);
    CHECK(loaded->done == state.done);
    CHECK_FALSE(std::filesystem::exists(dir / "x.safetensors.part.state.tmp"));

    auto text = provision_test::read_whole_file(path);
    auto future = text;
    future.replace(future.find("\"version\":1"), 11, "\"version\":2");
    dir.write("future.state", future);
    CHECK_FALSE(provision::detail::load_resume_state(dir / "future.state"));
    dir.write("broken.state", text.substr(0, text.size() / 2));
    CHECK_FALSE(provision::detail::load_resume_state(dir / "broken.state"));
    auto beyond = text;
    beyond.replace(beyond.find("[200,300]"), 9, "[200,3000]");
    dir.write("beyond.state", beyond);
    CHECK_FALSE(provision::detail::load_resume_state(dir / "beyond.state"));
    // Numbers that are not whole, non-negative and in range are refused, not cast.
    for (const char* size : {"-1", "1e30", "1000.5", "\"1000\""}) {
        auto odd = text;
        odd.replace(odd.find("\"size\":1000"), 11, std::string("\"size\":") + size);
        CAPTURE(size);
        CHECK_FALSE(provision::detail::parse_resume_state(odd));
    }
    // The version too: a float is refused before anything casts it to int.
    for (const char* version : {"1.18447e+20", "1.0", "-1", "\"1\""}) {
        auto odd = text;
        odd.replace(odd.find("\"version\":1"), 11, std::string("\"version\":") + version);
        CAPTURE(version);
        CHECK_FALSE(provision::detail::parse_resume_state(odd));
    }
    auto numeric_format = text;
    numeric_format.replace(numeric_format.find("\"provision-resume\""), 18, "1");
    CHECK_FALSE(provision::detail::parse_resume_state(numeric_format));
    CHECK(provision::detail::parse_resume_state(text));
}

TEST_CASE("install records: an odd number drops only its record") {
    const std::string sha(64, 'a');
    auto record = [&](const char* path, const char* size) {
        return std::string("\"") + path + "\":{\"size\":" + size +
               ",\"mtime_ns\":-5,\"inode\":7,\"device\":1,\"sha256\":\"" + sha + "\",\"identity\":\"url:x\"}";
    };
    std::string text = "{\"format\":\"provision-installed\",\"version\":1,\"files\":{" + record("/w/a", "12") + "," +
                       record("/w/b", "3e29") + "," + record("/w/c", "-1") + "}}";
    auto records = provision::detail::parse_install_records(text);
    REQUIRE(records.size() == 1);
    CHECK(records.begin()->first == "/w/a");
    CHECK(records.begin()->second.stamp.size == 12);
    CHECK(records.begin()->second.stamp.mtime_ns == -5);
    CHECK(provision::detail::parse_install_records(provision::detail::install_records_text(records)).size() == 1);
    auto huge_version = text;
    huge_version.replace(huge_version.find("\"version\":1"), 11, "\"version\":1e20");
    CHECK(provision::detail::parse_install_records(huge_version).empty());
    // A format of the wrong kind is a foreign file, not an exception that ends the run.
    auto numeric_format = text;
    numeric_format.replace(numeric_format.find("\"provision-installed\""), 21, "1");
    CHECK(provision::detail::parse_install_records(numeric_format).empty());
}

TEST_CASE("install registry: shared through its file, found by identity, corrupt files ignored") {
    TempDir dir;
    auto file = dir / ".provision/installed.json";
    provision::InstallRegistry one(file);
    provision::InstallRegistry two(file);
    auto model = dir.write("Lora/a.safetensors", "abc");
    provision::detail::InstallRecord record;
    record.path = model.string();
    record.stamp = *provision::detail::stamp_of(model);
    record.sha256 = provision::detail::sha256_hex("abc");
    record.identity = "url:https://example/a";
    REQUIRE(one.put(record));
    auto seen = two.find(model);  // written by the other object (as by another process)
    REQUIRE(seen);
    CHECK(seen->sha256 == record.sha256);
    CHECK(two.find_by_identity("url:https://example/a", dir / "Lora"));
    CHECK_FALSE(two.find_by_identity("url:https://example/a", dir / "VAE"));
    auto other = dir.write("Lora/b.safetensors", "defg");
    record.path = other.string();
    record.stamp = *provision::detail::stamp_of(other);
    REQUIRE(two.put(record));
    CHECK(one.find(model));  // one re-reads the file: two's update did not drop one's record
    CHECK(one.find(other));
    REQUIRE(one.erase(model));
    CHECK_FALSE(two.find(model));
    dir.write(".provision/installed.json", "{ not json");
    CHECK_FALSE(one.find(other));
}

TEST_CASE("file lock: one holder at a time, the waiter learns its pid, the file goes away on release") {
    TempDir dir;
    auto path = dir / "m.safetensors.lock";
    long holder = 0;
    auto first = provision::detail::FileLock::try_acquire(path, holder);
    REQUIRE(first);
    REQUIRE(first->held());
    auto second = provision::detail::FileLock::try_acquire(path, holder);
    REQUIRE(second);
    CHECK_FALSE(second->held());
    CHECK(holder == ::getpid());
    first->release();
    CHECK_FALSE(std::filesystem::exists(path));
    // A lock file left by a killed process (no flock on it) is simply taken over.
    dir.write("m.safetensors.lock", "99999\n");
    auto third = provision::detail::FileLock::try_acquire(path, holder);
    REQUIRE(third);
    CHECK(third->held());
}

TEST_CASE("resume: a stopped download continues where it stopped and fetches only the missing bytes") {
    auto body = std::make_shared<const std::string>(test_bytes(3 << 20, 40));
    std::atomic<bool> throttled{true};
    auto server = LoopbackServer::https();
    server->server().Get("/r.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        if (throttled) options.bytes_per_second = 4 << 20;
        res.set_header("ETag", "\"v1\"");
        server->serve_bytes(res, req, body, options);
    });
    for (std::size_t connections : {std::size_t{1}, std::size_t{3}}) {
        CAPTURE(connections);
        TempDir dir;
        HttpClient http{trusting_options()};
        throttled = true;
        auto plan = plan_for(server->url("/r.safetensors"), dir / "Stable-diffusion", "r.safetensors");
        plan.sha256 = provision::detail::sha256_hex(*body);
        auto first = download_until(http, fast_options(connections), plan, 1 << 20);
        REQUIRE_FALSE(first);
        CHECK(first.error().code == provision::errc::cancelled);
        CHECK(first.error().message.find("kept in r.safetensors.part") != std::string::npos);
        auto part = dir / "Stable-diffusion/r.safetensors.part";
        auto state = provision::detail::load_resume_state(provision::detail::resume_state_path(part));
        REQUIRE(state);
        CHECK(state->size == body->size());
        CHECK(state->etag == "\"v1\"");
        std::uint64_t kept = state->done.covered();
        CHECK(kept >= (1u << 20));
        CHECK(kept < body->size());
        CHECK(std::filesystem::file_size(part) == body->size());  // preallocated
        CHECK_FALSE(std::filesystem::exists(dir / "Stable-diffusion/r.safetensors"));
        // Every byte the state lists is really on disk.
        auto on_disk = provision_test::read_whole_file(part);
        for (const auto& span : state->done.spans())
            CHECK(on_disk.compare(span.begin, span.size(), *body, span.begin, span.size()) == 0);

        throttled = false;
        REQUIRE(server->wait_until_idle());  // the killed transfer's response has ended
        auto before = server->bytes_sent();
        auto requests_before = server->requests().size();
        auto second = Downloader{http, fast_options(connections)}.download(plan);
        REQUIRE(second);
        CHECK(provision_test::read_whole_file(dir / "Stable-diffusion/r.safetensors") == *body);
        auto served = server->bytes_sent() - before;
        CHECK(served >= body->size() - kept);
        if (connections == 1) CHECK(served == body->size() - kept);  // exactly the missing bytes
        // With several connections a piece's response runs on until another
        // connection takes over its rest, and what the server had already
        // pushed into the socket is wasted, so bytes served say little. What
        // was asked for does: no request starts inside a byte kept on disk.
        auto requests = server->requests();
        for (std::size_t i = requests_before; i < requests.size(); ++i) {
            std::string range = requests[i].header("Range");
            CAPTURE(range);
            REQUIRE(range.rfind("bytes=", 0) == 0);
            std::uint64_t first = std::stoull(range.substr(6));
            for (const auto& span : state->done.spans()) CHECK_FALSE((first >= span.begin && first < span.end));
        }
        CHECK_FALSE(std::filesystem::exists(part));
        CHECK_FALSE(std::filesystem::exists(provision::detail::resume_state_path(part)));
    }
}

TEST_CASE("resume: a changed ETag, a server that stops honouring Range, or a new digest restarts the file cleanly") {
    auto v1 = std::make_shared<const std::string>(test_bytes(2 << 20, 41));
    auto v2 = std::make_shared<const std::string>(test_bytes(2 << 20, 42));
    std::atomic<int> version{1};
    std::atomic<bool> ignore_range{false};
    auto server = LoopbackServer::https();
    server->server().Get("/e.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        if (version == 1) options.bytes_per_second = 4 << 20;
        options.ignore_range = ignore_range;
        res.set_header("ETag", version == 1 ? "\"v1\"" : "\"v2\"");
        server->serve_bytes(res, req, version == 1 ? v1 : v2, options);
    });
    HttpClient http{trusting_options()};
    enum class Change { etag, no_range, digest };
    for (Change change : {Change::etag, Change::no_range, Change::digest}) {
        CAPTURE(static_cast<int>(change));
        TempDir dir;
        version = 1;
        ignore_range = false;
        auto plan = plan_for(server->url("/e.safetensors"), dir / "VAE", "e.safetensors");
        REQUIRE_FALSE(download_until(http, fast_options(2), plan, 700000));
        REQUIRE(std::filesystem::exists(dir / "VAE/e.safetensors.part.state"));

        version = 2;
        if (change == Change::no_range) ignore_range = true;
        if (change == Change::digest)
            plan.sha256 = provision::detail::sha256_hex(*v2);  // the source now expects other bytes
        std::vector<std::string> notes;
        auto options = fast_options(2);
        options.on_event = [&](const provision::Event& event) {
            if (event.kind == provision::EventKind::message) notes.push_back(event.message);
        };
        REQUIRE(server->wait_until_idle());
        auto before = server->bytes_sent();
        auto requests_before = server->requests().size();
        auto second = Downloader{http, options}.download(plan);
        REQUIRE(second);
        CHECK(provision_test::read_whole_file(dir / "VAE/e.safetensors") == *v2);  // never a splice of v1 and v2
        CHECK(server->bytes_sent() - before >= v2->size());
        auto requests = server->requests();
        if (change == Change::digest) {
            // The state belongs to another digest: it is not even asked about.
            CHECK(requests[requests_before].header("Range").find("bytes=0-") == 0);
        } else {
            bool explained = false;
            for (const auto& note : notes)
                if (note.find(change == Change::etag ? "changed on the server" : "ignores Range") != std::string::npos)
                    explained = true;
            CHECK(explained);
        }
    }
}

TEST_CASE("refresh: an expired signed link is followed again, then re-resolved through the source") {
    auto body = std::make_shared<const std::string>(test_bytes(2 << 20, 43));
    std::atomic<int> signatures{0};
    std::mutex mutex;
    std::map<std::string, int> uses;
    std::atomic<int> refreshed{0};
    std::atomic<int> direct_uses{0};
    // /resolve redirects to a signed link; a link serves only its first few
    // requests (then "expires" with 403), as CDN links do after a while.
    auto server = LoopbackServer::https();
    server->server().Get("/resolve/model.safetensors", [&](const httplib::Request&, httplib::Response& res) {
        int signature = ++signatures;
        res.status = 302;
        res.set_header("Location", "/signed/model.safetensors?sig=" + std::to_string(signature));
    });
    server->server().Get("/signed/model.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        std::string signature = req.get_param_value("sig");
        int count;
        {
            std::lock_guard<std::mutex> lock(mutex);
            count = ++uses[signature];
        }
        if (count > 3) {
            // cpp-httplib would apply Range to the error body; storage services do not.
            const_cast<httplib::Request&>(req).ranges.clear();
            res.status = 403;
            res.set_content("<Error>Request has expired</Error>", "application/xml");
            return;
        }
        provision_test::ServeOptions options;
        options.bytes_per_second = 16 << 20;
        server->serve_bytes(res, req, body, options);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto plan = plan_for(server->url("/resolve/model.safetensors"), dir / "Lora", "model.safetensors");
    plan.sha256 = provision::detail::sha256_hex(*body);
    auto installed = Downloader{http, fast_options(2)}.download(plan);
    INFO((installed ? std::string() : installed.error().message));
    REQUIRE(installed);
    CHECK(provision_test::read_whole_file(dir / "Lora/model.safetensors") == *body);
    CHECK(signatures.load() > 1);  // the link expired and a fresh one was fetched

    // A link without a redirect in front of it: only the source can renew it.
    server->server().Get(R"(/direct/(\d+)\.safetensors)", [&](const httplib::Request& req, httplib::Response& res) {
        if (req.matches[1] == "1" && ++direct_uses > 2) {
            const_cast<httplib::Request&>(req).ranges.clear();
            res.status = 403;
            return;
        }
        provision_test::ServeOptions options;
        options.bytes_per_second = 16 << 20;
        server->serve_bytes(res, req, body, options);
    });
    auto direct = plan_for(server->url("/direct/1.safetensors"), dir / "VAE", "model.safetensors");
    direct.sha256 = plan.sha256;
    direct.size = body->size();  // one request per piece: the link is used more than twice
    std::string base = server->url("/direct/");
    DownloadPlan template_plan = direct;
    direct.refresh = [&, template_plan, base]() -> provision::Result<DownloadPlan> {
        ++refreshed;
        DownloadPlan fresh = template_plan;
        fresh.url = provision::parse_url(base + "2.safetensors").value();
        return fresh;
    };
    auto renewed = Downloader{http, fast_options(2)}.download(direct);
    REQUIRE(renewed);
    CHECK(refreshed.load() == 1);
    CHECK(provision_test::read_whole_file(dir / "VAE/model.safetensors") == *body);
}

TEST_CASE("disk space: the preflight lists what is needed where") {
    SmallFilesystem small("1m");
    if (!small.mounted()) {
        provision_test::skip_test("disk-full-tmpfs", "cannot mount a small tmpfs here (" + small.why() + ")");
        return;
    }
    TempDir big;
    std::vector<provision::detail::SpaceNeed> needs = {
        {small.path() / "sdnext/models/Lora", 700 * 1024, "models.lora.a"},
        {small.path() / "sdnext/models/VAE", 700 * 1024, "models.vae.b"},
        {big.path(), 1024, "models.clip.c"},
    };
    auto shortfall = provision::detail::space_shortfall(needs);
    REQUIRE(shortfall);
    CHECK(shortfall->code == provision::errc::disk_full);
    const std::string& text = shortfall->message;
    CAPTURE(text);
    CHECK(text.find(small.path().string() + ": needs 1.4 MiB for 2 files, has 1.0 MiB free") != std::string::npos);
    CHECK(text.find("models.lora.a: 700.0 KiB") != std::string::npos);
    CHECK(text.find("models.vae.b") != std::string::npos);
    CHECK(text.find("models.clip.c") == std::string::npos);  // its filesystem has room
    needs.pop_back();
    needs.pop_back();
    CHECK_FALSE(provision::detail::space_shortfall(needs));
}

TEST_CASE("disk full: preallocation fails at the start; without it, mid-way, keeping the .part for a later resume") {
    SmallFilesystem small("1m");
    if (!small.mounted()) {
        provision_test::skip_test("disk-full-tmpfs", "cannot mount a small tmpfs here (" + small.why() + ")");
        return;
    }
    auto body = std::make_shared<const std::string>(test_bytes(1536 * 1024, 44));
    std::atomic<bool> throttled{true};
    auto server = LoopbackServer::https();
    server->server().Get("/huge.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        if (throttled) options.bytes_per_second = 4 << 20;  // several checkpoints before the disk fills
        server->serve_bytes(res, req, body, options);
    });
    HttpClient http{trusting_options()};
    auto plan = plan_for(server->url("/huge.safetensors"), small.path() / "Lora", "huge.safetensors");
    plan.sha256 = provision::detail::sha256_hex(*body);
    plan.size = body->size();  // the first request asks for the first piece only

    auto at_start = Downloader{http, fast_options(2)}.download(plan);
    REQUIRE_FALSE(at_start);
    CHECK(at_start.error().code == provision::errc::disk_full);
    CHECK(at_start.error().message.find("cannot reserve 1.5 MiB") != std::string::npos);
    CHECK(at_start.error().message.find("free") != std::string::npos);
    CHECK(server->bytes_sent() < body->size() / 2);  // stopped at the first answer, not after the body
    CHECK_FALSE(
        std::filesystem::exists(small.path() / "Lora/huge.safetensors.part"));  // nothing was kept: space is given back

    auto options = fast_options(1);
    options.preallocate = false;
    auto mid_way = Downloader{http, options}.download(plan);
    REQUIRE_FALSE(mid_way);
    CHECK(mid_way.error().code == provision::errc::disk_full);
    CHECK(mid_way.error().message.find("No space left on device") != std::string::npos);
    CHECK(mid_way.error().message.find("kept") != std::string::npos);
    auto part = small.path() / "Lora/huge.safetensors.part";
    auto state = provision::detail::load_resume_state(provision::detail::resume_state_path(part));
    REQUIRE(state);
    std::uint64_t kept = state->done.covered();
    CHECK(kept > 0);
    CHECK_FALSE(std::filesystem::exists(small.path() / "Lora/huge.safetensors"));

    REQUIRE(small.resize("4m"));
    throttled = false;
    // The cause of this case's old flakiness: the mid-way response could
    // still be in its last write when the baseline was read.
    REQUIRE(server->wait_until_idle());
    auto before = server->bytes_sent();
    auto resumed = Downloader{http, options}.download(plan);
    REQUIRE(resumed);
    CHECK(server->bytes_sent() - before == body->size() - kept);
    CHECK(provision_test::read_whole_file(small.path() / "Lora/huge.safetensors") == *body);
}

TEST_CASE("provisioner: nothing is fetched when the files would not fit; the message lists what is needed where") {
    SmallFilesystem small("1m");
    if (!small.mounted()) {
        provision_test::skip_test("disk-full-tmpfs", "cannot mount a small tmpfs here (" + small.why() + ")");
        return;
    }
    provision_test::HubEmulator hub;
    hub.add_repo("acme/big");
    hub.commit("acme/big", {{"a.safetensors", provision_test::HubFile{test_bytes(700 * 1024, 45)}},
                            {"b.safetensors", provision_test::HubFile{test_bytes(700 * 1024, 46)}}});
    provision::ProvisionOptions options;
    options.workspace = small.path();
    options.http = hub.http_options();
    options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    std::string config =
        "[models.lora.a]\nsource = \"huggingface\"\nrepo = \"acme/big\"\nfile = \"a.safetensors\"\n"
        "[models.vae.b]\nsource = \"huggingface\"\nrepo = \"acme/big\"\nfile = \"b.safetensors\"\n";
    provision::ProvisioningSystem system{options};
    auto report = system.provision_from_text(config, "space.toml");
    REQUIRE(report.fatal);
    CHECK(report.exit_code() == 7);
    const std::string& text = report.fatal->message;
    CAPTURE(text);
    CHECK(text.find("not enough disk space") != std::string::npos);
    CHECK(text.find(small.path().string() + ": needs 1.4 MiB for 2 files") != std::string::npos);
    CHECK(text.find("models.lora.a: 700.0 KiB in " + (small.path() / "sdnext/models/Lora").string()) !=
          std::string::npos);
    CHECK(text.find("models.vae.b: 700.0 KiB") != std::string::npos);
    CHECK(hub.cdn().requests().empty());  // not one model byte asked for
    for (const auto& entry : report.entries) CHECK(entry.status == provision::EntryOutcome::Status::failed);

    // With room, the same config installs both and records them; a re-run asks
    // the Hub for metadata only and fetches no model byte.
    REQUIRE(small.resize("8m"));
    auto installed = provision::ProvisioningSystem{options}.provision_from_text(config, "space.toml");
    for (const auto& entry : installed.entries) INFO(entry.key_path << ": " << entry.error.message);
    REQUIRE(installed.ok());
    auto cdn_requests = hub.cdn().requests().size();
    auto again = provision::ProvisioningSystem{options}.provision_from_text(config, "space.toml");
    REQUIRE(again.ok());
    for (const auto& entry : again.entries) CHECK(entry.status == provision::EntryOutcome::Status::present);
    CHECK(hub.cdn().requests().size() == cdn_requests);
    CHECK(std::filesystem::exists(small.path() / ".provision/installed.json"));
}

}  // namespace suite_resume
