// SPDX-License-Identifier: MIT
// provision: the last line of defence for secrets in anything we print or write.
//
// Sources already avoid putting tokens into messages; this pass catches what
// slips through: known secret values (tokens, Authorization values), and every
// URL found anywhere in free text, rewritten as Url::redacted() shows it (user
// info dropped, query values hidden unless known to be harmless), so the rule
// for URLs is the same one on every path.
#ifndef PROVISION_REPORT_REDACT_HPP
#define PROVISION_REPORT_REDACT_HPP

#include "../url.hpp"

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace provision {
namespace detail {

class SecretRedactor {
  public:
    /// Registers a secret value; very short values are ignored (they would mangle ordinary text).
    void add(const std::string& secret) {
        if (secret.size() < 6) return;
        secrets_.push_back(secret);
        // "Bearer abc" is registered by its token too
        std::size_t space = secret.find(' ');
        if (space != std::string::npos && secret.size() - space - 1 >= 6) secrets_.push_back(secret.substr(space + 1));
    }

    /// Registers the credentials a URL carries: its user-info (and the password
    /// alone) and the values of its token-like query parameters, so they are
    /// caught even where they show up without their URL (a server quoting them).
    void add_url_credentials(const std::string& url_text) {
        auto url = parse_url(url_text);
        if (!url) return;
        if (!url->userinfo.empty()) {
            add(url->userinfo);
            std::string decoded = percent_decode(url->userinfo);
            std::size_t colon = decoded.find(':');
            if (colon != std::string::npos) add(decoded.substr(colon + 1));
        }
        std::string redacted = url->redacted();
        std::size_t pos = 0;
        while (pos < url->query.size()) {
            std::size_t amp = url->query.find('&', pos);
            if (amp == std::string::npos) amp = url->query.size();
            std::string pair = url->query.substr(pos, amp - pos);
            std::size_t eq = pair.find('=');
            // a parameter Url::redacted() hides is a secret; its value is registered
            if (eq != std::string::npos && redacted.find(pair) == std::string::npos) {
                add(pair.substr(eq + 1));
                add(percent_decode(pair.substr(eq + 1)));
            }
            pos = amp + 1;
        }
    }

    /// The text with every secret replaced by "***".
    std::string apply(std::string text) const {
        for (const auto& secret : secrets_) {
            for (std::size_t pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3))
                text.replace(pos, secret.size(), "***");
        }
        return redact_patterns(std::move(text));
    }

    /// Every URL in `text` as Url::redacted() shows it; then, outside URLs,
    /// token-like "name=value" pairs and user-info, whatever their value.
    static std::string redact_patterns(std::string text) {
        text = redact_urls_in(std::move(text));
        static const char* names[] = {"token=",           "access_token=",     "api_key=",
                                      "apikey=",          "signature=",        "sig=",
                                      "x-amz-signature=", "x-amz-credential=", "x-amz-security-token=",
                                      "authorization="};
        std::string lower = to_lower(text);
        for (const char* name : names) {
            std::string needle = name;
            for (std::size_t pos = lower.find(needle); pos != std::string::npos; pos = lower.find(needle, pos + 1)) {
                bool parameter_start =
                    pos == 0 || lower[pos - 1] == '?' || lower[pos - 1] == '&' || lower[pos - 1] == ' ';
                if (!parameter_start) continue;
                std::size_t value = pos + needle.size();
                std::size_t end = value;
                while (end < text.size() && text[end] != '&' && text[end] != ' ' && text[end] != '"' &&
                       text[end] != '\'' && text[end] != '#' && text[end] != '\n')
                    ++end;
                if (end == value || text.compare(value, end - value, "***") == 0) continue;
                text.replace(value, end - value, "***");
                lower.replace(value, end - value, "***");
            }
        }
        // scheme://user:pass@host -> scheme://***@host
        for (std::size_t pos = text.find("://"); pos != std::string::npos; pos = text.find("://", pos + 3)) {
            std::size_t start = pos + 3;
            std::size_t end = start;
            while (end < text.size() && text[end] != '/' && text[end] != ' ' && text[end] != '@' && text[end] != '"' &&
                   text[end] != '\n')
                ++end;
            if (end < text.size() && text[end] == '@' && end > start && text.compare(start, end - start, "***") != 0)
                text.replace(start, end - start, "***");
        }
        return text;
    }

    /// Each "scheme://..." run of text (up to a blank or a quote) replaced
    /// by its redacted form; a run that does not parse as a URL keeps
    /// nothing after its '?' or its user-info.
    static std::string redact_urls_in(std::string text) {
        auto is_scheme_char = [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
        };
        auto ends_url = [](char c) {
            return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' || c == '<' || c == '>' ||
                   c == '`' || c == '\0';
        };
        std::size_t search = 0;
        while (true) {
            std::size_t mark = text.find("://", search);
            if (mark == std::string::npos) break;
            std::size_t start = mark;
            while (start > 0 && is_scheme_char(text[start - 1])) --start;
            std::size_t end = mark + 3;
            while (end < text.size() && !ends_url(text[end])) ++end;
            // Punctuation of the sentence around the URL stays the sentence's:
            // "(see https://h/x?a=1)." keeps its ")." after the hidden value.
            while (end > mark + 3 && std::string_view(")]}.,;:!?").find(text[end - 1]) != std::string_view::npos) --end;
            if (start == mark) {  // "://" without a scheme: not a URL
                search = mark + 3;
                continue;
            }
            std::string run = text.substr(start, end - start);
            std::string shown;
            if (auto url = parse_url(run)) {
                shown = url->redacted();
            } else {
                shown = run.substr(0, run.find('?'));
                if (shown.size() < run.size()) shown += "?***";
                std::size_t at = shown.find('@', mark - start + 3);
                std::size_t slash = shown.find('/', mark - start + 3);
                if (at != std::string::npos && (slash == std::string::npos || at < slash))
                    shown = shown.substr(0, mark - start + 3) + "***" + shown.substr(at);
            }
            text.replace(start, end - start, shown);
            search = start + shown.size();
        }
        return text;
    }

  private:
    std::vector<std::string> secrets_;
};

}  // namespace detail
}  // namespace provision

#endif
