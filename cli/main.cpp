#include "commands.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
    using namespace pilogger;
    CLI::App app{"pilogger: synchronized multi-module data logger"};
    app.require_subcommand(1);
    app.set_version_flag("--version", PILOGGER_VERSION);

    cli::RunArgs run_args;
    run_args.config_file = "config/pilogger.yaml";
    auto* run = app.add_subcommand("run", "Run the supervisor in the foreground and record a session");
    run->add_option("--config", run_args.config_file, "YAML config file")->capture_default_str();
    run->add_option("--data-dir", run_args.data_dir, "Folder for sessions (overrides data_dir)");
    run->add_option("--label", run_args.label, "Session label (overrides session_label)");
    run->add_flag("--record", run_args.record, "Start trial 1 at once");
    run->add_option("--trial-label", run_args.trial_label, "Label of the first trial");
    run->add_option("--duration", run_args.duration_s, "Stop the trial and the session after SECONDS, then exit")
        ->check(CLI::PositiveNumber);

    bool json_out = false;
    auto* status = app.add_subcommand("status", "Show the running supervisor's session, trial and modules");
    status->add_flag("--json", json_out, "Print the raw status as JSON");

    std::string label;
    auto* session = app.add_subcommand("session", "Start or stop a session");
    session->require_subcommand(1);
    auto* session_start = session->add_subcommand("start", "Start a new session");
    session_start->add_option("--label", label, "Session label");
    auto* session_stop = session->add_subcommand("stop", "Stop the session (and its trial)");

    auto* trial = app.add_subcommand("trial", "Start or stop a trial (recording)");
    trial->require_subcommand(1);
    auto* trial_start = trial->add_subcommand("start", "Start the next trial");
    trial_start->add_option("--label", label, "Trial label");
    auto* trial_stop = trial->add_subcommand("stop", "Stop the trial");

    std::vector<std::string> note_words;
    auto* note = app.add_subcommand("note", "Add a timestamped note to the session");
    note->add_option("text", note_words, "The note (words are joined with spaces)")->required();

    std::string module_name;
    auto* module = app.add_subcommand("module", "Enable, disable or restart a module");
    module->require_subcommand(1);
    auto* module_enable = module->add_subcommand("enable", "Enable and start a module");
    auto* module_disable = module->add_subcommand("disable", "Stop and disable a module");
    auto* module_restart = module->add_subcommand("restart", "Restart a module");
    for (auto* sub : {module_enable, module_disable, module_restart}) {
        sub->add_option("name", module_name, "Module name from the config")->required();
    }

    bool no_wait = false;
    std::vector<std::string> snapshot_cameras;
    bool snapshot_json = false;
    auto* snapshot = app.add_subcommand("snapshot", "Save a full-resolution still from the cameras into the session");
    snapshot->add_option("camera", snapshot_cameras,
                         "Camera module names (default: every enabled module that takes snapshots, such as cameras)");
    snapshot->add_flag("--json", snapshot_json, "Print the saved files as JSON");

    auto* shutdown = app.add_subcommand("shutdown", "Stop the supervisor (closes the session cleanly)");
    shutdown->add_flag("--no-wait", no_wait, "Return at once instead of waiting for it to exit");

    std::string check_file;
    auto* config = app.add_subcommand("config", "Configuration tools");
    config->require_subcommand(1);
    auto* config_check = config->add_subcommand("check", "Validate a config file");
    config_check->add_option("file", check_file, "YAML config file")->required();

    bool devices_json = false;
    auto* devices = app.add_subcommand("devices", "List the cameras, the Neon eye trackers on the network and the Pico W");
    devices->add_flag("--json", devices_json, "Print the list as JSON");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    if (*run) return cli::run(run_args);
    if (*status) return cli::status(json_out);
    if (*session_start) return cli::client_command("session_start", json{{"label", label}}, false);
    if (*session_stop) return cli::client_command("session_stop", json::object(), false);
    if (*trial_start) return cli::client_command("trial_start", json{{"label", label}}, false);
    if (*trial_stop) return cli::client_command("trial_stop", json::object(), false);
    if (*note) {
        std::string text;
        for (const auto& w : note_words) text += (text.empty() ? "" : " ") + w;
        return cli::client_command("note", json{{"text", text}}, false);
    }
    if (*snapshot) return cli::snapshot(snapshot_cameras, snapshot_json);
    if (*module_enable) return cli::client_command("module_enable", json{{"name", module_name}}, false);
    if (*module_disable) return cli::client_command("module_disable", json{{"name", module_name}}, false);
    if (*module_restart) return cli::client_command("module_restart", json{{"name", module_name}}, false);
    if (*shutdown) return cli::shutdown(!no_wait);
    if (*config_check) return cli::config_check(check_file);
    if (*devices) return cli::devices(devices_json);
    return 2;
}
