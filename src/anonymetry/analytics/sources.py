"""Where query rows come from: a Parquet/CSV file (or a folder of Parquet files), an Arrow
table, or the event store (``--data DIR``), plus the public-partitions file reader."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson

from anonymetry.analytics.plan import Source, SourceKind
from anonymetry.errors import InvalidParameter
from anonymetry.policy import Policy

__all__ = ["arrow_source", "file_source", "load_public_partitions", "store_source"]


def file_source(path: str | Path, name: str | None = None) -> Source:
    """A Parquet or CSV file, a glob, or a folder of Parquet files."""
    p = Path(path)
    text = str(path)
    if p.is_dir():
        return Source(SourceKind.PARQUET, str(p / "**" / "*.parquet"), name=name or str(p))
    suffix = p.suffix.lower()
    if not any(ch in text for ch in "*?[") and not p.exists():
        raise InvalidParameter(f"source: {text} does not exist")
    if suffix in (".parquet", ".pq"):
        return Source(SourceKind.PARQUET, text, name=name or text)
    if suffix in (".csv", ".tsv"):
        return Source(SourceKind.CSV, text, name=name or text)
    raise InvalidParameter(f"source: {text}: expected a .parquet or .csv file (or a folder of "
                           "Parquet files), or use --data DIR for the event store")


def arrow_source(table: Any, name: str = "table") -> Source:
    return Source(SourceKind.ARROW, None, obj=table, name=name)


def store_source(data_dir: str | Path, policy: Policy | None, name: str | None = None) -> Source:
    """The event store under ``data_dir`` (a snapshot; decrypts with the local keyring)."""
    from anonymetry.ingest.store import open_reader
    from anonymetry.privacy import LocalKeyring

    data_dir = Path(data_dir)
    if not (data_dir / "keys").exists():
        raise InvalidParameter(f"--data {data_dir}: not an anonymetry data directory (no keys/)")
    reader = open_reader(data_dir, LocalKeyring(data_dir / "keys"), policy)
    return Source(SourceKind.STORE, str(data_dir), obj=reader, name=name or f"store:{data_dir}")


def load_public_partitions(path: str | Path, key_names: tuple[str, ...]
                           ) -> tuple[tuple[Any, ...], ...]:
    """Public partition keys from a CSV (header = the ``--by`` columns) or JSON file (a list of
    objects, or of lists in ``--by`` order, or of plain values for one column)."""
    p = Path(path)
    if not p.exists():
        raise InvalidParameter(f"public partitions: {p} does not exist")
    if not key_names:
        raise InvalidParameter("public partitions: need --by columns")
    if p.suffix.lower() == ".json":
        data = orjson.loads(p.read_bytes())
        if not isinstance(data, list):
            raise InvalidParameter(f"public partitions: {p}: expected a JSON list")
        out = []
        for i, item in enumerate(data):
            if isinstance(item, dict):
                missing = [k for k in key_names if k not in item]
                if missing:
                    raise InvalidParameter(f"public partitions: {p}[{i}]: missing "
                                           f"{', '.join(missing)}")
                out.append(tuple(item[k] for k in key_names))
            elif isinstance(item, list):
                out.append(tuple(item))
            else:
                out.append((item,))
        return tuple(out)
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [k for k in key_names if k not in header]
        if missing:
            raise InvalidParameter(f"public partitions: {p}: header lacks {', '.join(missing)} "
                                   f"(has {', '.join(header)})")
        return tuple(tuple(row[k] for k in key_names) for row in reader)
