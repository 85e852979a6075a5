"""`python -m skill.distill.worker`: one quick distill in a process the MCP server can always kill.

The server writes one JSON job line on stdin and keeps stdin open: end of file means the server is gone, and the
worker exits at once. Messages go back as JSON lines on the original stdout; everything else that writes to
stdout (a library, a TorchScript `print`) lands on stderr. Limits: torch threads and CPU seconds (a backstop)
before torch is imported; address space (RLIMIT_AS: what is mapped after the imports plus the allowance) before
any user input is read. The server opened the user's files and the staging
folder; the worker gets descriptors, never a path to re-open.

Messages: {"type": "started"} once torch is loaded, {"type": "progress", "done", "total", "message"},
then {"type": "result", "report": {...}} or {"type": "error", "kind": "input" | "failure", "message": "field: ..."}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import threading
import time
from typing import Any, TextIO

MAX_JOB_BYTES = 1 << 20


def _send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, allow_nan=False) + "\n")
    channel.flush()


def _exit_when_server_goes(stdin: Any) -> None:
    """The server holds our stdin open; when it closes (server exited, killed, or cancelled us) stop everything."""
    while stdin.read(4096):
        pass
    os._exit(3)


def _limit_cpu_and_threads(budget_s: float, threads: int | None) -> None:
    """Before torch is imported: its thread pools read these variables once."""
    cpu_s = int((budget_s + 60) * (threads or os.cpu_count() or 1)) + 30  # only if the server's kill never came
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)


def _address_space() -> int:
    """Bytes of address space mapped now (Linux VmSize), 0 where unknown."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _limit_memory(memory_mb: int) -> None:
    """After the imports: the run may map `memory_mb` more than the loaded libraries (a CUDA torch maps gigabytes)."""
    if memory_mb > 0:
        limit = _address_space() + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _describe(exc: BaseException) -> tuple[str, str]:
    """("input" or "failure", one line for the client): the field when known, never a traceback."""
    from pydantic import ValidationError

    from skill.distill.sources import LoadStopped, redact_paths
    from skill.errors import InputError, describe_validation_error

    if isinstance(exc, ValidationError):
        return "input", describe_validation_error(exc)
    if isinstance(exc, InputError):
        return "input", str(exc)
    if isinstance(exc, LoadStopped):
        return "failure", f"time_budget_s: {exc}"
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "DefaultCPUAllocator" in str(exc):
        return (
            "failure",
            f"memory: the run needed more than the worker's limit of {os.environ.get('KD_WORKER_MEMORY_MB', '?')} MiB "
            "(--max-distill-memory-mb); use smaller nets, batch_size or data",
        )
    import torch

    if isinstance(exc, torch.jit.Error) or "TorchScript interpreter" in str(exc):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return (
            "failure",
            "teacher: the TorchScript teacher failed while running: "
            f"{redact_paths(lines[-1] if lines else type(exc).__name__)[:200]}",
        )
    first = redact_paths((str(exc).splitlines() or [""])[0])[:200]  # the server's own paths stay private
    return "failure", f"the run failed: {type(exc).__name__}: {first}"


def _cause_chain(exc: BaseException) -> str:
    """Each exception in the chain, one line each, innermost first: the unredacted cause for the operator's log."""
    chain: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 8:
        lines = [line.strip() for line in str(seen).splitlines() if line.strip()] or [""]
        text = lines[0][:300] + (f" ... {lines[-1][:300]}" if len(lines) > 1 else "")  # TorchScript puts the cause last
        chain.append(f"{type(seen).__name__}: {text}")
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(reversed(chain))


def run(job: dict[str, Any], channel: TextIO) -> None:
    config_data = job["config"]
    _limit_cpu_and_threads(float(config_data.get("time_budget_s", 60)), config_data.get("threads"))
    os.environ["KD_WORKER_MEMORY_MB"] = str(job.get("memory_mb", 0))
    try:
        from skill.distill import run_quick_distill, sources, teacher
        from skill.distill.config import DistillConfig
        from skill.distill.runner import run_quick_distill as _load_runner  # noqa: F401  (loads torch before "started")
        from skill.distill.write_lock import lock_writes

        teacher.TORCHSCRIPT_POLICY = "allow" if job.get("allow_torchscript") else "refuse"
        for shown, fd in job.get("files", {}).values():
            sources.register_file(shown, fd)
        output = job.get("output")
        if output:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401  (its font cache is written now, before writes are locked)

            sources.register_output_dir(output["shown"], output["fd"])
        config = DistillConfig.model_validate(config_data)
        tempfile.gettempdir()  # found (by a test write) and cached now: torch's lazy imports ask for it after the lock
        # The first optimiser imports torch._dynamo, whose import creates $TMPDIR/torchinductor_<user>: on a
        # machine where that folder did not exist yet the lock refused it (a CI flake). Import it now, while writes
        # are still allowed.
        import joblib  # noqa: F401  (scikit-learn's; its import probes /dev/shm with a semaphore)
        import torch._dynamo  # noqa: F401  (creates torchinductor's folder before writes are locked)

        _limit_memory(int(job.get("memory_mb", 0)))
        # from here on, no file can be written outside the staging folder (Landlock, where the kernel has it)
        _send(channel, {"type": "started", "write_lock": lock_writes(output["fd"] if output else None)})
        sources.install_guard(time.monotonic() + config.time_budget_s)
        report = run_quick_distill(
            config, progress=lambda d, t, m: _send(channel, {"type": "progress", "done": d, "total": t, "message": m})
        )
        _send(channel, {"type": "result", "report": report.model_dump(mode="json")})
    except Exception as exc:  # every failure becomes one line for the client
        # the operator's log (the server relays the worker's stderr) keeps the unredacted cause; the client gets
        # one line
        print("worker failure:", _cause_chain(exc), file=sys.stderr, flush=True)
        kind, text = _describe(exc)
        _send(channel, {"type": "error", "kind": kind, "message": text})


def main() -> int:
    sys.dont_write_bytecode = True
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (libraries, TorchScript) go to stderr, never into the protocol
    line = sys.stdin.buffer.readline(MAX_JOB_BYTES)
    try:
        job = json.loads(line)
    except ValueError:
        _send(channel, {"type": "error", "message": "the worker got no readable job"})
        return 2
    threading.Thread(target=_exit_when_server_goes, args=(sys.stdin.buffer,), daemon=True).start()
    run(job, channel)
    channel.flush()
    os._exit(0)  # skip interpreter teardown: nothing is left to flush, and torch's can take a second


if __name__ == "__main__":
    sys.exit(main())
