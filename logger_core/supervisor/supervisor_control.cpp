// Control requests: status, module actions and module commands, and the dispatch of each request.
#include "supervisor.hpp"
#include "supervisor_detail.hpp"

#include "clock.hpp"
#include "control_request.hpp"
#include "output_queue.hpp"
#include "pico_link.hpp"

#include <unistd.h>

#include <algorithm>

namespace pilogger {

using supervisor_detail::module_status;
using supervisor_detail::ok_result;

namespace {
// A client's commands to a module wait in memory until the module reads them: 40 clients sending
// 200 KB ping arguments were +73 MB. The supervisor's own commands are never held back.
constexpr size_t kMaxModuleCommandBacklog = 1024 * 1024;
}  // namespace

void Supervisor::module_action(const std::string& action, const std::string& name, ResultCallback done) {
    Entry* e = find(name);
    if (e == nullptr) {
        std::string names;
        for (const auto& m : modules_) names += (names.empty() ? "" : ", ") + m.process->name();
        return done(CommandResult::failure(errc::kBadRequest, "no module named '" + name + "' (modules: " + names + ")"));
    }
    record_event("module_" + action, name, "requested");
    if (action == "enable") {
        e->process->enable();
        done(ok_result(json{{"module", name}, {"state", to_string(e->process->state())}}));
    } else if (action == "disable") {
        e->process->disable([done, name] { done(ok_result(json{{"module", name}, {"state", "disabled"}})); });
    } else {
        e->process->restart("requested");
        done(ok_result(json{{"module", name}, {"state", to_string(e->process->state())}}));
    }
}

void Supervisor::module_command(const std::string& name, const std::string& cmd, const json& args,
                                ResultCallback done) {
    // The commands only the supervisor sends were refused with the request (read_control_request).
    std::vector<Entry*> targets;
    if (name == "*") {
        for (auto& e : modules_) {
            if (e.process->connected()) targets.push_back(&e);
        }
    } else if (Entry* e = find(name)) {
        targets.push_back(e);
    } else {
        return done(CommandResult::failure(errc::kBadRequest, "no module named '" + name + "'"));
    }
    auto send = [this, &cmd, &args](Entry* e, ResultCallback then) {
        size_t unread = e->process->unread_input_bytes();
        if (unread > kMaxModuleCommandBacklog) {
            ++module_commands_refused_;
            std::string why = e->process->name() + " has not read " + std::to_string(unread / 1024) +
                              " KiB of earlier commands yet (limit " + std::to_string(kMaxModuleCommandBacklog / 1024) +
                              " KiB); try again";
            if (refusal_limit_.allow(mono_ns())) record_event("module_command_refused", e->process->name(), why);
            return then(CommandResult::failure(errc::kUnavailable, why));
        }
        e->process->send(cmd, args, std::move(then));
    };
    if (name != "*") return send(targets[0], [done](const CommandResult& r) { done(r); });
    auto results = std::make_shared<json>(json::object());
    auto remaining = std::make_shared<size_t>(targets.size() + 1);
    auto one_done = [results, remaining, done] {
        if (--*remaining == 0) done(ok_result(json{{"modules", *results}}));
    };
    for (Entry* e : targets) {
        std::string module = e->process->name();
        send(e, [results, one_done, module](const CommandResult& r) {
            (*results)[module] = r.to_json();
            one_done();
        });
    }
    one_done();
}

json Supervisor::status() const {
    int64_t now = mono_ns();
    json modules = json::array();
    for (const auto& e : modules_) modules.push_back(module_status(*e.process));
    json out{{"supervisor",
              {{"pid", static_cast<int64_t>(getpid())},
               {"version", PILOGGER_VERSION},
               {"uptime_s", static_cast<double>(now - started_mono_ns_) / 1e9},
               {"config_file", config_.source_file},
               {"data_dir", config_.data_dir},
               {"shutting_down", shutting_down_},
               {"mono_ns", now},
               // Log and status text a stalled terminal (or log reader) never took.
               {"output_dropped_bytes", stderr_queue().dropped_bytes()}}},
             {"session", nullptr},
             {"trial", nullptr},
             {"modules", modules},
             {"notes", {{"next_id", next_note_id_}, {"queued", queued_notes_.size()}, {"dropped", notes_dropped_},
                        {"waiting_bytes", note_bytes_waiting_}}},
             {"module_commands_refused", module_commands_refused_},
             {"disk",
              {{"free_bytes", disk_free_bytes_},
               {"reserve_bytes", config_.disk_reserve_mb * 1024 * 1024},
               {"write_rate_bytes_per_s", static_cast<int64_t>(disk_write_rate_)}}},
             {"control", control_ ? control_->stats() : json(nullptr)}};
    if (session_) {
        out["session"] = {{"name", session_->name()},
                          {"dir", session_->dir()},
                          {"label", session_->label()},
                          {"closing", session_closing_},
                          {"start_mono_ns", session_->start_mono_ns()},
                          {"elapsed_s", static_cast<double>(now - session_->start_mono_ns()) / 1e9},
                          {"trials", trials_.size() + (trial_ ? 1 : 0)}};
    }
    if (trial_) {
        out["trial"] = {{"number", trial_->number},
                        {"label", trial_->label},
                        {"start_at_mono_ns", trial_->start_at_mono_ns},
                        {"elapsed_s", std::max(0.0, static_cast<double>(now - trial_->start_at_mono_ns) / 1e9)}};
    }
    out["pico"] = pico_ ? pico_->status() : json(nullptr);
    return out;
}

void Supervisor::handle_control(ControlServer::ClientId client, const Message& message) {
    const ControlRequest request = read_control_request(message);
    const int64_t id = request.id;
    auto answer = [this, client, id](const CommandResult& r) {
        if (control_) control_->reply(client, r.ok ? make_ok(id, r.result) : make_error(id, r.code, r.message));
    };
    if (!request.ok()) return answer(CommandResult::failure(request.error_code, request.problem));
    const std::string& cmd = request.cmd;

    if (cmd == "status") return answer(ok_result(status()));
    if (cmd == "subscribe") {
        control_->set_subscribed(client, true);
        return answer(ok_result(status()));
    }
    if (cmd == "shutdown") {
        answer(ok_result(json{{"shutting_down", true}}));
        shutdown("shutdown requested over the control socket");
        return;
    }
    if (cmd == "session_start") return start_session(request.label, answer);
    if (cmd == "trial_start") return start_trial(request.label, answer);
    if (cmd == "session_stop") return stop_session(answer);
    if (cmd == "trial_stop") return stop_trial(answer);
    if (cmd == "note") return add_note(request.text, request.mono_ns, answer);
    if (cmd == "module_command") return module_command(request.name, request.module_cmd, request.module_args, answer);
    // module_enable, module_disable, module_restart
    module_action(cmd.substr(7), request.name, answer);
}

}  // namespace pilogger
