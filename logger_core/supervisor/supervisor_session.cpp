// Sessions and trials: opening and closing the session folder, starting and stopping trials at
// a common instant, and waiting for that instant.
#include "supervisor.hpp"
#include "supervisor_detail.hpp"

#include "clock.hpp"
#include "pico_link.hpp"

#include <algorithm>

namespace pilogger {

using supervisor_detail::ok_result;

namespace {
json clock_anchor() {
    ClockTriple t = read_clock_triple();
    return json{{"realtime_ns", t.realtime_ns},
                {"monotonic_ns", t.mono_ns},
                {"boottime_ns", t.boottime_ns},
                {"uncertainty_ns", t.uncertainty_ns},
                {"wall_time_utc", format_utc(t.realtime_ns)}};
}
}  // namespace

void Supervisor::start_session(const std::string& label, ResultCallback done) {
    if (shutting_down_) return done(CommandResult::failure(errc::kBadState, "the supervisor is shutting down"));
    if (session_ || session_starting_) {
        return done(CommandResult::failure(errc::kBadState,
                                           "a session is already open" + (session_ ? ": " + session_->dir() : "")));
    }
    session_starting_ = true;
    Session::create(
        loop_, requests_, config_.data_dir, label, config_.supervisor.clock_anchor_interval_ms,
        [this](const std::string& message) { log("error", message); },
        [this, done = std::move(done)](std::unique_ptr<Session> s, const std::string& error) {
            session_starting_ = false;
            if (!error.empty()) {
                log("error", error);
                start_modules();
                start_pico();
                done(CommandResult::failure(errc::kIoError, error));
                return;
            }
            session_ = std::move(s);
            session_closing_ = false;
            ++session_generation_;
            trials_.clear();
            next_note_id_ = 1;
            notes_dropped_ = 0;
            session_dirs_.push_back(session_->dir());
            clock_anchors_ = json{{"start", clock_anchor()}};
            log("info", "session " + session_->dir());
            record_event("session_start", "", session_->label().empty() ? "" : "label=" + session_->label(),
                         session_->start_mono_ns());
            rewrite_session_json();
            broadcast("session", json{{"active", true}, {"dir", session_->dir()}, {"name", session_->name()}});
            start_modules();
            if (pico_) {
                pico_->open_session(session_->dir());
                start_pico();
            }
            unblock_all();
            sync_all([this, done](json results, bool) {
                if (!session_) return done(CommandResult::failure(errc::kBadState, "the session closed meanwhile"));
                done(ok_result(json{{"session_dir", session_->dir()}, {"name", session_->name()}, {"modules", results}}));
            });
        });
}

void Supervisor::stop_session(ResultCallback done) {
    leave_session([this, done](const CommandResult& left) {
        if (!left.ok) return done(left);
        close_session_files(left.result, done);
    });
}

void Supervisor::leave_session(ResultCallback done) {
    if (!session_) return done(CommandResult::failure(errc::kBadState, "no session is open"));
    if (session_closing_) return done(CommandResult::failure(errc::kBadState, "the session is already closing"));
    if (trial_) {
        stop_trial([this, done = std::move(done)](const CommandResult&) { leave_session(done); });
        return;
    }
    session_closing_ = true;
    unblock_all();
    sync_all([done = std::move(done)](json results, bool) { done(ok_result(results)); });
}

void Supervisor::close_session_files(const json& module_results, ResultCallback done) {
    record_undelivered_notes();
    record_event("session_stop", "", "");
    clock_anchors_["stop"] = clock_anchor();
    rewrite_session_json();
    std::string dir = session_->dir();
    log("info", "session closed: " + dir);
    broadcast("session", json{{"active", false}, {"dir", dir}});
    auto close_files = [this, dir, module_results, done] {
        session_->close([this, dir, module_results, done] {
            session_.reset();
            session_closing_ = false;
            done(ok_result(json{{"session_dir", dir}, {"modules", module_results}}));
        });
    };
    if (pico_) return pico_->close_session(close_files);
    close_files();
}

void Supervisor::start_trial(const std::string& label, ResultCallback done) {
    if (shutting_down_) return done(CommandResult::failure(errc::kBadState, "the supervisor is shutting down"));
    if (!session_ || session_closing_) {
        return done(CommandResult::failure(errc::kBadState, "no session is open; start one with 'pilogger session start'"));
    }
    if (trial_) return done(CommandResult::failure(errc::kBadState, "trial " + std::to_string(trial_->number) + " is already recording"));
    if (std::string why = disk_too_full(); !why.empty()) return done(CommandResult::failure(errc::kIoError, why));
    Trial t;
    t.number = static_cast<int>(trials_.size()) + 1;
    t.label = label;
    t.start_at_mono_ns = mono_ns() + config_.supervisor.trial_start_delay_ms * 1'000'000;
    trial_ = t;
    log("info", "trial " + std::to_string(t.number) + " starts" + (label.empty() ? "" : " (" + label + ")"));
    record_event("trial_start", "", label.empty() ? "" : "label=" + label, t.start_at_mono_ns);
    if (pico_) pico_->trial_started(t.number, t.start_at_mono_ns);
    rewrite_session_json();
    broadcast("trial", json{{"active", true}, {"trial", t.number}, {"label", label}, {"start_at_mono_ns", t.start_at_mono_ns}});
    unblock_all();
    sync_all([t, done = std::move(done)](json results, bool) {
        done(ok_result(json{{"trial", t.number}, {"start_at_mono_ns", t.start_at_mono_ns}, {"modules", results}}));
    });
}

void Supervisor::stop_trial(ResultCallback done, std::optional<int64_t> stop_at_mono_ns) {
    if (!trial_) return done(CommandResult::failure(errc::kBadState, "no trial is recording"));
    Trial t = *trial_;
    int64_t now = mono_ns();
    t.stop_at_mono_ns = stop_at_mono_ns.value_or(now + config_.supervisor.trial_start_delay_ms * 1'000'000);
    t.stop_at_mono_ns = std::max({t.stop_at_mono_ns, t.start_at_mono_ns + 1, now});
    record_event("trial_stop", "", "", t.stop_at_mono_ns);
    if (pico_) pico_->trial_stopped(t.number, t.stop_at_mono_ns);
    trials_.push_back(t);
    trial_.reset();
    planned_stop_at_.reset();
    log("info", "trial " + std::to_string(t.number) + " stops");
    rewrite_session_json();
    broadcast("trial", json{{"active", false}, {"trial", t.number}, {"stop_at_mono_ns", t.stop_at_mono_ns}});
    unblock_all();
    sync_all([this, t, done = std::move(done)](json results, bool) {
        auto finished = [t, done, results] {
            done(ok_result(json{{"trial", t.number}, {"stop_at_mono_ns", t.stop_at_mono_ns}, {"modules", results}}));
        };
        // The trial ends at its stop instant, not when the quickest module has answered.
        wait_until(t.stop_at_mono_ns, finished);
    });
}

void Supervisor::wait_until(int64_t at_mono_ns, std::function<void()> then) {
    int64_t left_ns = at_mono_ns - mono_ns();
    if (left_ns <= 0) return then();
    // libuv timers count whole milliseconds on a cached clock: round up, and check again.
    uint64_t wait_ms = static_cast<uint64_t>(left_ns / 1'000'000 + 1);
    // Each wait owns its timer, so overlapping waits never cancel each other.
    waits_.push_back(std::make_unique<uv::Timer>(loop_));
    uv::Timer* timer = waits_.back().get();
    timer->start(wait_ms, 0, [this, timer, at_mono_ns, then = std::move(then)] {
        auto self = std::find_if(waits_.begin(), waits_.end(), [timer](const auto& w) { return w.get() == timer; });
        std::unique_ptr<uv::Timer> owned = std::move(*self);  // keeps the running callback's timer alive
        waits_.erase(self);
        wait_until(at_mono_ns, then);
    });
}

}  // namespace pilogger
