"""Benchmark: ingest the same JPEGs over loopback HTTP with synsetforge and with img2dataset.

Generates N distinct ~500x375 JPEGs once (cached in /tmp/synsetforge-bench-ingest, reused by later runs;
no two within 4 bits of pHash, so deduplication keeps them all), serves them from a minimal keep-alive
HTTP/1.1 server in a separate process (its ceiling with an aiohttp client is printed: it is not the
bottleneck), writes one URL list, then times each command as a whole (startup included):

* img2dataset (its own venv, never synsetforge's: it pins pandas/webdataset/opencv): download, resize with
  ``resize_mode=keep_ratio`` (shorter side to `--size`, aspect kept, no crop: the same work as synsetforge's
  ``--resize shorter``; ``border`` would scale the longer side and pad), write files; 2 processes x 32
  threads, shards of 1,000 so both processes get work;
* synsetforge: a fresh project, ``synsetforge collect --source urls --allow-private --resize shorter
  --workers 2 --per-domain-rate 0 --per-domain-concurrency 64 --max-in-flight 64`` (the options for a
  mirror; the main process downloads, workers process and file blobs; ``--sf-fetch workers`` adds
  ``--fetch-in-workers``) with deduplication and database rows on (download, sniff, decode, validate,
  resize, pHash, SHA-256, blob files + SQLite rows).

`--repeat K` alternates K rounds (img2dataset, synsetforge); other work on the machine moves the figures a
lot, so every run is listed with the load average it started under, and the summary takes the best run
of each. CPU ms/image (user + system of the whole process tree) moves much less with the load. Also
printed: synsetforge's images/s per core beside single-core JPEG decode rates on the same files (Pillow
full decode is the per-core ceiling of a full decode), and the peak RSS (VmHWM) of synsetforge's main
process at N and at N/2 (streaming: it must not grow with the list) plus its child processes' peaks.

    .venv/bin/python bench/ingest.py                             # 10,000 images, one round
    .venv/bin/python bench/ingest.py --repeat 3                  # three rounds, best of each
    .venv/bin/python bench/ingest.py --n 2000 --skip-half        # quick run
    .venv/bin/python bench/ingest.py --skip-img2dataset          # synsetforge only
    .venv/bin/python bench/ingest.py --serve                     # only serve (for profiling), kill PID stops it

img2dataset's venv (default .bench-i2d at the repository root; another with --img2dataset PATH):

    python3 -m venv .bench-i2d && .bench-i2d/bin/pip install -r bench/requirements-img2dataset.txt
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "synsetforge-bench-ingest"
DEFAULT_I2D = REPO / ".bench-i2d" / "bin" / "img2dataset"
SYNSET = "n02084071"  # dog.n.01: any synset will do, every URL goes to it
GENERATOR_VERSION = "v1"
SIZES = ((500, 375), (500, 375), (500, 333), (375, 500), (500, 400))  # mostly 500x375, some variety


# -- the images ---------------------------------------------------------------------------------------


def make_jpeg(i: int) -> bytes:
    """A distinct photo-like JPEG: a smooth random colour field (distinct pHash) + shapes + sensor noise."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(1_000_003 * i + 17)
    w, h = SIZES[i % len(SIZES)]
    coarse = rng.integers(0, 256, (rng.integers(3, 7), rng.integers(3, 7), 3), dtype=np.uint8)
    im = Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(4, 12))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    arr = np.asarray(im, dtype=np.int16) + rng.normal(0, 9, (h, w, 1)).astype(np.int16)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write_one(args: tuple[Path, int]) -> int:
    folder, i = args
    path = folder / f"{i:06d}.jpg"
    if not path.exists():
        data = make_jpeg(i)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path.stat().st_size


def ensure_images(cache: Path, n: int, procs: int) -> tuple[Path, int]:
    """Generate the first `n` images into the cache once; later runs (any n) reuse what is there."""
    folder = cache / f"images-{GENERATOR_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(n) if not (folder / f"{i:06d}.jpg").exists()]
    if missing:
        print(f"generating {len(missing)} JPEGs into {folder} ...", flush=True)
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            for _ in pool.imap_unordered(_write_one, [(folder, i) for i in missing], chunksize=64):
                pass
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    total = sum((folder / f"{i:06d}.jpg").stat().st_size for i in range(n))
    return folder, total


def write_lists(folder: Path, port: int, n: int) -> Path:
    path = folder / f"urls-{n}-{port}.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["url"])
        for i in range(n):
            w.writerow([f"http://127.0.0.1:{port}/{i:06d}.jpg"])
    return path


# -- the server ---------------------------------------------------------------------------------------


class _Http(asyncio.Protocol):
    """HTTP/1.1 GET of files in one folder, keep-alive unless the client says close; nothing else."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        assert self.transport is not None
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            close = any(
                ln.lower().startswith(b"connection:") and b"close" in ln.lower() for ln in lines[1:]
            ) or (len(parts) > 2 and parts[2] == b"HTTP/1.0")
            name = os.path.basename(parts[1].decode("latin-1")) if len(parts) > 1 else ""
            try:
                with open(os.path.join(self.folder, name), "rb") as fh:
                    body = fh.read()
                status = b"200 OK"
            except OSError:
                body, status = b"not found", b"404 Not Found"
            ctype = b"image/jpeg" if status.startswith(b"200") else b"text/plain"
            self.transport.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + ctype
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + (b"\r\nConnection: close" if close else b"")
                + b"\r\n\r\n"
                + body
            )
            if close:
                self.transport.close()
                return


def serve(folder: str, sock: socket.socket) -> None:
    """Entry point of the server process: serve `folder` on an already bound, listening socket."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Http(folder), sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@dataclass
class Server:
    folder: Path
    proc: multiprocessing.process.BaseProcess | None = None
    port: int = 0

    def __enter__(self) -> Server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        self.proc = multiprocessing.get_context("fork").Process(
            target=serve, args=(str(self.folder), sock), daemon=True
        )
        self.proc.start()
        sock.close()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.join(5)

    def cpu_s(self) -> float:
        """CPU seconds the server process has used so far (user + system)."""
        assert self.proc is not None and self.proc.pid is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_ceiling(port: int, n: int, concurrency: int = 64) -> tuple[float, float]:
    """(requests/s, MB/s) that an aiohttp client with `concurrency` connections gets from the server."""
    import aiohttp

    async def run() -> tuple[int, int]:
        got = 0
        nbytes = 0
        it = iter(range(n))
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as s:

            async def worker() -> None:
                nonlocal got, nbytes
                for i in it:
                    async with s.get(f"http://127.0.0.1:{port}/{i:06d}.jpg") as r:
                        nbytes += len(await r.read())
                        got += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return got, nbytes

    start = time.perf_counter()
    got, nbytes = asyncio.run(run())
    elapsed = time.perf_counter() - start
    return got / elapsed, nbytes / elapsed / 1e6


# -- measuring a child process tree ---------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Measured:
    wall_s: float
    rc: int
    maxrss_kib: int  # wait4: the child (and the largest of its reaped descendants)
    main_hwm_kib: int  # /proc VmHWM of the child itself, last seen
    others_hwm_kib: dict[int, int] = field(default_factory=dict)  # descendants' VmHWM, last seen
    output: str = ""
    cpu_s: float = 0.0  # user + system of the child and every descendant it (or they) waited for


@dataclass
class Run:
    round: int
    tool: str
    m: Measured
    images: int
    server_cpu_s: float
    load1: float  # 1-minute load average when it started

    @property
    def rate(self) -> float:
        return self.images / self.m.wall_s

    @property
    def cpu_ms(self) -> float:
        return self.m.cpu_s / max(self.images, 1) * 1e3


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run `cmd`, sampling the peak RSS (VmHWM) and CPU time of it and of every descendant.

    CPU time: the larger of wait4's (the child plus the descendants that were waited for) and the sum of
    the last samples per process (catches descendants that outlive the sampling or are never waited for).
    """
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        main_hwm = 0
        others: dict[int, int] = {}
        cpu: dict[int, float] = {}
        stop = threading.Event()

        def sample() -> None:
            nonlocal main_hwm
            while not stop.is_set():
                main_hwm = max(main_hwm, _hwm_kib(proc.pid))
                cpu[proc.pid] = max(cpu.get(proc.pid, 0.0), _cpu_s(proc.pid))
                frontier = [proc.pid]
                while frontier:
                    kids = [k for p in frontier for k in _children(p)]
                    for k in kids:
                        others[k] = max(others.get(k, 0), _hwm_kib(k))
                        cpu[k] = max(cpu.get(k, 0.0), _cpu_s(k))
                    frontier = kids
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    total_cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu.values()))
    return Measured(wall, proc.returncode, usage.ru_maxrss, main_hwm, others, text, total_cpu)


# -- the contenders -----------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled", WANDB_SILENT="true", no_proxy="*")
    return env


def run_img2dataset(args: argparse.Namespace, urls: Path, work: Path, n: int) -> tuple[Measured, int]:
    out = work / "img2dataset"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        str(args.img2dataset),
        "--url_list",
        str(urls),
        "--input_format",
        "csv",
        "--url_col",
        "url",
        "--output_folder",
        str(out),
        "--output_format",
        "files",
        "--processes_count",
        str(args.i2d_processes),
        "--thread_count",
        str(args.i2d_threads),
        "--image_size",
        str(args.size),
        "--resize_mode",
        args.i2d_resize_mode,
        "--number_sample_per_shard",
        str(args.i2d_shard),
        "--timeout",
        "30",
        "--retries",
        "0",
        "--enable_wandb",
        "False",
    ]
    m = run_measured(cmd, env=clean_env(), cwd=work)
    ok = 0
    for stats in out.glob("*_stats.json"):
        ok += int(json.loads(stats.read_text()).get("successes", 0))
    if m.rc != 0 or ok != n:
        print(m.output[-3000:])
        print(f"img2dataset: exit {m.rc}, {ok} of {n} images written", file=sys.stderr)
    return m, ok


def synsetforge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "synsetforge", *args]


def run_synsetforge(
    args: argparse.Namespace, urls: Path, work: Path, n: int, tag: str
) -> tuple[Measured, int]:
    proj = work / f"synsetforge-{tag}"
    shutil.rmtree(proj, ignore_errors=True)
    env = clean_env()
    env["COLUMNS"] = "120"
    for cmd in (
        synsetforge_cmd("init", str(proj)),
        synsetforge_cmd("synsets", "add", SYNSET, "-p", str(proj)),
    ):
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    cmd = synsetforge_cmd(
        "collect",
        "--source",
        "urls",
        "--path",
        str(urls),
        "--default-synset",
        SYNSET,
        "--allow-private",
        "--resize",
        "shorter",
        "--size",
        str(args.size),
        "--workers",
        str(args.workers),
        "--max-in-flight",
        str(args.in_flight),
        "--per-domain-concurrency",
        str(args.in_flight),
        "--per-domain-rate",
        "0",
        "-p",
        str(proj),
        "--fetch-in-workers" if args.sf_fetch == "workers" else "--fetch-in-main",
        *args.sf_extra,
    )
    m = run_measured(cmd, env=env, cwd=work)
    stored = stored_count(proj)
    blobs = sum(1 for p in (proj / "blobs").rglob("*") if p.is_file() and not p.name.startswith(".tmp"))
    if m.rc != 0 or stored != n or blobs != n:
        print(m.output[-3000:])
        print(f"synsetforge: exit {m.rc}, {stored} stored rows, {blobs} blobs of {n}", file=sys.stderr)
    return m, min(stored, blobs)


def stored_count(proj: Path) -> int:
    import sqlite3

    dbs = list(proj.glob("*.db")) + list(proj.glob("*.sqlite*"))
    dbs = [d for d in dbs if d.suffix in (".db", ".sqlite", ".sqlite3")]
    if not dbs:
        return -1
    with sqlite3.connect(dbs[0]) as con:
        return int(con.execute("SELECT count(*) FROM candidates WHERE status = 'stored'").fetchone()[0])


# -- decode ceiling -----------------------------------------------------------------------------------


def decode_rates(folder: Path, n: int, size: int) -> dict[str, float]:
    """Images/s on one core (this process) for Pillow full decode, Pillow draft decode and simplejpeg."""
    import simplejpeg
    from PIL import Image

    datas = [(folder / f"{i:06d}.jpg").read_bytes() for i in range(min(n, 2000))]
    out: dict[str, float] = {}

    def timed(name: str, fn: object) -> None:
        start = time.perf_counter()
        for d in datas:
            fn(d)  # type: ignore[operator]
        out[name] = len(datas) / (time.perf_counter() - start)

    def pillow_full(d: bytes) -> None:
        Image.open(io.BytesIO(d)).load()

    def pillow_draft(d: bytes) -> None:
        im = Image.open(io.BytesIO(d))
        w, h = im.size
        short = min(w, h)
        im.draft("RGB", (w * size // short, h * size // short))
        im.load()

    def simplejpeg_full(d: bytes) -> None:
        simplejpeg.decode_jpeg(d, colorspace="RGB")

    timed("Pillow full decode", pillow_full)
    timed("Pillow draft decode (>= target)", pillow_draft)
    timed("simplejpeg full decode", simplejpeg_full)
    return out


# -- main ---------------------------------------------------------------------------------------------


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="images (default 10,000)")
    ap.add_argument("--workers", type=int, default=2, help="synsetforge worker processes (default 2)")
    ap.add_argument("--size", type=int, default=256, help="target shorter side (default 256)")
    ap.add_argument("--in-flight", type=int, default=64, help="synsetforge downloads in flight (default 64)")
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds of (img2dataset, synsetforge); best is shown"
    )
    ap.add_argument("--skip-img2dataset", action="store_true", help="time synsetforge only")
    ap.add_argument("--skip-half", action="store_true", help="skip the N/2 synsetforge run (RSS check)")
    ap.add_argument("--skip-ceiling", action="store_true", help="skip the server and decode ceilings")
    ap.add_argument("--img2dataset", type=Path, default=DEFAULT_I2D, help="img2dataset executable")
    ap.add_argument("--i2d-processes", type=int, default=2)
    ap.add_argument("--i2d-threads", type=int, default=32)
    ap.add_argument("--i2d-resize-mode", default="keep_ratio", help="keep_ratio (= our 'shorter') or border")
    ap.add_argument("--i2d-shard", type=int, default=1000, help="img2dataset number_sample_per_shard")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="image cache and work folder")
    ap.add_argument(
        "--serve", action="store_true", help="only serve the images and write the list (profiling)"
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for this script and everything it starts, e.g. -10 (root) to keep other work from "
        "skewing the figures; both tools get the same",
    )
    ap.add_argument(
        "--sf-fetch",
        choices=("workers", "main"),
        default="main",
        help="synsetforge downloads in its main process (the default of `collect`) or in its workers "
        "(--fetch-in-workers, img2dataset's layout)",
    )
    ap.add_argument("--sf-extra", nargs=argparse.REMAINDER, default=[], help="extra `collect` options")
    args = ap.parse_args()
    if not args.skip_img2dataset and not args.img2dataset.exists():
        ap.error(
            f"{args.img2dataset} not found: create its venv (see the docstring) or pass --skip-img2dataset"
        )

    cores = os.cpu_count() or 1
    if args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every process started below
        except PermissionError:
            print(
                f"cannot set niceness {args.nice} (needs root); going on at {os.getpriority(os.PRIO_PROCESS, 0)}"
            )
    print(f"cores: {cores}; niceness {os.getpriority(os.PRIO_PROCESS, 0)}; load average before: {load()}")
    folder, nbytes = ensure_images(args.cache, args.n, max(1, cores))
    print(f"{args.n} JPEGs, {nbytes / args.n / 1024:.1f} KiB on average, in {folder}")
    work = args.cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    with Server(folder) as server:
        urls = write_lists(work, server.port, args.n)
        half_urls = write_lists(work, server.port, args.n // 2)
        if args.serve:
            print(f"serving {folder} on port {server.port}; list: {urls}; Ctrl-C to stop", flush=True)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill PID` also stops the server process
            with contextlib.suppress(KeyboardInterrupt):
                server.proc.join()  # type: ignore[union-attr]
            return
        time.sleep(0.3)
        if not args.skip_ceiling:
            server_ceiling(server.port, min(args.n, 500))  # warm the page cache and the server
            rps, mbps = server_ceiling(server.port, min(args.n, 5000))
            rows.append(
                ("loopback server + aiohttp client, 64 conns", f"{rps:,.0f} req/s ({mbps:,.0f} MB/s)")
            )
            print(f"server ceiling: {rps:,.0f} req/s, {mbps:,.0f} MB/s (load {load()})", flush=True)

        runs: list[Run] = []
        for r in range(args.repeat):
            tools = ["synsetforge"] if args.skip_img2dataset else ["img2dataset", "synsetforge"]
            for tool in tools:
                cpu0, load1 = server.cpu_s(), os.getloadavg()[0]
                print(f"[{r + 1}/{args.repeat}] {tool}: {args.n} images ... (load {load()})", flush=True)
                if tool == "img2dataset":
                    m, ok = run_img2dataset(args, urls, work, args.n)
                else:
                    m, ok = run_synsetforge(args, urls, work, args.n, "full")
                runs.append(Run(r + 1, tool, m, ok, server.cpu_s() - cpu0, load1))
                print(f"  {m.wall_s:.1f} s, {ok} images, {ok / m.wall_s:,.0f} images/s", flush=True)

        print()
        print("round  tool          load1  wall s  images  images/s  CPU ms/image  server CPU s")
        for run in runs:
            print(
                f"{run.round:>5}  {run.tool:<12}  {run.load1:>5.2f}  {run.m.wall_s:>6.1f}  {run.images:>6}  "
                f"{run.rate:>8,.0f}  {run.cpu_ms:>12.2f}  {run.server_cpu_s:>12.1f}"
            )
        best = " (best run)" if args.repeat > 1 else ""
        i2d = [x for x in runs if x.tool == "img2dataset"]
        sf = [x for x in runs if x.tool == "synsetforge"]
        sf_best = max(sf, key=lambda x: x.rate)
        i2d_rate = None
        if i2d:
            i2d_best = max(i2d, key=lambda x: x.rate)
            i2d_rate = i2d_best.rate
            label = (
                f"img2dataset, {args.i2d_processes} proc x {args.i2d_threads} threads, {args.i2d_resize_mode}"
            )
            rows.append((label + best, f"{i2d_rate:,.0f} images/s ({i2d_best.cpu_ms:.2f} CPU ms/image)"))
            rows.append(("img2dataset peak RSS (largest process)", mib(max(x.m.maxrss_kib for x in i2d))))
        label = f"synsetforge, {args.workers} workers, fetch in {args.sf_fetch}, dedup + rows"
        rows.append((label + best, f"{sf_best.rate:,.0f} images/s ({sf_best.cpu_ms:.2f} CPU ms/image)"))
        if i2d_rate:
            rows.append(
                ("ratio synsetforge / img2dataset" + best, f"{sf_best.rate / i2d_rate:.2f}x  (goal >= 1.30x)")
            )
            if args.repeat > 1:
                paired = sorted(b.rate / a.rate for a, b in zip(i2d, sf, strict=True))
                rows.append(("ratio per round (sorted)", ", ".join(f"{x:.2f}x" for x in paired)))
        rows.append((f"synsetforge images/s per core ({cores} cores)", f"{sf_best.rate / cores:,.0f}"))
        m = max(sf, key=lambda x: x.m.main_hwm_kib).m
        rows.append((f"synsetforge main process peak RSS, N={args.n}", mib(m.main_hwm_kib)))
        rows.append(("synsetforge wait4 ru_maxrss (largest process of its tree)", mib(m.maxrss_kib)))
        workers_hwm = sorted(m.others_hwm_kib.values(), reverse=True)
        rows.append(
            (
                "synsetforge child processes peak RSS (sum)",
                f"{mib(sum(workers_hwm))} in {len(workers_hwm)} ({', '.join(mib(k) for k in workers_hwm)})",
            )
        )
        if not args.skip_half:
            print(f"synsetforge: {args.n // 2} images ... (load {load()})", flush=True)
            mh, okh = run_synsetforge(args, half_urls, work, args.n // 2, "half")
            rows.append(
                (
                    f"synsetforge main process peak RSS, N={args.n // 2}",
                    f"{mib(mh.main_hwm_kib)}  ({okh / mh.wall_s:,.0f} images/s)",
                )
            )
    if not args.skip_ceiling:
        for name, rate in decode_rates(folder, args.n, args.size).items():
            rows.append((f"{name}, 1 core, same files", f"{rate:,.0f} images/s"))
        shortest = min(min(w, h) for w, h in SIZES)
        if shortest < 2 * args.size:
            rows.append(
                ("  (draft / DCT scaling", f"no 1/2 scale fits: shorter sides {shortest}+ < 2 x {args.size})")
            )
    if not args.serve:
        shutil.rmtree(work, ignore_errors=True)  # outputs and projects; the image cache stays
    rows.append(("this script's own peak RSS", mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
    rows.append(("load average after", load()))
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
