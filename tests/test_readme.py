"""The README's quickstart runs as written, and .ci/run calls the README's test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_quickstart_runs(tmp_path, monkeypatch):
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["out"].logits.shape == (2, 4096, 16)
    assert namespace["step"].logits.shape == (2, 16)
    assert (tmp_path / "my_model" / "model.safetensors").is_file()


def test_ci_runs_the_readme_test_command():
    commands = re.search(r"## Set up and run\n.*?```bash\n(.*?)```", README, re.S).group(1)
    lines = [line for line in commands.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 2, "the README states exactly two set-up commands"
    test_command = lines[1].split("&&")[-1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
