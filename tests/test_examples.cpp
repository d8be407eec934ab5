// SPDX-License-Identifier: MIT
// The example programs of examples/ (README "Library"), run as a reader would
// run them, against real loopback servers: the demo file server in a process
// of its own, and the emulated Hugging Face, CivitAI and Google Drive of the
// seed's world. Each test checks what the program prints (names, paths, byte
// counts, digests) and its exit status, so an example that stops teaching the
// truth fails here.
#include "common.hpp"
#include "support/loopback_server.hpp"
#include "support/run_process.hpp"
#include "support/seed_world.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace suite_examples {  // apart from the suites compiled with it (tests/meson.build)

using provision_test::LoopbackServer;
using provision_test::ProcessResult;
using provision_test::read_whole_file;
using provision_test::run_process;
using provision_test::TempDir;
using provision_test::test_bytes;

namespace {

namespace fs = std::filesystem;

/// An example program. They are built beside the CLI (examples/meson.build);
/// tests/meson.build does not list them as this suite's dependencies, so a
/// missing or stale one is named here instead of being run as it was.
std::string example(const std::string& name) {
    fs::path program = fs::path(PROVISION_CLI_PATH).parent_path() / name;
    fs::path source = fs::path(PROVISION_SOURCE_DIR) / "examples" / (name + ".cpp");
    REQUIRE_MESSAGE(fs::exists(program), program.string() << " is not built: run ninja in the build folder");
    REQUIRE_MESSAGE(fs::last_write_time(program) >= fs::last_write_time(source),
                    program.string() << " is older than " << source.string() << ": run ninja in the build folder");
    return program.string();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::vector<std::string> words_of(const std::string& line) {
    std::vector<std::string> words;
    std::istringstream in(line);
    for (std::string word; in >> word;) words.push_back(word);
    return words;
}

/// Waits until `done` says yes (checked every 10 ms), at most 20 s.
bool wait_for(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

/// --cacert and --connect-to options that reach loopback emulators under their real host names.
std::vector<std::string> reach(const std::vector<provision::ConnectTo>& rules) {
    std::vector<std::string> args = {"--cacert", provision_test::test_ca().ca_cert_path};
    for (const auto& rule : rules) {
        args.push_back("--connect-to");
        args.push_back(rule.from_host + "::127.0.0.1:" + std::to_string(*rule.to_port));
    }
    return args;
}

std::vector<std::string> concat(std::vector<std::string> first, const std::vector<std::string>& second) {
    first.insert(first.end(), second.begin(), second.end());
    return first;
}

/// A program started in the background, its output captured to files.
class Child {
  public:
    explicit Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {}) {
        int out = ::open((dir_ / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int err = ::open((dir_ / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        program_ = argv.at(0);
        pid_ = provision_test::spawn_process(argv, env, out, err);
        ::close(out);
        ::close(err);
    }
    ~Child() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            wait();
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    void signal(int number) { ::kill(pid_, number); }
    /// The exit code, or 128 + the signal that ended it.
    int wait() {
        if (!reaped_) {
            int status = 0;
            ::waitpid(pid_, &status, 0);
            reaped_ = true;
            code_ = provision_test::exit_code_of(status);
            signal_ = provision_test::signal_of(status);
            provision_test::check_no_sanitizer_report(program_, err());
        }
        return code_;
    }
    int ended_by_signal() const { return signal_; }
    std::string out() const { return read_whole_file(dir_ / "out"); }
    std::string err() const { return read_whole_file(dir_ / "err"); }

  private:
    TempDir dir_;
    std::string program_;
    pid_t pid_ = -1;
    bool reaped_ = false;
    int code_ = -1;
    int signal_ = 0;
};

/// examples/file_server serving `root` over plain HTTP, in a process of its own.
class FileServer {
  public:
    explicit FileServer(const fs::path& root)
        : child_({fs::path(PROVISION_FILE_SERVER_PATH).string(), root.string(), "--ready-file",
                  (ready_.path() / "port").string()}) {
        REQUIRE_MESSAGE(
            wait_for([&] { return read_whole_file(ready_.path() / "port").find('\n') != std::string::npos; }),
            "file_server did not start: " << child_.err());
        port_ = std::stoi(read_whole_file(ready_.path() / "port"));
    }
    ~FileServer() {
        child_.signal(SIGTERM);  // it stops its server on SIGTERM and exits 0
        child_.wait();
    }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  private:
    TempDir ready_;
    Child child_;
    int port_ = 0;
};

/// resolve_plans' output: entry -> {"url": ..., "target": ..., "size": ..., "sha256": ..., "error": ...}.
std::map<std::string, std::map<std::string, std::string>> plans_of(const std::string& out) {
    std::map<std::string, std::map<std::string, std::string>> plans;
    std::string entry;
    for (const auto& line : lines_of(out)) {
        if (line.rfind("  ", 0) != 0) {
            entry = line;
            plans[entry];
            continue;
        }
        auto words = words_of(line);
        if (words.empty()) continue;
        plans[entry][words[0]] = line.substr(line.find(words[0]) + words[0].size() + 1);
        auto& value = plans[entry][words[0]];
        value.erase(0, value.find_first_not_of(' '));
    }
    return plans;
}

}  // namespace

TEST_CASE(
    "examples: parse_config lists every entry with category, name and source, or every problem with where and what") {
    TempDir dir;
    auto good = dir.write("provision.toml",
                          "[settings]\nlayout = \"comfyui\"\n\n"
                          "[models.checkpoints.sdxl-base]\nrepo = \"stabilityai/stable-diffusion-xl-base-1.0\"\n"
                          "file = \"sd_xl_base_1.0.safetensors\"\n\n"
                          "[models.lora.detail-tweaker]\nsource = \"civitai\"\nversion_id = \"58390\"\n\n"
                          "[models.vae]\nplain = \"https://example.com/vae.safetensors?token=s3cr3t&download=1\"\n");
    auto result = run_process({example("parse_config"), good.string()});
    INFO(result.out << result.err);
    CHECK(result.exit_code == 0);
    auto lines = lines_of(result.out);
    REQUIRE(lines.size() == 5);
    CHECK(lines[0] == "layout: comfyui");
    CHECK(words_of(lines[1]) ==
          std::vector<std::string>{"checkpoints", "sdxl-base", "huggingface",
                                   "stabilityai/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors"});
    CHECK(words_of(lines[2]) == std::vector<std::string>{"lora", "detail-tweaker", "civitai", "version", "58390"});
    // The query value that may be a token is hidden; a harmless one is kept.
    CHECK(words_of(lines[3]) ==
          std::vector<std::string>{"vae", "plain", "url", "https://example.com/vae.safetensors?token=***&download=1"});
    CHECK_FALSE(contains(result.out, "s3cr3t"));
    CHECK(lines[4] == "3 entries in " + good.string());

    // Two problems in one file: both reported, each with file:line:column and the key.
    auto bad = dir.write("bad.toml",
                         "[models.lora.x]\nsource = \"civitai\"\nversion_id = true\n\n"
                         "[models.vae.y]\nsource = \"url\"\n");
    auto failed = run_process({example("parse_config"), bad.string()});
    INFO(failed.err);
    CHECK(failed.exit_code == 2);
    CHECK(failed.out.empty());
    auto problems = lines_of(failed.err);
    REQUIRE(problems.size() == 3);
    CHECK(problems[0].rfind(bad.string() + ":3:14: models.lora.x.version_id: ", 0) == 0);
    CHECK(problems[1].rfind(bad.string() + ":5:", 0) == 0);
    CHECK(contains(problems[1], "models.vae.y"));
    CHECK(problems[2] == "2 problem(s) in " + bad.string());

    auto missing = run_process({example("parse_config"), (dir / "nothing.toml").string()});
    CHECK(missing.exit_code == 2);
    CHECK(contains(missing.err, "cannot read"));
}

TEST_CASE("examples: map_layout prints category -> folder for each UI, with overrides, and refuses an unknown UI") {
    auto folders_of = [](const ProcessResult& result) {
        std::map<std::string, std::string> folders;
        for (const auto& line : lines_of(result.out)) {
            auto words = words_of(line);
            if (words.size() == 3 && words[1] == "->") folders[words[0]] = words[2];
        }
        return folders;
    };
    auto comfy = run_process({example("map_layout"), "comfyui", "/ws"});
    INFO(comfy.out << comfy.err);
    CHECK(comfy.exit_code == 0);
    CHECK(lines_of(comfy.out).at(0) == "comfyui layout, models under /ws/ComfyUI/models");
    auto folders = folders_of(comfy);
    CHECK(folders.size() == 15);  // every category and alias of ComfyUI's table
    CHECK(folders["checkpoints"] == "/ws/ComfyUI/models/checkpoints");
    CHECK(folders["lora"] == "/ws/ComfyUI/models/loras");
    CHECK(folders["lycoris"] == "/ws/ComfyUI/models/loras");
    CHECK(folders["clip"] == "/ws/ComfyUI/models/text_encoders");
    CHECK(folders["esrgan"] == "/ws/ComfyUI/models/upscale_models");
    CHECK(folders["unet"] == "/ws/ComfyUI/models/diffusion_models");

    auto a1111 = folders_of(run_process({example("map_layout"), "a1111", "/ws"}));
    CHECK(a1111["checkpoints"] == "/ws/stable-diffusion-webui/models/Stable-diffusion");
    CHECK(a1111["embeddings"] == "/ws/stable-diffusion-webui/embeddings");  // beside models/, normalised
    CHECK(a1111["lycoris"] == "/ws/stable-diffusion-webui/models/LyCORIS");
    auto forge = folders_of(run_process({example("map_layout"), "forge", "/ws"}));
    CHECK(forge["lycoris"] == "/ws/stable-diffusion-webui-forge/models/Lora");
    auto sdnext = folders_of(run_process({example("map_layout")}));  // the defaults: sdnext in /workspace
    CHECK(sdnext["checkpoints"] == "/workspace/sdnext/models/Stable-diffusion");
    CHECK(sdnext["clip"] == "/workspace/sdnext/models/text_encoder");

    // An override moves the category and the aliases that follow it.
    auto moved =
        folders_of(run_process({example("map_layout"), "comfyui", "/ws", "lora=loras/sdxl", "motion=/models/motion"}));
    CHECK(moved["lora"] == "/ws/ComfyUI/models/loras/sdxl");
    CHECK(moved["lycoris"] == "/ws/ComfyUI/models/loras/sdxl");
    CHECK(moved["motion"] == "/models/motion");
    CHECK(moved["vae"] == "/ws/ComfyUI/models/vae");

    auto unknown = run_process({example("map_layout"), "invokeai", "/ws"});
    CHECK(unknown.exit_code == 2);
    CHECK(unknown.out.empty());
    CHECK(contains(unknown.err, "unknown layout \"invokeai\"; known layouts: sdnext, a1111, forge, comfyui"));
    auto bad_rule = run_process({example("map_layout"), "comfyui", "/ws", "lora"});
    CHECK(bad_rule.exit_code == 2);
    CHECK(contains(bad_rule.err, "lora is not CATEGORY=FOLDER"));
}

TEST_CASE("examples: resolve_plans prints each entry's URL, target, size and SHA-256 with metadata requests only") {
    provision_test::SeedWorld world;
    TempDir dir;
    auto config = dir.write(
        "provision.toml",
        read_whole_file(fs::path(PROVISION_SOURCE_DIR) / "tests/data/configs/minimal.toml") +
            "\n[models.lora.shared]\nurl = \"https://drive.google.com/file/d/1ABC123DEF456/view?usp=sharing\"\n"
            "\n[models.vae]\nplain = \"https://example.com/model.safetensors\"\n");
    auto ws = dir / "ws";
    auto result = run_process(
        concat({example("resolve_plans"), config.string(), "--workspace", ws.string()}, world.cli_options()),
        world.env());
    INFO(result.out << result.err);
    CHECK(result.exit_code == 0);
    auto plans = plans_of(result.out);
    CHECK(plans.size() == 4);
    auto sha256 = [](const std::string& bytes) { return provision::detail::sha256_hex(bytes); };

    auto& base = plans["models.checkpoints.sdxl-base"];
    CHECK(base["target"] == (ws / "sdnext/models/Stable-diffusion/sd_xl_base_1.0.safetensors").string());
    CHECK(base["size"] == "700000 bytes");
    CHECK(base["sha256"] == sha256(world.bytes["stabilityai/stable-diffusion-xl-base-1.0/sd_xl_base_1.0.safetensors"]));
    CHECK(base["url"].rfind("https://cdn-lfs.hf.co/", 0) == 0);  // the Hub's HEAD named its CDN link
    CHECK(contains(base["url"], "Signature=***"));

    auto& lora = plans["models.lora.detail-tweaker"];
    CHECK(lora["target"] == (ws / "sdnext/models/Lora/add_detail.safetensors").string());
    CHECK(lora["sha256"] == sha256(world.bytes["civitai/58390"]));
    // CivitAI's download route answered with its signed storage link: printed with the signature hidden.
    CHECK(contains(lora["url"], ".r2.cloudflarestorage.com/model/583900/add_detail.safetensors?"));
    CHECK(contains(lora["url"], "X-Amz-Signature=***"));

    auto& drive = plans["models.lora.shared"];
    CHECK(drive["target"] == (ws / "sdnext/models/Lora/shared_model.safetensors").string());
    CHECK(drive["size"] == "500000 bytes");
    CHECK(drive["sha256"] == "unknown");  // Drive publishes no digest
    CHECK(drive["url"].rfind("https://drive.usercontent.google.com/download?id=1ABC123DEF456", 0) == 0);

    auto& plain = plans["models.vae.plain"];
    CHECK(plain["url"] == "https://example.com/model.safetensors");
    CHECK(plain["target"] == (ws / "sdnext/models/VAE").string() + "/ (name chosen by the server)");
    CHECK(plain["size"] == "unknown");

    // Metadata only: no file host sent a model byte, a plain URL was not even asked.
    CHECK(world.hub.cdn().bytes_sent() == 0);
    CHECK(world.civitai.storage().bytes_sent() == 0);
    CHECK(world.example->requests().empty());
    CHECK_FALSE(fs::exists(ws));  // and nothing was written

    // One entry that cannot resolve fails alone, with the CLI's exit code for it (4: not found).
    auto broken = dir.write("broken.toml",
                            "[models.checkpoints.gone]\nrepo = \"stabilityai/stable-diffusion-xl-base-1.0\"\n"
                            "file = \"no_such_file.safetensors\"\n\n"
                            "[models.text_encoder.clip_l]\nrepo = \"comfyanonymous/flux_text_encoders\"\n"
                            "file = \"clip_l.safetensors\"\n");
    auto partly = run_process(
        concat({example("resolve_plans"), broken.string(), "--workspace", ws.string()}, world.cli_options()),
        world.env());
    INFO(partly.out << partly.err);
    CHECK(partly.exit_code == 4);
    auto partial = plans_of(partly.out);
    CHECK(contains(partial["models.checkpoints.gone"]["error"], "no_such_file.safetensors"));
    CHECK(partial["models.text_encoder.clip_l"]["size"] == "120000 bytes");
    CHECK(partial["models.text_encoder.clip_l"]["target"] ==
          (ws / "sdnext/models/text_encoder/clip_l.safetensors").string());
}

TEST_CASE(
    "examples: drive_link prints a Drive file's id, name, size and confirmed download URL, and refuses what is no "
    "file") {
    provision_test::DriveEmulator drive;
    provision_test::DriveItemSpec large;
    large.id = "1LargeCheckpoint_x9";
    large.name = "big_model.safetensors";
    large.bytes = test_bytes(300000, 61);
    large.serving = provision_test::DriveServing::scan_warning;  // the warning page and its form first
    drive.add(large);
    auto args = [&](const std::string& link) {
        return concat({example("drive_link"), link}, reach(drive.connect_to()));
    };

    auto result = run_process(args("https://drive.google.com/file/d/1LargeCheckpoint_x9/view?usp=sharing"));
    INFO(result.out << result.err);
    CHECK(result.exit_code == 0);
    auto lines = lines_of(result.out);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "file id:  1LargeCheckpoint_x9");
    CHECK(lines[1] == "name:     big_model.safetensors");
    CHECK(lines[2] == "size:     300000 bytes");
    CHECK(lines[3].rfind("download: https://drive.usercontent.google.com/download?id=1LargeCheckpoint_x9", 0) == 0);
    CHECK(contains(lines[3], "uuid=***"));               // the confirmation is a short-lived credential
    CHECK(drive.usercontent().count("/download") >= 2);  // the warning page, then the confirmed URL

    auto unknown = run_process(args("https://drive.google.com/open?id=1NoSuchFile"));
    CHECK(unknown.exit_code == 4);
    CHECK(lines_of(unknown.out) == std::vector<std::string>{"file id:  1NoSuchFile"});
    CHECK(contains(unknown.err, "1NoSuchFile"));

    auto requests_before = drive.drive().requests().size();
    auto folder = run_process(args("https://drive.google.com/drive/folders/1Folder"));
    CHECK(folder.exit_code == 2);
    CHECK(contains(folder.err, "names a Drive folder, not a file"));
    auto elsewhere = run_process(args("https://example.com/model.safetensors"));
    CHECK(elsewhere.exit_code == 2);
    CHECK(contains(elsewhere.err, "https://example.com/model.safetensors is not a Google Drive link"));
    CHECK(drive.drive().requests().size() == requests_before);  // refused from the link alone
}

TEST_CASE("examples: download_one installs a URL into a folder with progress events and the file's size and SHA-256") {
    TempDir served;
    std::string model = test_bytes(3000000, 62);
    served.write("models/model.safetensors", model);
    FileServer server(served.path());
    TempDir dir;
    auto folder = dir / "out";

    auto result = run_process({example("download_one"), server.url("/models/model.safetensors"), folder.string()});
    INFO(result.out << result.err);
    CHECK(result.exit_code == 0);
    auto installed = folder / "model.safetensors";
    auto lines = lines_of(result.out);
    REQUIRE(lines.size() >= 2);
    CHECK(lines.front() == "start " + installed.string() + " (3000000 bytes)");
    CHECK(lines.back() ==
          "installed " + installed.string() + ": 3000000 bytes, sha256 " + provision::detail::sha256_hex(model));
    CHECK(read_whole_file(installed) == model);
    CHECK(std::vector<fs::path>(fs::directory_iterator(folder), fs::directory_iterator()) ==
          std::vector<fs::path>{installed});

    // A digest that does not match is never installed (8: integrity).
    auto wrong = run_process({example("download_one"), server.url("/models/model.safetensors"),
                              (dir / "wrong").string(), "--sha256", std::string(64, 'a')});
    CHECK(wrong.exit_code == 8);
    CHECK(contains(wrong.err, "error: download_one: "));
    CHECK_FALSE(fs::exists(dir / "wrong/model.safetensors"));
    auto gone = run_process({example("download_one"), server.url("/models/gone.safetensors"), (dir / "gone").string()});
    CHECK(gone.exit_code == 4);
    CHECK(contains(gone.err, "404"));
}

TEST_CASE(
    "examples: download_one stops promptly on SIGINT through the cancel flag, keeps the .part, exits 130, and "
    "resumes") {
    auto body = std::make_shared<const std::string>(test_bytes(20u << 20, 63));
    std::atomic<bool> throttled{true};
    auto server = LoopbackServer::http();
    server->server().Get("/big.safetensors",
                         [&server, body, &throttled](const httplib::Request& req, httplib::Response& res) {
                             provision_test::ServeOptions options;
                             if (throttled) options.bytes_per_second = 512u << 10;  // about 20 s for the whole file
                             res.set_header("ETag", "\"big-v1\"");
                             server->serve_bytes(res, req, body, options);
                         });
    TempDir dir;
    auto part = dir / "out/big.safetensors.part";
    Child child({example("download_one"), server->url("/big.safetensors"), (dir / "out").string()});
    // Cancelled within its first bytes, a transfer keeps nothing (they are
    // judged before they are written), so the resume below would prove
    // nothing: the signal waits for a megabyte, four 256 KiB writes.
    REQUIRE(wait_for([&] {
        auto lines = lines_of(child.out());
        for (auto line = lines.rbegin(); line != lines.rend(); ++line) {
            auto words = words_of(*line);
            if (words.size() >= 2 && words[0] == "progress") return std::stoull(words[1]) >= (1u << 20);
        }
        return false;
    }));
    auto sent = std::chrono::steady_clock::now();
    child.signal(SIGINT);
    int code = child.wait();
    auto took = std::chrono::steady_clock::now() - sent;
    INFO(child.out() << child.err());
    CHECK(child.ended_by_signal() == 0);  // it exited by itself; a kill by SIGINT would also read 130
    CHECK(code == 130);
    CHECK(took < std::chrono::seconds(5));
    CHECK(lines_of(child.out()).at(0) == "start " + (dir / "out/big.safetensors").string() + " (20971520 bytes)");
    CHECK(contains(child.err(), "cancelled: download_one: stopped ("));
    CHECK(contains(child.err(), "kept in big.safetensors.part; the next run continues from there)"));
    CHECK(fs::exists(part));
    CHECK_FALSE(fs::exists(dir / "out/big.safetensors"));

    // The next run continues: it fetches less than the whole file and installs the right bytes.
    throttled = false;
    REQUIRE(server->wait_until_idle());
    auto served_before = server->bytes_sent();
    auto again = run_process({example("download_one"), server->url("/big.safetensors"), (dir / "out").string()});
    INFO(again.out << again.err);
    CHECK(again.exit_code == 0);
    CHECK(read_whole_file(dir / "out/big.safetensors") == *body);
    CHECK(server->bytes_sent() - served_before < body->size());
    CHECK_FALSE(fs::exists(part));
}

TEST_CASE(
    "examples: check_lockfile checks a workspace against the provision.lock the CLI wrote, naming what is missing or "
    "differs") {
    TempDir served;
    std::string base = test_bytes(400000, 64);
    std::string detail = test_bytes(150000, 65);
    served.write("base.safetensors", base);
    served.write("detail.safetensors", detail);
    FileServer server(served.path());
    TempDir dir;
    auto ws = dir / "ws";
    auto config = dir.write("provision.toml", "[models.checkpoints]\nbase = \"" + server.url("/base.safetensors") +
                                                  "\"\n\n"
                                                  "[models.lora.detail]\nurl = \"" +
                                                  server.url("/detail.safetensors") +
                                                  "\"\n"
                                                  "filename = \"add_detail.safetensors\"\n");
    auto provisioned = run_process({PROVISION_CLI_PATH, config.string(), "--workspace", ws.string()});
    INFO(provisioned.out << provisioned.err);
    REQUIRE(provisioned.exit_code == 0);
    auto lock = (ws / "provision.lock").string();
    REQUIRE(fs::exists(lock));

    auto matching = run_process({example("check_lockfile"), lock, ws.string()});
    INFO(matching.out << matching.err);
    CHECK(matching.exit_code == 0);
    auto lines = lines_of(matching.out);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0].rfind(lock + ": 2 files pinned by a run of " + config.string() + " at ", 0) == 0);
    CHECK(words_of(lines[1]) ==
          std::vector<std::string>{"ok", "models.checkpoints.base", "sdnext/models/Stable-diffusion/base.safetensors"});
    CHECK(words_of(lines[2]) ==
          std::vector<std::string>{"ok", "models.lora.detail", "sdnext/models/Lora/add_detail.safetensors"});
    CHECK(lines[3] == "2 of 2 files match " + lock);

    // Same size, other bytes: only the digest can tell. Then a missing and a truncated file.
    std::string tampered = detail;
    tampered[1000] ^= 1;
    dir.write("ws/sdnext/models/Lora/add_detail.safetensors", tampered);
    auto differs = run_process({example("check_lockfile"), lock, ws.string()});
    CHECK(differs.exit_code == 1);
    CHECK(contains(
        differs.out,
        "differs  models.lora.detail  sdnext/models/Lora/add_detail.safetensors: its SHA-256 is not the lock's " +
            provision::detail::sha256_hex(detail)));
    CHECK(contains(differs.out, "1 of 2 files match"));
    fs::remove(ws / "sdnext/models/Stable-diffusion/base.safetensors");
    dir.write("ws/sdnext/models/Lora/add_detail.safetensors", detail.substr(0, 1000));
    auto broken = run_process({example("check_lockfile"), lock, ws.string()});
    INFO(broken.out);
    CHECK(broken.exit_code == 1);
    CHECK(words_of(lines_of(broken.out).at(1)) ==
          std::vector<std::string>{"missing", "models.checkpoints.base",
                                   "sdnext/models/Stable-diffusion/base.safetensors"});
    CHECK(contains(broken.out, "add_detail.safetensors: 1000 bytes, the lock says 150000"));
    CHECK(contains(broken.out, "0 of 2 files match"));

    auto bad_lock = dir.write("bad.lock", "version = 1\n\n[[file]]\nentry = \"models.x.y\"\nsize = \"big\"\n");
    auto unreadable = run_process({example("check_lockfile"), bad_lock.string(), ws.string()});
    CHECK(unreadable.exit_code == 2);
    CHECK(contains(unreadable.err, bad_lock.string() + ":"));
    CHECK(unreadable.out.empty());
}

TEST_CASE(
    "examples: embed_minimal provisions from a URL or a local path, as provision() chooses, through the single "
    "header") {
    TempDir served;
    std::string model = test_bytes(200000, 66);
    served.write("base.safetensors", model);
    FileServer server(served.path());
    std::string config = "[models.checkpoints]\nbase = \"" + server.url("/base.safetensors") + "\"\n";
    served.write("provision.toml", config);
    TempDir dir;

    auto from_url = run_process({example("embed_minimal"), server.url("/provision.toml"), (dir / "a").string()});
    INFO(from_url.out << from_url.err);
    CHECK(from_url.exit_code == 0);
    auto installed = dir / "a/sdnext/models/Stable-diffusion/base.safetensors";
    CHECK(lines_of(from_url.out) ==
          std::vector<std::string>{"installed models.checkpoints.base " + installed.string()});
    CHECK(read_whole_file(installed) == model);

    // A local file whose name starts with "http" is still a file, not a URL.
    dir.write("http-models.toml", config);
    auto from_file = run_process({"/bin/sh", "-c",
                                  "cd '" + dir.path().string() + "' && exec '" + example("embed_minimal") +
                                      "' http-models.toml '" + (dir / "b").string() + "'"});
    INFO(from_file.out << from_file.err);
    CHECK(from_file.exit_code == 0);
    CHECK(lines_of(from_file.out) ==
          std::vector<std::string>{"installed models.checkpoints.base " +
                                   (dir / "b/sdnext/models/Stable-diffusion/base.safetensors").string()});
    // And a second run finds it in place.
    auto again = run_process({example("embed_minimal"), (dir / "http-models.toml").string(), (dir / "b").string()});
    CHECK(again.exit_code == 0);
    CHECK(contains(again.out, "present   models.checkpoints.base"));
}

}  // namespace suite_examples
