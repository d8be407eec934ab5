// SPDX-License-Identifier: MIT
// Fuzz target: the TOML config parser (parse_config) and the layout check that
// follows it in the provisioner.
//
// Input: config text. Whatever it holds, parsing ends with entries or with
// diagnostics, never with a crash, and what it accepts is safe to act on.

// toml++ is compiled into this target from its headers, rather than taken from
// the shared library: the fuzzer then sees (and steers by) the TOML parser's own
// branches, and toml++'s assertions stay on, so input that would abort a debug
// build of toml++ is found as well (Debian's library is built with NDEBUG).
#undef TOML_HEADER_ONLY
#undef TOML_SHARED_LIB
#define TOML_HEADER_ONLY 1

#include "fuzz_support.hpp"

#include <provision/config/config.hpp>
#include <provision/layout/layout.hpp>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view secret = "fuzz-secret-5d1e";

std::optional<std::string> environment(const std::string& name) {
    if (name == "MY_TOKEN") return std::string(secret);
    if (name == "EMPTY") return std::string();
    if (name == "MULTILINE") return std::string("one\ntwo");
    return std::nullopt;
}

bool is_lower_hex(std::string_view text) {
    for (unsigned char c : text)
        if (!std::isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
    return true;
}

void check_entry(const provision::Entry& entry, const provision::Layout& layout) {
    PROVISION_FUZZ_CHECK(!entry.key_path.empty());
    PROVISION_FUZZ_CHECK(entry.where.line >= 1 && entry.where.column >= 1);
    PROVISION_FUZZ_CHECK(entry.filename.empty() || provision::is_safe_filename(entry.filename));
    PROVISION_FUZZ_CHECK(entry.sha256.empty() || (entry.sha256.size() == 64 && is_lower_hex(entry.sha256)));
    switch (entry.source) {
    case provision::SourceKind::url: {
        auto url = provision::parse_url(entry.url);
        PROVISION_FUZZ_CHECK(url.ok());
        provision_fuzz::check_request_url(url.value());
        break;
    }
    case provision::SourceKind::huggingface:
        PROVISION_FUZZ_CHECK(entry.repo.find('/') != std::string::npos);
        // Exactly one way to choose: file, files, or include patterns; every
        // path named stays inside the repo.
        PROVISION_FUZZ_CHECK(!entry.file.empty() + !entry.files.empty() + !entry.include.empty() == 1);
        PROVISION_FUZZ_CHECK(entry.exclude.empty() || !entry.include.empty());
        for (const auto& path : entry.files.empty() ? std::vector<std::string>{entry.file} : entry.files) {
            if (path.empty() && entry.files.empty()) continue;  // include patterns choose instead
            PROVISION_FUZZ_CHECK(!path.empty() && path.front() != '/');
            PROVISION_FUZZ_CHECK(("/" + path + "/").find("/../") == std::string::npos);
        }
        PROVISION_FUZZ_CHECK(entry.repo_type == "model" || entry.repo_type == "dataset" || entry.repo_type == "space");
        break;
    case provision::SourceKind::civitai:
        // A model id alone is allowed: it stands for the model's default version.
        PROVISION_FUZZ_CHECK(!entry.version_id.empty() || !entry.model_id.empty());
        for (unsigned char c : entry.version_id + entry.model_id + entry.file_id) PROVISION_FUZZ_CHECK(std::isdigit(c));
        break;
    }
    // Header values go on the wire: one line each.
    for (const auto& [name, value] : entry.headers) {
        PROVISION_FUZZ_CHECK(!name.empty());
        PROVISION_FUZZ_CHECK(value.find_first_of("\r\n", 0) == std::string::npos &&
                             value.find('\0') == std::string::npos);
    }
    // A category either is one of the layout's or is refused; a known one stays inside the models folder.
    if (auto folder = layout.folder_for(entry.category)) {
        auto relative = folder.value().lexically_relative(layout.models_dir());
        PROVISION_FUZZ_CHECK(!relative.empty() && *relative.begin() != "..");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = provision_fuzz::as_text(data, size);
    static const provision::Layout layout = provision::Layout::sdnext("/workspace");
    provision::Manifest manifest = provision::parse_config(text, "fuzz.toml", environment);

    if (manifest.ok()) PROVISION_FUZZ_CHECK(!manifest.entries.empty());
    for (const auto& entry : manifest.entries) check_entry(entry, layout);
    const bool text_has_secret = text.find(secret) != std::string_view::npos;
    for (const auto& diagnostic : manifest.diagnostics) {
        const std::string line = diagnostic.str();
        PROVISION_FUZZ_CHECK(!diagnostic.message.empty());
        PROVISION_FUZZ_CHECK(diagnostic.where.line >= 0 && diagnostic.where.column >= 0);
        // A message is one log line: nothing from the config may break or forge lines.
        PROVISION_FUZZ_CHECK(!provision_fuzz::has_control_char(line));
        // ${MY_TOKEN}'s value is never repeated (unless the config itself spells it out).
        if (!text_has_secret) PROVISION_FUZZ_CHECK(line.find(secret) == std::string::npos);
    }
    return 0;
}
