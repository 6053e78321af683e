"""raisin worker: serve a REAPI farm's builds from this machine (Bots API)."""

from __future__ import annotations

import argparse
import signal
import socket
from pathlib import Path
from types import FrameType

from raisin_lock.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "worker",
        help="run builds for a remote execution farm (REAPI Bots API, e.g. BuildGrid)",
    )
    p.add_argument(
        "--server",
        required=True,
        metavar="URL",
        help="the scheduler: grpc[s]://HOST:PORT[/INSTANCE]",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where leases run (default: .raisin-worker in the current directory)",
    )
    p.add_argument("--name", default=None, help="bot id (default: HOSTNAME-PID)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    import os

    from raisin_lock.remote.channel import parse_url
    from raisin_lock.remote.worker import Worker

    remote = parse_url(args.server)
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    work = (args.work_dir or Path(".raisin-worker")).absolute()
    worker = Worker(remote, work, name, report=ctx.info)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # a lease's processes are stopped, the lease handed back
    worker.run()
    ctx.info(f"worker {name} stopped after {worker.ran} action(s)")
    return 0
