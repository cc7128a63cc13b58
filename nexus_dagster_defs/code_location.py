"""The code location of this repository's ``dg`` project: the components under ``defs/``."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions of every component in the project's defs folder."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
