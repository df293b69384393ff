"""The web server and a django-q2 worker cluster together, for one machine (`make run`).

Both run as child processes; Ctrl-C (or SIGTERM) stops both, and if either stops on its own the other is
stopped too, so a half-running site is never left behind. On real servers run them separately instead:
gunicorn for the web, `manage.py qcluster` on the worker machines (see the README).
"""

import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand

STOP_GRACE_SECONDS = 15


class Command(BaseCommand):
    help = "Run the web server and a captioning worker cluster together; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="address and port of the web server")
        parser.add_argument("--no-worker", action="store_true", help="web server only")

    def handle(self, *args, addrport, no_worker, **options):
        manage = [sys.executable, os.path.abspath(sys.argv[0])]
        commands = {"web": [*manage, "runserver", addrport, "--noreload"]}
        if not no_worker:
            commands["worker"] = [*manage, "qcluster"]
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for name, command in commands.items():
                children[name] = subprocess.Popen(command)
            self.stdout.write(
                self.style.SUCCESS(
                    f"CLIP-Pro is running on http://{addrport}/ with a captioning worker. Ctrl-C stops both."
                )
            )
            while not stopping:
                ended = [name for name, child in children.items() if child.poll() is not None]
                if ended:
                    self.stderr.write(
                        f"The {ended[0]} process stopped (exit {children[ended[0]].returncode}); stopping the rest."
                    )
                    break
                time.sleep(0.5)
        finally:
            _stop_all(children)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if (
            any(child.returncode not in (0, -signal.SIGINT, -signal.SIGTERM) for child in children.values())
            and not stopping
        ):
            sys.exit(1)


def _stop_all(children: dict[str, subprocess.Popen]) -> None:
    """SIGINT first (what Ctrl-C sends; qcluster finishes its current task), then SIGKILL after a grace period."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children.values():
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
