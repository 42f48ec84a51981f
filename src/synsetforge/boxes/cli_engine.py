"""`synsetforge boxes status` and `synsetforge boxes gold`: the crowd box engine from the command line.

Heavy imports happen inside the commands, so `synsetforge --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from synsetforge.cliopts import ProjectOpt

console = Console(highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `synsetforge boxes`."""
    app.command("status")(status_cmd)
    app.command("gold")(gold_cmd)


def status_cmd(project: ProjectOpt = None) -> None:
    """Per synset: accepted images covered by boxes, boxes accepted, tasks by kind, votes per decided box."""
    from synsetforge.boxes.service import BoxService
    from synsetforge.clitables import Table
    from synsetforge.store.project import Project

    with Project.open(project) as p:
        rows = BoxService(p).status()
    if not rows:
        console.print("no box work yet: no accepted images (accept some with the crowd first)")
        return
    table = Table(title="Boxes by synset")
    for name in ("synset", "images", "covered", "drawing", "verifying", "coverage", "given up",
                 "boxes accepted", "rejected", "proposed", "draw tasks", "quality tasks", "coverage tasks",
                 "votes/box", "gold images"):  # fmt: skip
        table.add_column(name, justify="left" if name == "synset" else "right")
    for r in rows:
        table.add_row(
            r.synset_id, str(r.images), str(r.covered), str(r.drawing), str(r.verifying), str(r.coverage),
            str(r.given_up), str(r.boxes_accepted), str(r.boxes_rejected), str(r.boxes_proposed),
            str(r.tasks["draw"]), str(r.tasks["quality"]), str(r.tasks["coverage"]),
            "–" if r.votes_per_decided_box is None else f"{r.votes_per_decided_box:.2f}", str(r.gold_images),
        )  # fmt: skip
    console.print(table)
    images = sum(r.images for r in rows)
    covered = sum(r.covered for r in rows)
    share = f" ({covered / images:.1%})" if images else ""
    console.print(
        f"{covered} of {images} images covered{share}; {sum(r.boxes_accepted for r in rows)} boxes accepted"
    )


def gold_cmd(
    per_synset: Annotated[
        int, typer.Option(help="Gold images per synset (multi-instance images first).")
    ] = 10,
    seed: Annotated[int, typer.Option(help="Seed for picking images and perturbing boxes.")] = 0,
    project: ProjectOpt = None,
) -> None:
    """Make box gold from ground-truth boxes: draw, quality (good and bad boxes) and coverage questions."""
    from synsetforge.boxes.gold import gold_from_ground_truth
    from synsetforge.store.project import Project

    with Project.open(project) as p:
        added = gold_from_ground_truth(p, per_synset, seed)
    if added.images == 0:
        console.print("no box gold added: no stored positive image with ground-truth boxes is left")
        return
    console.print(added.line())
