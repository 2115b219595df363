"""Readers of the paper's real datasets, one module each, selected by
``prepare.<name>.kind``; the dataset root comes from ``sources.<kind>.root``.

    reader = build_reader("coco", "coco_val", {"split": "val2017", "limit": 100},
                          sources={"coco": {"root": "/data/coco"}}, body_kind="anny")
    for record in reader.records(tally): ...     # then pipelines.readers.base.load_record

See :mod:`pipelines.readers.base` for what every reader shares and the README for each
dataset's layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.readers.base import Reader, parse_options
from pipelines.readers.coco import CocoReader
from pipelines.readers.h36m import H36MReader
from pipelines.readers.lsp import LspReader
from pipelines.readers.lspet import LspetReader
from pipelines.readers.mpi_inf_3dhp import MpiInf3dhpReader
from pipelines.readers.mpii import MpiiReader
from pipelines.readers.mupots import MuPoTSReader
from pipelines.readers.panoptic import PanopticReader
from pipelines.readers.posetrack import PoseTrackReader

__all__ = ["READERS", "build_reader"]

READERS: dict[str, type[Reader]] = {
    reader.kind: reader for reader in (
        CocoReader, H36MReader, MpiiReader, LspReader, LspetReader, MpiInf3dhpReader,
        PoseTrackReader, MuPoTSReader, PanopticReader)
}


def build_reader(kind: str, dataset: str, section: dict[str, Any],
                 sources: dict[str, Any] | None, body_kind: str) -> Reader:
    """The reader of ``kind`` for ``prepare.<dataset>`` (``section`` without ``kind``),
    with its root from ``sources.<kind>.root``.

    Raises a ``ValueError`` naming the parameter when the kind is unknown, the root is
    not set or an option is wrong, and a ``SourceError`` when the files are not there."""
    if kind not in READERS:
        raise ValueError(f"prepare.{dataset}: unknown kind {kind!r}; expected 'synthetic' or one "
                         f"of {sorted(READERS)}")
    entry = (sources or {}).get(kind)
    if not isinstance(entry, dict) or set(entry) != {"root"}:
        raise ValueError(f"params.yaml needs a sources.{kind} entry with one key, root (the "
                         f"folder that holds the {kind} dataset)")
    if entry["root"] is None:
        raise ValueError(f"prepare.{dataset} reads a {kind} dataset: set sources.{kind}.root in "
                         "params.yaml to the folder that holds it (README, 'Real datasets')")
    reader = READERS[kind]
    options = parse_options(reader.options_type, section, f"prepare.{dataset}")
    return reader(Path(entry["root"]).expanduser(), dataset, options, body_kind)
