"""A bad config stops everything before anything starts, and says exactly where and what."""
import os
import shutil
import subprocess
import unittest

from harness import PILOGGER, SOURCE, Rig


class ConfigErrors(unittest.TestCase):
    def rig_with(self, text):
        rig = Rig(config_text=text)
        self.addCleanup(rig.cleanup)
        return rig

    def test_unknown_key_names_key_line_and_column(self):
        rig = self.rig_with("data_dir: /tmp/never-created-by-pilogger\nmodules:\n  notes:\n    enabeld: true\n")
        for args in (["run", "--config", rig.config], ["config", "check", rig.config]):
            r = rig.cli(*args, check=False)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(f"{rig.config}:4:5: modules.notes.enabeld: unknown key", r.stderr)
            self.assertIn("expected one of", r.stderr)
        # Nothing started: no data folder, no control socket.
        self.assertFalse(os.path.exists("/tmp/never-created-by-pilogger"))
        self.assertFalse(os.path.exists(os.path.join(rig.runtime, "pilogger", "control.sock")))

    def test_wrong_type_and_syntax_error(self):
        rig = self.rig_with("data_dir: /tmp/x\nsupervisor:\n  heartbeat_timeout_ms: fast\nmodules: {notes: {}}\n")
        r = rig.cli("config", "check", rig.config, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn(":3:25: supervisor.heartbeat_timeout_ms: expected a whole number", r.stderr)

        rig = self.rig_with("data_dir: /tmp/x\nmodules:\n  notes: {enabled: true\n")
        r = rig.cli("run", "--config", rig.config, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("YAML syntax error", r.stderr)

    def test_missing_file(self):
        rig = self.rig_with("data_dir: /tmp/x\nmodules: {notes: {}}\n")
        r = rig.cli("run", "--config", "/no/such/pilogger.yaml", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("/no/such/pilogger.yaml: cannot read the config file", r.stderr)

    def refused(self, rig, where, *texts, config=None):
        """config check and run both exit 2 naming file:line:col, start nothing and create nothing."""
        config = config or rig.config
        for args in (["config", "check", config], ["run", "--config", config]):
            r = rig.cli(*args, check=False)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(f"{config}{where}", r.stderr)
            for text in texts:
                self.assertIn(text, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(rig.runtime, "pilogger", "control.sock")))
        self.assertFalse(os.path.exists(rig.data), "no data folder")
        return r

    def test_a_folder_is_not_an_empty_file(self):
        rig = self.rig_with("data_dir: /tmp/x\nmodules: {notes: {}}\n")
        folder = os.path.join(rig.tmp, "configs")
        os.mkdir(folder)
        self.refused(rig, ": is a folder, not a config file", config=folder)

    def test_an_unterminated_quote_is_a_syntax_error_where_it_starts(self):
        rig = self.rig_with(f'data_dir: "{os.path.join("/tmp", "x")}\nmodules:\n  notes: {{}}\n')
        r = self.refused(rig, ":1:11: data_dir: YAML syntax error", 'no closing "')
        self.assertNotIn("modules: missing", r.stderr)

    def test_a_second_document_is_refused(self):
        rig = self.rig_with("data_dir: {data}\nmodules:\n  notes: {{}}\n---\nmodules:\n  cam0: {{type: camera}}\n")
        with open(rig.config, "w") as f:
            f.write(f"data_dir: {rig.data}\nmodules:\n  notes: {{}}\n---\nmodules:\n  cam0: {{type: camera}}\n")
        self.refused(rig, ":4:1: a second YAML document")

    def test_explicit_tags_are_refused(self):
        rig = self.rig_with("")
        with open(rig.config, "w") as f:
            f.write(f"data_dir: {rig.data}\nsession_label: !!binary Y2Fy\nmodules:\n  notes: {{}}\n")
        self.refused(rig, ":2:16: session_label: the YAML tag !!binary is not supported")

    def test_a_module_program_that_cannot_run_is_refused_before_anything_starts(self):
        rig = self.rig_with("")
        with open(rig.config, "w") as f:
            f.write(f"data_dir: {rig.data}\nmodules:\n  notes: {{}}\n  cam0:\n    type: camera\n"
                    f"    backend: test_pattern\n    executable: /opt/old/pilogger-camera\n")
        self.refused(rig, ":7:17: modules.cam0.executable: '/opt/old/pilogger-camera' does not exist")
        not_executable = os.path.join(rig.tmp, "pilogger-camera")
        with open(not_executable, "w") as f:
            f.write("#!/bin/sh\n")
        with open(rig.config, "w") as f:
            f.write(f"data_dir: {rig.data}\nmodules:\n  cam0:\n    type: camera\n    executable: {not_executable}\n")
        self.refused(rig, ":5:17: modules.cam0.executable:", "is not executable (mode 0644)")

    def test_the_default_module_program_must_be_next_to_pilogger_or_on_path(self):
        rig = self.rig_with("")
        with open(rig.config, "w") as f:
            f.write(f"data_dir: {rig.data}\nmodules:\n  notes: {{}}\n")
        # pilogger alone in a folder, and a PATH without the build: no pilogger-notes anywhere.
        lone = os.path.join(rig.tmp, "lone")
        os.mkdir(lone)
        shutil.copy(PILOGGER, lone)
        env = dict(rig.env, PATH="/usr/bin:/bin")
        r = subprocess.run([os.path.join(lone, "pilogger"), "config", "check", rig.config], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn(f"{rig.config}:3:3: modules.notes.executable: the default, pilogger-notes, is neither next to "
                      f"pilogger ({lone}) nor on PATH", r.stderr)
        # Next to pilogger (how the tests run: build/bin), it is found.
        r = rig.cli("config", "check", rig.config)
        self.assertIn(": OK", r.stdout)

    def test_an_eye_tracker_address_that_cannot_be_is_refused(self):
        rig = self.rig_with("")
        for address, message in (("999.999.999.999:99999", "'999' is not a number from 0 to 255"),
                                 ("192.168.1.20:99999", "has the port '99999', not a number from 1 to 65535"),
                                 ("neon_phone.local", "neither an IPv4 address nor a host name")):
            with self.subTest(address=address):
                with open(rig.config, "w") as f:
                    f.write(f"data_dir: {rig.data}\nmodules:\n  eyetracker:\n    address: {address}\n")
                self.refused(rig, ":4:14: modules.eyetracker.address:", message)

    def test_shipped_configs_check_ok(self):
        rig = self.rig_with("data_dir: /tmp/x\nmodules: {notes: {}}\n")
        for name in ("demo.yaml", "pilogger.yaml"):
            r = rig.cli("config", "check", os.path.join(SOURCE, "config", name))
            self.assertIn(": OK", r.stdout)


if __name__ == "__main__":
    unittest.main()
