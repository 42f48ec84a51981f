"""kill -9 in the middle of a 5,000-image collection; after a rerun every image is stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from synsetforge.candidates.sources.synthetic import ROOT, SyntheticSource
from synsetforge.store import Project, schema

PER_SYNSET = 500


def _collect_cmd(root: Path, synsets: list[str]) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "synsetforge",
        "collect",
        "--source",
        "synthetic",
        "--per-synset",
        str(PER_SYNSET),
    ]
    for sid in synsets:
        cmd += ["--synsets", sid]
    return [*cmd, "--workers", "2", "--resize", "longer", "--size", "128", "-p", str(root)]


def _finished(p: Project) -> tuple[int, int]:
    with p.session() as s:
        c = schema.Candidate
        total = s.scalar(select(func.count()).select_from(c)) or 0
        pending = s.scalar(select(func.count()).select_from(c).where(c.status == "pending")) or 0
    return total - pending, pending


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_stores_everything_once(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    p = Project.init(root)
    source = SyntheticSource(seed=0)
    synsets = [s for s in p.hierarchy.subtree(ROOT) if source.supports(s)][:10]
    assert len(synsets) == 10
    p.add_synsets(synsets)
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(
        _collect_cmd(root, synsets),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    deadline = time.monotonic() + 240
    done = pending = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done, pending = _finished(p)
            if done >= 800:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the collector and its worker processes, mid-write
        proc.wait(30)
    assert done >= 800, proc.stderr.read().decode() if proc.stderr else ""
    done, pending = _finished(p)
    assert pending > 0, "the run finished before it could be killed; nothing was tested"

    rerun = subprocess.run(_collect_cmd(root, synsets), capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stderr

    expected = {(r.synset_id, r.key) for r in source.refs(synsets, PER_SYNSET)}
    assert len(expected) == 10 * PER_SYNSET
    with p.session() as s:
        c, im = schema.Candidate, schema.Image
        rows = s.execute(select(c.synset_id, c.key, c.status, c.image_id)).all()
        assert len(rows) == len(expected)  # none duplicated (also a unique constraint)
        assert {(sid, key) for sid, key, _, _ in rows} == expected  # none missing
        assert {st for _, _, st, _ in rows} <= {"stored", "duplicate", "rejected"}
        assert all(iid is not None for _, _, st, iid in rows if st in ("stored", "duplicate"))
        blobs = set(s.scalars(select(im.blob).where(im.blob.is_not(None))))
        n_images = s.scalar(select(func.count()).select_from(im).where(im.blob.is_not(None)))
        truth = s.scalar(select(func.count()).select_from(schema.GroundTruth))
    assert len(blobs) == n_images  # every stored image has its own blob
    on_disk = set(p.blobs.keys())
    assert on_disk == blobs  # no blob written twice or left orphaned by the crash
    assert all(p.blobs.verify(k) for k in list(blobs)[:200])
    assert truth == len(expected)
