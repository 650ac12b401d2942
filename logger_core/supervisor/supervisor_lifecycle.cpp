// The module lifecycle as one reconciliation loop: for each module, what it has acknowledged
// (Phase) against what should be (the open session, the current trial), closed one step at a time.
#include "supervisor.hpp"
#include "supervisor_detail.hpp"

#include "clock.hpp"

#include <algorithm>

namespace pilogger {

using supervisor_detail::ok_result;

namespace {
// Configure and start_session may open devices: they get at least this long.
constexpr int64_t kSetupTimeoutMs = 10000;
// Time a module may take to close its files after the stop instant.
constexpr int64_t kStopGraceMs = 5000;
}  // namespace

int Supervisor::want_session() const { return session_ && !session_closing_ ? session_generation_ : 0; }

int Supervisor::want_trial() const { return want_session() != 0 && trial_ ? trial_->number : 0; }

int64_t Supervisor::stop_at_for(int trial) const {
    for (const auto& t : trials_) {
        if (t.number == trial && t.stop_at_mono_ns != 0) return std::max(t.stop_at_mono_ns, mono_ns());
    }
    return mono_ns();
}

Supervisor::Entry* Supervisor::find(const std::string& name) {
    for (auto& e : modules_) {
        if (e.process->name() == name) return &e;
    }
    return nullptr;
}

Supervisor::Entry* Supervisor::entry_of(ModuleProcess& module) { return find(module.name()); }

void Supervisor::unblock_all() {
    for (auto& e : modules_) e.phase.blocked = false;
}

void Supervisor::converge(Entry& entry, const CommandResult& result) {
    auto waiters = std::move(entry.phase.waiters);
    entry.phase.waiters.clear();
    for (auto& w : waiters) w(result);
}

void Supervisor::step_done(Entry& entry, const CommandResult& result, const std::function<void()>& on_ok) {
    Phase& p = entry.phase;
    p.step_in_flight = false;
    if (result.ok) {
        on_ok();
        sync(entry);
        return;
    }
    // A module that did not answer a lifecycle step no longer knows what state it is in:
    // restart it, and it rejoins the session and trial (in a part file) with its next hello.
    if (result.code == errc::kTimeout && !shutting_down_) {
        entry.process->set_error(result.message);
        entry.process->recover(result.message);
    }
    // A dead process gets a fresh phase with its next hello; anything else waits for a change.
    if (result.code != errc::kUnavailable && result.code != errc::kTimeout) {
        p.blocked = true;
        p.last_failure = result;
        entry.process->set_error(result.message);
        record_event("module_error", entry.process->name(), result.message);
        log("error", entry.process->name() + ": " + result.message);
        if (entry.process->state() != ModuleProcess::State::Recording) entry.process->set_state(ModuleProcess::State::Error);
    }
    converge(entry, result);
}

void Supervisor::sync(Entry& entry) {
    ModuleProcess& m = *entry.process;
    Phase& p = entry.phase;
    if (p.step_in_flight) return;
    if (!m.connected()) {
        if (!m.enabled()) {
            converge(entry, ok_result(json{{"skipped", "disabled"}}));
        } else {
            converge(entry, CommandResult::failure("not_ready", m.name() + " is " + to_string(m.state()) +
                                                                    "; it joins when it is up"));
        }
        return;
    }
    if (p.blocked) {
        converge(entry, p.last_failure);
        return;
    }
    if (m.unresponsive()) {
        converge(entry, CommandResult::failure(errc::kTimeout, m.name() + " is not answering commands"));
        return;
    }
    auto run_step = [&](const std::string& cmd, const json& args, int64_t timeout_ms, std::function<void()> on_ok) {
        p.step_in_flight = true;
        std::string name = m.name();
        m.send(cmd, args,
               [this, name, on_ok = std::move(on_ok)](const CommandResult& r) {
                   if (Entry* e = find(name)) step_done(*e, r, on_ok);
               },
               timeout_ms);
    };
    const int session = want_session();
    const int trial = want_trial();

    if (!p.configured) {
        run_step("configure", json{{"settings", m.config().settings}, {"name", m.name()}, {"stats_interval_ms", 500}},
                 std::max<int64_t>(config_.supervisor.ack_timeout_ms, kSetupTimeoutMs), [&p] { p.configured = true; });
        return;
    }
    if (p.trial != 0 && (p.session_generation != session || p.trial != trial)) {
        int64_t stop_at = stop_at_for(p.trial);
        int64_t timeout = config_.supervisor.ack_timeout_ms + (stop_at - mono_ns()) / 1'000'000 + kStopGraceMs;
        run_step("stop_recording", json{{"stop_at_mono_ns", stop_at}}, timeout, [&p, &m] {
            p.trial = 0;
            m.set_state(ModuleProcess::State::Ready);
        });
        return;
    }
    if (p.session_generation != session) {
        if (p.session_generation != 0) {
            run_step("stop_session", json::object(), config_.supervisor.ack_timeout_ms + kStopGraceMs,
                     [&p] { p.session_generation = 0; });
        } else {
            run_step("start_session",
                     json{{"session_dir", session_->dir()},
                          {"session_name", session_->name()},
                          {"session_start_mono_ns", session_->start_mono_ns()}},
                     std::max<int64_t>(config_.supervisor.ack_timeout_ms, kSetupTimeoutMs),
                     [&p, session] { p.session_generation = session; });
        }
        return;
    }
    if (p.trial != trial) {
        int part = p.last_trial_started == trial ? p.part + 1 : 1;
        // Counted when sent: a module may have created its files before failing to answer.
        p.last_trial_started = trial;
        p.part = part;
        int64_t start_at = std::max(trial_->start_at_mono_ns, mono_ns());
        run_step("start_recording",
                 json{{"trial", trial}, {"part", part}, {"label", trial_->label}, {"start_at_mono_ns", start_at}}, 0,
                 [this, &p, &m, trial, part] {
                     p.trial = trial;
                     m.set_state(ModuleProcess::State::Recording);
                     if (part > 1) record_event("module_part", m.name(), "continues trial in part " + std::to_string(part));
                 });
        return;
    }
    m.set_state(p.trial != 0 ? ModuleProcess::State::Recording : ModuleProcess::State::Ready);
    if (&entry == notes_module()) deliver_notes();
    converge(entry, ok_result(json{{"state", to_string(m.state())}}));
}

void Supervisor::sync_all(std::function<void(json results, bool all_ok)> done) {
    auto results = std::make_shared<json>(json::object());
    auto all_ok = std::make_shared<bool>(true);
    auto remaining = std::make_shared<size_t>(modules_.size() + 1);
    auto one_done = [results, all_ok, remaining, done = std::move(done)] {
        if (--*remaining == 0) done(*results, *all_ok);
    };
    for (auto& e : modules_) {
        std::string name = e.process->name();
        e.phase.waiters.push_back([results, all_ok, one_done, name](const CommandResult& r) {
            (*results)[name] = r.to_json();
            if (!r.ok) *all_ok = false;
            one_done();
        });
    }
    // Index loop: a sync can call back into code that looks modules up, never into adding any.
    for (size_t i = 0; i < modules_.size(); ++i) sync(modules_[i]);
    one_done();
}

void Supervisor::module_hello(ModuleProcess& module) {
    Entry* e = entry_of(module);
    // A new process knows nothing yet; keep only which trial part it last recorded.
    Phase& p = e->phase;
    p.configured = false;
    p.session_generation = 0;
    p.trial = 0;
    p.step_in_flight = false;
    p.blocked = false;
    record_event("module_hello", module.name(), "version " + (module.hello().version.empty() ? "?" : module.hello().version));
    sync(*e);
}

}  // namespace pilogger
