"""Run the collection stage functions on a Ray cluster, behind the standard `Executor` interface.

The pipeline only ever calls `submit(process_chunk, items, policy)`, so the same code runs on a local
process pool or on Ray: each call becomes a Ray task and its `ObjectRef.future()` is handed back.

If the collecting process dies (even `kill -9`), Ray cleans up after itself, not `synsetforge.lifeline`:
without an address, `ray.init` starts a local instance whose processes share the driver's fate (Linux:
the kernel's parent-death signal; elsewhere Ray's reaper process), so they end with it; with `--address`
the cluster is the user's and keeps running, and its raylets end the dead driver's tasks and workers.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from synsetforge.errors import InputError


class RayExecutor(Executor):
    """Submit calls as Ray tasks: on the cluster at `address` ("auto", "ray://host:10001"), else a local one."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        try:
            import ray
        except ModuleNotFoundError:
            raise InputError("--engine ray needs Ray: pip install 'synsetforge[ray]'") from None
        self._ray = ray
        self._started = False
        self._remotes: dict[Callable[..., Any], Any] = {}
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = num_cpus
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise InputError(f"cannot reach the Ray cluster at {address}: {exc}") from None
            self._started = True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = self._ray.remote(fn)
        future: Future[Any] = remote.remote(*args, **kwargs).future()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
