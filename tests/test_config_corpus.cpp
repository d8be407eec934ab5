// SPDX-License-Identifier: MIT
// The bad-config corpus: every file in tests/data/bad_configs/ is malformed or
// hostile, and its .expected file lists the problems provision must report.
// Each file goes through parse_config and through the provisioner (dry run,
// which adds the layout's category check); running them all is also the check
// that none of them crashes or hangs the parser.
//
// <case>.expected, one item per line:
//   # text                 a comment (the first says why the case exists)
//   LINE:COLUMN: text      one diagnostic: at exactly LINE:COLUMN, and `text` is
//                          part of "key.path: message" ("message" when the
//                          problem has no key path). " … " separates parts that
//                          must appear in this order with anything between.
//   !text                  no diagnostic contains `text`
// Diagnostics are matched in the order they are reported, and there must be
// exactly as many as the file lists.
//
// Every case runs with the same fixed environment (corpus_environment below).
#include "common.hpp"
#include "support/run_process.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#ifndef PROVISION_SOURCE_DIR
#define PROVISION_SOURCE_DIR "."
#endif

namespace suite_config_corpus {  // apart from the suites compiled with it (tests/meson.build)

using provision::Diagnostic;

namespace {

namespace fs = std::filesystem;

/// Values no message may ever repeat.
const std::map<std::string, std::string>& corpus_variables() {
    static const std::map<std::string, std::string> variables{
        {"MY_TOKEN", "corpus-secret-7f3a9c"},
        {"MULTILINE_SECRET", "corpus-secret-line-one\ncorpus-secret-line-two"},
        {"EMPTY", ""},
    };
    return variables;
}

provision::EnvLookup corpus_environment() {
    return [](const std::string& name) -> std::optional<std::string> {
        auto found = corpus_variables().find(name);
        if (found == corpus_variables().end()) return std::nullopt;
        return found->second;
    };
}

fs::path corpus_dir() { return fs::path(PROVISION_SOURCE_DIR) / "tests" / "data" / "bad_configs"; }

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open " << path.string());
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

/// The case names (file names without .toml), sorted.
std::vector<std::string> case_names() {
    std::vector<std::string> names;
    for (const auto& item : fs::directory_iterator(corpus_dir()))
        if (item.path().extension() == ".toml") names.push_back(item.path().stem().string());
    std::sort(names.begin(), names.end());
    return names;
}

struct ExpectedDiagnostic {
    int line = 0;
    int column = 0;
    std::vector<std::string> parts;  ///< must appear in this order
    std::string text;                ///< as written, for messages
};

struct Expectations {
    std::string why;
    std::vector<ExpectedDiagnostic> diagnostics;
    std::vector<std::string> forbidden;
};

Expectations read_expectations(const std::string& name) {
    Expectations expected;
    std::istringstream in(read_file(corpus_dir() / (name + ".expected")));
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.empty()) continue;
        if (line[0] == '#') {
            if (expected.why.empty()) expected.why = line.substr(1);
            continue;
        }
        if (line[0] == '!') {
            expected.forbidden.push_back(line.substr(1));
            continue;
        }
        ExpectedDiagnostic item;
        item.text = line;
        char colon1 = 0, colon2 = 0;
        std::istringstream fields(line);
        fields >> item.line >> colon1 >> item.column >> colon2;
        INFO(name << ".expected:" << number << ": " << line);
        REQUIRE_MESSAGE((fields && colon1 == ':' && colon2 == ':'), "expected LINE:COLUMN: text");
        std::string rest;
        std::getline(fields, rest);
        rest.erase(0, rest.find_first_not_of(' '));
        const std::string gap = " \xE2\x80\xA6 ";  // " … "
        for (std::size_t pos = 0;;) {
            std::size_t next = rest.find(gap, pos);
            item.parts.push_back(rest.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
            if (next == std::string::npos) break;
            pos = next + gap.size();
        }
        REQUIRE_MESSAGE(!item.parts.front().empty(), "the text after LINE:COLUMN: is empty");
        expected.diagnostics.push_back(std::move(item));
    }
    return expected;
}

/// "key.path: message" (or "message"): what an expectation's text is matched against.
std::string described(const Diagnostic& diagnostic) {
    return diagnostic.key_path.empty() ? diagnostic.message : diagnostic.key_path + ": " + diagnostic.message;
}

bool matches(const ExpectedDiagnostic& expected, const Diagnostic& actual) {
    if (expected.line != actual.where.line || expected.column != actual.where.column) return false;
    std::string text = described(actual);
    std::size_t pos = 0;
    for (const auto& part : expected.parts) {
        pos = text.find(part, pos);
        if (pos == std::string::npos) return false;
        pos += part.size();
    }
    return true;
}

/// Diagnostics as the expectations are written, long ones cut, for failure messages.
std::string listing(const std::vector<Diagnostic>& diagnostics) {
    std::string out;
    for (const auto& d : diagnostics) {
        std::string line = std::to_string(d.where.line) + ":" + std::to_string(d.where.column) + ": " + described(d);
        if (line.size() > 300) line = line.substr(0, 300) + "... (" + std::to_string(line.size()) + " bytes)";
        out += "  " + line + "\n";
    }
    return out.empty() ? "  (none)\n" : out;
}

/// Everything the corpus learns about one file.
struct CaseRun {
    provision::Manifest manifest;                ///< parse_config alone
    std::vector<Diagnostic> layout_diagnostics;  ///< unknown categories of otherwise valid entries
    std::vector<Diagnostic> reported;            ///< what the provisioner reported (dry run)
    bool provisioned = false;
};

/// Runs one file through parse_config, the layout and the provisioner. The
/// provisioner only runs when the file has a problem (so it stops before any
/// resolving), and every connection it could open goes to a closed loopback
/// port anyway: the corpus never reaches the network.
CaseRun run_case(const std::string& name, provision::ProvisioningSystem& system) {
    CaseRun run;
    const std::string text = read_file(corpus_dir() / (name + ".toml"));
    const std::string origin = name + ".toml";
    run.manifest = provision::parse_config(text, origin, corpus_environment());
    for (const auto& entry : run.manifest.entries)
        if (auto folder = system.layout().folder_for(entry.category); !folder)
            run.layout_diagnostics.push_back(
                Diagnostic{entry.where, "models." + entry.category, folder.error().message});
    if (run.manifest.ok() && run.layout_diagnostics.empty()) return run;

    provision::Report report = system.provision_from_text(text, origin);
    run.reported = report.config_errors;
    run.provisioned = true;
    INFO("case " << name);
    CHECK(!report.ok());
    CHECK(report.exit_code() == 2);
    CHECK(report.entries.empty());
    return run;
}

/// Every case, run once for all the test cases below.
const std::map<std::string, CaseRun>& corpus_runs() {
    static const std::map<std::string, CaseRun> runs = [] {
        static provision_test::TempDir workspace;
        provision::ProvisionOptions options;
        options.workspace = workspace.path();
        options.dry_run = true;
        options.env = corpus_environment();
        options.hf_endpoint = "http://127.0.0.1:9";
        options.http.connect_to.push_back(provision::ConnectTo{"", std::nullopt, "127.0.0.1", std::uint16_t{9}});
        options.http.connect_timeout = std::chrono::milliseconds(500);
        provision::ProvisioningSystem system{options};
        std::map<std::string, CaseRun> out;
        for (const auto& name : case_names()) out.emplace(name, run_case(name, system));
        return out;
    }();
    return runs;
}

/// Checks one case against its .expected file; returns whether it held.
bool check_case(const std::string& name, const CaseRun& run, const Expectations& expected) {
    INFO("case " << name << ".toml (" << expected.why << " )");
    INFO("reported:\n" << listing(run.reported));
    bool held = true;
    if (!run.provisioned) {
        FAIL_CHECK("parse_config and the layout accepted it: a corpus case must have at least one problem");
        return false;
    }
    if (run.reported.size() != expected.diagnostics.size()) {
        FAIL_CHECK("expected " << expected.diagnostics.size() << " diagnostic(s), got " << run.reported.size());
        held = false;
    }
    for (std::size_t i = 0; i < expected.diagnostics.size() && i < run.reported.size(); ++i) {
        if (!matches(expected.diagnostics[i], run.reported[i])) {
            FAIL_CHECK("diagnostic " << i + 1 << " does not match the expectation\n  " << expected.diagnostics[i].text);
            held = false;
        }
    }
    for (const auto& forbidden : expected.forbidden)
        for (const auto& d : run.reported)
            if (d.str().find(forbidden) != std::string::npos) {
                FAIL_CHECK("a diagnostic contains \"" << forbidden << "\", which it must not repeat");
                held = false;
            }
    return held;
}

}  // namespace

TEST_CASE("config corpus: at least 50 cases, each with its expectations") {
    auto names = case_names();
    CHECK(names.size() >= 50);
    for (const auto& name : names) {
        INFO("case " << name);
        REQUIRE(fs::exists(corpus_dir() / (name + ".expected")));
        Expectations expected = read_expectations(name);
        CHECK_MESSAGE(!expected.why.empty(), "the .expected file should say why the case exists (a # comment)");
        CHECK_MESSAGE(!expected.diagnostics.empty(), "a corpus case must expect at least one diagnostic");
    }
    // An .expected file without its config would silently test nothing.
    for (const auto& item : fs::directory_iterator(corpus_dir())) {
        INFO("file " << item.path().filename().string());
        CHECK((item.path().extension() == ".toml" || item.path().extension() == ".expected"));
        if (item.path().extension() == ".expected")
            CHECK(std::binary_search(names.begin(), names.end(), item.path().stem().string()));
    }
}

TEST_CASE("config corpus: every case reports exactly its expected problems, in order") {
    std::size_t held = 0;
    for (const auto& [name, run] : corpus_runs())
        if (check_case(name, run, read_expectations(name))) ++held;
    MESSAGE(held << " of " << corpus_runs().size() << " corpus cases hold");
    CHECK(held == corpus_runs().size());
}

TEST_CASE("config corpus: the provisioner reports the parser's problems first, then the layout's") {
    for (const auto& item : corpus_runs()) {
        const auto& name = item.first;  // named, not bound: clang (C++17) cannot capture a binding in INFO/CAPTURE
        const auto& run = item.second;
        INFO("case " << name);
        std::vector<Diagnostic> combined = run.manifest.diagnostics;
        combined.insert(combined.end(), run.layout_diagnostics.begin(), run.layout_diagnostics.end());
        REQUIRE(combined.size() == run.reported.size());
        for (std::size_t i = 0; i < combined.size(); ++i) {
            CHECK(combined[i].where.str() == run.reported[i].where.str());
            CHECK(combined[i].message == run.reported[i].message);
            // How the provisioner writes a layout problem's key path is its own business.
            if (i < run.manifest.diagnostics.size()) CHECK(combined[i].key_path == run.reported[i].key_path);
        }
    }
}

TEST_CASE("config corpus: no message repeats a secret or carries a control character") {
    for (const auto& item : corpus_runs()) {
        const auto& name = item.first;  // named, not bound: clang (C++17) cannot capture a binding in INFO/CAPTURE
        const auto& run = item.second;
        INFO("case " << name);
        for (const auto& d : run.reported) {
            const std::string line = d.str();
            INFO("diagnostic: " << line.substr(0, 300));
            for (const auto& item : corpus_variables()) {
                const auto& variable =
                    item.first;  // named, not bound: clang (C++17) cannot capture a binding in INFO/CAPTURE
                const auto& value = item.second;
                if (value.empty()) continue;
                std::istringstream pieces(value);
                for (std::string piece; std::getline(pieces, piece);)
                    CHECK_MESSAGE(line.find(piece) == std::string::npos,
                                  "the value of " << variable << " leaked into a message");
            }
            // One diagnostic is one log line: a raw line break or escape sequence
            // taken from the config would forge or garble the lines after it.
            bool control = std::any_of(line.begin(), line.end(), [](char c) {
                auto byte = static_cast<unsigned char>(c);
                return byte < 0x20 || byte == 0x7f;
            });
            CHECK_MESSAGE(!control, "a diagnostic contains a raw control character");
        }
    }
}

TEST_CASE("config corpus: the expectation format catches a wrong expectation") {
    // The matcher itself must be able to fail, or the corpus proves nothing.
    Diagnostic actual{{"x.toml", 3, 7}, "models.lora.x.url", "not a usable URL: the scheme \"ftp\" is not supported"};
    ExpectedDiagnostic right{3, 7, {"models.lora.x.url: not a usable URL", "\"ftp\""}, ""};
    CHECK(matches(right, actual));
    ExpectedDiagnostic wrong_column{3, 8, {"models.lora.x.url"}, ""};
    CHECK_FALSE(matches(wrong_column, actual));
    ExpectedDiagnostic wrong_order{3, 7, {"\"ftp\"", "not a usable URL"}, ""};
    CHECK_FALSE(matches(wrong_order, actual));
    ExpectedDiagnostic wrong_text{3, 7, {"the scheme \"file\""}, ""};
    CHECK_FALSE(matches(wrong_text, actual));
}

}  // namespace suite_config_corpus
