"""A real two-node Ray cluster on this one machine, for multi-node and fault tests.

Two ``ray start --block`` processes, each the leader of its own session:

* node A, the head, at 127.0.0.2: GCS, dashboard (Jobs API, state API) and a
  raylet, with the custom resource ``node_a``;
* node B at 127.0.0.3: a second raylet that joins the head, with ``node_b``.

Pin work to a node with ``resources={"node_a": 1}`` / ``{"node_b": 1}``.

Why these addresses: Ray rewrites a node address of ``127.0.0.1``/``localhost``
to the machine's outward IP (``services.resolve_ip_for_localhost``), so
``--node-ip-address=127.0.0.1`` would send the cluster's traffic to the
ethernet address. Other addresses of the loopback range 127.0.0.0/8 are kept
as given, answer on Linux without any set-up, and give the two nodes distinct
IPs, as two machines would have. The dashboard listens on 127.0.0.1.

Ray keeps the two raylets apart on one host by giving each its own socket
names (``raylet``, ``raylet.1``) in the shared session directory; every port
is picked free here, so nothing collides with another Ray on the machine (the
test session's embedded Ray, another test's cluster). Token authentication is
off (``RAY_AUTH_MODE=disabled``) whatever ``~/.ray/auth_token`` holds, so any
client connects without a token.

Drive it from a *subprocess* (``ray.init(address=cluster.address)``): the test
process may already run its own embedded Ray, and one process holds one Ray
connection. HTTP clients (``JobSubmissionClient(cluster.dashboard_url)``) are
fine in-process. Usage::

    with RayCluster() as cluster:
        subprocess.run([sys.executable, "driver.py", cluster.address], env=cluster.client_env())
        cluster.stop_node_b()          # a node dies mid-job; returns once the GCS has noticed

Nothing is left behind: :meth:`stop` SIGKILLs every process of each node's
session (``ray start`` leads one per node, and Ray never leaves it, so
reparented workers are found too) and any process whose command line names
this cluster's private temp dir, then removes the temp dir. ``ray stop`` is
never used: it kills every Ray on the machine, not just this one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: Unix socket paths are limited to 107 bytes; Ray puts them at
#: <temp_dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store.N
#: (~65-70 bytes below temp_dir), so the temp dir itself must stay short.
MAX_TEMP_DIR_CHARS = 36

#: an upper bound on waiting, so a broken start fails with its logs instead of
#: hanging; not a performance expectation (it takes 10-40 s on 2 busy cores)
DEFAULT_TIMEOUT_S = 240.0

#: The GCS marks a node dead after this many failed health checks, one per
#: period; Ray's defaults (3 s x 5) make a fault test wait 15 s for that.
HEALTH_CHECK_PERIOD_MS = 1000
HEALTH_CHECK_FAILURES = 5

#: node B gives up joining when the head has not registered within ~20 s (busy machine): start it again
MAX_B_LAUNCHES = 5


class ClusterError(RuntimeError):
    """The cluster did not come up (or change) as asked; the message carries the node logs' tails."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _ray_cli() -> list[str]:
    """The ``ray`` command of the interpreter running the tests, so every Ray process uses this venv."""
    script = Path(sys.executable).parent / "ray"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) for every live process (zombies left out), from /proc (Linux only)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # a command name may hold spaces or parentheses: the fields start after the last ')'
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                stats[int(entry.name)] = (int(fields[1]), int(fields[3]))
        except (OSError, IndexError, ValueError):
            continue
    return stats


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, those alive (not zombies)."""
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid``: they stay in it when their parent dies and they are reparented."""
    return [pid for pid, (_, session) in _proc_stats().items() if session == sid]


def pids_mentioning(text: str) -> list[int]:
    """Live processes (other than this one) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def rss_mib(pids: list[int]) -> float:
    """Resident memory of these processes added up, in MiB (pages shared between them counted each time)."""
    total_kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total_kib += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return total_kib / 1024


def pss_mib(pids: list[int]) -> float:
    """Proportional memory of these processes (shared pages split among their users), in MiB."""
    total_kib = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total_kib += sum(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total_kib / 1024


def client_env() -> dict[str, str]:
    """An environment for a Ray node or driver subprocess: this one, minus anything pointing Ray elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    # `python`, `ray`, `farm` in a job's entrypoint are this venv's, as on a cluster node of the image
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _Node:
    """One ``ray start --block`` process, leader of its own session, its output in a log file."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]):
        self.name, self.log, self.killed = name, log, False
        with log.open("wb") as out:
            self.proc = subprocess.Popen(_ray_cli() + args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole node at once: it dies as a machine would, without a goodbye.

        Every Ray process of the node stays in the session that ``ray start``
        leads (Ray never calls setsid), reparented workers included, so killing
        the session's members until none are left leaves nothing behind.
        """
        if self.killed:
            return
        self.killed = True
        for _ in range(50):
            # the leader is not reaped (no poll/wait) before the end, so its pid cannot be reused meanwhile
            members = set(session_members(self.proc.pid)) | set(process_tree(self.proc.pid))
            if not members:
                break
            _kill(sorted(members))
            time.sleep(0.05)
        self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            text = ["(no log)"]
        return f"--- {self.name}: {self.log} ---\n" + "\n".join(text[-lines:])


class RayCluster:
    """A head (``node_a``) and a second node (``node_b``) on loopback addresses; see the module docstring.

    Attributes:
        address: the GCS address, ``"127.0.0.2:PORT"``, for ``ray.init(address=...)`` and ``ray start --address``
        dashboard_url: ``"http://127.0.0.1:PORT"``, for the Jobs API (``JobSubmissionClient``) and the state API
        env: extra environment of the nodes' processes (and so of every job and actor on them)
        temp_dir: this cluster's private Ray temp dir (sessions, logs, sockets; node logs ``node_*.log``)
        startup_s: after :meth:`start`, seconds from the first ``ray start`` until both nodes were
            alive and the Jobs API answered
    """

    def __init__(self, *, num_cpus: int = 1, object_store_mib: int = 200, timeout_s: float = DEFAULT_TIMEOUT_S,
                 temp_root: str = "/tmp", ip_a: str = "127.0.0.2", ip_b: str = "127.0.0.3",
                 env: dict[str, str] | None = None):
        self.num_cpus, self.object_store_mib, self.timeout_s = num_cpus, object_store_mib, timeout_s
        self.env = dict(env or {})  # what the nodes are started with (a cloud node's own credentials)
        self.ip_a, self.ip_b = ip_a, ip_b
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rayc-", dir=temp_root))
        if len(str(self.temp_dir)) > MAX_TEMP_DIR_CHARS:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            raise ClusterError(f"temp dir {self.temp_dir} is too long for Ray's unix socket paths "
                               f"(at most {MAX_TEMP_DIR_CHARS} characters); pass a shorter temp_root")
        self.gcs_port, self.dashboard_port = free_port(ip_a), free_port()
        self.address = f"{ip_a}:{self.gcs_port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.startup_s: float | None = None
        self.node_a: _Node | None = None
        self.node_b: _Node | None = None
        self._nodes: list[_Node] = []  # every node ever started, for stop()
        self._b_starts = 0

    # ------------------------------------------------------------------ environment

    def node_env(self) -> dict[str, str]:
        """The environment of this cluster's Ray processes."""
        env = {**self.client_env(), **self.env}
        env["RAY_health_check_period_ms"] = str(HEALTH_CHECK_PERIOD_MS)
        env["RAY_health_check_failure_threshold"] = str(HEALTH_CHECK_FAILURES)
        return env

    def client_env(self) -> dict[str, str]:
        """An environment for a driver subprocess: this one, minus anything pointing Ray elsewhere."""
        return client_env()

    # ------------------------------------------------------------------ start

    def _node_args(self, resource: str, ip: str) -> list[str]:
        return [
            "--block", f"--node-ip-address={ip}", f"--num-cpus={self.num_cpus}", "--num-gpus=0",
            f"--resources={json.dumps({resource: 1})}",
            f"--object-store-memory={self.object_store_mib * 1024 * 1024}",
            # every port of the node picked free: two raylets (and maybe other Rays) share this host
            f"--node-manager-port={free_port(ip)}", f"--object-manager-port={free_port(ip)}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port(ip)}",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port(ip)}",
            "--min-worker-port=0", "--max-worker-port=0",  # workers take ports the OS assigns
            "--disable-usage-stats",
        ]

    def start(self) -> RayCluster:
        """Start both nodes; return once both are alive and the Jobs API answers, else raise ClusterError."""
        t0 = time.monotonic()
        try:
            self.node_a = self._add(_Node("node_a", [
                "start", "--head", f"--port={self.gcs_port}", f"--temp-dir={self.temp_dir}",
                "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={free_port()}", *self._node_args("node_a", self.ip_a),
            ], self.temp_dir / "node_a.log", self.node_env()))
            # node B starts as soon as the GCS listens, while the dashboard comes up; if it asked
            # before the head had registered, it gives up, and is started again
            self._poll(lambda: port_open(self.ip_a, self.gcs_port), "the head's GCS to listen")
            self._launch_b()
            self.wait_for(lambda nodes: {"node_a", "node_b"} <= nodes.keys(), "both nodes to be alive",
                          on_exit=self._relaunch_b_early)
            self._poll(self._jobs_api_answers, "the Jobs API to answer")
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _launch_b(self) -> None:
        self._b_starts += 1
        self.node_b = self._add(_Node("node_b", [
            "start", f"--address={self.address}", "--include-log-monitor=false",
            *self._node_args("node_b", self.ip_b),
        ], self.temp_dir / f"node_b.{self._b_starts}.log", self.node_env()))

    def _relaunch_b_early(self, node: _Node) -> bool:
        if node is not self.node_b or self._b_starts >= MAX_B_LAUNCHES:
            return False
        self._launch_b()
        return True

    def _add(self, node: _Node) -> _Node:
        self._nodes.append(node)
        return node

    def start_node_b(self) -> None:
        """Start node B again after :meth:`stop_node_b` (a new node, new id) and wait until it is alive."""
        if self.node_b is not None and self.node_b.alive():
            raise ClusterError("node_b is already running")
        self._launch_b()
        self.wait_for(lambda nodes: "node_b" in nodes, "node_b to join")

    # ------------------------------------------------------------------ state

    def alive_nodes(self) -> dict[str, str]:
        """``{"node_a": node_id, "node_b": node_id}`` for the nodes the GCS reports ALIVE (via the state API)."""
        from ray.util.state import list_nodes

        alive = {}
        for node in list_nodes(address=self.dashboard_url, filters=[("state", "=", "ALIVE")], detail=True,
                               raise_on_missing_output=False, timeout=10):
            for name in ("node_a", "node_b"):
                if name in (node.resources_total or {}):
                    alive[name] = node.node_id
        return alive

    def wait_for(self, condition: Callable[[dict[str, str]], bool], what: str,
                 on_exit: Callable[[_Node], bool] | None = None) -> dict[str, str]:
        """Poll :meth:`alive_nodes` until ``condition(nodes)`` holds; ClusterError with the logs otherwise."""
        seen: dict[str, str] = {}

        def check() -> bool:
            seen.clear()
            seen.update(self.alive_nodes())
            return condition(seen)

        self._poll(check, what, state=lambda: seen, on_exit=on_exit)
        return dict(seen)

    def _jobs_api_answers(self) -> bool:
        from ray.job_submission import JobSubmissionClient

        JobSubmissionClient(self.dashboard_url).list_jobs()
        return True

    def _poll(self, check: Callable[[], bool], what: str, state: Callable[[], object] = lambda: None,
              on_exit: Callable[[_Node], bool] | None = None) -> None:
        """Call ``check`` until it is true; a node that exits meanwhile is an error unless ``on_exit`` fixes it."""
        deadline = time.monotonic() + self.timeout_s
        last: object = None
        while True:
            for node in (self.node_a, self.node_b):
                if node is not None and not node.killed and not node.alive():
                    if on_exit is not None and on_exit(node):
                        continue
                    raise ClusterError(f"{node.name} exited (code {node.proc.returncode}) while waiting for "
                                       f"{what}\n{self._tails()}")
            try:
                if check():
                    return
                last = state()
            except Exception as exc:  # the dashboard not up yet: refused connections, 5xx, timeouts
                last = exc
            if time.monotonic() > deadline:
                raise ClusterError(f"gave up after {self.timeout_s:.0f} s waiting for {what} "
                                   f"(last: {last!r})\n{self._tails()}")
            time.sleep(0.25)

    def _tails(self) -> str:
        return "\n".join(node.tail() for node in (self.node_a, self.node_b) if node is not None)

    def pids(self) -> list[int]:
        """Every live process of this cluster: its nodes' sessions, and anything naming its temp dir."""
        found = set(pids_mentioning(str(self.temp_dir)))
        for node in self._nodes:
            found.update(session_members(node.proc.pid))
        return sorted(found)

    def rss_mib(self) -> float:
        """Resident memory of all this cluster's processes added up, in MiB (shared pages counted each time)."""
        return rss_mib(self.pids())

    def pss_mib(self) -> float:
        """Memory of all this cluster's processes, shared pages split among them, in MiB: the honest total."""
        return pss_mib(self.pids())

    # ------------------------------------------------------------------ stop

    def stop_node_b(self, wait: bool = True) -> None:
        """Kill node B (SIGKILL: raylet, agents and workers at once), as a machine dies mid-job.

        With ``wait``, return once the GCS no longer reports node B alive
        (about HEALTH_CHECK_PERIOD_MS x HEALTH_CHECK_FAILURES), so the caller
        can count on the cluster having noticed.
        """
        if self.node_b is None:
            raise ClusterError("node_b was never started")
        self.node_b.kill()
        if wait:
            self.wait_for(lambda nodes: "node_b" not in nodes, "the GCS to mark node_b dead")

    def stop(self) -> None:
        """Kill both nodes and every process of this cluster, remove its temp dir. Safe to call twice."""
        for node in reversed(self._nodes):
            node.kill()
        for _ in range(50):  # belt and braces: anything else that names this cluster's temp dir
            leftover = pids_mentioning(str(self.temp_dir))
            if not leftover:
                break
            _kill(leftover)
            time.sleep(0.1)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RayHead:
    """A one-node Ray for a whole test session, in processes of its own: ``ray start --head --block``
    (no dashboard) at 127.0.0.4 with a private temp dir, so no ``ray.init()`` and no driver of the
    machine finds it by itself, and nothing a test does in its own process (a driver ending "its" Ray
    included) stops it. Tests connect to :attr:`address` and disconnect when done.
    """

    def __init__(self, *, num_cpus: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, ip: str = "127.0.0.4"):
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rayh-", dir="/tmp"))
        self.address = f"{ip}:{free_port(ip)}"
        cpus = num_cpus or len(os.sched_getaffinity(0))
        self.node = _Node("head", [
            "start", "--head", "--block", f"--port={self.address.split(':')[1]}", f"--node-ip-address={ip}",
            f"--temp-dir={self.temp_dir}", "--include-dashboard=false", f"--num-cpus={cpus}", "--num-gpus=0",
            f"--object-store-memory={200 * 1024 * 1024}", f"--ray-client-server-port={free_port()}", "--min-worker-port=0", "--max-worker-port=0",
            "--disable-usage-stats",
        ], self.temp_dir / "head.log", client_env())
        deadline = time.monotonic() + timeout_s
        # `ray start` prints its "Ray runtime started" banner once the GCS and the raylet are up
        while "Ray runtime started" not in self.node.log.read_text(errors="replace"):
            if not self.node.alive() or time.monotonic() > deadline:
                tail = self.node.tail()
                self.stop()
                raise ClusterError(f"the session's Ray head did not start\n{tail}")
            time.sleep(0.25)

    def pids(self, named: str = "") -> list[int]:
        """Live processes of this Ray whose command line contains ``named`` (all of them by default):
        a Ray worker's command line is its title, ``ray::ClassName.method``."""
        found = set(session_members(self.node.proc.pid)) | set(pids_mentioning(str(self.temp_dir)))
        if not named:
            return sorted(found)
        return [pid for pid in sorted(found) if pid in pids_mentioning(named)]

    def stop(self) -> None:
        self.node.kill()
        _kill(pids_mentioning(str(self.temp_dir)))
        shutil.rmtree(self.temp_dir, ignore_errors=True)
