"""README.md stays true to the code: every option documented, and the two commands shown."""

from __future__ import annotations

from pathlib import Path

from common.settings import OPTIONS, _default_text

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_option_is_documented_with_its_flag_and_default():
    for option in OPTIONS:
        assert f"| `{option.env}` | `{option.flag}` | `{_default_text(option)}` |" in README, option.env


def test_readme_shows_the_run_and_test_commands():
    assert "make up" in README and "make test" in README


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
