// SPDX-License-Identifier: MIT
// provision: the last line of defence for secrets in anything we print or write.
//
// Sources already avoid putting tokens into messages; this pass catches what
// slips through: known secret values (tokens, Authorization values), token-like
// query parameters and user-info in URLs found anywhere in free text.
#ifndef PROVISION_DETAIL_REDACT_HPP
#define PROVISION_DETAIL_REDACT_HPP

#include "../url.hpp"

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

    /// Token-like query parameters and URL user-info, whatever their value.
    static std::string redact_patterns(std::string text) {
        static const char* names[] = {"token=", "access_token=", "api_key=", "apikey=", "signature=", "sig=",
                                      "x-amz-signature=", "x-amz-credential=", "x-amz-security-token=", "authorization="};
        std::string lower = to_lower(text);
        for (const char* name : names) {
            std::string needle = name;
            for (std::size_t pos = lower.find(needle); pos != std::string::npos; pos = lower.find(needle, pos + 1)) {
                bool parameter_start = pos == 0 || lower[pos - 1] == '?' || lower[pos - 1] == '&' || lower[pos - 1] == ' ';
                if (!parameter_start) continue;
                std::size_t value = pos + needle.size();
                std::size_t end = value;
                while (end < text.size() && text[end] != '&' && text[end] != ' ' && text[end] != '"' && text[end] != '\'' &&
                       text[end] != '#' && text[end] != '\n')
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

  private:
    std::vector<std::string> secrets_;
};

}  // namespace detail
}  // namespace provision

#endif
