"""Keep a self-contained copy of every schema version in schemas/history/ before changing one.

Readers find the writer's schema by the fingerprint in each record, so records written with an
older version stay readable after an upgrade. Run this before editing a schema; it writes
``schemas/history/<Name>-<fingerprint>.avsc`` for each current schema not yet there.
"""

from __future__ import annotations

import json

from hookstream.records.codec import SCHEMA_FILES, history_dir, parse_schemas, schema_dir


def main() -> None:
    folder = schema_dir()
    texts = {model: (folder / name).read_text() for model, name in SCHEMA_FILES.items()}
    target = history_dir()
    target.mkdir(exist_ok=True)
    for model, schema in parse_schemas(texts).items():
        path = target / f"{model.__name__}-{schema.fingerprint().hex()}.avsc"
        if not path.exists():
            path.write_text(json.dumps(schema.to_json(), indent=2) + "\n")
            print(f"wrote {path.name}")


if __name__ == "__main__":
    main()
