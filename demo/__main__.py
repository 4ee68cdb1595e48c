"""Run the demo appliance API: ``python -m demo --host 127.0.0.1 --port 8001``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence

from aiohttp import web

from demo.appliances import EVENT_INTERVAL, create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("DEMO_PORT", DEFAULT_PORT)),
        help="port to bind, 0 for any free one (default %(default)s, env DEMO_PORT)",
    )
    parser.add_argument(
        "--event-interval",
        type=float,
        default=EVENT_INTERVAL,
        help="seconds between simulated tick events (default %(default)s)",
    )
    return parser.parse_args(argv)


async def _serve(host: str, port: int, event_interval: float) -> None:
    runner = web.AppRunner(
        create_app(event_interval=event_interval),
        # Abandoned streams and slow requests release their handler at once.
        handler_cancellation=True,
        shutdown_timeout=5.0,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        # Report the bound port, which differs from the requested one for port 0.
        bound_port = runner.addresses[0][1]
        print(f"demo appliance API on http://{host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        # Containers stop with SIGTERM; treat it like Ctrl-C.
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    # asyncio.run cancels _serve on Ctrl-C, so the runner is cleaned up first.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.event_interval))


if __name__ == "__main__":
    main()
