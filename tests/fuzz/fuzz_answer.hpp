// SPDX-License-Identifier: MIT
// An HTTP answer written as text, for the fuzz targets that read answers
// (fuzz_huggingface, fuzz_hf_tree):
//   STATUS            first line, digits (200 when it is not a number)
//   Name: value       header lines, up to an empty line
//   body              the rest
#ifndef PROVISION_TESTS_FUZZ_ANSWER_HPP
#define PROVISION_TESTS_FUZZ_ANSWER_HPP

#include <provision/http/client.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace provision_fuzz {

/// The status and headers of `text`; `body` is set to the rest.
inline provision::HttpResponse read_answer(std::string_view text, std::string_view& body) {
    provision::HttpResponse response;
    response.status = 200;
    std::size_t pos = 0;
    bool first = true;
    while (pos <= text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (first) {
            first = false;
            int status = 0;
            bool digits = !line.empty() && line.size() <= 3;
            for (char c : line) digits = digits && c >= '0' && c <= '9';
            if (digits) {
                for (char c : line) status = status * 10 + (c - '0');
                response.status = status;
                continue;
            }
        }
        if (line.empty()) break;
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        response.headers.emplace_back(std::string(line.substr(0, colon)),
                                      std::string(provision::detail::trim(line.substr(colon + 1))));
    }
    body = pos < text.size() ? text.substr(pos) : std::string_view{};
    return response;
}

}  // namespace provision_fuzz

#endif
