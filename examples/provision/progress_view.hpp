// SPDX-License-Identifier: MIT
// The provision CLI's live view of a run.
//
// On a terminal: one line per active file (name, bar, percent, bytes, speed,
// ETA) and a total line, redrawn in place at most ten times a second from a
// ticker thread, so a burst of events never causes flicker. Each redraw asks
// the terminal for its width, so a resized window gets lines that fit it from
// the next redraw on, with no signal handler; how a line is fitted is in
// progress_bar.hpp. Elsewhere (container logs, pipes): plain lines at start,
// every 10% or 30 s, and at the end, so a log stays readable.
#ifndef PROVISION_EXAMPLES_PROGRESS_VIEW_HPP
#define PROVISION_EXAMPLES_PROGRESS_VIEW_HPP

#include "format.hpp"
#include "progress_bar.hpp"

#include <provision/provision.hpp>

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace console {

struct ViewOptions {
    bool terminal = false;  ///< redraw in place (stderr is a TTY)
    bool color = false;     ///< terminal and NO_COLOR unset
    bool unicode = false;   ///< a UTF-8 locale: block-character bars; ASCII ones otherwise
    bool quiet = false;     ///< only failures and notices
    bool verbose = false;   ///< also plans and already-present files
    std::FILE* out = stderr;
    std::size_t max_rows = 8;  ///< active files shown before "... and N more"
    std::chrono::milliseconds redraw_interval{100};
    std::chrono::seconds log_interval{30};  ///< plain mode: a progress line at least this often
};

/// Decides terminal/colour from the real stderr and NO_COLOR.
inline ViewOptions detect_view_options(bool quiet, bool verbose) {
    ViewOptions options;
    options.terminal = ::isatty(STDERR_FILENO) == 1;
    const char* no_color = std::getenv("NO_COLOR");
    options.color = options.terminal && (no_color == nullptr || *no_color == '\0');
    options.unicode = environment_is_utf8();
    options.quiet = quiet;
    options.verbose = verbose;
    return options;
}

class ProgressView {
  public:
    explicit ProgressView(ViewOptions options) : options_(options) {
        if (options_.terminal && !options_.quiet) ticker_ = std::thread([this] { tick(); });
    }
    ~ProgressView() { finish(); }
    ProgressView(const ProgressView&) = delete;
    ProgressView& operator=(const ProgressView&) = delete;

    /// Stops redrawing and erases the live lines (before the summary is printed).
    void finish() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (stopping_) return;
            stopping_ = true;
            erase_live_block();
            std::fflush(options_.out);
        }
        wake_.notify_all();
        if (ticker_.joinable()) ticker_.join();
    }

    void on_event(const provision::Event& event) {
        using provision::EventKind;
        std::lock_guard<std::mutex> lock(mutex_);
        auto now = std::chrono::steady_clock::now();
        switch (event.kind) {
        case EventKind::plan:
            planned_bytes_[event.key_path] = event.bytes_total.value_or(0);  // 0: size unknown until it starts
            if (options_.verbose)
                print_line(event.key_path + ": will fetch " +
                           (event.bytes_total ? human_bytes(*event.bytes_total) + " " : "") + "from " + event.message);
            break;
        case EventKind::start: {
            planned_bytes_.erase(event.key_path);  // no longer queued
            Transfer& transfer = active_[event.key_path];
            transfer.order = next_order_++;
            transfer.path = event.path;
            transfer.total = event.bytes_total;
            transfer.done = event.bytes_done;
            transfer.started = transfer.rate_time = transfer.last_line = now;
            transfer.rate_bytes = event.bytes_done;
            if (!options_.terminal && !options_.quiet)
                print_line("start " + event.key_path + " -> " + event.path +
                           (event.bytes_total ? " (" + human_bytes(*event.bytes_total) + ")" : ""));
            dirty_ = true;
            break;
        }
        case EventKind::progress: {
            auto found = active_.find(event.key_path);
            if (found == active_.end()) break;
            Transfer& transfer = found->second;
            transfer.done = event.bytes_done;
            if (event.bytes_total) transfer.total = event.bytes_total;
            update_rate(transfer, now);
            if (!options_.terminal && !options_.quiet) {
                int decile =
                    transfer.total && *transfer.total > 0 ? static_cast<int>(transfer.done * 10 / *transfer.total) : 0;
                if (decile > transfer.last_decile || now - transfer.last_line >= options_.log_interval) {
                    transfer.last_decile = decile;
                    transfer.last_line = now;
                    print_line(event.key_path + ": " + describe(transfer, now));
                }
            }
            dirty_ = true;
            break;
        }
        case EventKind::retry:
            if (!options_.quiet) print_line(paint("retry", yellow) + " " + event.key_path + ": " + event.message);
            break;
        case EventKind::done: {
            planned_bytes_.erase(event.key_path);
            auto found = active_.find(event.key_path);
            double seconds =
                found == active_.end() ? 0 : std::chrono::duration<double>(now - found->second.started).count();
            if (found != active_.end()) active_.erase(found);
            ++finished_;
            finished_bytes_ += event.bytes_done;
            bool present = event.message == "present";
            if (event.message == "planned") break;  // a dry run: its table says it all
            if (!options_.quiet && (!present || options_.verbose)) {
                std::string line = paint(present ? "present" : "done", green) + " " + event.key_path + " -> " +
                                   event.path + " (" + human_bytes(event.bytes_done);
                if (!present && seconds > 0.05) line += ", " + human_rate(event.bytes_done / seconds);
                print_line(line + ")");
            }
            dirty_ = true;
            break;
        }
        case EventKind::failed:
            planned_bytes_.erase(event.key_path);
            active_.erase(event.key_path);
            ++failed_;
            print_line(paint("FAILED", red) + " " + event.message);
            dirty_ = true;
            break;
        case EventKind::message: print_line(event.message); break;
        }
    }

  private:
    struct Transfer {
        std::size_t order = 0;
        std::string path;
        std::uint64_t done = 0;
        std::optional<std::uint64_t> total;
        std::chrono::steady_clock::time_point started, rate_time, last_line;
        std::uint64_t rate_bytes = 0;
        double rate = 0;  ///< bytes per second, smoothed
        int last_decile = 0;
    };
    static constexpr const char* green = "32";
    static constexpr const char* red = "31";
    static constexpr const char* yellow = "33";
    static constexpr const char* cyan = "36";

    /// The colour a bar is painted in, or none when colour is off.
    const char* bar_colour(const char* colour) const { return options_.color ? colour : nullptr; }

    std::string paint(const std::string& text, const char* colour) const {
        return options_.color ? "\x1b[" + std::string(colour) + "m" + text + "\x1b[0m" : text;
    }

    static void update_rate(Transfer& transfer, std::chrono::steady_clock::time_point now) {
        double elapsed = std::chrono::duration<double>(now - transfer.rate_time).count();
        if (elapsed < 0.5) return;
        double instant = static_cast<double>(transfer.done - std::min(transfer.done, transfer.rate_bytes)) / elapsed;
        transfer.rate = transfer.rate == 0 ? instant : 0.7 * transfer.rate + 0.3 * instant;
        transfer.rate_time = now;
        transfer.rate_bytes = transfer.done;
    }

    /// A transfer's figures, in the words of the plain log lines: "45% 3.6 MiB /
    /// 8.0 MiB, 2.1 MiB/s, ETA 3s", or "3.6 MiB, 2.1 MiB/s" when the size is
    /// unknown. On a narrow terminal the bytes go first, then the speed.
    static std::vector<Figure> transfer_figures(const Transfer& transfer, std::chrono::steady_clock::time_point now) {
        std::vector<Figure> figures;
        bool sized = transfer.total && *transfer.total > 0;
        if (sized) {
            figures.push_back({std::to_string(transfer.done * 100 / *transfer.total) + "%", "", 4});
            figures.push_back({human_bytes(transfer.done) + " / " + human_bytes(*transfer.total), " ", 1});
        } else {
            figures.push_back({human_bytes(transfer.done), "", 4});  // all there is to say without a size
        }
        double rate = transfer.rate;
        if (rate == 0) {
            double elapsed = std::chrono::duration<double>(now - transfer.started).count();
            if (elapsed > 0.2) rate = transfer.done / elapsed;
        }
        if (rate > 0) {
            figures.push_back({human_rate(rate), ", ", 2});
            if (transfer.total && *transfer.total > transfer.done)
                figures.push_back({"ETA " + human_duration((*transfer.total - transfer.done) / rate), ", ", 3});
        }
        return figures;
    }

    static std::string describe(const Transfer& transfer, std::chrono::steady_clock::time_point now) {
        return join_figures(transfer_figures(transfer, now));
    }

    /// Prints a permanent line above the live block.
    void print_line(const std::string& line) {
        erase_live_block();
        std::fprintf(options_.out, "%s\n", line.c_str());
        if (options_.terminal) draw_live_block();
        std::fflush(options_.out);
    }

    void erase_live_block() {
        if (!options_.terminal) return;
        std::string erase;
        for (std::size_t i = 0; i < drawn_lines_; ++i) erase += "\x1b[1A\x1b[2K";
        erase += "\r";
        std::fputs(erase.c_str(), options_.out);
        drawn_lines_ = 0;
    }

    static std::size_t terminal_width() {
        winsize size{};
        if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
        return 100;
    }

    void draw_live_block() {
        if (!options_.terminal || options_.quiet || stopping_ || active_.empty()) return;
        auto now = std::chrono::steady_clock::now();
        std::vector<std::pair<std::size_t, const std::string*>> order;
        for (const auto& [key, transfer] : active_) order.emplace_back(transfer.order, &key);
        std::sort(order.begin(), order.end());
        // One column short of the terminal: a line that reaches the last
        // column leaves some terminals waiting to wrap.
        std::size_t width = terminal_width() - 1;
        std::vector<ProgressRow> rows;
        for (std::size_t i = 0; i < order.size() && i < options_.max_rows; ++i)
            rows.push_back(file_row(*order[i].second, active_.at(*order[i].second), now));
        RowShape fresh = shape_rows(rows, width);
        // A resized terminal starts afresh; otherwise small changes wait.
        shape_ = shape_ && width == shape_width_ ? steady_shape(*shape_, fresh) : fresh;
        shape_width_ = width;
        std::string block;
        for (const auto& row : rows) block += lay_out_row(row, *shape_, width, options_.unicode) + "\n";
        if (order.size() > options_.max_rows)
            block +=
                cut_to_width("... and " + std::to_string(order.size() - options_.max_rows) + " more", width) + "\n";
        ProgressRow total = total_row();
        RowShape total_shape = *shape_;
        total_shape.label_width = std::max(total_shape.label_width, display_width(total.label));
        block += lay_out_row(total, total_shape, width, options_.unicode) + "\n";
        std::fputs(block.c_str(), options_.out);
        drawn_lines_ = rows.size() + (order.size() > options_.max_rows ? 1 : 0) + 1;
    }

    ProgressRow file_row(const std::string& key, const Transfer& transfer,
                         std::chrono::steady_clock::time_point now) const {
        ProgressRow row{key, std::nullopt, transfer_figures(transfer, now), bar_colour(cyan)};
        if (transfer.total && *transfer.total > 0)
            row.fraction = static_cast<double>(transfer.done) / static_cast<double>(*transfer.total);
        return row;
    }

    /// The total line: counts first, then bytes, speed and ETA; a narrow
    /// terminal loses the bytes, then the speed, then the queue length.
    ProgressRow total_row() const {
        std::uint64_t bytes_done = finished_bytes_;
        std::uint64_t bytes_total = finished_bytes_;
        bool total_known = true;  // false while any file's size is unknown: no total bar then
        double rate = 0;
        for (const auto& [key, transfer] : active_) {
            bytes_done += transfer.done;
            bytes_total += transfer.total.value_or(transfer.done);
            total_known = total_known && transfer.total.has_value();
            rate += transfer.rate;
        }
        // Resolved but not started yet: part of the total and of the ETA.
        for (const auto& [key, size] : planned_bytes_) {
            bytes_total += size;
            total_known = total_known && size > 0;
        }
        ProgressRow total{"total:", std::nullopt, {}, bar_colour(green)};
        if (total_known && bytes_total > 0)
            total.fraction = static_cast<double>(bytes_done) / static_cast<double>(bytes_total);
        total.figures.push_back({std::to_string(finished_) + " done", "", 6});
        if (failed_) total.figures.push_back({std::to_string(failed_) + " failed", ", ", 7});
        total.figures.push_back({std::to_string(active_.size()) + " active", ", ", 5});
        if (!planned_bytes_.empty())
            total.figures.push_back({std::to_string(planned_bytes_.size()) + " queued", ", ", 3});
        total.figures.push_back({human_bytes(bytes_done) + " / " + human_bytes(bytes_total), ", ", 1});
        if (rate > 0) {
            total.figures.push_back({human_rate(rate), ", ", 2});
            if (bytes_total > bytes_done)
                total.figures.push_back({"ETA " + human_duration((bytes_total - bytes_done) / rate), ", ", 4});
        }
        return total;
    }

    void tick() {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!stopping_) {
            wake_.wait_for(lock, options_.redraw_interval);
            if (stopping_ || !dirty_) continue;
            dirty_ = false;
            erase_live_block();
            draw_live_block();
            std::fflush(options_.out);
        }
    }

    ViewOptions options_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::thread ticker_;
    bool stopping_ = false;
    bool dirty_ = false;
    std::size_t drawn_lines_ = 0;
    std::optional<RowShape> shape_;  ///< the last redraw's columns, kept while the width is the same
    std::size_t shape_width_ = 0;    ///< the width shape_ was made for
    std::size_t next_order_ = 0;
    std::map<std::string, Transfer> active_;
    std::map<std::string, std::uint64_t> planned_bytes_;
    std::size_t finished_ = 0;
    std::size_t failed_ = 0;
    std::uint64_t finished_bytes_ = 0;
};

}  // namespace console

#endif
