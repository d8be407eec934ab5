// SPDX-License-Identifier: MIT
// The hostile world (issue 6): servers that reset, truncate, drip, lie about
// ranges and sizes, send headers forever or propose hostile file names, TLS
// that does not check out, and local damage between runs. Faults already
// covered elsewhere (test_downloader, test_resume, test_http, test_engine_cli)
// are not repeated here.
//
// For every fault the same promises are checked: no crash, no hang past the
// timeouts, no file outside its folder, nothing unverified under a final name,
// a message that says what happened, and other entries unaffected.
//
// Seeded runs: PROVISION_FAULT_SEEDS=N runs N seeds (default 8),
// PROVISION_FAULT_SEED=S runs only seed S. A failure names its seed.
#include "common.hpp"
#include "support/engine_fixtures.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"
#include "support/skip.hpp"

#include <sys/mount.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace suite_faults {  // apart from the suites compiled with it (tests/meson.build)

using provision::Downloader;
using provision::DownloadPlan;
using provision::HttpClient;
using provision_test::files_under;
using provision_test::LoopbackServer;
using provision_test::RawLoopbackServer;
using provision_test::TempDir;
using provision_test::test_bytes;
using provision_test::trusting_options;

namespace {

using Clock = std::chrono::steady_clock;

/// Every download here is the entry models.lora.hostile, so each message can
/// be checked for naming its entry.
DownloadPlan plan_for(const std::string& url, const std::filesystem::path& folder, const std::string& name = "") {
    return provision_test::plan_for(url, folder, name, "models.lora.hostile");
}

/// Four attempts where the engine suites allow three: the storms and seeded
/// faults here fail several requests in a row by design.
provision::DownloadOptions fast_options(std::size_t connections = 4) {
    return provision_test::fast_options(connections, 4);
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

/// A number of runs from the environment (the reliability script raises them).
unsigned env_count(const char* name, unsigned fallback) {
    const char* value = std::getenv(name);
    if (!value || !*value) return fallback;
    return static_cast<unsigned>(std::strtoul(value, nullptr, 10));
}

/// The seeds a seeded test runs: PROVISION_FAULT_SEED alone, or 1..PROVISION_FAULT_SEEDS.
std::vector<unsigned> fault_seeds() {
    if (const char* one = std::getenv("PROVISION_FAULT_SEED"); one && *one)
        return {static_cast<unsigned>(std::strtoul(one, nullptr, 10))};
    std::vector<unsigned> seeds;
    for (unsigned seed = 1; seed <= env_count("PROVISION_FAULT_SEEDS", 8); ++seed) seeds.push_back(seed);
    return seeds;
}

/// Runs `body` and fails the test if it takes longer than `limit`, instead of
/// hanging the suite: the cancel flag it hands over stops the download then.
template <typename Body>
auto within(std::chrono::seconds limit, Body body) {
    std::atomic<bool> cancel{false};
    std::atomic<bool> finished{false};
    std::thread watchdog([&] {
        auto deadline = Clock::now() + limit;
        while (!finished && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (!finished) cancel = true;
    });
    auto started = Clock::now();
    auto result = body(&cancel);
    finished = true;
    watchdog.join();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    INFO("took " << took.count() << " ms, limit " << limit.count() << " s");
    CHECK_FALSE(cancel.load());
    return result;
}

// ---------------------------------------------------------------------------
// A raw HTTP responder: the request line and Range header, answers written by hand.

struct RawRequest {
    std::string target;
    bool has_range = false;
    std::uint64_t first = 0;
    std::optional<std::uint64_t> last;
};

RawRequest parse_raw_request(const std::string& head) {
    RawRequest request;
    auto space = head.find(' ');
    auto second = head.find(' ', space + 1);
    if (space != std::string::npos && second != std::string::npos)
        request.target = head.substr(space + 1, second - space - 1);
    std::string lower = provision::detail::to_lower(head);
    auto at = lower.find("\r\nrange: bytes=");
    if (at != std::string::npos) {
        auto spec = head.substr(at + 15, head.find("\r\n", at + 2) - at - 15);
        auto dash = spec.find('-');
        request.has_range = true;
        request.first = std::stoull(spec.substr(0, dash));
        if (dash + 1 < spec.size()) request.last = std::stoull(spec.substr(dash + 1));
    }
    return request;
}

/// The head of an answer that closes the connection afterwards.
std::string raw_head(const std::string& status, const std::vector<std::string>& headers) {
    std::string out = "HTTP/1.1 " + status + "\r\n";
    for (const auto& header : headers) out += header + "\r\n";
    return out + "Connection: close\r\n\r\n";
}

/// Makes the close that follows a reset (RST) rather than an orderly FIN.
void reset_on_close(int fd) {
    linger hard{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
}

/// Answers a Range request for `body` (or the whole of it), optionally cutting
/// the body after `cut_after` bytes with a FIN or a reset.
void answer_range(int fd, const RawRequest& request, const std::string& body,
                  std::optional<std::uint64_t> cut_after = {}, bool reset = false) {
    std::uint64_t first = 0;
    std::uint64_t last = body.size() - 1;
    std::string head;
    if (request.has_range) {
        first = request.first;
        last = std::min<std::uint64_t>(request.last.value_or(last), last);
        head = raw_head("206 Partial Content",
                        {"Content-Type: application/octet-stream", "Accept-Ranges: bytes", "ETag: \"v1\"",
                         "Content-Range: bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                             std::to_string(body.size()),
                         "Content-Length: " + std::to_string(last - first + 1)});
    } else {
        head = raw_head("200 OK", {"Content-Type: application/octet-stream", "Accept-Ranges: bytes", "ETag: \"v1\"",
                                   "Content-Length: " + std::to_string(body.size())});
    }
    std::uint64_t length = last - first + 1;
    std::uint64_t send = std::min(length, cut_after.value_or(length));
    if (!RawLoopbackServer::send_all(fd, head)) return;
    RawLoopbackServer::send_all(fd, std::string_view(body).substr(first, send));
    if (send < length && reset) reset_on_close(fd);
}

}  // namespace

// ---------------------------------------------------------------------------
// Network faults

TEST_CASE("faults: resets, cuts and 503s at seeded random points always end byte-exact, each seed reproducible") {
    const std::string body = test_bytes(1536 * 1024, 61);
    const std::string digest = provision::detail::sha256_hex(body);
    for (unsigned seed : fault_seeds()) {
        for (std::size_t connections : {std::size_t{1}, std::size_t{4}}) {
            // The fault a request meets depends only on the seed, the byte it
            // asks for first and how often that byte was asked for before, so a
            // seed replays the same faults (with one connection, in the same order).
            std::mutex mutex;
            std::map<std::uint64_t, unsigned> asked;
            std::map<std::string, unsigned> faults;
            RawLoopbackServer server([&](int fd, const std::string& head) {
                RawRequest request = parse_raw_request(head);
                unsigned nth = 0;
                {
                    std::lock_guard<std::mutex> lock(mutex);
                    nth = asked[request.first]++;
                }
                std::seed_seq sequence{seed, static_cast<unsigned>(request.first),
                                       static_cast<unsigned>(request.first >> 32), nth};
                std::mt19937_64 random(sequence);
                std::uint64_t length =
                    (request.has_range ? request.last.value_or(body.size() - 1) + 1 : body.size()) - request.first;
                unsigned roll = static_cast<unsigned>(random() % 100);
                // The engine gives up on a connection after max_attempts failures
                // without progress, rightly: after a few faults the byte gets through.
                if (nth >= 6) roll = 0;
                std::string kind = roll < 35   ? "clean"
                                   : roll < 60 ? "fin"
                                   : roll < 80 ? "reset"
                                   : roll < 90 ? "503"
                                               : "reset-before-head";
                {
                    std::lock_guard<std::mutex> lock(mutex);
                    ++faults[kind];
                }
                if (kind == "clean") return answer_range(fd, request, body);
                if (kind == "fin" || kind == "reset")
                    return answer_range(fd, request, body, random() % length, kind == "reset");
                if (kind == "503") {
                    RawLoopbackServer::send_all(fd, raw_head("503 Service Unavailable", {"Content-Length: 0"}));
                    return;
                }
                reset_on_close(fd);
            });
            TempDir dir;
            HttpClient http{trusting_options()};
            auto options = fast_options(connections);
            options.retry.max_attempts = 8;
            Downloader downloader{http, options};
            auto plan = plan_for(server.url("/seeded.safetensors"), dir / "Lora", "seeded.safetensors");
            plan.sha256 = digest;
            auto result = within(std::chrono::seconds(60), [&](const std::atomic<bool>* cancel) {
                auto run_options = options;
                run_options.cancel = cancel;
                return Downloader{http, run_options}.download(plan);
            });
            std::string seen;
            for (const auto& [kind, count] : faults) seen += kind + "=" + std::to_string(count) + " ";
            INFO("seed " << seed << " with " << connections << " connection(s) (rerun: PROVISION_FAULT_SEED=" << seed
                         << "); faults: " << seen);
            REQUIRE_MESSAGE(result, (result ? std::string() : result.error().message));
            CHECK(provision_test::read_whole_file(dir / "Lora/seeded.safetensors") == body);
            CHECK(files_under(dir.path()) == std::vector<std::string>{"Lora/seeded.safetensors"});
        }
    }
}

TEST_CASE("faults: a body shorter than its Content-Length is fetched again; one that is always short fails cleanly") {
    const std::string body = test_bytes(700 * 1024, 62);
    std::atomic<int> answers{0};
    std::atomic<int> short_answers{2};
    // No Accept-Ranges: the only way on is the whole body again.
    RawLoopbackServer server([&](int fd, const std::string&) {
        int n = answers++;
        std::string head = raw_head(
            "200 OK", {"Content-Type: application/octet-stream", "Content-Length: " + std::to_string(body.size())});
        std::size_t send = n < short_answers ? body.size() / 3 + static_cast<std::size_t>(n) * 1000 : body.size();
        if (RawLoopbackServer::send_all(fd, head))
            RawLoopbackServer::send_all(fd, std::string_view(body).substr(0, send));
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto plan = plan_for(server.url("/short.safetensors"), dir / "Lora");
    plan.sha256 = provision::detail::sha256_hex(body);
    auto healed = Downloader{http, fast_options()}.download(plan);
    REQUIRE_MESSAGE(healed, (healed ? std::string() : healed.error().message));
    CHECK(provision_test::read_whole_file(dir / "Lora/short.safetensors") == body);
    CHECK(answers.load() == 3);

    TempDir other;
    answers = 0;
    short_answers = 1000;
    plan.folder = other / "Lora";
    auto failed = Downloader{http, fast_options()}.download(plan);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == provision::errc::network);
    CHECK(contains(failed.error().message, "models.lora.hostile"));
    CHECK(contains(failed.error().message, "gave up after"));
    CHECK(files_under(other.path()).empty());  // not resumable without Range: nothing is kept
}

TEST_CASE("faults: a chunked body cut short is never taken for the whole file") {
    const std::string body = test_bytes(600 * 1024, 63);
    std::atomic<int> answers{0};
    std::atomic<int> cut_answers{1};
    auto server = LoopbackServer::https();
    server->server().Get("/chunked.safetensors", [&](const httplib::Request&, httplib::Response& res) {
        bool cut = answers++ < cut_answers;
        res.set_chunked_content_provider("application/octet-stream",
                                         [&body, cut](std::size_t offset, httplib::DataSink& sink) {
                                             if (cut && offset >= body.size() / 2)
                                                 return false;  // drop the connection without the last chunk
                                             std::size_t chunk = std::min<std::size_t>(32 * 1024, body.size() - offset);
                                             sink.write(body.data() + offset, chunk);
                                             if (offset + chunk == body.size()) sink.done();
                                             return true;
                                         });
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto plan = plan_for(server->url("/chunked.safetensors"), dir / "Lora");
    auto healed = Downloader{http, fast_options()}.download(plan);  // no size, no digest: only the framing tells
    REQUIRE_MESSAGE(healed, (healed ? std::string() : healed.error().message));
    CHECK(provision_test::read_whole_file(dir / "Lora/chunked.safetensors") == body);
    CHECK(answers.load() == 2);

    TempDir other;
    answers = 0;
    cut_answers = 1000;
    plan.folder = other / "Lora";
    auto failed = Downloader{http, fast_options()}.download(plan);
    REQUIRE_FALSE(failed);
    CHECK(contains(failed.error().message, "gave up after"));
    CHECK(files_under(other.path()).empty());
}

TEST_CASE("faults: a storm of 500, 502, 503 and 504 passes; 429 without Retry-After backs off and passes") {
    auto body = std::make_shared<const std::string>(test_bytes(900 * 1024, 64));
    std::atomic<int> requests{0};
    const int statuses[] = {500, 502, 503, 504, 429, 503, 500};
    auto server = LoopbackServer::https();
    server->server().Get("/storm.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        int n = requests++;
        if (n < 7) {
            res.status = statuses[n];
            res.set_content("<html><body>upstream error</body></html>", "text/html");
            return;
        }
        server->serve_bytes(res, req, body);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto options = fast_options(4);
    options.retry.max_attempts = 8;
    std::vector<std::string> retries;
    options.on_event = [&](const provision::Event& event) {
        if (event.kind == provision::EventKind::retry) retries.push_back(event.message);
    };
    auto plan = plan_for(server->url("/storm.safetensors"), dir / "Lora", "storm.safetensors");
    plan.sha256 = provision::detail::sha256_hex(*body);
    auto result = Downloader{http, options}.download(plan);
    REQUIRE_MESSAGE(result, (result ? std::string() : result.error().message));
    CHECK(provision_test::read_whole_file(dir / "Lora/storm.safetensors") == *body);
    REQUIRE(retries.size() >= 7);
    CHECK(contains(retries[0], "HTTP 500"));
    CHECK(contains(retries[4], "HTTP 429"));
    // An error page served with a 5xx is never kept as the model.
    CHECK(files_under(dir.path()) == std::vector<std::string>{"Lora/storm.safetensors"});
}

TEST_CASE("faults: a slow drip of a few bytes a second counts as a stall and ends within the timeouts") {
    const std::string body = test_bytes(256 * 1024, 65);
    RawLoopbackServer server([&](int fd, const std::string&) {
        std::string head = raw_head(
            "200 OK", {"Content-Type: application/octet-stream", "Content-Length: " + std::to_string(body.size())});
        if (!RawLoopbackServer::send_all(fd, head)) return;
        for (std::size_t offset = 0; offset < body.size() && !server.stopping(); offset += 8) {
            if (!RawLoopbackServer::send_all(fd, std::string_view(body).substr(offset, 8))) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));  // 80 bytes a second
        }
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto options = fast_options(1);
    options.stall_timeout = std::chrono::seconds(1);
    options.retry.max_attempts = 2;
    auto plan = plan_for(server.url("/drip.safetensors"), dir / "Lora");
    auto result = within(std::chrono::seconds(20), [&](const std::atomic<bool>* cancel) {
        options.cancel = cancel;
        return Downloader{http, options}.download(plan);
    });
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::network);
    CHECK(contains(result.error().message, "stalled"));
    CHECK(contains(result.error().message, "gave up after"));
    CHECK(server.connections() == 3);
    CHECK(files_under(dir.path()).empty());
}

TEST_CASE("faults: a 206 for another range than the one asked for is never spliced in") {
    const std::string body = test_bytes(1024 * 1024, 66);
    std::atomic<int> wrong{0};
    std::atomic<int> unranged{0};
    RawLoopbackServer server([&](int fd, const std::string& head) {
        RawRequest request = parse_raw_request(head);
        if (!request.has_range) ++unranged;
        if (request.has_range && request.first > 0) {
            // Answers with the right length from the wrong place: bytes 0.. again.
            ++wrong;
            RawRequest shifted = request;
            shifted.last = request.last.value_or(body.size() - 1) - request.first;
            shifted.first = 0;
            return answer_range(fd, shifted, body);
        }
        answer_range(fd, request, body);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto plan = plan_for(server.url("/shifted.safetensors"), dir / "Lora");
    plan.size = body.size();  // the first request asks for the first piece only, the others are ranged
    auto result = within(std::chrono::seconds(30), [&](const std::atomic<bool>* cancel) {
        auto options = fast_options(4);
        options.cancel = cancel;
        return Downloader{http, options}.download(plan);
    });
    CHECK(wrong.load() > 0);
    // Never a splice: the engine notices the server's Range support is broken
    // and takes the file in one piece, byte-exact.
    REQUIRE_MESSAGE(result, (result ? std::string() : result.error().message));
    CHECK(provision_test::read_whole_file(dir / "Lora/shifted.safetensors") == body);
    CHECK(files_under(dir.path()) == std::vector<std::string>{"Lora/shifted.safetensors"});
    CHECK(unranged.load() == 1);
}

TEST_CASE("faults: a redirect loop ends with a message, not a hang") {
    auto server = LoopbackServer::https();
    server->server().Get("/a.safetensors", [&](const httplib::Request&, httplib::Response& res) {
        res.set_redirect(server->url("/b.safetensors"), 302);
    });
    server->server().Get("/b.safetensors", [&](const httplib::Request&, httplib::Response& res) {
        res.set_redirect("/a.safetensors", 301);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto result = within(std::chrono::seconds(20), [&](const std::atomic<bool>* cancel) {
        auto options = fast_options();
        options.cancel = cancel;
        return Downloader{http, options}.download(plan_for(server->url("/a.safetensors"), dir / "Lora"));
    });
    REQUIRE_FALSE(result);
    CHECK(contains(result.error().message, "too many redirects"));
    CHECK(contains(result.error().message, "models.lora.hostile"));
    CHECK(files_under(dir.path()).empty());
}

TEST_CASE("faults: hostile Content-Disposition names land inside the folder, sanitized") {
    using namespace std::string_literals;  // keeps the NUL inside a literal
    struct Case {
        std::string header;
        std::string expected;  ///< the file name that must appear (empty: the URL's)
    };
    const std::vector<Case> cases = {
        {"attachment; filename=\"../../escaped.safetensors\"", "_.._escaped.safetensors"},
        {"attachment; filename*=UTF-8''..%2F..%2Fencoded.safetensors", "_.._encoded.safetensors"},
        {"attachment; filename=\"/etc/provision-absolute.safetensors\"", "_etc_provision-absolute.safetensors"},
        {"attachment; filename=\"..\"", ""},
        {"attachment; filename=\"nul\0byte.safetensors\""s, ""},
        {"attachment; filename=\"ctl\x01\x1b[31mred.safetensors\"", ""},
        {"attachment; filename=\"bad\xff\xfeutf8.safetensors\"", ""},
        {"attachment; filename=\"" + std::string(5000, 'x') + ".safetensors\"", ""},
    };
    const std::string body = test_bytes(70 * 1024, 67);
    std::atomic<std::size_t> which{0};
    RawLoopbackServer server([&](int fd, const std::string&) {
        const Case& current = cases[which.load()];
        std::string head =
            raw_head("200 OK", {"Content-Type: application/octet-stream", "Content-Disposition: " + current.header,
                                "Content-Length: " + std::to_string(body.size())});
        if (RawLoopbackServer::send_all(fd, head)) RawLoopbackServer::send_all(fd, body);
    });
    for (std::size_t i = 0; i < cases.size(); ++i) {
        CAPTURE(i);
        which = i;
        TempDir root;
        auto folder = root / "models" / "Lora";
        HttpClient http{trusting_options()};
        auto plan = plan_for(server.url("/from-url.safetensors"), folder);
        auto result = Downloader{http, fast_options()}.download(plan);
        std::string message = result ? std::string() : result.error().message;
        CAPTURE(message);
        // Whatever happened, nothing exists outside the folder.
        for (const auto& name : files_under(root.path())) {
            CAPTURE(name);
            CHECK(provision::detail::starts_with(name, "models/Lora/"));
            CHECK(name.find("/", 12) == std::string::npos);  // no sub-folder either
            for (unsigned char c : name) CHECK(c >= 0x20);
        }
        CHECK_FALSE(std::filesystem::exists(root / "escaped.safetensors"));
        CHECK_FALSE(std::filesystem::exists(root / "models" / "escaped.safetensors"));
        CHECK_FALSE(std::filesystem::exists("/etc/provision-absolute.safetensors"));
        if (result) {
            CHECK(result->path.parent_path() == folder);
            CHECK(result->path.filename().string().size() <= 200);
            if (!cases[i].expected.empty()) CHECK(result->path.filename().string() == cases[i].expected);
            CHECK(provision_test::read_whole_file(result->path) == body);
            CHECK(files_under(root.path()).size() == 1);
        } else {
            CHECK(contains(message, "models.lora.hostile"));
        }
    }
}

TEST_CASE("faults: a JSON error page with a 200 and a binary Content-Type is never installed, digest or none") {
    // No model file starts like a JSON document, whatever the server calls it.
    std::atomic<int> requests{0};
    auto server = LoopbackServer::https();
    server->server().Get("/api/model.safetensors", [&](const httplib::Request&, httplib::Response& res) {
        ++requests;
        res.set_content(R"({"error":"quota exceeded","retry":false})", "application/octet-stream");
    });
    for (bool digest_known : {false, true}) {
        CAPTURE(digest_known);
        requests = 0;
        TempDir dir;
        HttpClient http{trusting_options()};
        auto plan = plan_for(server->url("/api/model.safetensors"), dir / "Lora");
        if (digest_known) plan.sha256 = provision::detail::sha256_hex(test_bytes(1000, 1));
        auto result = Downloader{http, fast_options()}.download(plan);
        REQUIRE_FALSE(result);
        CHECK(result.error().code == provision::errc::integrity);
        CHECK(contains(result.error().message, "models.lora.hostile"));
        CHECK(contains(result.error().message, "sent a JSON document (\"{\"error\":\"quota exceeded\""));
        CHECK(files_under(dir.path()).empty());
        CHECK(requests == 1);  // asking again would get the same answer
    }
}

TEST_CASE(
    "faults: a model whose first bytes arrive two at a time is judged on its first 512 bytes, not on the first read") {
    // A safetensors header length of 0x4141 begins "AA": printable. Judged on a
    // first read of two bytes, text/plain would have made it an error message.
    const std::uint64_t header_length = 0x4141;
    std::string header = R"({"__metadata__":{"format":"pt"}})";
    header.resize(header_length, ' ');
    std::string model;
    for (int shift = 0; shift < 64; shift += 8) model += static_cast<char>((header_length >> shift) & 0xff);
    model += header + test_bytes(100 * 1024, 73);
    RawLoopbackServer server([&](int fd, const std::string&) {
        std::string head =
            raw_head("200 OK", {"Content-Type: text/plain", "Content-Length: " + std::to_string(model.size())});
        if (!RawLoopbackServer::send_all(fd, head + model.substr(0, 2))) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        RawLoopbackServer::send_all(fd, model.substr(2));
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto result =
        Downloader{http, fast_options()}.download(plan_for(server.url("/drip/model.safetensors"), dir / "Lora"));
    INFO((result ? std::string() : result.error().message));
    REQUIRE(result);
    CHECK(provision_test::read_whole_file(dir / "Lora/model.safetensors") == model);
}

TEST_CASE("faults: a body compressed although it was asked for as stored is not installed") {
    // A misconfigured server gzips everything, whatever Accept-Encoding says.
    // Without a digest nothing else would notice: the gzip stream would be
    // installed under the model's name.
    const std::string body = test_bytes(64 * 1024, 71);
    std::atomic<int> requests{0};
    RawLoopbackServer server([&](int fd, const std::string& request) {
        ++requests;
        CHECK(contains(request, "Accept-Encoding: identity"));
        std::string head = raw_head("200 OK", {"Content-Type: application/octet-stream", "Content-Encoding: gzip",
                                               "Content-Length: " + std::to_string(body.size())});
        if (RawLoopbackServer::send_all(fd, head)) RawLoopbackServer::send_all(fd, body);
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto plan = plan_for(server.url("/model.safetensors"), dir / "Lora");
    auto result = Downloader{http, fast_options()}.download(plan);
    REQUIRE_FALSE(result);
    CHECK(result.error().code == provision::errc::integrity);
    CHECK(contains(result.error().message, "models.lora.hostile"));
    CHECK(contains(result.error().message, "Content-Encoding: gzip"));
    CHECK(contains(result.error().message, "without compression"));
    CHECK(files_under(dir.path()).empty());
    CHECK(requests == 1);  // not a passing fault: asking again would get the same answer
}

TEST_CASE("faults: a body larger than the source announced is refused, whatever the framing") {
    // Declared before the server: the endless provider may still be writing
    // from `body` after the client gave up, until the server stops.
    const std::string body = test_bytes(300 * 1024, 68);
    std::atomic<std::uint64_t> chunked_sent{0};
    auto server = LoopbackServer::https();
    server->server().Get("/length.safetensors", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content(body, "application/octet-stream");
    });
    server->server().Get("/endless.safetensors", [&](const httplib::Request&, httplib::Response& res) {
        // No length at all, and far more bytes than announced: must not fill the disk.
        res.set_chunked_content_provider("application/octet-stream", [&](std::size_t offset, httplib::DataSink& sink) {
            if (offset >= (64u << 20)) return false;
            chunked_sent += 64 * 1024;
            sink.write(body.data(), 64 * 1024);
            return true;
        });
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    for (const char* path : {"/length.safetensors", "/endless.safetensors"}) {
        CAPTURE(path);
        auto plan = plan_for(server->url(path), dir / "Lora");
        plan.size = 100 * 1024;
        auto result = Downloader{http, fast_options()}.download(plan);
        REQUIRE_FALSE(result);
        CHECK(result.error().code == provision::errc::integrity);
        CHECK(contains(result.error().message, "102400"));
        CHECK(files_under(dir.path()).empty());
    }
    CHECK(chunked_sent.load() < (8u << 20));  // stopped soon after the announced size, not at the server's whim
}

TEST_CASE("faults: bytes beyond Content-Length do not leak into the next response on a reused connection") {
    const std::string body = test_bytes(80 * 1024, 69);
    std::atomic<int> served{0};
    // Keep-alive on purpose: the junk after the body sits where the next status line would.
    RawLoopbackServer server([&](int fd, const std::string& first_head) {
        std::string head = first_head;
        char buffer[4096];
        while (true) {
            ++served;
            std::string answer = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body +
                                 "EXTRA BYTES THAT NOBODY ASKED FOR\r\n\r\n";
            if (!RawLoopbackServer::send_all(fd, answer)) return;
            head.clear();
            while (head.find("\r\n\r\n") == std::string::npos) {
                ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
                if (got <= 0) return;
                head.append(buffer, static_cast<std::size_t>(got));
            }
        }
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    Downloader downloader{http, fast_options()};
    for (const char* name : {"one.safetensors", "two.safetensors", "three.safetensors"}) {
        CAPTURE(name);
        auto plan = plan_for(server.url(std::string("/") + name), dir / "Lora", name);
        plan.sha256 = provision::detail::sha256_hex(body);
        auto result = downloader.download(plan);
        REQUIRE_MESSAGE(result, (result ? std::string() : result.error().message));
        CHECK(provision_test::read_whole_file(dir / "Lora" / name) == body);
    }
}

TEST_CASE("faults: a server that sends headers forever is cut off at 64 KiB of headers") {
    std::atomic<std::uint64_t> header_bytes{0};
    RawLoopbackServer server([&](int fd, const std::string&) {
        if (!RawLoopbackServer::send_all(fd, "HTTP/1.1 200 OK\r\n")) return;
        std::string filler = "X-Filler: " + std::string(90, 'h') + "\r\n";
        std::string batch;
        for (int i = 0; i < 100; ++i) batch += filler;
        while (!server.stopping()) {
            if (!RawLoopbackServer::send_all(fd, batch)) return;
            header_bytes += batch.size();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));  // ~5 MB/s of headers
        }
    });
    TempDir dir;
    HttpClient http{trusting_options()};
    auto options = fast_options(1);
    options.stall_timeout = std::chrono::seconds(1);
    options.retry.max_attempts = 1;
    auto result = within(std::chrono::seconds(20), [&](const std::atomic<bool>* cancel) {
        options.cancel = cancel;
        return Downloader{http, options}.download(plan_for(server.url("/headers.safetensors"), dir / "Lora"));
    });
    REQUIRE_FALSE(result);
    CAPTURE(result.error().message);
    CHECK(contains(result.error().message, "is not valid HTTP/1.1: more than 64 KiB of response headers"));
    CHECK(server.connections() == 2);
    CHECK(header_bytes.load() < 4u << 20);  // refused long before the stall timeout
    CHECK(files_under(dir.path()).empty());
}

TEST_CASE("faults: config, API and page requests end at their deadline when headers never end or the body drips") {
    RawLoopbackServer server([&](int fd, const std::string& head) {
        RawRequest request = parse_raw_request(head);
        if (request.target == "/headers") {
            if (!RawLoopbackServer::send_all(fd, "HTTP/1.1 200 OK\r\n")) return;
            // About 5 KB/s: the 64 KiB header limit would take 13 s, the deadline must end it first.
            while (!server.stopping() && RawLoopbackServer::send_all(fd, "X-Filler: " + std::string(90, 'h') + "\r\n"))
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            return;
        }
        if (!RawLoopbackServer::send_all(
                fd, raw_head("200 OK", {"Content-Type: application/toml", "Content-Length: 100000"})))
            return;
        while (!server.stopping() && RawLoopbackServer::send_all(fd, "#"))
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
    });
    auto options = trusting_options();
    options.request_deadline = std::chrono::seconds(1);
    HttpClient http{options};
    for (const char* path : {"/headers", "/drip.toml"}) {
        CAPTURE(path);
        provision::HttpRequest request;
        request.url = provision::parse_url(server.url(path)).value();
        auto result = within(std::chrono::seconds(10), [&](const std::atomic<bool>*) { return http.fetch(request); });
        REQUIRE_FALSE(result);
        CHECK(result.error().code == provision::errc::network);
        CHECK(contains(result.error().message, "took longer than 1 s"));
        CHECK(contains(result.error().message, "127.0.0.1:" + std::to_string(server.port())));
    }

    // The config itself, from a URL: the run ends with the reason instead of waiting for days.
    TempDir workspace;
    provision::ProvisionOptions run_options;
    run_options.workspace = workspace.path();
    run_options.http = options;
    run_options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    auto report = within(std::chrono::seconds(10), [&](const std::atomic<bool>*) {
        provision::ProvisioningSystem system{run_options};
        return system.provision_from_url(server.url("/drip.toml"));
    });
    REQUIRE(report.fatal);
    CHECK(contains(report.fatal->message, "took longer than 1 s"));
    CHECK(report.entries.empty());
}

TEST_CASE("faults: an expired certificate and one for another host are refused before any byte is written") {
    for (bool expired : {true, false}) {
        CAPTURE(expired);
        auto server = expired ? LoopbackServer::https({"localhost", "127.0.0.1"}, true)
                              : LoopbackServer::https({"elsewhere.example"});
        server->server().Get("/model.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
            server->serve_bytes(res, req, test_bytes(1000, 70));
        });
        TempDir dir;
        HttpClient http{trusting_options()};
        auto result =
            Downloader{http, fast_options()}.download(plan_for(server->url("/model.safetensors"), dir / "Lora"));
        REQUIRE_FALSE(result);
        CHECK(contains(result.error().message, "models.lora.hostile"));
        CHECK(result.error().code == provision::errc::unsafe);  // refused at once, never retried
        CHECK(contains(result.error().message,
                       expired ? "is not valid now (certificate has expired)" : "is for another host name"));
        CHECK(server->requests().empty());
        CHECK(files_under(dir.path()).empty());
    }
}

// ---------------------------------------------------------------------------
// Local faults

namespace {

/// Leaves a half-downloaded file: the server cuts every answer after `keep`
/// bytes and the engine gives up at once, keeping .part and resume state.
void leave_partial(HttpClient& http, const DownloadPlan& plan, std::atomic<std::uint64_t>& cut_at, std::uint64_t keep) {
    cut_at = keep;
    auto options = fast_options(1);
    options.retry.max_attempts = 0;
    auto result = Downloader{http, options}.download(plan);
    REQUIRE_FALSE(result);
    REQUIRE(contains(result.error().message, "kept in"));
    cut_at = std::numeric_limits<std::uint64_t>::max();
}

}  // namespace

TEST_CASE(
    "faults: a .part or resume state deleted, truncated, corrupted or tampered with between runs still ends "
    "byte-exact") {
    auto body = std::make_shared<const std::string>(test_bytes(1200 * 1024, 71));
    std::atomic<std::uint64_t> cut_at{std::numeric_limits<std::uint64_t>::max()};
    auto server = LoopbackServer::https();
    server->server().Get("/local.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        provision_test::ServeOptions options;
        if (cut_at.load() != std::numeric_limits<std::uint64_t>::max()) options.abort_after = cut_at.load();
        res.set_header("ETag", "\"local-v1\"");
        server->serve_bytes(res, req, body, options);
    });
    HttpClient http{trusting_options()};
    const std::vector<std::string> damages = {"part deleted",  "state deleted",           "part truncated",
                                              "state garbage", "state claims everything", "part bytes flipped"};
    for (const auto& damage : damages) {
        CAPTURE(damage);
        TempDir dir;
        auto plan = plan_for(server->url("/local.safetensors"), dir / "Lora", "local.safetensors");
        plan.sha256 = provision::detail::sha256_hex(*body);
        plan.size = body->size();
        leave_partial(http, plan, cut_at, 500 * 1024);
        auto part = dir / "Lora/local.safetensors.part";
        auto state = provision::detail::resume_state_path(part);
        REQUIRE(std::filesystem::exists(part));
        REQUIRE(std::filesystem::exists(state));
        if (damage == "part deleted") std::filesystem::remove(part);
        if (damage == "state deleted") std::filesystem::remove(state);
        if (damage == "part truncated") std::filesystem::resize_file(part, 1000);
        if (damage == "state garbage")
            std::ofstream(state, std::ios::binary | std::ios::trunc) << std::string("\x01{[garbage\xff", 11);
        if (damage == "state claims everything") {
            auto loaded = provision::detail::load_resume_state(state);
            REQUIRE(loaded);
            loaded->done.add(0, body->size());
            REQUIRE(provision::detail::save_resume_state(state, *loaded).ok());
        }
        if (damage == "part bytes flipped") {
            std::fstream file(part, std::ios::in | std::ios::out | std::ios::binary);
            file.seekp(1234);
            file.write("\x00\x01\x02\x03", 4);
        }
        auto result = Downloader{http, fast_options()}.download(plan);
        REQUIRE_MESSAGE(result, (result ? std::string() : result.error().message));
        CHECK(provision_test::read_whole_file(dir / "Lora/local.safetensors") == *body);
        CHECK(files_under(dir.path()) == std::vector<std::string>{"Lora/local.safetensors"});
    }
}

TEST_CASE(
    "faults: a model folder that cannot be written fails its entries with the path; other folders are unaffected") {
    const std::string lora = test_bytes(50 * 1024, 72);
    const std::string vae = test_bytes(60 * 1024, 73);
    auto server = LoopbackServer::https();
    server->server().Get("/lora.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, lora);
    });
    server->server().Get("/vae.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        server->serve_bytes(res, req, vae);
    });
    std::string config =
        "[models.lora]\n"
        "blocked = \"" +
        server->url("/lora.safetensors") +
        "\"\n"
        "[models.vae]\n"
        "fine = \"" +
        server->url("/vae.safetensors") + "\"\n";
    // A read-only mount where a folder should be writable (root ignores file
    // modes, so chmod proves nothing here); without mount rights, a plain file
    // standing where the folder should be.
    for (const char* how : {"read-only mount", "file in the way"}) {
        CAPTURE(how);
        TempDir workspace;
        auto folder = workspace.path() / "sdnext/models/Lora";
        std::filesystem::create_directories(folder);
        bool mounted = false;
        if (std::string(how) == "read-only mount") {
            mounted = ::mount("tmpfs", folder.c_str(), "tmpfs", MS_RDONLY, "size=1m") == 0;
            if (!mounted) {
                provision_test::skip_test("read-only-mount",
                                          std::string("cannot mount a read-only tmpfs here: ") + std::strerror(errno));
                continue;
            }
        } else {
            std::filesystem::remove(folder);
            std::ofstream(folder) << "not a folder";
        }
        provision::ProvisionOptions options;
        options.workspace = workspace.path();
        options.http.ca_files = {provision_test::test_ca().ca_cert_path};
        options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
        options.download = fast_options();
        provision::ProvisioningSystem system{options};
        auto report = system.provision_from_text(config, "blocked.toml");
        if (mounted) ::umount2(folder.c_str(), MNT_DETACH);
        REQUIRE(report.entries.size() == 2);
        CHECK(report.entries[0].status == provision::EntryOutcome::Status::failed);
        INFO(report.entries[0].error.message);
        CHECK(contains(report.entries[0].error.message, "models.lora.blocked"));
        CHECK(contains(report.entries[0].error.message, folder.string()));
        CHECK(report.entries[1].status == provision::EntryOutcome::Status::installed);
        CHECK(provision_test::read_whole_file(workspace.path() / "sdnext/models/VAE/vae.safetensors") == vae);
        CHECK_FALSE(report.ok());
    }
}

TEST_CASE(
    "faults: one run against a hostile world: every bad entry fails with its own message, the good ones install") {
    const std::string good = test_bytes(200 * 1024, 74);
    RawLoopbackServer raw([&](int fd, const std::string& head) {
        RawRequest request = parse_raw_request(head);
        if (request.target == "/drip.safetensors") {
            RawLoopbackServer::send_all(
                fd, raw_head("200 OK", {"Content-Type: application/octet-stream", "Content-Length: 100000"}));
            while (!raw.stopping() && RawLoopbackServer::send_all(fd, "x"))
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
        } else if (request.target == "/escape.safetensors") {
            std::string head_text =
                raw_head("200 OK", {"Content-Type: application/octet-stream", "Content-Length: 1000",
                                    "Content-Disposition: attachment; filename=\"../../../outside.safetensors\""});
            RawLoopbackServer::send_all(fd, head_text + std::string(1000, 'e'));
        } else if (request.target == "/reset.safetensors") {
            reset_on_close(fd);
        } else {
            answer_range(fd, request, good);
        }
    });
    auto expired = LoopbackServer::https({"localhost", "127.0.0.1"}, true);
    expired->server().Get("/model.safetensors", [&](const httplib::Request& req, httplib::Response& res) {
        expired->serve_bytes(res, req, good);
    });
    auto pages = LoopbackServer::https();
    pages->server().Get("/login.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("<!DOCTYPE html><html>sign in</html>", "application/octet-stream");
    });
    std::string config =
        "[models.lora]\n"
        "good-1 = \"" +
        raw.url("/good.safetensors") +
        "\"\n"
        "drip = \"" +
        raw.url("/drip.safetensors") +
        "\"\n"
        "reset = \"" +
        raw.url("/reset.safetensors") +
        "\"\n"
        "expired = \"" +
        expired->url("/model.safetensors") +
        "\"\n"
        "login = \"" +
        pages->url("/login.safetensors") +
        "\"\n"
        "[models.vae]\n"
        "escape = \"" +
        raw.url("/escape.safetensors") +
        "\"\n"
        "good-2 = { url = \"" +
        raw.url("/good.safetensors") + "\", filename = \"second.safetensors\" }\n";
    TempDir workspace;
    provision::ProvisionOptions options;
    options.workspace = workspace.path();
    options.http.ca_files = {provision_test::test_ca().ca_cert_path};
    options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    options.download = fast_options();
    options.download.stall_timeout = std::chrono::seconds(1);
    options.download.retry.max_attempts = 2;
    auto report = within(std::chrono::seconds(40), [&](const std::atomic<bool>* cancel) {
        options.cancel = cancel;
        provision::ProvisioningSystem system{options};
        return system.provision_from_text(config, "hostile.toml");
    });
    std::map<std::string, const provision::EntryOutcome*> by_key;
    for (const auto& entry : report.entries) by_key[entry.key_path] = &entry;
    REQUIRE(by_key.size() == 7);
    auto status = [&](const std::string& key) { return by_key.at(key)->status; };
    auto message = [&](const std::string& key) { return by_key.at(key)->error.message; };
    using Status = provision::EntryOutcome::Status;
    CHECK(status("models.lora.good-1") == Status::installed);
    CHECK(status("models.vae.good-2") == Status::installed);
    CHECK(status("models.vae.escape") == Status::installed);  // under a sanitized name, inside VAE/
    CHECK(status("models.lora.drip") == Status::failed);
    CHECK(contains(message("models.lora.drip"), "stalled"));
    CHECK(status("models.lora.reset") == Status::failed);
    CHECK(contains(message("models.lora.reset"), "broke while reading"));
    CHECK(status("models.lora.expired") == Status::failed);
    CHECK(contains(message("models.lora.expired"), "expired"));
    CHECK(status("models.lora.login") == Status::failed);
    CHECK(contains(message("models.lora.login"), "HTML"));
    auto models = workspace.path() / "sdnext/models";
    CHECK(provision_test::read_whole_file(models / "Lora/good.safetensors") == good);
    CHECK(provision_test::read_whole_file(models / "VAE/second.safetensors") == good);
    CHECK(by_key.at("models.vae.escape")->path.parent_path() == models / "VAE");
    for (const auto& name : files_under(workspace.path())) {
        CAPTURE(name);
        bool expected_place = provision::detail::starts_with(name, "sdnext/models/") ||
                              provision::detail::starts_with(name, "logs/") ||
                              provision::detail::starts_with(name, ".provision/");
        CHECK(expected_place);
        CHECK_FALSE(provision::detail::ends_with(name, ".part"));
    }
    CHECK_FALSE(std::filesystem::exists(workspace.path() / "outside.safetensors"));
    CHECK_FALSE(std::filesystem::exists(workspace.path().parent_path() / "outside.safetensors"));
}

}  // namespace suite_faults
