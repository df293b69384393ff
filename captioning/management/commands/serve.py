"""The web server (gunicorn) and a django-q2 worker cluster together, for one machine (`make run`).

Both run as child processes, each in its own process group. A worker that dies is restarted, after 1 s,
then twice as long each time it dies again (at most a minute; back to 1 s once it ran a minute), while the
site stays up. A web server that stops stops everything, with exit status 1: it fails when it cannot start
(the port is taken), and restarting it would fail the same way. Ctrl-C (or SIGTERM) stops both. On real
servers run them separately instead: gunicorn for the web, `manage.py qcluster` on the worker machines.

With --prepare-model (`make run`) a third child makes CAPTION_MODEL the active model first (`manage.py
prepare_caption_model`: a download, or minutes of building the demo model) while the site already answers and
shows its progress; the worker starts when it ends, and captions what was uploaded meanwhile.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from captioning.services.model_preparation import model_preparation_interrupted

STOP_GRACE_SECONDS = 15
RESTART_FIRST_DELAY_SECONDS = 1.0
RESTART_MAX_DELAY_SECONDS = 60.0
# A worker that ran this long before it died was not crashing at start: its next restart waits the first delay.
HEALTHY_RUN_SECONDS = 60.0
POLL_SECONDS = 0.5


class Supervised:
    """A child process in its own process group, so that everything it forked can be stopped with it."""

    def __init__(self, name: str, command: list[str]):
        self.name = name
        self.command = command
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.restart_delay = RESTART_FIRST_DELAY_SECONDS
        self.restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, start_new_session=True)
        self.started_at = time.monotonic()
        self.restart_at = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def schedule_restart(self) -> float:
        """After it died: kills what it left behind and says in how many seconds it starts again."""
        self.kill_group()
        if time.monotonic() - self.started_at >= HEALTHY_RUN_SECONDS:
            self.restart_delay = RESTART_FIRST_DELAY_SECONDS
        delay = self.restart_delay
        self.restart_delay = min(delay * 2, RESTART_MAX_DELAY_SECONDS)
        self.restart_at = time.monotonic() + delay
        return delay

    def kill_group(self) -> None:
        """SIGKILL to the processes it forked: qcluster's workers outlive a killed cluster, each holding a model."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


class Command(BaseCommand):
    help = "Run the web server (gunicorn) and a captioning worker cluster together; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="address and port of the web server")
        parser.add_argument("--no-worker", action="store_true", help="web server only")
        parser.add_argument(
            "--prepare-model",
            action="store_true",
            help="make CAPTION_MODEL the active model in the background first; the worker starts once it is done",
        )

    def handle(self, *args, addrport, no_worker, prepare_model, **options):
        bind = f"127.0.0.1:{addrport}" if addrport.isdigit() else addrport
        manage_py = os.path.abspath(sys.argv[0])
        web = Supervised("web", web_command(bind))
        worker = None if no_worker else Supervised("worker", [sys.executable, manage_py, "qcluster"])
        preparation = (
            Supervised("model", [sys.executable, manage_py, "prepare_caption_model"]) if prepare_model else None
        )
        children = [child for child in (web, worker, preparation) if child is not None]
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        web_failed = False
        try:
            web.start()
            if preparation is not None:
                preparation.start()
            elif worker is not None:
                worker.start()
            self.stdout.write(
                self.style.SUCCESS(
                    f"CLIP-Pro is running on http://{bind}/"
                    + ("" if no_worker else " with a captioning worker")
                    + (" (it starts once the captioning model is ready)" if preparation is not None else "")
                    + ". Ctrl-C stops it."
                )
            )
            while not stopping:
                if not web.running():
                    self.stderr.write(f"The web server stopped (exit {web.process.returncode}); stopping the rest.")
                    web_failed = True
                    break
                if preparation is not None and preparation.process.poll() is not None:
                    _preparation_ended(preparation.process.returncode)
                    preparation = None
                    if worker is not None:
                        worker.start()
                elif worker is not None and worker.process is not None:
                    self._keep_worker_running(worker)
                time.sleep(POLL_SECONDS)
        finally:
            _stop_all(children)
            if preparation is not None:
                _preparation_ended(preparation.process.returncode)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if web_failed:
            sys.exit(1)

    def _keep_worker_running(self, worker: Supervised) -> None:
        if worker.restart_at is None and not worker.running():
            ran = time.monotonic() - worker.started_at
            delay = worker.schedule_restart()
            self.stderr.write(
                f"The captioning worker stopped (exit {worker.process.returncode}) after {ran:.0f} s; "
                f"starting it again in {delay:.0f} s. The site stays up."
            )
        elif worker.restart_at is not None and time.monotonic() >= worker.restart_at:
            worker.start()


def web_command(bind: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        settings.WSGI_APPLICATION.rsplit(".", 1)[0] + ":application",
        "--chdir",
        str(settings.BASE_DIR),
        "--bind",
        bind,
        "--workers",
        str(settings.WEB_WORKERS),
        "--timeout",
        str(settings.WEB_TIMEOUT_SECONDS),
        # serve is the supervisor; gunicorn's control socket is one path per user, which two sites would share
        "--no-control-socket",
    ]


def _preparation_ended(returncode: int | None) -> None:
    """A preparation that ended without saying so (killed, or stopped with the site) is marked as stopped."""
    if returncode != 0:
        model_preparation_interrupted(reason=f"the model preparation stopped (exit {returncode}) before it finished")


def _stop_all(children: list[Supervised]) -> None:
    """SIGINT first (what Ctrl-C sends; qcluster finishes its current task), then SIGKILL after a grace period."""
    running = [child for child in children if child.running()]
    for child in running:
        child.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for child in children:
        child.kill_group()
        if child.process is not None:
            child.process.wait()
