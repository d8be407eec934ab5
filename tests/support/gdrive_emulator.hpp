// SPDX-License-Identifier: MIT
// provision tests: a loopback Google Drive answering as
// /work/shared/reference/civitai-gdrive.md (part B) describes.
//
// Three HTTPS servers signed by the test CA, reached through ConnectTo rules
// under the real host names:
//   drive         drive.google.com and docs.google.com
//                 /uc (also /u/N/uc)  303 to drive.usercontent.google.com, a
//                                     302 to accounts.google.com for files not
//                                     shared publicly, 404 for unknown ids, 500
//                                     for Google Docs items, 429 when throttled,
//                                     and the pre-2022 pages (confirm link,
//                                     download_warning cookie)
//                 /open               302 to the viewer, or to docs.google.com
//   usercontent   drive.usercontent.google.com/download: the file (with
//                 Content-Disposition, Range honoured), the virus-scan warning
//                 page whose form must be submitted with every hidden input
//                 (fresh uuid each time), the quota page, the infected page
//   accounts      accounts.google.com: a sign-in page (the tests check it is
//                 never needed)
#ifndef PROVISION_TEST_SUPPORT_GDRIVE_EMULATOR_HPP
#define PROVISION_TEST_SUPPORT_GDRIVE_EMULATOR_HPP

#include "loopback_server.hpp"

#include <provision/provision.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace provision_test {

/// How Drive serves one item.
enum class DriveServing {
    direct,               ///< small file: the redirect lands on the file
    scan_warning,         ///< too large to scan: the warning page and its form first
    quota_exceeded,       ///< "Too many users have viewed or downloaded this file recently"
    restricted,           ///< not shared publicly: a sign-in redirect
    infected,             ///< owner-only download
    google_doc,           ///< a native Google item: uc answers 500, open redirects to docs
    legacy_confirm_link,  ///< pre-2022: a page with <a href="/uc?export=download&confirm=XXXX&id=...">
    legacy_cookie,        ///< pre-2022: a download_warning_* cookie holds the confirm token
    viewer_download_url,  ///< a page embedding "downloadUrl":"..." in a script
};

struct DriveItemSpec {
    std::string id;
    std::string name;
    std::string bytes;
    DriveServing serving = DriveServing::direct;
    std::string resource_key;  ///< set: without it, Drive asks for a sign-in
    std::string doc_type = "document";
    std::string content_type = "application/octet-stream";
};

class DriveEmulator {
  public:
    static constexpr const char* at_token = "APZUnTW2xZb1mOqT5ZcXhV9j3Fw7:1709378405312";
    static constexpr const char* legacy_confirm = "9iBg";
    static constexpr const char* legacy_cookie_token = "Xq3Z";

    std::atomic<bool> throttled{false};         ///< every uc request answers 429 ("unusual traffic")
    std::atomic<bool> quota_everywhere{false};  ///< usercontent answers the quota page to everything

    DriveEmulator() {
        drive_ = LoopbackServer::https({"drive.google.com", "docs.google.com"});
        usercontent_ = LoopbackServer::https({"drive.usercontent.google.com"});
        accounts_ = LoopbackServer::https({"accounts.google.com"});
        auto uc = [this](const httplib::Request& req, httplib::Response& res) { start(req, res); };
        drive_->server().Get("/uc", uc);
        drive_->server().Get(R"(/u/\d+/uc)", uc);
        drive_->server().Get("/open", [this](const httplib::Request& req, httplib::Response& res) { open(req, res); });
        drive_->server().Get(
            R"(/(file|document|spreadsheets|presentation)/d/.*)", [](const httplib::Request&, httplib::Response& res) {
                res.set_content(
                    "<!DOCTYPE html><html><head><title>viewer - Google Drive</title></head><body></body></html>",
                    "text/html; charset=utf-8");
            });
        usercontent_->server().Get("/download",
                                   [this](const httplib::Request& req, httplib::Response& res) { download(req, res); });
        // Drive's pages are generated per request and come whole even when a
        // range was asked for; files honour Range (serve_bytes reads the
        // header itself). cpp-httplib would slice pages too: clear its copy.
        for (LoopbackServer* server : {drive_.get(), usercontent_.get()})
            server->on_pre_routing([](const httplib::Request& req, httplib::Response&) {
                const_cast<httplib::Request&>(req).ranges.clear();
                return httplib::Server::HandlerResponse::Unhandled;
            });
        accounts_->server().Get(".*", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(
                "<!DOCTYPE html><html><head><title>Sign in - Google Accounts</title></head><body>"
                "<form action=\"/v3/signin/identifier\"><input type=\"email\" "
                "name=\"identifier\"></form></body></html>",
                "text/html; charset=utf-8");
        });
    }

    void add(DriveItemSpec spec) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::string id = spec.id;
        items_[id] = std::move(spec);
    }

    /// The item is deleted: every host answers 404 for it from now on.
    void remove(const std::string& id) {
        std::lock_guard<std::mutex> lock(mutex_);
        items_.erase(id);
    }

    std::vector<provision::ConnectTo> connect_to() const {
        auto to = [](const std::string& host, const LoopbackServer& server) {
            return provision::ConnectTo{host, std::nullopt, "127.0.0.1", static_cast<std::uint16_t>(server.port())};
        };
        return {to("drive.google.com", *drive_), to("docs.google.com", *drive_),
                to("drive.usercontent.google.com", *usercontent_), to("accounts.google.com", *accounts_)};
    }

    LoopbackServer& drive() { return *drive_; }
    LoopbackServer& usercontent() { return *usercontent_; }
    LoopbackServer& accounts() { return *accounts_; }

    /// The uuids handed out in warning pages so far.
    std::vector<std::string> issued_uuids() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return {uuids_.begin(), uuids_.end()};
    }

    /// A realistic virus-scan warning page (2024 form, signed-in variant with
    /// `at`), with a decoy search form in the header bar.
    static std::string warning_page(const std::string& id, const std::string& name, const std::string& uuid) {
        return "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>"
               "<meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\"/>"
               "<link href=&#47;static&#47;doclist&#47;client&#47;css&#47;4033072956&#45;untrustedcontent.css "
               "rel=\"stylesheet\" nonce=\"kQ9qZrVZ\">"
               "<link rel=\"icon\" href=\"//ssl.gstatic.com/images/branding/product/1x/drive_2020q4_32dp.png\"/>"
               "<style nonce=\"kQ9qZrVZ\">#gbar,#guser{font-size:13px;padding-top:0px !important;}</style></head>"
               "<body><div id=gbar><form id=\"gbqf\" action=\"https://drive.google.com/drive/search\" method=\"get\">"
               "<input type=\"hidden\" name=\"q\" value=\"decoy\"><input type=\"text\" name=\"query\"></form>"
               "<a href=\"https://accounts.google.com/ServiceLogin?continue=https://drive.google.com\">Sign "
               "in</a></div>"
               "<div class=\"uc-main\"><div id=\"uc-dl-icon\" class=\"image-container\"><div "
               "class=\"drive-sprite-aux-download-file\"></div></div>"
               "<div id=\"uc-text\"><p class=\"uc-warning-caption\">Google Drive can&#39;t scan this file for "
               "viruses.</p>"
               "<p class=\"uc-warning-subcaption\"><span class=\"uc-name-size\"><a href=\"/open?id=" +
               id + "\">" + name +
               "</a> (1.2G)</span> is too large for Google to scan for viruses. Would you still like to download this "
               "file?</p>"
               "<form id=\"download-form\" action=\"https://drive.usercontent.google.com/download\" method=\"get\">"
               "<input type=\"submit\" id=\"uc-download-link\" class=\"goog-inline-block jfk-button "
               "jfk-button-action\" value=\"Download anyway\"/>"
               "<input type=\"hidden\" name=\"id\" value=\"" +
               id +
               "\">"
               "<input type=\"hidden\" name=\"export\" value=\"download\">"
               "<input type=\"hidden\" name=\"authuser\" value=\"0\">"
               "<input type=\"hidden\" name=\"confirm\" value=\"t\">"
               "<input type=\"hidden\" name=\"uuid\" value=\"" +
               uuid +
               "\">"
               "<input type=\"hidden\" name=\"at\" value=\"" +
               std::string(at_token) +
               "\">"
               "</form></div></div><div class=\"uc-footer\"><hr class=\"uc-footer-divider\"></div></body></html>";
    }

    static std::string quota_page() {
        return "<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title>"
               "<meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\"/></head><body>"
               "<div class=\"uc-main\"><div id=\"uc-text\"><p class=\"uc-error-caption\">Sorry, you can&#39;t view or "
               "download this file at this time.</p>"
               "<p class=\"uc-error-subcaption\">Too many users have viewed or downloaded this file recently. Please "
               "try accessing "
               "the file again later. If the file you are trying to access is particularly large or is shared with "
               "many people, "
               "it may take up to 24 hours to be able to view or download the file. If you still can't access a file "
               "after 24 "
               "hours, contact your domain administrator.</p></div></div></body></html>";
    }

  private:
    static std::string error_page(const std::string& title, const std::string& caption) {
        return "<!DOCTYPE html><html><head><title>" + title +
               "</title></head><body><div class=\"uc-main\"><div id=\"uc-text\">"
               "<p class=\"uc-error-caption\">" +
               caption + "</p></div></div></body></html>";
    }

    /// The file itself, named the way Drive names it.
    void serve_file(const DriveItemSpec& item, const httplib::Request& req, httplib::Response& res,
                    LoopbackServer& server) {
        res.set_header("Content-Disposition", "attachment; filename=\"" + provision::percent_encode(item.name) +
                                                  "\"; filename*=UTF-8''" + provision::percent_encode(item.name));
        res.set_header("Last-Modified", "Sat, 02 Mar 2024 11:20:03 GMT");
        res.set_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate");
        ServeOptions options;
        options.content_type = item.content_type;
        server.serve_bytes(res, req, item.bytes, options);
    }

    /// Not publicly shared (or the resource key is missing): off to sign in.
    static void sign_in_redirect(const std::string& id, httplib::Response& res) {
        res.status = 302;
        res.set_header("Location",
                       "https://accounts.google.com/ServiceLogin?service=wise&passive=1209600&osid=1&continue=" +
                           provision::percent_encode("https://drive.google.com/uc?export=download&id=" + id) +
                           "&followup=" + provision::percent_encode("https://drive.google.com/uc?id=" + id));
    }

    static bool key_accepted(const DriveItemSpec& item, const httplib::Request& req) {
        return item.resource_key.empty() || req.get_param_value("resourcekey") == item.resource_key;
    }

    void start(const httplib::Request& req, httplib::Response& res) {
        if (throttled) {
            res.status = 429;
            res.set_content(
                "<html><head><title>Sorry...</title></head><body>Our systems have detected unusual traffic from "
                "your computer network.</body></html>",
                "text/html; charset=utf-8");
            return;
        }
        std::string id = req.get_param_value("id");
        std::lock_guard<std::mutex> lock(mutex_);
        auto found = items_.find(id);
        if (found == items_.end()) {
            res.status = 404;
            res.set_content(
                error_page("Google Drive - Page Not Found", "Sorry, the file you have requested does not exist."),
                "text/html; charset=utf-8");
            return;
        }
        const DriveItemSpec& item = found->second;
        if (item.serving == DriveServing::restricted || !key_accepted(item, req)) return sign_in_redirect(id, res);
        std::string confirm = req.get_param_value("confirm");
        switch (item.serving) {
        case DriveServing::google_doc:
            res.status = 500;
            res.set_content(
                "<html><head><title>Error 500 (Server Error)!!1</title></head><body>That's an error.</body></html>",
                "text/html; charset=utf-8");
            return;
        case DriveServing::legacy_confirm_link:
            if (confirm == legacy_confirm) return serve_file(item, req, res, *drive_);
            res.set_content(
                "<html><head><title>Google Drive - Virus scan warning</title></head><body><div class=\"uc-main\">"
                "<span class=\"uc-name-size\"><a href=\"/open?id=" +
                    id + "\">" + item.name +
                    "</a> (3.1G)</span> "
                    "is too large for Google to scan for viruses. Would you still like to download this file?"
                    "<a id=\"uc-download-link\" class=\"goog-inline-block jfk-button jfk-button-action\" "
                    "href=\"/uc?export=download&amp;confirm=" +
                    legacy_confirm + "&amp;id=" + id +
                    "\">Download anyway</a>"
                    "</div></body></html>",
                "text/html; charset=utf-8");
            return;
        case DriveServing::legacy_cookie:
            if (confirm == legacy_cookie_token) return serve_file(item, req, res, *drive_);
            res.set_header(
                "Set-Cookie",
                "download_warning_13058876669334088843_" + id + "=" + legacy_cookie_token +
                    "; Domain=.drive.google.com; Expires=Sat, 02-Mar-2024 11:30:00 GMT; Path=/uc; Secure; HttpOnly");
            res.set_content(
                "<html><head><title>Google Drive - Virus scan warning</title></head><body>This file is too large "
                "for Google to scan for viruses.</body></html>",
                "text/html; charset=utf-8");
            return;
        default: break;
        }
        std::string target = "https://drive.usercontent.google.com/download?id=" + id + "&export=download";
        if (!item.resource_key.empty()) target += "&resourcekey=" + item.resource_key;
        res.status = 303;
        res.set_header("Location", target);
        res.set_content("<HTML><HEAD><TITLE>See Other</TITLE></HEAD><BODY>See Other</BODY></HTML>",
                        "text/html; charset=UTF-8");
    }

    void open(const httplib::Request& req, httplib::Response& res) {
        std::string id = req.get_param_value("id");
        std::lock_guard<std::mutex> lock(mutex_);
        auto found = items_.find(id);
        if (found == items_.end()) {
            res.status = 404;
            return;
        }
        res.status = 302;
        if (found->second.serving == DriveServing::google_doc)
            res.set_header("Location",
                           "https://docs.google.com/" + found->second.doc_type + "/d/" + id + "/edit?usp=drive_web");
        else res.set_header("Location", "https://drive.google.com/file/d/" + id + "/view?usp=drive_open");
    }

    void download(const httplib::Request& req, httplib::Response& res) {
        std::string id = req.get_param_value("id");
        std::lock_guard<std::mutex> lock(mutex_);
        auto found = items_.find(id);
        if (found == items_.end()) {
            res.status = 404;
            res.set_content(
                error_page("Google Drive - Page Not Found", "Sorry, the file you have requested does not exist."),
                "text/html; charset=utf-8");
            return;
        }
        const DriveItemSpec& item = found->second;
        if (quota_everywhere || item.serving == DriveServing::quota_exceeded) {
            res.set_content(quota_page(), "text/html; charset=utf-8");
            return;
        }
        if (item.serving == DriveServing::restricted || !key_accepted(item, req)) {
            res.set_content(
                "<!DOCTYPE html><html><head><title>Google Drive: Sign-in</title></head><body>"
                "<a href=\"https://accounts.google.com/ServiceLogin\">Sign in</a></body></html>",
                "text/html; charset=utf-8");
            return;
        }
        switch (item.serving) {
        case DriveServing::infected:
            res.set_content(
                error_page(
                    "Google Drive - Virus found",
                    "Sorry, this file is infected with a virus. Only the owner is allowed to download infected files."),
                "text/html; charset=utf-8");
            return;
        case DriveServing::scan_warning: {
            bool confirmed = req.get_param_value("confirm") == "t" && req.get_param_value("export") == "download" &&
                             uuids_.count(req.get_param_value("uuid")) == 1 && req.get_param_value("at") == at_token &&
                             req.get_param_value("authuser") == "0";
            if (confirmed) return serve_file(item, req, res, *usercontent_);
            std::string uuid = provision::detail::sha256_hex(id + std::to_string(uuids_.size())).substr(0, 32);
            uuid = uuid.substr(0, 8) + "-" + uuid.substr(8, 4) + "-" + uuid.substr(12, 4) + "-" + uuid.substr(16, 4) +
                   "-" + uuid.substr(20, 12);
            uuids_.insert(uuid);
            res.set_content(warning_page(id, item.name, uuid), "text/html; charset=utf-8");
            return;
        }
        case DriveServing::viewer_download_url:
            if (req.get_param_value("confirm") == "t") return serve_file(item, req, res, *usercontent_);
            res.set_content("<html><head><title>" + item.name +
                                " - Google Drive</title></head><body><script nonce=\"a1\">"
                                "window.viewerData = {config: {\"id\":\"" +
                                id + "\",\"title\":\"" + item.name +
                                "\","
                                "\"downloadUrl\":\"https://drive.usercontent.google.com/download?id\\u003d" +
                                id + "\\u0026export\\u003ddownload\\u0026confirm\\u003dt\"}};</script></body></html>",
                            "text/html; charset=utf-8");
            return;
        default: return serve_file(item, req, res, *usercontent_);
        }
    }

    mutable std::mutex mutex_;
    std::map<std::string, DriveItemSpec> items_;
    std::set<std::string> uuids_;
    // Last, so they stop (and finish their handlers) before the state above goes away.
    std::unique_ptr<LoopbackServer> drive_;
    std::unique_ptr<LoopbackServer> usercontent_;
    std::unique_ptr<LoopbackServer> accounts_;
};

}  // namespace provision_test

#endif
