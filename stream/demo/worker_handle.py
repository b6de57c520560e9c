"""Run an Eddy worker for the demo: a subprocess (``eddy worker``) or a thread, with its CPU time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from features.errors import EddyError
from stream.config import REPO_ROOT, Settings, child_environment


class WorkerFailed(EddyError, RuntimeError):
    """The demo's worker exited or failed; the message carries the end of its log."""


def worker_env(settings: Settings) -> dict[str, str]:
    env = child_environment(settings)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


class ProcessWorker:
    """``python -m stream.cli worker`` with the demo's settings; its log goes to ``log_path``."""

    mode = "process"

    def __init__(self, settings: Settings, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], env=worker_env(settings),
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT))
        self.cpu_s: float | None = None

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise WorkerFailed(f"the worker exited with code {self.proc.returncode}; end of {self.log_path}:\n"
                               f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 30.0) -> float | None:
        """SIGTERM (the worker drains its batch), wait, and return its CPU seconds (user + system)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    self.cpu_s = usage.ru_utime + usage.ru_stime
                    break
                time.sleep(0.05)
            else:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.cpu_s


class ThreadWorker:
    """An in-process worker on a thread (tests; ``--worker thread``)."""

    mode = "thread"

    def __init__(self, settings: Settings, log_path: Path | None = None):
        from stream.worker import Worker

        self.worker = Worker(settings)
        self.error: BaseException | None = None
        self.cpu_s: float | None = None
        self.thread = threading.Thread(target=self._run, name="eddy-demo-worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0 = time.thread_time()
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced by check()/stop()
            self.error = exc
        finally:
            self.cpu_s = time.thread_time() - t0

    def check(self) -> None:
        if self.error is not None or not self.thread.is_alive():
            raise WorkerFailed(f"the worker thread stopped: {self.error!r}")

    def log_tail(self, lines: int = 15) -> str:
        return "(worker logs to this process's stderr)"

    def stop(self, timeout_s: float = 30.0) -> float | None:
        self.worker.stop()
        self.thread.join(timeout_s)
        return self.cpu_s


def start_worker(mode: str, settings: Settings, log_path: Path):
    return ProcessWorker(settings, log_path) if mode == "process" else ThreadWorker(settings, log_path)
