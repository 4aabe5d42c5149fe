"""Rewrite README.md's configuration table from common.settings.OPTIONS (run after adding an option).

    .venv/bin/python scripts/readme_options.py
"""

from __future__ import annotations

from pathlib import Path

from common.settings import OPTIONS, _default_text

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| env | flag | default | meaning |"
AFTER_TABLE = "\nCassandra hosts can also"


def table() -> str:
    rows = [HEADER, "|---|---|---|---|"]
    for option in OPTIONS:
        scope = "" if option.scope == "common" else f" ({option.scope} only)"
        rows.append(f"| `{option.env}` | `{option.flag}` | `{_default_text(option)}` | {option.help}{scope} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    text = README.read_text()
    start, end = text.index(HEADER), text.index(AFTER_TABLE)
    README.write_text(text[:start] + table() + text[end:])


if __name__ == "__main__":
    main()
