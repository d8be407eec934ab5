// SPDX-License-Identifier: MIT
// provision: executes download plans: streams bodies to "<name>.part",
// verifies size and digest, syncs and renames into place.
//
// Nothing half-written or unverified ever sits under a final model name, and a
// web page is never saved where a model was expected.
#ifndef PROVISION_DOWNLOADER_HPP
#define PROVISION_DOWNLOADER_HPP

#include "detail/digest.hpp"
#include "detail/file_name.hpp"
#include "detail/files.hpp"
#include "error.hpp"
#include "events.hpp"
#include "http.hpp"
#include "plan.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>

namespace provision {

struct DownloadOptions {
    const std::atomic<bool>* cancel = nullptr;  ///< set to stop transfers promptly
    EventHandler on_event;                      ///< progress reports; may be empty
    std::chrono::milliseconds progress_interval{250};
};

/// A file that is in place and verified.
struct InstalledFile {
    std::filesystem::path path;
    std::uint64_t size = 0;
    std::string sha256;
    bool already_present = false;  ///< nothing was downloaded
};

class Downloader {
  public:
    Downloader(HttpClient& http, DownloadOptions options) : http_(http), options_(std::move(options)) {}

    /// Downloads one plan. Thread-safe: several plans may run at once.
    Result<InstalledFile> download(const DownloadPlan& plan);

  private:
    void emit(Event event) const {
        if (options_.on_event) options_.on_event(event);
    }
    bool cancelled() const { return options_.cancel && options_.cancel->load(); }

    HttpClient& http_;
    DownloadOptions options_;
};

namespace detail {

/// True for a Content-Type that is a document, not model bytes.
inline bool is_text_content_type(std::string_view content_type) {
    std::string type = to_lower(trim(content_type.substr(0, content_type.find(';'))));
    return starts_with(type, "text/") || type == "application/json" || type == "application/xhtml+xml" ||
           type == "application/problem+json" || type == "application/xml";
}

/// True when the first bytes of a body look like an HTML document.
inline bool looks_like_html(std::string_view head) {
    std::size_t i = 0;
    if (starts_with(head, "\xEF\xBB\xBF")) i = 3;
    while (i < head.size() && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
    std::string start = to_lower(head.substr(i, 14));
    return starts_with(start, "<!doctype html") || starts_with(start, "<html") || starts_with(start, "<head") ||
           starts_with(start, "<!--");
}

/// Hash a whole file (for already-present checks).
inline Result<std::string> sha256_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error("cannot read " + path.string(), errno);
    auto hasher = Hasher::sha256();
    std::string buffer(1 << 20, '\0');
    while (true) {
        ssize_t got = ::read(fd, buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int code = errno;
            ::close(fd);
            return errno_error("cannot read " + path.string(), code);
        }
        if (got == 0) break;
        hasher.update(buffer.data(), static_cast<std::size_t>(got));
    }
    ::close(fd);
    return hasher.hex_digest();
}

}  // namespace detail

inline Result<InstalledFile> Downloader::download(const DownloadPlan& plan) {
    const std::string& who = plan.key_path;
    std::error_code fs_error;
    std::filesystem::create_directories(plan.folder, fs_error);
    if (fs_error) return make_error(errc::io, who + ": cannot create " + plan.folder.string() + ": " + fs_error.message());

    // When the name is known up front, a verified file already in place is not fetched again.
    if (!plan.file_name.empty() && !plan.sha256.empty()) {
        auto target = detail::join_inside(plan.folder, plan.file_name);
        if (!target) return make_error(target.error().code, who + ": " + target.error().message);
        if (std::filesystem::is_regular_file(target.value(), fs_error)) {
            auto digest = detail::sha256_file(target.value());
            if (digest && digest.value() == plan.sha256) {
                auto size = std::filesystem::file_size(target.value(), fs_error);
                return InstalledFile{target.value(), size, digest.value(), true};
            }
        }
    }

    HttpRequest request;
    request.url = plan.url;
    request.headers = plan.headers;
    request.scoped_headers = plan.scoped_headers;

    std::optional<Error> failure;
    std::filesystem::path target;
    std::filesystem::path part;
    int fd = -1;
    bool model_expected = false;
    bool head_checked = false;
    std::optional<std::uint64_t> announced;
    std::uint64_t received = 0;
    auto hasher = detail::Hasher::sha256();
    std::optional<detail::Hasher> git_hasher;
    auto last_progress = std::chrono::steady_clock::now();

    auto on_response = [&](const HttpResponse& response) {
        if (response.status != 200) {
            failure = plan.explain ? plan.explain(response)
                                   : make_error(errc::network, who + ": " + response.url.redacted() + " answered HTTP " +
                                                                   std::to_string(response.status));
            return false;
        }
        std::string name = plan.file_name;
        if (name.empty()) {
            if (auto disposition = response.header("Content-Disposition"))
                if (auto proposed = detail::content_disposition_filename(*disposition))
                    name = detail::sanitize_file_name(*proposed);
            if (name.empty()) name = detail::sanitize_file_name(plan.url.last_segment());
            if (name.empty()) {
                failure = make_error(errc::config, who + ": the server gave no usable file name for " + plan.url.redacted() +
                                                       "; set filename = \"...\" in the entry");
                return false;
            }
        }
        auto joined = detail::join_inside(plan.folder, name);
        if (!joined) {
            failure = make_error(joined.error().code, who + ": " + joined.error().message);
            return false;
        }
        target = joined.value();
        part = target;
        part += ".part";
        model_expected = detail::is_model_file_name(target.filename().string());
        if (model_expected && detail::is_text_content_type(response.header("Content-Type").value_or(""))) {
            failure = make_error(errc::integrity, who + ": expected the model file " + target.filename().string() +
                                                      " but " + response.url.redacted() + " sent a document (" +
                                                      response.header("Content-Type").value_or("") +
                                                      "); the link may need a login or point to a web page, not a file");
            return false;
        }
        if (auto length = response.header("Content-Length")) {
            try {
                announced = std::stoull(*length);
            } catch (...) {
            }
        }
        if (!plan.git_sha1.empty())
            git_hasher = detail::Hasher::git_blob_sha1(announced.value_or(plan.size.value_or(0)));
        std::filesystem::create_directories(target.parent_path(), fs_error);
        fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            failure = detail::errno_error(who + ": cannot create " + part.string(), errno);
            return false;
        }
        emit(Event{EventKind::start, who, target.string(), 0, plan.size ? plan.size : announced, ""});
        return true;
    };
    auto on_body = [&](const char* data, std::size_t size) {
        if (cancelled()) {
            failure = make_error(errc::cancelled, who + ": stopped");
            return false;
        }
        if (!head_checked) {
            head_checked = true;
            if (model_expected && detail::looks_like_html(std::string_view(data, size))) {
                failure = make_error(errc::integrity, who + ": expected the model file " + target.filename().string() +
                                                          " but received an HTML page from " + plan.url.redacted());
                return false;
            }
        }
        auto written = detail::write_all_at(fd, data, size, received, part.string());
        if (!written) {
            failure = make_error(written.error().code, who + ": " + written.error().message);
            return false;
        }
        hasher.update(data, size);
        if (git_hasher) git_hasher->update(data, size);
        received += size;
        auto now = std::chrono::steady_clock::now();
        if (now - last_progress >= options_.progress_interval) {
            last_progress = now;
            emit(Event{EventKind::progress, who, target.string(), received, plan.size ? plan.size : announced, ""});
        }
        return true;
    };

    auto response = http_.stream(request, on_response, on_body);
    auto discard = [&](Error error) -> Result<InstalledFile> {
        if (fd >= 0) ::close(fd);
        if (!part.empty()) std::filesystem::remove(part, fs_error);
        return error;
    };
    if (!response) return discard(make_error(response.error().code, who + ": " + response.error().message));
    if (failure) return discard(*failure);

    if (announced && received != *announced)
        return discard(make_error(errc::network, who + ": the download stopped after " + std::to_string(received) +
                                                     " of " + std::to_string(*announced) + " bytes"));
    if (plan.size && received != *plan.size)
        return discard(make_error(errc::integrity, who + ": expected " + std::to_string(*plan.size) + " bytes but received " +
                                                       std::to_string(received)));
    std::string digest = hasher.hex_digest();
    if (!plan.sha256.empty() && digest != plan.sha256)
        return discard(make_error(errc::integrity, who + ": SHA-256 mismatch for " + target.filename().string() +
                                                       ": expected " + plan.sha256 + ", got " + digest));
    if (git_hasher) {
        std::string sha1 = git_hasher->hex_digest();
        if (sha1 != plan.git_sha1)
            return discard(make_error(errc::integrity, who + ": git SHA-1 mismatch for " + target.filename().string() +
                                                           ": expected " + plan.git_sha1 + ", got " + sha1));
    }
    if (::fsync(fd) != 0) return discard(detail::errno_error(who + ": cannot flush " + part.string(), errno));
    ::close(fd);
    fd = -1;
    std::filesystem::rename(part, target, fs_error);
    if (fs_error) return discard(make_error(errc::io, who + ": cannot move " + part.string() + " into place: " + fs_error.message()));
    detail::sync_folder(target.parent_path());
    return InstalledFile{target, received, digest, false};
}

}  // namespace provision

#endif
