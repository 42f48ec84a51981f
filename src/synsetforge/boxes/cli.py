"""`synsetforge boxes ...`: bounding boxes for localization (SPEC §4).

The commands live beside the code they drive: the crowd engine's (`status`, `gold`) in `cli_engine`, import
and export in `cli_io`, the simulated crowd in `cli_simulate`; each module registers its commands here.
"""

from __future__ import annotations

from synsetforge.boxes import cli_engine, cli_io, cli_simulate
from synsetforge.cliopts import typer_app

app = typer_app(
    help="Bounding boxes: crowd drawing and verification, import, export, simulation.", no_args_is_help=True
)
for _module in (cli_engine, cli_io, cli_simulate):
    _module.register(app)
