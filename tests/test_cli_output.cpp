// SPDX-License-Identifier: MIT
// What the provision CLI shows: plain log lines, the live terminal view, --json and --report.
#include "common.hpp"
#include "support/civitai_emulator.hpp"
#include "support/hf_emulator.hpp"
#include "support/loopback_server.hpp"
#include "support/pty_process.hpp"
#include "support/run_process.hpp"
#include "support/skip.hpp"

// The CLI's pure layout functions, to try every width without a terminal.
#include "../examples/provision/progress_bar.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

namespace suite_cli_output {  // apart from the suites compiled with it (tests/meson.build)

using provision_test::LoopbackServer;
using provision_test::run_process;
using provision_test::TempDir;

namespace {

const std::string cli = PROVISION_CLI_PATH;

/// A server whose model trickles out over about a second, so progress has something to show.
std::unique_ptr<LoopbackServer> slow_model_server(std::string bytes) {
    // Shared, never copied per request: under TSan, copying megabytes that the
    // main thread wrote (the handoff runs through a socket, which TSan cannot
    // see) raises one suppressed report per word, and each costs a search of
    // all the earlier ones. An 8 MiB copy stalled the server for minutes.
    auto body = std::make_shared<const std::string>(std::move(bytes));
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get("/slow.safetensors", [body](const httplib::Request&, httplib::Response& res) {
        res.set_content_provider(
            body->size(), "application/octet-stream", [body](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                std::size_t piece = std::min<std::size_t>(body->size() - offset, body->size() / 10);
                std::this_thread::sleep_for(std::chrono::milliseconds(120));
                // A client that gave up ends the response: otherwise the
                // server thread retries the same piece forever, and a slow
                // (TSan) run used up the server's 8 threads that way.
                return sink.write(body->data() + offset, piece);
            });
    });
    server->server().Get("/fast.safetensors", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(std::string(1000, 'f'), "application/octet-stream");
    });
    return server;
}

std::vector<std::string> base_args(const LoopbackServer& server, const std::filesystem::path& config,
                                   const std::filesystem::path& workspace) {
    return {cli,
            config.string(),
            "--workspace",
            workspace.string(),
            "--cacert",
            provision_test::test_ca().ca_cert_path,
            "--connect-to",
            "models.example:443:127.0.0.1:" + std::to_string(server.port()),
            "--connections",
            "1"};
}

const char* config_text =
    "[models.checkpoints]\nslow = \"https://models.example/slow.safetensors\"\n"
    "[models.lora]\nfast = \"https://models.example/fast.safetensors\"\n"
    "missing = \"https://models.example/missing.safetensors\"\n";

}  // namespace

TEST_CASE("cli output: without a terminal, plain lines at start, every 10% and at the end") {
    auto server = slow_model_server(provision_test::test_bytes(8 << 20, 4));
    TempDir dir;
    auto config = dir.write("c.toml", config_text);
    auto result = run_process(base_args(*server, config, dir / "ws"), {{"NO_COLOR", ""}});
    CHECK(result.exit_code == 4);
    CHECK(result.err.find("\x1b[") == std::string::npos);  // no escape sequences in a log
    CHECK(result.err.find("start models.checkpoints.slow -> ") != std::string::npos);
    CHECK(result.err.find("done models.checkpoints.slow -> ") != std::string::npos);
    CHECK(result.err.find("FAILED models.lora.missing") != std::string::npos);
    std::size_t progress_lines = 0;
    for (std::size_t pos = result.err.find("models.checkpoints.slow: "); pos != std::string::npos;
         pos = result.err.find("models.checkpoints.slow: ", pos + 1))
        ++progress_lines;
    CHECK(progress_lines >= 3);
    CHECK(progress_lines <= 11);
    CHECK(result.out.find("3 entries: 2 ok, 1 failed") != std::string::npos);
    CHECK(result.out.find("exit code 4") != std::string::npos);

    auto quiet = run_process([&] {
        auto args = base_args(*server, config, dir / "ws2");
        args.push_back("--quiet");
        return args;
    }());
    CHECK(quiet.err.find("start ") == std::string::npos);
    CHECK(quiet.err.find("FAILED models.lora.missing") != std::string::npos);
}

TEST_CASE("cli output: on a terminal the live view redraws in place") {
    if (!std::filesystem::exists("/usr/bin/script")) {
        provision_test::skip_test("pseudo-terminal", "script(1) is not installed, so no pseudo-terminal can be made");
        return;
    }
    auto server = slow_model_server(provision_test::test_bytes(8 << 20, 6));
    TempDir dir;
    auto config = dir.write("c.toml", config_text);
    std::string command;
    for (const auto& arg : base_args(*server, config, dir / "ws")) command += "'" + arg + "' ";
    auto result = run_process({"/usr/bin/script", "-qfec", command + "2>&1", "/dev/null"}, {{"TERM", "xterm"}});
    CHECK(result.exit_code == 4);
    CHECK(result.out.find("\x1b[1A\x1b[2K") != std::string::npos);  // cursor up + clear line: an in-place redraw
    CHECK(result.out.find("total: ") != std::string::npos);
    CHECK(result.out.find("\x1b[32mdone\x1b[0m") != std::string::npos);  // colour on a terminal
    std::string fresh;  // a new workspace, or everything would already be in place
    for (const auto& arg : base_args(*server, config, dir / "ws-plain")) fresh += "'" + arg + "' ";
    auto plain =
        run_process({"/usr/bin/script", "-qfec", fresh + "2>&1", "/dev/null"}, {{"TERM", "xterm"}, {"NO_COLOR", "1"}});
    CHECK(plain.out.find("\x1b[32m") == std::string::npos);
    CHECK(plain.out.find("total: ") != std::string::npos);
}

TEST_CASE("cli output: on a terminal, entries still queued count in the total line and its ETA") {
    if (!std::filesystem::exists("/usr/bin/script")) {
        provision_test::skip_test("pseudo-terminal", "script(1) is not installed, so no pseudo-terminal can be made");
        return;
    }
    auto server = slow_model_server(provision_test::test_bytes(2 << 20, 9));
    TempDir dir;
    auto config = dir.write("q.toml",
                            "[models.checkpoints]\na = \"https://models.example/slow.safetensors\"\n"
                            "[models.lora]\nb = \"https://models.example/slow.safetensors\"\n"
                            "[models.vae]\nc = \"https://models.example/slow.safetensors\"\n");
    std::string command;
    for (const auto& arg : base_args(*server, config, dir / "ws")) command += "'" + arg + "' ";
    auto result =
        run_process({"/usr/bin/script", "-qfec", command + "--jobs 1 2>&1", "/dev/null"}, {{"TERM", "xterm"}});
    INFO(result.out);
    CHECK(result.exit_code == 0);
    // One file at a time: while the first is running, the other two wait,
    // and the total covers all three from the start.
    CHECK(result.out.find("1 active, 2 queued") != std::string::npos);
    CHECK(result.out.find(" / 6.0 MiB") != std::string::npos);
    CHECK(result.out.find("1 done, 1 active, 1 queued") != std::string::npos);
}

// ---------------------------------------------------------------------------
// Progress bars on a pseudo-terminal of a given width (tests/support/pty_process.hpp)

namespace {

bool shows(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// A server whose files go out at `bytes_per_second` per connection, so a
/// run lasts long enough for the live view to redraw many times.
std::unique_ptr<LoopbackServer> throttled_model_server(std::size_t size, std::uint64_t bytes_per_second) {
    auto body = std::make_shared<const std::string>(provision_test::test_bytes(size, 61));
    auto server = LoopbackServer::https({"models.example"});
    LoopbackServer* raw = server.get();
    server->server().Get(R"(/[a-z]+\.safetensors)",
                         [raw, body, bytes_per_second](const httplib::Request& req, httplib::Response& res) {
                             provision_test::ServeOptions options;
                             options.bytes_per_second = bytes_per_second;
                             raw->serve_bytes(res, req, body, options);
                         });
    return server;
}

/// `text` without escape sequences: CSI ones (ESC [ parameters, final byte)
/// and two-byte ones.
std::string strip_escapes(const std::string& text) {
    std::string plain;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\x1b') {
            plain += text[i];
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '[') {
            i += 2;
            while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7e)) ++i;  // up to the final byte
        } else {
            ++i;
        }
    }
    return plain;
}

/// Columns a piece of plain text takes: one per UTF-8 code point.
std::size_t columns_of(const std::string& plain) {
    std::size_t count = 0;
    for (char c : plain)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
    return count;
}

/// The pieces of `raw` between carriage returns and newlines, escapes removed.
std::vector<std::string> drawn_pieces(const std::string& raw) {
    std::vector<std::string> pieces;
    std::string piece;
    for (char c : strip_escapes(raw) + "\n") {
        if (c == '\r' || c == '\n') {
            if (!piece.empty()) pieces.push_back(piece);
            piece.clear();
        } else {
            piece += c;
        }
    }
    return pieces;
}

/// A line the live view drew and later erased, and where in the screen text it ended.
struct LiveLine {
    std::string raw;        ///< as written, escape sequences included
    std::size_t end = 0;    ///< offset of its newline in the screen text
    std::size_t frame = 0;  ///< which redraw drew it (0, 1, ...)
};

/// The lines of the live view, found the way the terminal treats them: the
/// view erases its block with one "cursor up, clear line" per line it drew,
/// so the k lines just before a run of k of those were live. Everything
/// else (done/FAILED lines, the summary) stays on the screen and may wrap.
std::vector<LiveLine> live_lines(const std::string& screen) {
    const std::string erase = "\x1b[1A\x1b[2K";
    struct Line {
        std::string raw;
        std::size_t end;
    };
    std::vector<Line> lines;
    std::vector<LiveLine> live;
    std::string current;
    std::size_t frame = 0;
    for (std::size_t i = 0; i < screen.size();) {
        if (screen.compare(i, erase.size(), erase) == 0) {
            std::size_t run = 0;
            while (screen.compare(i, erase.size(), erase) == 0) {
                ++run;
                i += erase.size();
            }
            for (std::size_t k = lines.size() - std::min(run, lines.size()); k < lines.size(); ++k)
                live.push_back({lines[k].raw, lines[k].end, frame});
            ++frame;
            lines.clear();  // erased lines are gone; earlier ones were permanent
            continue;
        }
        if (screen[i] == '\n') {
            lines.push_back({current, i});
            current.clear();
        } else {
            current += screen[i];
        }
        ++i;
    }
    return live;
}

/// The widest piece of the live lines, in columns.
std::size_t widest_live_piece(const std::vector<LiveLine>& live) {
    std::size_t widest = 0;
    for (const auto& line : live)
        for (const auto& piece : drawn_pieces(line.raw)) widest = std::max(widest, columns_of(piece));
    return widest;
}

/// The plain text of the live line that starts with `label` in each frame, in order.
std::vector<std::string> rows_labelled(const std::vector<LiveLine>& live, const std::string& label) {
    std::vector<std::string> rows;
    for (const auto& line : live)
        for (const auto& piece : drawn_pieces(line.raw))
            if (piece.compare(0, label.size(), label) == 0) rows.push_back(piece);
    return rows;
}

/// A Unicode bar's fill (0..1) and its cells, read back from a drawn line:
/// full blocks count 8 eighths, U+258F..U+2589 count 1..7.
struct ReadBar {
    bool found = false;
    double fraction = 0;
    std::size_t cells = 0;
};
ReadBar read_unicode_bar(const std::string& plain) {
    const std::string frame = "\u2502";
    ReadBar bar;
    std::size_t open = plain.find(frame);
    if (open == std::string::npos) return bar;
    std::size_t close = plain.find(frame, open + frame.size());
    if (close == std::string::npos) return bar;
    std::string inside = plain.substr(open + frame.size(), close - open - frame.size());
    std::size_t eighths = 0;
    for (std::size_t i = 0; i < inside.size();) {
        auto byte = static_cast<unsigned char>(inside[i]);
        if (byte == ' ') {
            ++bar.cells;
            ++i;
        } else if (byte == 0xE2 && i + 2 < inside.size()) {  // U+2580 block: E2 96 xx
            auto last = static_cast<unsigned char>(inside[i + 2]);
            if (last == 0x88) eighths += 8;                                 // U+2588 full block
            else if (last >= 0x89 && last <= 0x8F) eighths += 0x90 - last;  // U+2589 (7) .. U+258F (1)
            else return bar;
            ++bar.cells;
            i += 3;
        } else {
            return bar;
        }
    }
    bar.found = bar.cells > 0;
    bar.fraction = bar.found ? static_cast<double>(eighths) / static_cast<double>(bar.cells * 8) : 0;
    return bar;
}

/// The first "NN%" in a line, as a fraction, or -1.
double percent_in(const std::string& plain) {
    std::smatch found;
    if (!std::regex_search(plain, found, std::regex(R"((\d+)%)"))) return -1;
    return std::stod(found[1]) / 100;
}

const char* bars_config =
    "[models.checkpoints]\nbase = \"https://models.example/base.safetensors\"\n"
    "[models.lora]\ndetail = \"https://models.example/detail.safetensors\"\n";

}  // namespace

TEST_CASE("cli output: an 80-column UTF-8 terminal shows block-character bars per file and for the total") {
    auto server = throttled_model_server(3u << 19, 1u << 20);  // 1.5 MiB at 1 MiB/s per file: about 1.5 s
    TempDir dir;
    auto config = dir.write("bars.toml", bars_config);
    auto result = provision_test::run_in_pty(base_args(*server, config, dir / "ws"),
                                             {{"LANG", "C.UTF-8"}, {"TERM", "xterm"}}, 80);
    INFO(result.screen);
    REQUIRE_FALSE(result.timed_out);
    CHECK(result.exit_code == 0);
    auto live = live_lines(result.screen);
    REQUIRE(!live.empty());
    CHECK(live.back().frame >= 5);  // redrawn many times while the bytes trickled in
    CHECK(widest_live_piece(live) <= 80);
    // In every frame the bars take the room there is: the file line with the
    // longest figures ends within a few columns of the edge (the few kept
    // to spare the bars twitching when a figure gains or loses a digit).
    std::map<std::size_t, std::size_t> widest_bar_line;  // frame -> columns
    for (const auto& line : live)
        for (const auto& piece : drawn_pieces(line.raw))
            if (piece.compare(0, 7, "models.") == 0 && read_unicode_bar(piece).found)
                widest_bar_line[line.frame] = std::max(widest_bar_line[line.frame], columns_of(piece));
    CHECK(widest_bar_line.size() >= 5);
    for (const auto& [frame, columns] : widest_bar_line) {
        CAPTURE(frame);
        CHECK(columns >= 76);
    }
    CHECK(result.screen.find("[#") == std::string::npos);  // no ASCII bar in a UTF-8 locale

    auto base_rows = rows_labelled(live, "models.checkpoints.base");
    REQUIRE(base_rows.size() >= 3);
    std::vector<double> fills;
    for (const auto& row : base_rows) {
        CAPTURE(row);
        ReadBar bar = read_unicode_bar(row);
        REQUIRE(bar.found);
        CHECK(bar.cells >= 6);
        // The bar and the percent beside it tell the same story (a bar
        // rounds down to an eighth of a cell, the percent to 1 %).
        double percent = percent_in(row);
        CHECK(percent >= 0);
        CHECK(std::abs(bar.fraction - percent) <= 1.0 / bar.cells + 0.011);
        fills.push_back(bar.fraction);
    }
    CHECK(fills.front() < fills.back());
    CHECK(std::set<double>(fills.begin(), fills.end()).size() >= 3);  // it moved, more than once
    CHECK(shows(base_rows.back(), " / 1.5 MiB"));                     // the figures of the plain lines are all there
    bool speed_and_eta = false;
    for (const auto& row : base_rows) speed_and_eta = speed_and_eta || shows(row, "iB/s, ETA ");
    CHECK(speed_and_eta);

    auto total_rows = rows_labelled(live, "total:");
    REQUIRE(!total_rows.empty());
    bool total_bar = false;
    for (const auto& row : total_rows) total_bar = total_bar || read_unicode_bar(row).found;
    CHECK(total_bar);
    CHECK(shows(total_rows.back(), "active"));
    CHECK(shows(result.screen, "\x1b[36m\u2588"));  // colour on a terminal: the filled part is painted
}

TEST_CASE("cli output: a 40-column terminal without UTF-8 gets ASCII bars and no line wider than it") {
    auto server = throttled_model_server(3u << 19, 1u << 20);
    TempDir dir;
    auto config = dir.write("narrow.toml",
                            "[models.checkpoints]\n"
                            "\"a-checkpoint-with-a-name-too-long-for-forty-columns\" = "
                            "\"https://models.example/base.safetensors\"\n"
                            "[models.lora]\ndetail = \"https://models.example/detail.safetensors\"\n");
    auto result =
        provision_test::run_in_pty(base_args(*server, config, dir / "ws"), {{"LANG", "C"}, {"TERM", "xterm"}}, 40);
    INFO(result.screen);
    REQUIRE_FALSE(result.timed_out);
    CHECK(result.exit_code == 0);
    auto live = live_lines(result.screen);
    REQUIRE(live.size() >= 6);
    for (const auto& line : live)
        for (const auto& piece : drawn_pieces(line.raw)) {
            CAPTURE(piece);
            CHECK(columns_of(piece) <= 40);  // a wider one would wrap and break the redraw
        }
    std::regex ascii_bar(R"(\[#*\.*\])");
    // The long name loses its middle and keeps its end, and keeps its bar,
    // percent and ETA: the bytes and the speed are what 40 columns cannot hold.
    std::regex shortened(R"(^mod[a-z.]*\.\.\.[a-z-]*umns  \[#*\.*\] \d+%, ETA )");
    std::size_t bars = 0;
    std::size_t shortened_rows = 0;
    std::size_t filling = 0;
    for (const auto& line : live)
        for (const auto& piece : drawn_pieces(line.raw)) {
            if (std::regex_search(piece, ascii_bar)) ++bars;
            if (std::regex_search(piece, shortened)) ++shortened_rows;
            if (shows(piece, "[##")) ++filling;  // bars that fill up, not only empty frames
        }
    CHECK(bars >= 3);
    CHECK(shortened_rows >= 1);
    CHECK(filling >= 1);
    std::string plain = strip_escapes(result.screen);
    auto non_ascii =
        std::count_if(plain.begin(), plain.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    CHECK(non_ascii == 0);  // no block characters, no ellipsis: only ASCII without a UTF-8 locale
}

TEST_CASE("cli output: NO_COLOR on a terminal leaves no colour codes, only the cursor moves of the redraw") {
    auto server = throttled_model_server(1u << 20, 1u << 20);
    TempDir dir;
    auto config = dir.write("plain.toml", bars_config);
    auto result = provision_test::run_in_pty(base_args(*server, config, dir / "ws"),
                                             {{"LANG", "C.UTF-8"}, {"TERM", "xterm"}, {"NO_COLOR", "1"}}, 80);
    INFO(result.screen);
    REQUIRE_FALSE(result.timed_out);
    CHECK(result.exit_code == 0);
    CHECK_FALSE(std::regex_search(result.screen, std::regex("\x1b\\[[0-9;]*m")));
    CHECK(shows(result.screen, "\x1b[1A\x1b[2K"));  // still redrawn in place
    CHECK(shows(result.screen, "\u2588"));          // and still with bars
}

TEST_CASE("cli output: the bars follow a terminal that is resized while they are drawn") {
    auto server = throttled_model_server(3u << 20, 1u << 20);  // 3 s per file
    TempDir dir;
    auto config = dir.write("resize.toml", bars_config);
    provision_test::PtyProcess child(base_args(*server, config, dir / "ws"), {{"LANG", "C.UTF-8"}, {"TERM", "xterm"}},
                                     120);
    // Wide first: wait for a few frames with a bar on them.
    bool wide_frames = child.read_until(
        [](const std::string& screen) {
            auto live = live_lines(screen);
            return !live.empty() && live.back().frame >= 3 && widest_live_piece(live) > 80;
        },
        std::chrono::seconds(30));
    CHECK(wide_frames);
    child.resize(40);
    // A frame measured before the resize may still be on its way; anything
    // drawn half a second later was measured after it.
    child.read_until([](const std::string&) { return false; }, std::chrono::milliseconds(500));
    std::size_t after_resize = child.screen().size();
    auto result = child.wait(std::chrono::seconds(60));
    INFO(result.screen);
    REQUIRE_FALSE(result.timed_out);
    CHECK(result.exit_code == 0);
    std::vector<LiveLine> narrow;
    for (const auto& line : live_lines(result.screen))
        if (line.end > after_resize) narrow.push_back(line);
    REQUIRE(narrow.size() >= 4);
    CHECK(widest_live_piece(narrow) <= 40);
    bool narrow_bar = false;
    for (const auto& line : narrow)
        for (const auto& piece : drawn_pieces(line.raw)) narrow_bar = narrow_bar || read_unicode_bar(piece).found;
    CHECK(narrow_bar);
}

TEST_CASE("cli output: a file of unknown size gets no bar, only what it has so far and its speed") {
    // Chunked, without Content-Length, and no Range support: nothing tells the size before the end.
    auto body = std::make_shared<const std::string>(provision_test::test_bytes(1u << 20, 62));
    auto server = LoopbackServer::https({"models.example"});
    server->server().Get("/stream.safetensors", [body](const httplib::Request&, httplib::Response& res) {
        res.set_chunked_content_provider(
            "application/octet-stream", [body](std::size_t offset, httplib::DataSink& sink) {
                if (offset >= body->size()) {
                    sink.done();
                    return true;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                return sink.write(body->data() + offset, std::min<std::size_t>(body->size() - offset, 64u << 10));
            });
    });
    TempDir dir;
    auto config = dir.write("stream.toml", "[models.lora]\nstream = \"https://models.example/stream.safetensors\"\n");
    auto result = provision_test::run_in_pty(base_args(*server, config, dir / "ws"),
                                             {{"LANG", "C.UTF-8"}, {"TERM", "xterm"}}, 80);
    INFO(result.screen);
    REQUIRE_FALSE(result.timed_out);
    CHECK(result.exit_code == 0);
    auto live = live_lines(result.screen);
    auto rows = rows_labelled(live, "models.lora.stream");
    REQUIRE(rows.size() >= 3);
    std::regex indeterminate(R"(^models\.lora\.stream  \d+(\.\d)? (B|KiB|MiB)(, \d+(\.\d)? (B|KiB|MiB)/s)?$)");
    for (const auto& row : rows) {
        CAPTURE(row);
        CHECK(std::regex_search(row, indeterminate));  // the plain lines' words: no percent, no ETA, no bar
    }
    CHECK(shows(rows.back(), "/s"));
    for (const auto& row : rows_labelled(live, "total:")) {
        CAPTURE(row);
        CHECK_FALSE(read_unicode_bar(row).found);  // a total that is not known has no bar either
    }
}

TEST_CASE("cli output: a live line fits every width, names lose their middle first and the bar goes last") {
    using console::Figure;
    using console::ProgressRow;
    auto file_row = [](std::string label, std::optional<double> fraction) {
        ProgressRow row{std::move(label), fraction, {}, "36"};
        if (fraction) {
            row.figures = {{"45%", "", 4}, {"3.6 MiB / 8.0 MiB", " ", 1}, {"2.1 MiB/s", ", ", 2}, {"ETA 3s", ", ", 3}};
        } else {
            row.figures = {{"3.6 MiB", "", 4}, {"2.1 MiB/s", ", ", 2}};
        }
        return row;
    };
    std::vector<ProgressRow> rows = {file_row("models.checkpoints.base", 0.45),
                                     file_row("models.lora.a-very-long-name-for-a-small-lora-file-v2", 0.9),
                                     file_row("models.vae.x", std::nullopt), file_row("models.lora.\u00e9t\u00e9", 1)};
    for (bool unicode : {true, false}) {
        for (std::size_t width = 0; width <= 160; ++width) {
            CAPTURE(unicode);
            CAPTURE(width);
            auto shape = console::shape_rows(rows, width);
            for (const auto& row : rows) {
                std::string line = console::lay_out_row(row, shape, width, unicode);
                CAPTURE(line);
                CHECK(columns_of(strip_escapes(line)) <= width);
                bool has_bar = shows(line, unicode ? "\u2502" : "[");
                // The percent outlives the bar: wherever a bar is drawn, its figure is too.
                if (has_bar) CHECK(shows(line, "%"));
                // Wide enough for everything: nothing shortened or dropped.
                if (width >= 120) {
                    CHECK(shows(line, row.label));
                    CHECK(shows(strip_escapes(line), console::join_figures(row.figures)));
                    CHECK(has_bar == row.fraction.has_value());
                }
                // 40 columns: a file with a size keeps a bar, its percent and its ETA.
                if (width == 39 && row.fraction) {
                    CHECK(has_bar);
                    CHECK(shows(line, "ETA 3s"));
                }
            }
        }
    }
    CHECK(console::shorten_middle("models.checkpoints.base", 12, true) == "mod\u2026nts.base");
    CHECK(console::shorten_middle("models.checkpoints.base", 12, false) == "mod...s.base");
    CHECK(console::draw_bar(0.5, 10, false, nullptr) == "[####....]");
    CHECK(console::draw_bar(1.0 / 16, 10, true, nullptr) == "\u2502\u258C       \u2502");  // half a cell of eight
    CHECK(console::draw_bar(2, 6, false, "32") == "[\x1b[32m####\x1b[0m]");
    // Small widenings wait, so a digit more or less does not shift every bar; narrowings never do.
    CHECK(console::steady_shape({20, 10}, {20, 12}).bar_width == 10);
    CHECK(console::steady_shape({20, 10}, {21, 11}).label_width == 20);
    CHECK(console::steady_shape({20, 10}, {20, 14}).bar_width == 14);
    CHECK(console::steady_shape({20, 10}, {20, 9}).bar_width == 9);
    CHECK(console::steady_shape({20, 10}, {19, 12}).label_width == 19);
    CHECK(console::locale_is_utf8(nullptr, nullptr, "C.UTF-8"));
    CHECK(console::locale_is_utf8(nullptr, "en_US.utf8", "C"));
    CHECK_FALSE(console::locale_is_utf8("C", nullptr, "C.UTF-8"));  // LC_ALL decides
    CHECK_FALSE(console::locale_is_utf8("", "", "POSIX"));
}

TEST_CASE("cli output: --json is one JSON object per line, ending with the report; --report writes it to a file") {
    auto server = slow_model_server(provision_test::test_bytes(1 << 20, 8));
    TempDir dir;
    auto config = dir.write("c.toml", config_text);
    auto args = base_args(*server, config, dir / "ws");
    args.push_back("--json");
    args.push_back("--report");
    args.push_back((dir / "report.json").string());
    auto result = run_process(args);
    CHECK(result.exit_code == 4);
    std::vector<nlohmann::json> lines;
    std::size_t start = 0;
    while (start < result.out.size()) {
        std::size_t end = result.out.find('\n', start);
        lines.push_back(nlohmann::json::parse(result.out.substr(start, end - start)));  // throws if not JSON
        start = end + 1;
    }
    REQUIRE(lines.size() >= 5);
    std::set<std::string> kinds;
    for (const auto& line : lines) kinds.insert(line.at("event").get<std::string>());
    CHECK(kinds.count("start"));
    CHECK(kinds.count("done"));
    CHECK(kinds.count("error"));
    const auto& report = lines.back();
    CHECK(report.at("event") == "report");
    CHECK(report.at("ok") == false);
    CHECK(report.at("exit_code") == 4);
    REQUIRE(report.at("entries").size() == 3);
    const auto& slow = report.at("entries")[0];
    CHECK(slow.at("entry") == "models.checkpoints.slow");
    CHECK(slow.at("status") == "installed");
    CHECK(slow.at("size") == 1 << 20);
    CHECK(slow.at("sha256").get<std::string>().size() == 64);
    CHECK(slow.at("source") == "url");
    const auto& missing = report.at("entries")[2];
    CHECK(missing.at("status") == "failed");
    CHECK(missing.at("error").at("kind") == "not_found");
    CHECK(missing.at("error").at("exit_code") == 4);
    // The totals, under the names the README gives: 3 entries, 1 failed, the installed bytes.
    const auto& totals = report.at("totals");
    CHECK(totals.at("entries") == 3);
    CHECK(totals.at("failed") == 1);
    CHECK(totals.at("bytes") == report.at("entries")[0].at("size").get<std::uint64_t>() +
                                    report.at("entries")[1].at("size").get<std::uint64_t>());
    auto from_file = nlohmann::json::parse(provision_test::read_whole_file(dir / "report.json"));
    CHECK(from_file.at("entries") == report.at("entries"));
    CHECK(from_file.at("totals") == totals);
    CHECK(result.err.empty());  // nothing else on the terminal in JSON mode
}

// ---------------------------------------------------------------------------
// --dry-run's table and redaction of every secret form in every output

namespace {

using provision_test::CivitaiEmulator;
using provision_test::HubEmulator;

const std::string dry_hf_token = "hf_dryRunSecretToken0123456789";
const std::string dry_query_secret = "queryTokenSecret4242";
const std::string dry_header_secret = "headerSecretValue4242";
const std::string dry_userinfo_secret = "userInfoSecret4242";

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The line of `text` that contains `part` (empty when none does).
std::string line_with(const std::string& text, const std::string& part) {
    std::size_t at = text.find(part);
    if (at == std::string::npos) return {};
    std::size_t start = text.rfind('\n', at);
    start = start == std::string::npos ? 0 : start + 1;
    return text.substr(start, text.find('\n', at) - start);
}

/// A Hub, a CivitAI and a plain file server on loopback, as the CLI reaches them with --connect-to.
struct Services {
    HubEmulator hub;
    CivitaiEmulator civitai;
    std::unique_ptr<LoopbackServer> files = LoopbackServer::https({"models.example"});
    std::string plain = provision_test::test_bytes(30000, 41);
    std::string placed = provision_test::test_bytes(20000, 42);

    Services() {
        hub.add_repo("org/open");
        hub.commit("org/open", {{"open.safetensors", provision_test::HubFile{provision_test::test_bytes(60000, 43)}}});
        hub.add_repo("org/gated", "model", provision_test::HubAccess::gated);
        hub.commit("org/gated",
                   {{"gated.safetensors", provision_test::HubFile{provision_test::test_bytes(50000, 44)}}});
        provision_test::CivitaiVersionSpec version;
        version.id = 58390;
        version.model_id = 58;
        version.files = {provision_test::CivitaiFileSpec{1001, "add_detail.safetensors", "Model", true,
                                                         provision_test::test_bytes(40000, 45), std::nullopt,
                                                         std::nullopt}};
        civitai.add(version);
        provision_test::CivitaiVersionSpec huge;  // announces about a petabyte: no disk has that free
        huge.id = 77;
        huge.model_id = 7;
        huge.files = {provision_test::CivitaiFileSpec{7001, "huge.safetensors", "Model", true,
                                                      provision_test::test_bytes(1000, 46), (1e15 + 1) / 1024,
                                                      std::nullopt}};
        civitai.add(huge);
        for (const char* path : {"/plain.safetensors", "/placed.safetensors", "/private.safetensors"}) {
            std::string route = path;
            files->server().Get(path, [this, route](const httplib::Request& req, httplib::Response& res) {
                files->serve_bytes(res, req, route == "/placed.safetensors" ? placed : plain);
            });
        }
    }

    std::vector<std::string> args(const std::filesystem::path& config, const std::filesystem::path& workspace) const {
        std::vector<std::string> out = {cli,           config.string(),
                                        "--workspace", workspace.string(),
                                        "--cacert",    provision_test::test_ca().ca_cert_path};
        auto rules = hub.connect_to();
        for (const auto& rule : civitai.connect_to()) rules.push_back(rule);
        for (const auto& rule : rules) {
            out.push_back("--connect-to");
            out.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
        }
        out.push_back("--connect-to");
        out.push_back("models.example::127.0.0.1:" + std::to_string(files->port()));
        return out;
    }

    std::uint64_t model_bytes_served() {
        return hub.cdn().bytes_sent() + civitai.storage().bytes_sent() + files->bytes_sent();
    }
};

}  // namespace

TEST_CASE(
    "cli output: --dry-run prints a table of every entry from metadata alone, and exits with the real run's code") {
    Services services;
    TempDir dir;
    std::string placed_sha = provision::detail::sha256_hex(services.placed);
    auto config = dir.write("dry.toml",
                            "[models.checkpoints.open]\nrepo = \"org/open\"\nfile = \"open.safetensors\"\n\n"
                            "[models.vae.gated]\nrepo = \"org/gated\"\nfile = \"gated.safetensors\"\ngated = true\n\n"
                            "[models.lora.tweak]\nversion_id = \"58390\"\n\n"
                            "[models.embeddings.plain]\nurl = \"https://models.example/plain.safetensors\"\n\n"
                            "[models.esrgan.placed]\nurl = \"https://models.example/placed.safetensors\"\nfilename = "
                            "\"placed.safetensors\"\nsha256 = \"" +
                                placed_sha + "\"\n");
    dir.write("ws/sdnext/models/ESRGAN/placed.safetensors",
              services.placed);  // already in place, provable by its digest
    auto args = services.args(config, dir / "ws");
    args.push_back("--dry-run");
    auto result = run_process(args, {{"CIVITAI_TOKEN", CivitaiEmulator::token}});
    INFO(result.out << result.err);
    CHECK(result.exit_code == 3);  // the gated entry has no HF_TOKEN: the real run would fail with 3
    CHECK(has(result.out, "ENTRY"));
    CHECK(has(result.out, "CREDENTIALS"));
    CHECK(has(result.out, "IN PLACE"));
    std::string open = line_with(result.out, "models.checkpoints.open ");
    CHECK(has(open, "huggingface"));
    CHECK(has(open, "sdnext/models/Stable-diffusion/open.safetensors"));
    CHECK(has(open, "58.6 KiB"));
    CHECK(has(open, "HF_TOKEN: not needed"));
    CHECK(has(open, " yes "));  // the Hub's SHA-256
    std::string gated = line_with(result.out, "models.vae.gated ");
    CHECK(has(gated, "HF_TOKEN: needed, MISSING"));
    CHECK(has(gated, "FAILS"));
    std::string tweak = line_with(result.out, "models.lora.tweak ");
    CHECK(has(tweak, "civitai"));
    CHECK(has(tweak, "sdnext/models/Lora/add_detail.safetensors"));
    CHECK(has(tweak, "CIVITAI_TOKEN: set"));
    std::string plain = line_with(result.out, "models.embeddings.plain ");
    CHECK(has(plain, "29.3 KiB"));  // asked for its first byte: the answer gives the size
    // ... and the server named no file, so it is saved under the URL's name.
    CHECK(has(plain, "/plain.safetensors"));
    CHECK_FALSE(has(plain, "chosen by the server"));
    CHECK(has(plain, " no "));
    std::string placed = line_with(result.out, "models.esrgan.placed ");
    CHECK(placed.size() >= 3);
    CHECK(placed.compare(placed.size() - 3, 3, "yes") == 0);
    CHECK(has(result.out, "Would fail:"));
    CHECK(has(line_with(result.out, "models.vae.gated: "), "gated = true"));
    CHECK(has(result.out, "5 entries: 3 to fetch, 1 already in place, 1 would fail"));
    CHECK(has(result.out, "Still to fetch: 127.0 KiB"));
    CHECK(has(result.out, "Free space:"));
    CHECK(has(result.out, "needed for 3 files"));
    CHECK(has(result.out, "exit code 3"));
    // Metadata only: nothing was written under the models folders, and no
    // model byte left any server but the first byte of each plain URL (two).
    CHECK(services.model_bytes_served() <= 2);
    CHECK(services.hub.hub().count("/org/open/resolve/") >= 1);  // it did ask the Hub (metadata)
    CHECK_FALSE(std::filesystem::exists(dir / "ws/sdnext/models/Stable-diffusion"));
    CHECK_FALSE(std::filesystem::exists(dir / "ws/provision.lock"));

    // The same facts for a script: --json's report object.
    args.push_back("--json");
    auto as_json = run_process(args, {{"CIVITAI_TOKEN", CivitaiEmulator::token}});
    CHECK(as_json.exit_code == 3);
    std::string last_line = as_json.out.substr(as_json.out.rfind('\n', as_json.out.size() - 2) + 1);
    auto report = nlohmann::json::parse(last_line);
    CHECK(report.at("event") == "report");
    CHECK(report.at("dry_run") == true);
    REQUIRE(report.at("entries").size() == 5);
    const auto& open_json = report.at("entries")[0];
    CHECK(open_json.at("expected_size") == 60000);
    CHECK(open_json.at("digest_known") == true);
    CHECK(open_json.at("credential") == nlohmann::json{{"name", "HF_TOKEN"}, {"needed", false}, {"present", false}});
    const auto& gated_json = report.at("entries")[1];
    CHECK(gated_json.at("status") == "failed");
    CHECK(gated_json.at("credential").at("needed") == true);
    CHECK(gated_json.at("error").at("kind") == "auth");
    CHECK(report.at("entries")[3].at("expected_size") == 30000);  // from the plain URL's first-byte answer
    CHECK(report.at("entries")[4].at("status") == "present");
    CHECK(services.model_bytes_served() <= 4);  // the first byte of each plain URL, in each of the two runs

    // A disk that cannot hold what would be fetched: a warning, and the real run's exit code 7.
    auto huge = dir.write("huge.toml", "[models.checkpoints.huge]\nversion_id = \"77\"\n");
    auto huge_args = services.args(huge, dir / "ws");
    huge_args.push_back("--dry-run");
    auto short_run = run_process(huge_args, {{"CIVITAI_TOKEN", CivitaiEmulator::token}});
    INFO(short_run.out << short_run.err);
    CHECK(short_run.exit_code == 7);
    CHECK(has(short_run.out, "WARNING: "));
    CHECK(has(short_run.out, " short; free some space"));
    CHECK(services.model_bytes_served() <= 4);  // unchanged: a CivitAI entry needs no probe
}

TEST_CASE("cli output: no secret reaches the terminal, --json, the report, the log file or the lockfile") {
    Services services;
    services.hub.add_token(dry_hf_token, provision_test::HubToken("alice"));
    services.hub.grant("org/gated", "alice");
    // A server that quotes the credentials it was sent in its error page, as some do.
    services.files->server().Get("/echo.safetensors", [](const httplib::Request& req, httplib::Response& res) {
        res.status = 403;
        res.set_content("{\"error\": \"key " + req.get_header_value("Authorization") + " refused\"}",
                        "application/json");
    });
    TempDir dir;
    std::string entries =
        "[models.checkpoints.open]\nrepo = \"org/open\"\nfile = \"open.safetensors\"\n\n"
        "[models.vae.gated]\nrepo = \"org/gated\"\nfile = \"gated.safetensors\"\ngated = true\n\n"
        "[models.lora.tweak]\nversion_id = \"58390\"\n\n"
        "[models.embeddings.query]\nurl = \"https://models.example/plain.safetensors?token=" +
        dry_query_secret +
        "\"\n\n"
        "[models.embeddings.header]\nurl = \"https://models.example/placed.safetensors\"\nauth_header = \"Bearer " +
        dry_header_secret +
        "\"\n\n"
        "[models.esrgan.userinfo]\nurl = \"https://someone:" +
        dry_userinfo_secret + "@models.example/private.safetensors\"\n";
    std::map<std::string, std::string> env = {{"HF_TOKEN", dry_hf_token}, {"CIVITAI_TOKEN", CivitaiEmulator::token}};
    std::vector<std::string> secrets = {dry_hf_token, CivitaiEmulator::token, dry_query_secret, dry_header_secret,
                                        dry_userinfo_secret};
    auto check_clean = [&](const std::string& what, const std::string& text) {
        for (const auto& secret : secrets) {
            INFO(what << " must not contain " << secret);
            CHECK_FALSE(has(text, secret));
        }
    };

    // A successful run: terminal, log and lockfile.
    auto good = dir.write("good.toml", entries);
    auto ok = run_process(services.args(good, dir / "ws"), env);
    INFO(ok.out << ok.err);
    REQUIRE(ok.exit_code == 0);
    check_clean("terminal", ok.out + ok.err);
    std::string lock = provision_test::read_whole_file(dir / "ws/provision.lock");
    CHECK(has(lock, "token=***"));
    check_clean("lockfile", lock);

    // Failing runs, in JSON and as text: every error message redacted too.
    auto bad = dir.write(
        "bad.toml", "[models.lora.echo]\nurl = \"https://models.example/echo.safetensors\"\nauth_header = \"Bearer " +
                        dry_header_secret +
                        "\"\n\n"
                        "[models.lora.gone]\nurl = \"https://someone:" +
                        dry_userinfo_secret + "@models.example/gone.safetensors?token=" + dry_query_secret + "\"\n");
    auto json_args = services.args(bad, dir / "ws");
    json_args.push_back("--json");
    json_args.push_back("--report");
    json_args.push_back((dir / "report.json").string());
    auto json = run_process(json_args, env);
    CHECK(json.exit_code != 0);
    CHECK(has(json.out, "\"event\":\"report\""));
    check_clean("--json", json.out + json.err);
    check_clean("--report", provision_test::read_whole_file(dir / "report.json"));
    auto text = run_process(services.args(bad, dir / "ws"), env);
    CHECK(has(text.err + text.out, "models.lora.gone"));
    check_clean("terminal", text.out + text.err);
    check_clean("log file", provision_test::read_whole_file(dir / "ws/logs/provision.log"));
}

TEST_CASE("cli output: --help lists the lock options, the log file and what exit codes mean under --locked") {
    auto help = run_process({cli, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("--locked") != std::string::npos);
    CHECK(help.out.find("--lock-out") != std::string::npos);
    CHECK(help.out.find("logs/provision.log (appended per run, rotated at 8 MiB") != std::string::npos);
    CHECK(help.out.find("with --locked: upstream moved") != std::string::npos);
    CHECK(help.out.find("free space per filesystem") != std::string::npos);
}

TEST_CASE("cli output: the log file gets a header per run and is rotated past its size, keeping three old logs") {
    auto server = slow_model_server(provision_test::test_bytes(1000, 9));
    TempDir dir;
    auto config = dir.write("c.toml", "[models.lora]\nfast = \"https://models.example/fast.safetensors\"\n");
    auto log = dir / "ws/logs/provision.log";
    dir.write("ws/logs/provision.log", std::string(9u << 20, 'o'));  // past the 8 MiB cap
    dir.write("ws/logs/provision.log.1", "one");
    dir.write("ws/logs/provision.log.2", "two");
    dir.write("ws/logs/provision.log.3", "three");
    auto result = run_process(base_args(*server, config, dir / "ws"));
    REQUIRE(result.exit_code == 0);
    CHECK(std::filesystem::file_size(dir / "ws/logs/provision.log.1") == (9u << 20));
    CHECK(provision_test::read_whole_file(dir / "ws/logs/provision.log.2") == "one");
    CHECK(provision_test::read_whole_file(dir / "ws/logs/provision.log.3") == "two");
    CHECK_FALSE(std::filesystem::exists(dir / "ws/logs/provision.log.4"));
    std::string fresh = provision_test::read_whole_file(log);
    CHECK(fresh.find("---- provision ") != std::string::npos);
    CHECK(fresh.find("run: " + config.string()) != std::string::npos);
    CHECK(fresh.size() < 4096);
    // Appended, not replaced, by the next run; each line starts with a UTC timestamp.
    REQUIRE(run_process(base_args(*server, config, dir / "ws")).exit_code == 0);
    std::string both = provision_test::read_whole_file(log);
    CHECK(both.substr(0, fresh.size()) == fresh);
    std::size_t headers = 0;
    for (std::size_t at = both.find("---- provision "); at != std::string::npos;
         at = both.find("---- provision ", at + 1))
        ++headers;
    CHECK(headers == 2);
    CHECK(both[4] == '-');
    CHECK(both.find("Z ---- provision") == 19);  // "2026-11-27T05:48:58Z ---- provision ..."

    // Within one run the cap holds too (a long retry storm): the logger rotates as it writes.
    provision::detail::LogFile small(dir / "small/provision.log", provision::detail::LogRotation{1000, 2});
    for (int i = 0; i < 100; ++i) small.write("line " + std::to_string(i) + std::string(80, '.'));
    CHECK(std::filesystem::file_size(dir / "small/provision.log") <= 1000);
    CHECK(std::filesystem::exists(dir / "small/provision.log.2"));
    CHECK_FALSE(std::filesystem::exists(dir / "small/provision.log.3"));
    CHECK(provision_test::read_whole_file(dir / "small/provision.log").find("line 99") != std::string::npos);
}

TEST_CASE(
    "cli output: a library caller's Report carries redacted error messages, even when a server quotes the secret") {
    // A CivitAI stand-in that quotes the API key back in its 403 body; the
    // resolver puts the server's words into the message, so only the redactor
    // stands between the key and everything that shows that message.
    auto civitai = LoopbackServer::https({"civitai.com"});
    civitai->server().Get(R"(/api/v1/model-versions/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
        std::string key = req.get_header_value("Authorization");
        key = key.substr(key.find(' ') + 1);
        res.status = 403;
        res.set_content("{\"error\":\"Forbidden\",\"message\":\"API key " + key + " is blocked\"}", "application/json");
    });
    TempDir workspace;
    provision::ProvisionOptions options;
    options.workspace = workspace.path();
    options.http.ca_files = {provision_test::test_ca().ca_cert_path};
    options.http.connect_to = {
        provision::ConnectTo{"civitai.com", std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(civitai->port())}};
    options.credentials.civitai_token = "civitaiQuotedSecret5150";
    options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    std::vector<std::string> event_messages;
    std::mutex events_mutex;
    options.on_event = [&](const provision::Event& event) {
        std::lock_guard<std::mutex> lock(events_mutex);
        event_messages.push_back(event.message);
    };
    provision::ProvisioningSystem system{options};
    auto report = system.provision_from_text("[models.lora.tweak]\nversion_id = \"58390\"\n", "quoted.toml");
    REQUIRE(report.entries.size() == 1);
    const auto& failure = report.entries[0];
    CHECK(failure.status == provision::EntryOutcome::Status::failed);
    CHECK(failure.error.code == provision::errc::auth);
    INFO(failure.error.message);
    CHECK(has(failure.error.message, "API key *** is blocked"));  // the server's words, without the key
    CHECK_FALSE(has(failure.error.message, "civitaiQuotedSecret5150"));
    CHECK(failure.credential == "CIVITAI_TOKEN");
    CHECK(failure.credential_needed);
    CHECK(failure.credential_present);
    for (const auto& message : event_messages) CHECK_FALSE(has(message, "civitaiQuotedSecret5150"));
    CHECK_FALSE(
        has(provision_test::read_whole_file(workspace.path() / "logs/provision.log"), "civitaiQuotedSecret5150"));
}

}  // namespace suite_cli_output
