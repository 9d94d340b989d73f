"""The README's plugin example, run exactly as written: by module:function and through a real
entry point of an installed distribution."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- example: plugin-verifier"


def readme_plugin_source() -> str:
    text = README.read_text()
    after = text[text.index(MARKER):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def run_verify(verifier: str, rows: list[dict], tmp_path: Path, pythonpath: list[Path],
               cwd: Path | None = None) -> tuple[list[dict], str]:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
    r = subprocess.run([sys.executable, "-m", "grpo.cli", "verify", "--verifier", verifier, "--input", str(src),
                        "--output", str(out)], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in out.read_text().splitlines()], r.stderr


ROWS = [{"completion": "so the capital is Paris", "answer": "paris"},
        {"completion": "I think it is Lyon.", "answer": "Paris"},
        {"completion": "", "answer": "Paris"}]


def test_readme_plugin_by_module_function(tmp_path):
    source = readme_plugin_source()
    assert len(source.strip().splitlines()) <= 12  # "about ten lines"
    (tmp_path / "my_verifiers.py").write_text(source)
    # as the README says: from the folder that holds my_verifiers.py, nothing on PYTHONPATH
    judged, _ = run_verify("my_verifiers:last_word", ROWS, tmp_path, [], cwd=tmp_path)
    assert [j["status"] for j in judged] == ["correct", "incorrect", "incorrect"]
    assert judged[1]["reason"] == "last word 'Lyon'" and judged[2]["reason"] == "empty completion"


def test_readme_plugin_through_an_installed_entry_point(tmp_path):
    """A distribution on sys.path that declares the README's entry point makes `last_word` a name."""
    site = tmp_path / "site"
    dist = site / "my_verifiers_pkg-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "my_verifiers.py").write_text(readme_plugin_source())
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-verifiers-pkg\nVersion: 0.1\n")
    toml = README.read_text().split('[project.entry-points."rlvr.verifiers"]\n', 1)[1].split("\n", 1)[0]
    line = toml.replace('"', "")  # entry_points.txt is INI: no quotes
    (dist / "entry_points.txt").write_text(f"[rlvr.verifiers]\n{line}\n")
    judged, _ = run_verify("last_word", ROWS, tmp_path, [site])
    assert [j["status"] for j in judged] == ["correct", "incorrect", "incorrect"]


def test_readme_plugin_in_train_fails_cleanly_on_a_typo(tmp_path):
    """A misspelled function name gives the one-line error, not a traceback, and writes nothing."""
    (tmp_path / "my_verifiers.py").write_text(readme_plugin_source())
    env = {**os.environ, "PYTHONPATH": ""}
    r = subprocess.run([sys.executable, "-m", "grpo.cli", "train", "--set", "verifier=my_verifiers:last_wrd",
                        "--set", "rollout.engine=hf", "--output-dir", "run"], capture_output=True, text=True,
                       env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "has no function 'last_wrd'" in r.stderr and not (tmp_path / "run").exists()
