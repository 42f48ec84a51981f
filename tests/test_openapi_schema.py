"""The served OpenAPI document tells the truth about the API: schemathesis generates requests (valid and
invalid ones) for every documented operation of the real app, in-process, on a project with a release, a
challenge, a team's submission and candidates waiting for votes; every answer must be a documented status
with the documented media type and a body that matches its schema, and never a server error.

Half of the generated cases (chosen by a hash of the case, so deterministically) get their path ids
replaced by ids that exist (the challenge, its images, the worker's task, the team's submission), so the
success answers are checked too, not only 404s. Each operation gets a fixed number of derandomized
examples, so the run is bounded and the same every time.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from _challenge_fixtures import build_world, make_challenge, oracle_file, team_with_accounts
from synsetforge.benchmark.challenge import anonymous_test_ids, val_items
from synsetforge.benchmark.participants import authenticate
from synsetforge.benchmark.submissions import submit
from synsetforge.crowd.settings import CrowdSettings
from synsetforge.store import schema as db
from synsetforge.web.app import create_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SEED = 20_240_611
EXAMPLES = int(os.environ.get("SYNSETFORGE_SCHEMATHESIS_EXAMPLES", "15"))
"""Fuzzed examples per operation (on top of schemathesis' coverage cases); raise it to search harder."""
FIXED = settings(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@dataclass
class Served:
    app: Any
    admin: str
    worker: str
    participant: str
    real: dict[str, list[Any]]  # path parameter -> values that name something that exists

    def token_for(self, path: str) -> str | None:
        """The token of the role an operation is for (None: a public operation)."""
        if path.startswith("/api/v1/admin"):
            return self.admin
        if path.startswith("/api/v1/"):
            return self.worker
        if path.startswith("/api/challenges/{name}/submissions"):
            return self.participant
        return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    world = build_world(tmp_path_factory.mktemp("openapi") / "p", n_train=3, n_val=1, n_test=2)
    p = world.project
    make_challenge(world, daily_limit=3)
    ((_, participant),) = team_with_accounts(world, "team-a")
    account = authenticate(p, participant)
    assert account is not None
    receipt = submit(p, "shapes", account, oracle_file(world, "shapes"))
    with p.session() as s:  # every image is also a candidate of "square", waiting for votes
        source = s.scalar(select(db.Source))
        assert source is not None
        for k, image_id in enumerate(s.scalars(select(db.Image.id).order_by(db.Image.id)).all()):
            s.add(
                db.Candidate(
                    synset_id="square",
                    source_id=source.id,
                    key=f"crowd{k}",
                    url=f"synthetic://crowd/{k}",
                    image_id=image_id,
                    status="stored",
                )
            )
    app = create_app(p, CrowdSettings(grid_size=6, gold_per_task=0, block_min_gold=50), seed=1)
    svc = app.state.service
    worker = svc.invite("ann")
    task = svc.next_task(worker.worker_id)
    assert task is not None
    real = {
        "name": ["shapes"],
        "image": anonymous_test_ids(p, "shapes")[:1] + [name for name, _, _ in val_items(p, "shapes")][:1],
        "synset_id": ["square", "circle"],
        "worker_id": [worker.worker_id],
        "task_id": [task.task_id],
        "submission_id": [receipt.id],
    }
    yield Served(app, svc.create_token("admin"), worker.token, participant, real)
    world.close()


@pytest.fixture(scope="module")
def api_schema(served: Served) -> Any:
    return schemathesis.openapi.from_asgi(
        "/api/v1/openapi.json",
        served.app,
        config=schemathesis.Config(seed=SEED),  # the same cases on every run
        headers={"Authorization": f"Bearer {served.admin}"},
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis' lazy schema reads and renames `node._nodeid`, which pytest 9.2 no longer keeps."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def use_real_ids(case: Any, real: dict[str, list[Any]]) -> None:
    """Replace the path ids of every other case (by a stable hash) with ids that exist."""
    params = case.path_parameters or {}
    digest = zlib.crc32(json.dumps([case.operation.label, params], sort_keys=True, default=str).encode())
    if digest % 2:
        return
    for key in params:
        if key in real:
            params[key] = real[key][digest // 2 % len(real[key])]


@schema.parametrize()
@settings(FIXED, max_examples=EXAMPLES)
def test_every_documented_operation_answers_as_documented(case: Any, served: Served) -> None:
    use_real_ids(case, served.real)
    token = served.token_for(case.path)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"} if token else {}, checks=CHECKS)


@schema.parametrize()
@settings(FIXED, max_examples=max(1, EXAMPLES // 4))
def test_without_a_token_only_documented_refusals(case: Any, served: Served) -> None:
    use_real_ids(case, served.real)
    response = case.call_and_validate(checks=CHECKS)
    if served.token_for(case.path) is not None and case.method.upper() == case.operation.method.upper():
        assert response.status_code in (400, 401, 413, 422), (case.path, response.status_code)


def test_the_document_declares_errors_media_types_and_tokens(served: Served) -> None:
    """Spot checks of what schemathesis cannot see: pages are not API, downloads say what they are."""
    from fastapi.testclient import TestClient

    doc = (
        TestClient(served.app)
        .get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {served.worker}"})
        .json()
    )
    paths = doc["paths"]
    assert not [p for p in paths if p.startswith(("/explore", "/admin", "/work", "/invite", "/m/"))]
    assert "/challenges/{name}/login" not in paths and "/challenges/{name}/submit" not in paths
    export = paths["/api/v1/admin/export/{what}.csv"]["get"]["responses"]
    assert list(export["200"]["content"]) == ["text/csv"]
    assert list(export["403"]["content"]) == ["application/json"]
    image = paths["/challenges/{name}/test/{image}"]["get"]["responses"]["200"]["content"]
    assert image == {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}
    submit_op = paths["/api/challenges/{name}/submissions"]["post"]
    assert submit_op["security"] == [{"participantToken": []}]
    assert "multipart/form-data" in submit_op["requestBody"]["content"]
    assert set(doc["components"]["securitySchemes"]) == {"crowdToken", "participantToken"}
    error = {"$ref": "#/components/schemas/ErrorOut"}
    for path, ops in paths.items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status.startswith("4"):
                    assert answer["content"] == {"application/json": {"schema": error}}, (
                        method,
                        path,
                        status,
                    )
