"""A bad config stops everything before anything starts, and says exactly where and what."""
import os
import unittest

from harness import SOURCE, Rig


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

    def test_shipped_configs_check_ok(self):
        rig = self.rig_with("data_dir: /tmp/x\nmodules: {notes: {}}\n")
        for name in ("demo.yaml", "pilogger.yaml"):
            r = rig.cli("config", "check", os.path.join(SOURCE, "config", name))
            self.assertIn(": OK", r.stdout)


if __name__ == "__main__":
    unittest.main()
