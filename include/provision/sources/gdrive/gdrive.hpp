// SPDX-License-Identifier: MIT
// provision: Google Drive share links and Drive's download flow.
//
// A Drive link is not a file URL. Every share form (file/d/ID/view, open?id=,
// uc?id=, drive.usercontent.google.com/download?id=, ...) names a file id; the
// bytes come from `drive.google.com/uc?export=download&id=ID`, which redirects
// to drive.usercontent.google.com. That answers either with the file (it has
// Content-Disposition) or, for files Drive cannot virus-scan, with an HTML
// warning page whose form leads to the confirmed URL. Refusals (quota, not
// shared, deleted) come back as pages or redirects too. We decide by what came
// back, never by the file's size.
//
// The flow follows every redirect itself so that it can stop at a sign-in
// redirect, refuse hosts that are not Drive's, and keep https throughout. It
// reads bodies only of pages: once a response is the file, it stops before the
// body (or keeps a small one, for config files). Used for model entries
// (sources/gdrive/source.hpp) and for config URLs (ProvisioningSystem).
#ifndef PROVISION_SOURCES_GDRIVE_GDRIVE_HPP
#define PROVISION_SOURCES_GDRIVE_GDRIVE_HPP

#include "../../error.hpp"
#include "../../http/client.hpp"
#include "../../url.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace provision {

/// What a Drive or Docs link names.
enum class DriveLinkKind {
    file,        ///< a file stored on Drive: downloadable
    google_doc,  ///< a Google Docs/Sheets/Slides/Forms item: no file, only exports
    folder,      ///< a Drive folder
};

/// A parsed Drive link.
struct DriveLink {
    DriveLinkKind kind = DriveLinkKind::file;
    std::string id;            ///< [A-Za-z0-9_-]+
    std::string resource_key;  ///< `resourcekey` of links shared before 2021; must travel with every request
    std::string doc_type;      ///< google_doc: "document", "spreadsheets", "presentation", ...
};

/// drive.google.com, docs.google.com or drive.usercontent.google.com.
inline bool is_drive_host(const Url& url) {
    return url.host == "drive.google.com" || url.host == "docs.google.com" ||
           url.host == "drive.usercontent.google.com";
}

/// Recognises every share form of a Drive file (and Docs items and folders, so
/// they can be refused with a reason). Returns nullopt for anything else,
/// including Drive URLs that name no item.
inline std::optional<DriveLink> parse_drive_link(const Url& url);

/// The file a Drive link leads to, as seen by the flow.
struct DriveFile {
    Url url;                            ///< the confirmed URL that answers with the file's bytes
    std::string cookie_header;          ///< cookies Drive set during the flow ("a=b; c=d"), or ""
    std::string file_name;              ///< sanitized name from Content-Disposition, or ""
    std::optional<std::uint64_t> size;  ///< Content-Length of the file response
    std::string validator;              ///< ETag or Last-Modified, or ""
    std::string body;                   ///< the bytes, only with DriveFetchOptions::keep_body_up_to
};

struct DriveFetchOptions {
    /// 0: stop before the file's body (resolution only). Otherwise keep a body
    /// of at most this many bytes (a config file); a larger file is an error.
    std::size_t keep_body_up_to = 0;
};

/// Runs Drive's download flow for `link`. `subject` starts every message
/// ("models.lora.x" or "the config URL https://...").
inline Result<DriveFile> resolve_drive_file(HttpClient& http, const DriveLink& link, const std::string& subject,
                                            const DriveFetchOptions& options = {});

/// Reads a small text file (a config) shared on Drive.
inline Result<std::string> fetch_drive_text(HttpClient& http, const DriveLink& link, const std::string& subject,
                                            std::size_t max_size);

/// Explains a non-200 answer to a confirmed Drive URL when the file is downloaded.
inline Error explain_drive_download_failure(const std::string& subject, const std::string& file_id,
                                            const HttpResponse& response);

}  // namespace provision

// The definitions, apart so that this file reads as the API.
#include "impl/gdrive_inl.hpp"

#endif
