"""Safety conventions of the whole repository, checked on the source text."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sources():
    """(path, text) of every Python file and every notebook's code cells."""
    for path in sorted(ROOT.glob("finetune_utils/**/*.py")) + sorted(ROOT.glob("bench/*.py")) + sorted(
        ROOT.glob("tools/*.py")
    ):
        yield path, path.read_text()
    for path in sorted(ROOT.glob("*/[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_no_remote_code_no_pickles_no_telemetry():
    for path, text in sources():
        assert not re.search(r"trust_remote_code\s*=\s*True", text), f"{path}: trust_remote_code"
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call} must pass weights_only=True"
        for match in re.findall(r"report_to\s*=\s*(\"[^\"]*\"|'[^']*'|\[[^\]]*\]|\w+)", text):
            if path == ROOT / "finetune_utils" / "train" / "run.py" and match in ("report_to", "check_report_to"):
                continue  # the training command's --report_to: "none" unless the user names an integration (below)
            assert match.strip() in ('"none"', "'none'", '["none"]', "[]"), f"{path}: report_to={match}"
        assert "safe_serialization=False" not in text, f"{path}: weights must be saved as safetensors"
        assert "notebook_login" not in text and "huggingface-cli login" not in text, f"{path}: login prompt"


def test_the_training_command_reports_nowhere_unless_asked():
    from finetune_utils import train

    assert train.build_parser().get_default("report_to") == "none"
    assert train.parse_args(["--data", "d", "--output_dir", "o"]).report_to == "none"

