"""A run of one process never imports Locust: its gevent patches would change the standard library
under the asyncio engine. Only the cluster's relay processes import it."""

from __future__ import annotations

import subprocess
import sys

GEVENT_WORLD = ("locust", "gevent", "zmq")


def test_the_cli_and_the_cluster_s_engine_side_import_no_locust() -> None:
    code = (
        "import sys\n"
        "import loadgen.cli.main, loadgen.cluster.run, loadgen.cluster.executor\n"
        "import loadgen.cluster.shard\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {GEVENT_WORLD!r})\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_relay_does_import_locust() -> None:
    code = "import sys, loadgen.cluster.relay; print('locust' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
