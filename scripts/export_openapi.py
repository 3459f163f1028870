"""Write the admin API's OpenAPI document to docs/openapi.json (``--check``: fail if it differs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import SecretStr

from hookstream.admin.app import create_app
from hookstream.settings import AdminSettings, Settings

TARGET = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def openapi_text() -> str:
    """The document as the running service serves it at /openapi.json, pretty-printed."""
    # The document does not depend on settings; a token only keeps the no-token warning quiet.
    settings = Settings(admin=AdminSettings(tokens=[SecretStr("unused")]))
    app = create_app(settings, bootstrap="unused:9092")
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = openapi_text()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date; run `python scripts/export_openapi.py`")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
