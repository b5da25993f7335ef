"""Helpers of ``bench/gpu_train_hd.sh``: one GPU session of a base trained across sessions.

A lent GPU comes for minutes at a time and starts bare, and only a few files of at most
16 MiB come back from it. So a run travels as a tar of what an exact resume needs (the
latest checkpoint, config.yaml, stats.jsonl) split into 15 MiB parts:

    python bench/hd_session.py unpack PARTS_DIR RUN      # parts -> RUN (nothing: a new run)
    python bench/hd_session.py budget RUN MINUTES         # prints the run's minutes + MINUTES
    python bench/hd_session.py pack RUN OUT_DIR           # RUN -> OUT_DIR/run.tar.part-NN
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

PART_BYTES = 15 * 2**20


def unpack(parts_dir: Path, run: Path) -> int:
    """Join ``run.tar.part-*`` in ``parts_dir`` and extract them into ``run``; returns the
    number of parts (0: none, a new run). Members must be plain files inside the run."""
    parts = sorted(parts_dir.glob("run.tar.part-*"))
    if not parts:
        return 0
    data = b"".join(p.read_bytes() for p in parts)
    run.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                raise SystemExit(f"error: {parts[0]}: unexpected tar member {member.name!r}")
        tar.extractall(run, filter="data")
    return len(parts)


def budget(run: Path, minutes: float) -> float:
    """The run's training minutes so far (its latest checkpoint's clock) plus ``minutes``."""
    from link_core.weights import checkpoint as ckpt

    found = ckpt.list_checkpoints(run) if run.exists() else []
    if not found:
        return minutes
    _, meta = ckpt.read_file(found[-1], prefixes=())
    return meta["counters"]["elapsed"] / 60.0 + minutes


def pack(run: Path, out: Path) -> list[Path]:
    """The latest checkpoint, config.yaml and stats.jsonl of ``run`` as tar parts in ``out``."""
    from link_core.weights import checkpoint as ckpt

    latest = ckpt.list_checkpoints(run)[-1]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in (latest, run / "config.yaml", run / "stats.jsonl"):
            if path.exists():
                tar.add(path, arcname=str(path.relative_to(run)))
    data = buf.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(0, len(data), PART_BYTES):
        part = out / f"run.tar.part-{i // PART_BYTES:02d}"
        part.write_bytes(data[i : i + PART_BYTES])
        written.append(part)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("unpack")
    a.add_argument("parts_dir", type=Path)
    a.add_argument("run", type=Path)
    a = sub.add_parser("budget")
    a.add_argument("run", type=Path)
    a.add_argument("minutes", type=float)
    a = sub.add_parser("pack")
    a.add_argument("run", type=Path)
    a.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "unpack":
        print(json.dumps({"parts": unpack(args.parts_dir, args.run)}))
    elif args.cmd == "budget":
        print(f"{budget(args.run, args.minutes):.3f}")
    else:
        print(json.dumps({"parts": [str(p) for p in pack(args.run, args.out)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
