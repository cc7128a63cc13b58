"""File format names: the accepted spellings, the extensions that name a format and the
compression suffixes in front of which it stands (``orders.csv.gz``)."""

from __future__ import annotations

from nexus_dagster.errors import SpecError

#: Every format name the package reads (and writes).
FORMATS: tuple[str, ...] = (
    "csv", "tsv", "json", "jsonl", "parquet", "excel", "xml", "fixed_width",
)

#: Spellings accepted for ``file_format``.
FORMAT_ALIASES: dict[str, str] = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json_lines": "jsonl",
    "jsonlines": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
    "excel": "excel",
    "xlsx": "excel",
    "xlsm": "excel",
    "xml": "xml",
    "fixed_width": "fixed_width",
    "fixed-width": "fixed_width",
    "fixedwidth": "fixed_width",
    "fwf": "fixed_width",
}

_EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xml": "xml",
    ".fwf": "fixed_width",
}

#: suffixes of files encrypted with ``options.encryption: fernet`` (``orders.csv.gz.enc``)
ENCRYPTED_SUFFIXES = (".enc", ".fernet")

#: compressed-file suffix -> fsspec compression name
COMPRESSIONS: dict[str, str] = {
    ".gz": "gzip",
    ".gzip": "gzip",
    ".bz2": "bz2",
    ".xz": "xz",
    ".zip": "zip",
    ".zst": "zstd",
}

#: formats whose reader needs a seekable file (compressed inputs are decompressed in memory)
SEEKABLE_FORMATS = frozenset({"parquet", "excel"})


def split_compression(path: str) -> tuple[str, str | None]:
    """Split a compression suffix off a path: ``a.csv.gz`` -> (``a.csv``, ``"gzip"``)."""
    lower = path.lower()
    for suffix, name in COMPRESSIONS.items():
        if lower.endswith(suffix):
            return path[: -len(suffix)], name
    return path, None


def strip_encrypted_suffix(path: str) -> str:
    """``path`` without an ``.enc``/``.fernet`` suffix (the name of the plaintext)."""
    lower = path.lower()
    for suffix in ENCRYPTED_SUFFIXES:
        if lower.endswith(suffix):
            return path[: -len(suffix)]
    return path


def normalize_format(name: str) -> str:
    """The canonical format name for a user's spelling, or a SpecError listing the known ones."""
    key = str(name).strip().lower().lstrip(".")
    try:
        return FORMAT_ALIASES[key]
    except KeyError:
        raise SpecError(f"unknown file_format {name!r}; supported: {', '.join(FORMATS)}") from None


def infer_format(path: str) -> str:
    """The format a path's extension names (compression suffixes are skipped)."""
    stem, _ = split_compression(path)
    lower = stem.lower()
    for ext, fmt in _EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    raise SpecError(
        f"cannot infer the file format of {path!r} from its extension; "
        f"set file_format to one of: {', '.join(FORMATS)}"
    )
