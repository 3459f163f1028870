"""Print the README's settings table from the settings model, so the two never disagree."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hookstream.settings import Settings


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if value is None:
        return "(unset)"
    return str(value).replace(str(Path.home()), "~")


def rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    """(variable, default, description) for every leaf field of a settings model."""
    out: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += rows(annotation, f"{prefix}{name.upper()}__")
            continue
        variable = f"{prefix}{name.upper()}"
        if name == "kafka_bootstrap":
            variable = "HOOKSTREAM_KAFKA_BOOTSTRAP (or KAFKA_BOOTSTRAP_SERVERS)"
        out.append((variable, _default(field), (field.description or "").replace("|", "\\|")))
    return out


def table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, default, description in rows(Settings, "HOOKSTREAM_"):
        lines.append(f"| `{variable}` | `{default}` | {description} |")
    return "\n".join(lines)


def main() -> None:
    """Print the table; with --write, replace the table in README.md."""
    if "--write" not in sys.argv:
        print(table())
        return
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    start = text.index("| variable | default | meaning |")
    end = text.index("\n\n", start)
    readme.write_text(text[:start] + table() + text[end:])


if __name__ == "__main__":
    main()
