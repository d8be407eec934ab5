// SPDX-License-Identifier: MIT
// provision: the definitions behind engine/downloader.hpp: the lock on a
// target, the check against the disk and the install record, and the
// transfers (engine/transfer*.hpp) repeated until one ends for good.
// Before the guard: downloader.hpp includes this file at its end, and this
// file may also be included on its own.
#include "../downloader.hpp"

#ifndef PROVISION_ENGINE_IMPL_DOWNLOADER_INL_HPP
#define PROVISION_ENGINE_IMPL_DOWNLOADER_INL_HPP

#include "../transfer_connections.hpp"
#include "../transfer_establish.hpp"
#include "../transfer_fetch.hpp"
#include "../transfer_finish.hpp"
#include "../transfer_responses.hpp"

#include <atomic>
#include <string>

namespace provision {

inline PlanCheck Downloader::check(const DownloadPlan& plan) {
    if (plan.file_name.empty()) return check_target(plan, {});
    auto target = detail::join_inside(plan.folder, plan.file_name);
    if (!target) return PlanCheck{};
    return check_target(plan, target.value());
}

inline PlanCheck Downloader::check_target(const DownloadPlan& plan, const std::filesystem::path& target) {
    PlanCheck out;
    out.target = target;
    std::string identity = detail::plan_identity(plan);
    std::optional<detail::InstallRecord> record;
    if (options_.registry)
        record = target.empty() ? options_.registry->find_by_identity(identity, plan.folder)
                                : options_.registry->find(target);
    if (record) {
        auto stamp = detail::stamp_of(record->path);
        // The same source, or the very bytes the source now asks for: a new
        // Hugging Face commit that did not touch this file changes the
        // identity, not the content, and must not cost a download.
        bool same_bytes = !plan.sha256.empty() && plan.sha256 == record->sha256;
        bool same_source =
            same_bytes || (record->identity == identity && record->validator == plan.validator && plan.sha256.empty());
        bool untouched = stamp && *stamp == record->stamp && (!plan.size || *plan.size == stamp->size);
        bool trusted = same_source && untouched;
        if (trusted && options_.verify) {
            auto digest = detail::sha256_file(record->path);
            trusted = digest && digest.value() == record->sha256;
            if (!trusted) {
                out.reason = "its content no longer matches the SHA-256 recorded at install time";
                return out;  // just hashed: no point hashing it again below
            }
        }
        if (trusted) {
            if ((record->identity != identity || record->validator != plan.validator) && options_.registry) {
                detail::InstallRecord updated = *record;
                updated.identity = identity;
                updated.validator = plan.validator;
                (void)options_.registry->put(updated);
            }
            return PlanCheck{InstalledFile{record->path, stamp->size, record->sha256, true}, record->path, 0, ""};
        }
        if (out.reason.empty()) {
            out.reason = !same_source ? "the source changed since it was installed"
                                      : "the file was changed or removed since it was installed";
        }
    }
    // No trustworthy record: a file with a known digest can still be proven by hashing it.
    if (!target.empty() && !plan.sha256.empty()) {
        auto stamp = detail::stamp_of(target);
        if (stamp && (!plan.size || *plan.size == stamp->size)) {
            auto digest = detail::sha256_file(target);
            if (digest && digest.value() == plan.sha256) {
                if (options_.registry) {
                    detail::InstallRecord fresh;
                    fresh.path = target.string();
                    fresh.stamp = *stamp;
                    fresh.sha256 = digest.value();
                    fresh.identity = identity;
                    fresh.validator = plan.validator;
                    (void)options_.registry->put(fresh);
                }
                return PlanCheck{InstalledFile{target, stamp->size, digest.value(), true}, target, 0, ""};
            }
        }
    }
    if (plan.size) {
        std::uint64_t allocated = target.empty() ? 0 : detail::allocated_bytes(detail::part_path_for(target));
        out.bytes_needed = *plan.size - std::min(*plan.size, allocated);
    }
    return out;
}

inline Result<InstalledFile> Downloader::download(const DownloadPlan& plan) { return run(plan, nullptr); }

inline Result<InstalledFile> Downloader::download(const DownloadPlan& plan, const PlanCheck& checked) {
    return run(plan, &checked);
}

namespace detail {

/// Where a plan's file goes, as far as it is known before any request.
struct ExpectedTarget {
    std::optional<std::filesystem::path> path;  ///< none: only the server's answer can name it
    bool guessed = false;                       ///< the URL's name, provisional until the server answers
};

/// The plan's file name; or, when the server will name the file, the URL's
/// name as a guess (most servers keep it). Taking that name now lets a resume
/// ask for the missing bytes only and a second provisioner wait without a
/// request of its own.
inline Result<ExpectedTarget> expected_target(const DownloadPlan& plan) {
    ExpectedTarget expected;
    if (!plan.file_name.empty()) {
        auto joined = join_inside(plan.folder, plan.file_name);
        if (!joined) return make_error(joined.error().code, plan.key_path + ": " + joined.error().message);
        expected.path = joined.value();
    } else if (auto guess = sanitize_file_name(plan.url.last_segment()); !guess.empty()) {
        if (auto joined = join_inside(plan.folder, guess)) {
            expected.path = joined.value();
            expected.guessed = true;
        }
    }
    return expected;
}

}  // namespace detail

inline Result<void> Downloader::lock_target(const DownloadPlan& plan, const std::filesystem::path& path,
                                            detail::FileLock& lock, bool& need_check) {
    const std::string& who = plan.key_path;
    std::error_code fs_error;
    std::filesystem::create_directories(path.parent_path(), fs_error);
    if (fs_error)
        return make_error(errc::io, who + ": cannot create " + path.parent_path().string() + ": " + fs_error.message());
    auto on_wait = [this, &who, &path](long pid) {
        // The holder may be this very process: another entry of this run
        // whose server chose the same name (planned names are checked
        // before any download; a name chosen by the server is learnt late).
        bool this_run = pid == static_cast<long>(::getpid());
        std::string holder =
            this_run ? "another entry of this run"
                     : "another provision process" + (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string());
        emit(Event{EventKind::message, who, path.string(), 0, std::nullopt,
                   who + ": " + path.filename().string() + " is being downloaded by " + holder +
                       "; waiting for it to finish"});
    };
    bool waited = false;
    auto acquired = detail::FileLock::acquire(
        detail::lock_path_for(path), [this] { return cancelled(); }, on_wait, waited);
    if (!acquired) return make_error(acquired.error().code, who + ": " + acquired.error().message);
    lock = std::move(acquired.value());
    if (waited) need_check = true;  // the other process may have installed it meanwhile
    return {};
}

inline Result<InstalledFile> Downloader::run(const DownloadPlan& plan, const PlanCheck* checked) {
    if (checked && checked->present) return *checked->present;
    std::error_code fs_error;
    std::filesystem::create_directories(plan.folder, fs_error);
    if (fs_error)
        return make_error(errc::io,
                          plan.key_path + ": cannot create " + plan.folder.string() + ": " + fs_error.message());
    auto expected = detail::expected_target(plan);
    if (!expected) return expected.error();
    detail::FileLock lock;
    bool need_check = checked == nullptr;
    if (expected->path)
        if (auto locked = lock_target(plan, *expected->path, lock, need_check); !locked) return locked.error();
    if (need_check) {
        auto status = expected->path && !expected->guessed ? check_target(plan, *expected->path) : check(plan);
        if (status.present) return *status.present;
    }
    return transfer_until_done(plan, expected->path, expected->guessed, lock);
}

inline Result<InstalledFile> Downloader::transfer_until_done(const DownloadPlan& plan,
                                                             std::optional<std::filesystem::path> target,
                                                             bool name_guessed, detail::FileLock& lock) {
    const std::string& who = plan.key_path;
    bool fresh = false;
    bool without_range = false;
    int mismatches = 0;
    int restarts = 0;
    while (true) {
        detail::Transfer transfer(http_, options_, plan, target, name_guessed, lock, fresh, without_range);
        auto result = transfer.run();
        // A name the server chose is kept (with its lock) for the next round.
        if (transfer.target()) target = transfer.target();
        if (transfer.name_confirmed()) name_guessed = false;
        switch (transfer.outcome()) {
        case detail::Transfer::Outcome::finished: return result;
        case detail::Transfer::Outcome::mismatch:
            // One fresh download: a flaky proxy or a torn write may explain
            // one mismatch; the same mismatch twice is the server's content.
            if (mismatches++ > 0) {
                if (!result) {
                    auto error = result.error();
                    error.message +=
                        "; a second download from scratch gave the same bytes, so the server's file is not "
                        "the one this digest describes: check the entry's sha256 (or the source's), or the link";
                    return error;
                }
                return result;
            }
            emit(Event{EventKind::retry, who, target ? target->string() : "", 0, plan.size,
                       result.error().message + "; downloading it once more from scratch"});
            fresh = true;
            continue;
        case detail::Transfer::Outcome::restart:
            if (++restarts > 3)
                return make_error(errc::network, who + ": " + plan.url.redacted() +
                                                     " kept changing while it was downloaded; try again later");
            fresh = transfer.wants_fresh();
            without_range = without_range || transfer.wants_without_range();
            continue;
        case detail::Transfer::Outcome::lock_busy: {
            bool need_check = false;
            if (auto locked = lock_target(plan, *target, lock, need_check); !locked) return locked.error();
            auto status = check_target(plan, *target);
            if (status.present) return *status.present;
            continue;
        }
        }
    }
}

}  // namespace provision

#endif
