// SPDX-License-Identifier: MIT
// provision: the one way an API answer (a Hub listing, a CivitAI model) is
// turned into JSON values, with memory bounded whatever its shape.
//
// nlohmann/json's DOM costs far more than the text it comes from: a 16 MiB
// array of empty objects becomes about 460 MiB of RSS. The body caps of the
// HTTP client bound the text, not that. So an answer is first walked with the
// SAX interface, which builds nothing, counting its values and its depth; only
// an answer within the limits is parsed into a DOM. The limits sit far above
// any real answer (a Hub tree page of 1,000 files holds about 12,000 values).
#ifndef PROVISION_SUPPORT_BOUNDED_JSON_HPP
#define PROVISION_SUPPORT_BOUNDED_JSON_HPP

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace provision {
namespace detail {

struct JsonLimits {
    std::size_t max_values = 250000;  ///< every object, array, string, number, bool and null counts
    std::size_t max_depth = 64;
};

/// Counts values and nesting; stops the walk at the first limit passed.
class JsonShapeCounter : public nlohmann::json_sax<nlohmann::json> {
  public:
    explicit JsonShapeCounter(JsonLimits limits) : limits_(limits) {}
    bool too_large() const { return too_large_; }

    bool null() override { return count(); }
    bool boolean(bool) override { return count(); }
    bool number_integer(number_integer_t) override { return count(); }
    bool number_unsigned(number_unsigned_t) override { return count(); }
    bool number_float(number_float_t, const string_t&) override { return count(); }
    bool string(string_t&) override { return count(); }
    bool binary(binary_t&) override { return count(); }
    bool start_object(std::size_t) override { return open(); }
    bool key(string_t&) override { return true; }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

  private:
    bool count() {
        if (++values_ <= limits_.max_values) return true;
        too_large_ = true;
        return false;
    }
    bool open() {
        if (++depth_ > limits_.max_depth) {
            too_large_ = true;
            return false;
        }
        return count();
    }
    bool close() {
        --depth_;
        return true;
    }

    JsonLimits limits_;
    std::size_t values_ = 0;
    std::size_t depth_ = 0;
    bool too_large_ = false;
};

/// The answer as JSON, or a discarded value when it is not JSON or passes
/// `limits`; then `too_large` says which (for the message).
inline nlohmann::json parse_api_json(std::string_view text, bool* too_large = nullptr, JsonLimits limits = {}) {
    JsonShapeCounter counter(limits);
    bool fits =
        nlohmann::json::sax_parse(text.begin(), text.end(), &counter, nlohmann::json::input_format_t::json, false);
    if (too_large) *too_large = counter.too_large();
    if (!fits) return nlohmann::json(nlohmann::json::value_t::discarded);
    return nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
}

}  // namespace detail
}  // namespace provision

#endif
