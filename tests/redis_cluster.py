"""A Redis Cluster of the tests' own: 3 masters, each with a replica, on loopback ports.

``CHATSTATE_REDIS_CLUSTER_PORT`` (default 7100; plus ten per pytest-xdist worker) is the first
of six consecutive ports. Each
node runs ``redis-server --cluster-enabled yes`` in a directory of a temporary one (its
``nodes.conf`` there, no persistence), ``redis-cli --cluster create`` joins them, and
:meth:`RedisCluster.start` returns once every node reports ``cluster_state:ok`` — or fails
after :data:`START_TIMEOUT` seconds. ``cluster-node-timeout`` is 1000 ms, so a killed master's
replica is promoted within about two seconds. Only the processes started here are killed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.services import WORKER

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

#: Each pytest-xdist worker runs a cluster of its own, ten ports above the previous one's.
FIRST_PORT = int(os.environ.get("CHATSTATE_REDIS_CLUSTER_PORT", "7100")) + 10 * WORKER
PORTS = [FIRST_PORT + i for i in range(6)]
URL = f"redis://127.0.0.1:{FIRST_PORT}/0"
#: Every node as a startup node: a client built while one is down reads the others.
URLS = [f"redis://127.0.0.1:{port}/0" for port in PORTS]
NODE_TIMEOUT_MS = 1000
START_TIMEOUT = 60.0


class ClusterStartError(RuntimeError):
    """The cluster could not be started (binary missing, a port taken, no ``ok`` in time)."""


def available() -> bool:
    """Whether ``redis-server`` and ``redis-cli`` are installed."""
    return os.path.exists(REDIS_SERVER) and os.path.exists(REDIS_CLI)


def cli(port: int, *args: str, timeout: float = 10.0) -> str:
    done = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class RedisCluster:
    """Six ``redis-server`` processes forming one cluster; :meth:`close` kills them."""

    def __init__(self, ports: list[int] | None = None) -> None:
        self.ports = list(ports or PORTS)
        self.dir = Path(tempfile.mkdtemp(prefix="chatstate-cluster-"))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> RedisCluster:
        """Start the nodes, create the cluster, wait for ``cluster_state:ok`` everywhere."""
        if not available():
            raise ClusterStartError("redis-server / redis-cli are not installed")
        taken = [port for port in self.ports if _port_taken(port)]
        if taken:
            raise ClusterStartError(f"ports {taken} are already in use")
        deadline = time.monotonic() + START_TIMEOUT
        try:
            for port in self.ports:
                self.start_node(port)
            for port in self.ports:
                self._wait(lambda p=port: cli(p, "PING").strip() == "PONG", deadline, port)
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            subprocess.run(
                [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "1"]
                + ["--cluster-yes"],
                capture_output=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=True,
            )
            self.wait_ok(deadline)
        except BaseException:
            self.close()
            raise
        return self

    def start_node(self, port: int) -> None:
        """Start (or restart, on its ``nodes.conf``) the node of ``port``."""
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(node_dir),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(node_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait(self, ready: object, deadline: float, what: object) -> None:
        while time.monotonic() < deadline:
            try:
                if ready():  # type: ignore[operator]
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.05)
        raise ClusterStartError(f"Redis Cluster not ready in time ({what})")

    def wait_ok(self, deadline: float | None = None, ports: list[int] | None = None) -> None:
        """Wait until every running node (or ``ports``) says ``cluster_state:ok`` and agrees
        that each slot has a master."""
        deadline = deadline or time.monotonic() + START_TIMEOUT
        for port in ports or [p for p in self.ports if p in self.processes]:
            self._wait(
                lambda p=port: "cluster_state:ok" in cli(p, "CLUSTER", "INFO"),
                deadline,
                f"port {port}",
            )

    def master_of(self, key: str) -> int:
        """The port of the master now serving ``key``'s slot."""
        alive = [port for port in self.ports if port in self.processes]
        slot = int(cli(alive[0], "CLUSTER", "KEYSLOT", key).strip())
        for port in alive:
            for line in cli(port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" in fields[2] and "master" in fields[2]:
                    for part in fields[8:]:
                        low, _, high = part.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return port
        raise ClusterStartError(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL the node of ``port`` (no shutdown, no save)."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)

    def close(self) -> None:
        """Kill every node started here and remove their directory."""
        for port in list(self.processes):
            self.kill(port)
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":  # a cluster for a manual session (bench): Ctrl-C or TERM stops it
    import signal

    cluster = RedisCluster().start()
    print(f"Redis Cluster up at {URL} (ports {cluster.ports[0]}-{cluster.ports[-1]})", flush=True)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.close()
