// SPDX-License-Identifier: MIT
// The provision CLI's progress bars and the layout of one live-view line.
//
// Pure functions (text in, text out; no terminal, no clock) so the rules for
// a narrow terminal can be read in one place: a live line that is wider than
// the terminal wraps, and a wrapped line breaks the in-place redraw (the view
// moves the cursor up by the number of lines it drew, not by the number the
// terminal shows). So a line that is short of room gives up, in this order:
//   1. bar cells, down to a minimum bar;
//   2. the padding that aligns the bars, then the middle of the name (an
//      ellipsis), down to a readable floor;
//   3. figures, the least telling first (bytes before speed before ETA; the
//      percent, which the bar also shows, stays);
//   4. the bar;
//   5. the name below its floor; and what still does not fit is cut.
// The bar goes only when a single figure beside it would not fit: at 40
// columns a file line keeps its bar, percent and ETA; dropping the bar
// there would buy room for the speed only. No width, however small, gives a
// line that wraps.
#ifndef PROVISION_EXAMPLES_PROGRESS_BAR_HPP
#define PROVISION_EXAMPLES_PROGRESS_BAR_HPP

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace console {

/// Whether the locale the environment names is UTF-8. POSIX order: LC_ALL
/// overrides LC_CTYPE, which overrides LANG; the first one set (non-empty)
/// decides, so LC_ALL=C with LANG=C.UTF-8 is not UTF-8. Takes the values, not
/// the environment, so it can be tested; null means unset.
inline bool locale_is_utf8(const char* lc_all, const char* lc_ctype, const char* lang) {
    for (const char* value : {lc_all, lc_ctype, lang}) {
        if (value == nullptr || *value == '\0') continue;
        std::string lower;
        for (const char* c = value; *c != '\0'; ++c)
            lower += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
        return lower.find("utf-8") != std::string::npos || lower.find("utf8") != std::string::npos;
    }
    return false;
}

/// locale_is_utf8 for this process's environment.
inline bool environment_is_utf8() {
    return locale_is_utf8(std::getenv("LC_ALL"), std::getenv("LC_CTYPE"), std::getenv("LANG"));
}

/// Columns a UTF-8 string takes on a terminal, counted as one per code point:
/// everything the view draws (names, figures, block characters, the ellipsis)
/// is one column wide. Escape sequences must not be in `text`.
inline std::size_t display_width(const std::string& text) {
    std::size_t width = 0;
    for (char c : text)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;  // not a continuation byte
    return width;
}

/// The byte offset where code point number `count` starts (the size when the text is shorter).
inline std::size_t offset_of_code_point(const std::string& text, std::size_t count) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
        if (seen++ == count) return i;
    }
    return text.size();
}

/// The first `width` columns of `text`: the last resort when nothing else fits.
inline std::string cut_to_width(const std::string& text, std::size_t width) {
    return text.substr(0, offset_of_code_point(text, width));
}

/// `text` in at most `width` columns, with its middle replaced by an ellipsis.
/// Keeps more of the end than of the start: an entry's key path ends with the
/// name the user gave it ("models.lora.add_detail"), its start is the section.
inline std::string shorten_middle(const std::string& text, std::size_t width, bool unicode) {
    std::size_t length = display_width(text);
    if (length <= width) return text;
    const std::string ellipsis = unicode ? "\u2026" : "...";
    std::size_t ellipsis_width = display_width(ellipsis);
    if (width <= ellipsis_width) return cut_to_width(text, width);
    std::size_t kept = width - ellipsis_width;
    std::size_t head = kept / 3;
    std::size_t tail = kept - head;
    return text.substr(0, offset_of_code_point(text, head)) + ellipsis +
           text.substr(offset_of_code_point(text, length - tail));
}

/// A bar `width` columns wide, frame included, filled to `fraction` (0..1).
/// Unicode: full blocks plus one eighth block for the remainder, so the bar
/// moves visibly even when a cell holds a large part of a file; ASCII
/// (`[####....]`) for a terminal whose locale may not show them. `colour` (an
/// SGR code such as "36", or null) paints the filled part only; the frame
/// stays in the terminal's own colour.
inline std::string draw_bar(double fraction, std::size_t width, bool unicode, const char* colour) {
    if (width < 3) return std::string(width, ' ');
    std::size_t cells = width - 2;
    if (!(fraction > 0)) fraction = 0;  // also NaN
    if (fraction > 1) fraction = 1;
    std::string filled;
    std::size_t filled_cells = 0;
    if (unicode) {
        static const char* const eighths[] = {"", "\u258F", "\u258E", "\u258D", "\u258C", "\u258B", "\u258A", "\u2589"};
        auto parts = std::min(static_cast<std::size_t>(fraction * static_cast<double>(cells * 8)), cells * 8);
        for (std::size_t i = 0; i < parts / 8; ++i) filled += "\u2588";
        filled += eighths[parts % 8];
        filled_cells = parts / 8 + (parts % 8 != 0 ? 1 : 0);
    } else {
        filled_cells = std::min(static_cast<std::size_t>(fraction * static_cast<double>(cells)), cells);
        filled.assign(filled_cells, '#');
    }
    std::string empty(cells - filled_cells, unicode ? ' ' : '.');
    if (colour != nullptr && !filled.empty()) filled = "\x1b[" + std::string(colour) + "m" + filled + "\x1b[0m";
    const char* left = unicode ? "\u2502" : "[";
    const char* right = unicode ? "\u2502" : "]";
    return left + filled + empty + right;
}

/// One figure of a line ("45%", "3.6 MiB / 8.0 MiB", "ETA 3s"), with the
/// separator that goes before it when another figure precedes it, and how
/// long it is kept when the line is short of room (higher: kept longer).
struct Figure {
    std::string text;
    std::string separator;
    int keep = 0;
};

/// The figures as one text: the first without its separator.
inline std::string join_figures(const std::vector<Figure>& figures) {
    std::string text;
    for (const auto& figure : figures) text += (text.empty() ? "" : figure.separator) + figure.text;
    return text;
}

/// The figures as one text once `dropped` of them are gone: the least kept
/// first, among equals the later one. One always stays.
inline std::string figures_after_dropping(const std::vector<Figure>& figures, std::size_t dropped) {
    std::vector<std::size_t> order(figures.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return figures[a].keep != figures[b].keep ? figures[a].keep < figures[b].keep : a > b;
    });
    std::vector<bool> gone(figures.size(), false);
    for (std::size_t i = 0; i < dropped && i + 1 < order.size(); ++i) gone[order[i]] = true;
    std::vector<Figure> kept;
    for (std::size_t i = 0; i < figures.size(); ++i)
        if (!gone[i]) kept.push_back(figures[i]);
    return join_figures(kept);
}

/// A line of the live view before it is fitted to a width.
struct ProgressRow {
    std::string label;               ///< the entry's key path, or "total:"
    std::optional<double> fraction;  ///< done / total; none when the total is unknown (no bar)
    std::vector<Figure> figures;     ///< in the order they are shown
    const char* colour = nullptr;    ///< the bar's SGR colour code, null for none
};

/// The columns a block of rows shares, so their bars start and end in line.
struct RowShape {
    std::size_t label_width = 0;  ///< the name column, padding included
    std::size_t bar_width = 0;    ///< the bar, frame included
};

constexpr std::size_t label_gap = 2;       ///< spaces between the name column and what follows
constexpr std::size_t label_floor = 12;    ///< a name is not shortened below this before figures go
constexpr std::size_t min_bar_width = 8;   ///< frame plus six cells: still reads as a bar
constexpr std::size_t max_bar_width = 42;  ///< a wider bar tells no more and pushes the figures away

/// The name column and bar width for `rows` (the file lines) in `width`
/// columns, so that the file line with the longest figures fits: the widest
/// name and the bar that leaves room for; if that bar would be under its
/// minimum, a name column just narrow enough for a minimum bar (down to
/// label_floor); if still too wide, the same with each line's least kept
/// figure gone, and so on. Every file line then
/// has the same name column and bar; the total line, whose figures are its
/// own, is fitted to it as well as it can be by lay_out_row.
inline RowShape shape_rows(const std::vector<ProgressRow>& rows, std::size_t width) {
    std::size_t names = 0;
    std::size_t most_figures = 0;
    for (const auto& row : rows) {
        names = std::max(names, display_width(row.label));
        if (row.fraction) most_figures = std::max(most_figures, row.figures.size());
    }
    if (most_figures == 0) return {names, max_bar_width};  // no file line has a bar; the total line may
    std::size_t floor = std::min(names, label_floor);
    for (std::size_t dropped = 0; dropped < most_figures; ++dropped) {
        std::size_t widest_figures = 0;
        for (const auto& row : rows)
            if (row.fraction)
                widest_figures = std::max(widest_figures, display_width(figures_after_dropping(row.figures, dropped)));
        std::size_t others = label_gap + 1 + widest_figures;  // the 1: the space after the bar
        if (floor + others + min_bar_width > width) continue;
        if (names + others + min_bar_width <= width) return {names, std::min(width - names - others, max_bar_width)};
        // The names give up just what a minimum bar needs, no more.
        return {width - others - min_bar_width, min_bar_width};
    }
    return {floor, min_bar_width};  // too narrow for any bar: lay_out_row drops it
}

/// A shape for this redraw that keeps the lines from twitching: when the
/// fresh shape only widens the name column or the bar by a few columns (a
/// speed that lost a digit), the previous one, which still fits, stays; one
/// that must narrow either is taken at once.
inline RowShape steady_shape(RowShape previous, RowShape fresh) {
    bool no_narrower = previous.label_width <= fresh.label_width && previous.bar_width <= fresh.bar_width;
    std::size_t growth = (fresh.label_width - std::min(fresh.label_width, previous.label_width)) +
                         (fresh.bar_width - std::min(fresh.bar_width, previous.bar_width));
    return no_narrower && growth < 4 ? previous : fresh;
}

/// One line of the live view, at most `width` columns (escape sequences for
/// colour aside). Tries the layouts from the richest down (every figure and
/// a bar, then one figure fewer each time, then no bar) and takes the first
/// whose least demand (name at its floor, bar at its minimum) fits. The
/// columns left over go back to the name, then to the padding that lines
/// its bar up with the others, then to the bar, up to `shape`. The padding
/// comes whole or not at all, so a line whose figures change length (the
/// total line, mostly) does not slide back and forth.
inline std::string lay_out_row(const ProgressRow& row, RowShape shape, std::size_t width, bool unicode) {
    std::size_t name_width = display_width(row.label);
    std::size_t label_target = shape.label_width;
    std::size_t label_min = std::min({label_floor, name_width, label_target});
    std::size_t bar_target = row.fraction ? shape.bar_width : 0;
    std::size_t bar_min = std::min(min_bar_width, bar_target);

    auto render = [&](std::size_t label_width, std::size_t bar_width, const std::string& figures) {
        std::string line = shorten_middle(row.label, label_width, unicode);
        if (bar_width == 0 && figures.empty()) return line;
        line += std::string(label_width - std::min(label_width, display_width(line)) + label_gap, ' ');
        if (bar_width > 0)
            line += draw_bar(*row.fraction, bar_width, unicode, row.colour) + (figures.empty() ? "" : " ");
        return line + figures;
    };

    std::size_t last_drop = row.figures.empty() ? 0 : row.figures.size() - 1;  // one figure always stays
    for (int with_bar = bar_target > 0 ? 1 : 0; with_bar >= 0; --with_bar) {
        // Without a bar, only a line that never had one tries its fuller layouts again.
        std::size_t first_drop = with_bar || bar_target == 0 ? 0 : last_drop;
        for (std::size_t dropped = first_drop; dropped <= last_drop; ++dropped) {
            std::string figures = figures_after_dropping(row.figures, dropped);
            std::size_t figures_width = display_width(figures);
            std::size_t bar_min_here = with_bar ? bar_min : 0;
            std::size_t fixed = (with_bar || figures_width > 0 ? label_gap : 0) + figures_width +
                                (with_bar && figures_width > 0 ? 1 : 0);
            if (label_min + bar_min_here + fixed > width) continue;
            std::size_t spare = width - label_min - bar_min_here - fixed;
            std::size_t label_width = label_min + std::min(spare, std::min(name_width, label_target) - label_min);
            spare -= label_width - label_min;
            if (label_target > label_width && spare >= label_target - label_width) {
                spare -= label_target - label_width;
                label_width = label_target;
            }
            std::size_t bar_width = with_bar ? bar_min + std::min(spare, bar_target - bar_min) : 0;
            return render(label_width, bar_width, figures);
        }
    }
    // Narrower than a name at its floor and one figure: shorten the name
    // further, and cut what still does not fit (there is no bar to split).
    std::string figures = figures_after_dropping(row.figures, last_drop);
    std::size_t fixed = label_gap + display_width(figures);
    std::size_t label_width = width > fixed ? std::max<std::size_t>(1, width - fixed) : 1;
    return cut_to_width(render(std::min(label_width, label_min), 0, figures), width);
}

}  // namespace console

#endif
