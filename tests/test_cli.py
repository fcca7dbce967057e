"""Every command through click's CliRunner; errors are one line and exit 1."""
import json
import subprocess
import sys

from click.testing import CliRunner

from slmkit.cli import cli


def test_help_lists_commands():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "info" in r.output


def test_info_describes_the_demo_model_by_default():
    r = CliRunner().invoke(cli, ["info"])
    assert r.exit_code == 0, r.output
    assert "slmkit-demo" in r.output and "<|task:t2i|>" in r.output and "F16" in r.output
    data = json.loads(CliRunner().invoke(cli, ["info", "--json"]).output)
    assert data["architecture"] == "gpt2" and data["weights_dtypes"] == {"F16": data["n_layer"] * 12 + 4}
    assert "<|len:short|>" in data["added_tokens"] and data["parameters"] > 1_000_000


def test_info_on_odd_folder(odd_gpt2):
    data = json.loads(CliRunner().invoke(cli, ["info", str(odd_gpt2), "--json"]).output)
    assert (data["n_embd"], data["n_inner"], data["tokenizer"]) == (320, 1000, "vocab.json+merges.txt")


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    r = CliRunner().invoke(cli, ["info", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.strip().count("\n") == 0 and "unsupported architecture 'bert'" in r.output
    assert "Traceback" not in r.output


def test_python_dash_m_runs_the_cli(tmp_path):
    p = subprocess.run([sys.executable, "-m", "slmkit", "info", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stderr.strip() == f"error: no such model folder: {tmp_path / 'missing'}"
