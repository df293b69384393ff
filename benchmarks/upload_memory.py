"""Memory of a web process while it takes four large uploads at once (captioning/images.py).

Starts a real server (gunicorn, one worker process with four threads, as a threaded deployment runs it; or
`manage.py runserver --noreload`) on SQLite in a temporary CLIPPRO_DATA_DIR, creates a user, a token and a
gallery through the API, then sends four 7000 x 7000 uploads (49 MP, under the 50 MP limit) at the same time
and samples the serving process's resident memory from /proc (VmRSS every 20 ms, and the kernel's own peak,
VmHWM). One fresh server per format, so each peak belongs to its scenario:

- PNG: a smooth gradient, about 150 KB compressed (a small file that decodes to 196 MB in Pillow's RGB);
- JPEG: the same picture at quality 90.

Reported per scenario: resident memory when idle (after one small warm-up upload), the peak during the four
uploads, and the resident memory once the uploads are answered and the process has settled (2 s later).

On SQLite some of the four uploads may be answered 500 "database is locked" (two write transactions at once;
not a memory matter): the memory figures still hold, as every upload is decoded first, but PostgreSQL
(--database-url) gives clean runs.

    python benchmarks/upload_memory.py                       # this checkout
    python benchmarks/upload_memory.py --database-url postgres://postgres@127.0.0.1:5432/clippro_memory
    python benchmarks/upload_memory.py --project /tmp/old    # another checkout (e.g. `git archive` of a commit)
    python benchmarks/upload_memory.py --server runserver --uploads 4
"""

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 7000
SETTLE_SECONDS = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--uploads", type=int, default=4, help="uploads sent at the same time")
    parser.add_argument("--formats", default="PNG,JPEG")
    parser.add_argument(
        "--database-url", default="", help="default: SQLite in the temporary folder; PostgreSQL takes concurrent writes"
    )
    args = parser.parse_args()

    print(f"project {args.project}, {args.server}, {args.uploads} concurrent uploads of {SIDE} x {SIDE}")
    print(f"{'format':<6} {'file':>9} {'idle MB':>8} {'peak MB':>8} {'settled MB':>10} {'seconds':>8}  answers")
    for image_format in args.formats.split(","):
        pictures = [encode(gradient(SIDE, shade=index), image_format) for index in range(args.uploads)]
        with tempfile.TemporaryDirectory(prefix="upload-memory-") as data_dir:
            result = measure(args.project, args.server, Path(data_dir), args.database_url, pictures, image_format)
        print(
            f"{image_format:<6} {len(pictures[0]) / 1024:>7.0f}KB {result['idle']:>8.0f} {result['peak']:>8.0f} "
            f"{result['settled']:>10.0f} {result['seconds']:>8.1f}  {result['answers']}"
        )


def gradient(side: int, shade: int) -> Image.Image:
    """A smooth RGB picture (compresses to a small PNG); `shade` makes each upload a different file."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    pixels = np.empty((side, side, 3), dtype=np.uint8)
    pixels[..., 0] = ramp[None, :]
    pixels[..., 1] = ramp[:, None]
    pixels[..., 2] = (40 * shade + 60) % 256
    return Image.fromarray(pixels, "RGB")


def encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    return buffer.getvalue()


def measure(
    project: Path, server: str, data_dir: Path, database_url: str, pictures: list[bytes], image_format: str
) -> dict:
    environment = {
        **os.environ,
        "CLIPPRO_DATA_DIR": str(data_dir),
        "CLIPPRO_ENV": "development",
        "DATABASE_URL": database_url or f"sqlite:///{data_dir / 'db.sqlite3'}",
        "API_THROTTLE_UPLOADS": "1000/minute",
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("DEBUG", None)
    python = sys.executable
    username, password = migrate_and_create_user(project, environment)

    port = free_port()
    if server == "gunicorn":
        command = [python, "-m", "gunicorn", "clippro_site.wsgi", "--workers", "1", "--threads", "4"]
        command += ["--bind", f"127.0.0.1:{port}", "--timeout", "300", "--log-level", "warning"]
    else:
        command = [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 (open for the server's whole life)
    process = subprocess.Popen(command, cwd=project, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_listening(port, process)
        serving_pid = serving_process(process.pid, server)
        token = post_json(f"{base}/api/auth/token/", {"username": username, "password": password})["token"]
        gallery = post_json(f"{base}/api/galleries/", {"title": "Memory"}, token)["public_id"]
        # A small upload first, so every module an upload needs is imported before the idle figure.
        upload(base, token, gallery, encode(gradient(64, shade=99), image_format), image_format)
        time.sleep(0.5)
        idle = rss_megabytes(serving_pid)

        sampler = Sampler(serving_pid)
        sampler.start()
        answers: list[int] = []
        started = time.perf_counter()

        def send(content: bytes) -> None:
            try:
                answers.append(str(upload(base, token, gallery, content, image_format)))
            except (OSError, RuntimeError) as error:  # urllib's HTTPError is an OSError
                answers.append(f"{error}")

        senders = [threading.Thread(target=send, args=(content,)) for content in pictures]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        seconds = time.perf_counter() - started
        time.sleep(SETTLE_SECONDS)
        sampler.stop()
        if any(answer != "201" for answer in answers):
            print((data_dir / "server.log").read_text()[-3000:], file=sys.stderr)
        peak = max(sampler.peak, status_megabytes(serving_pid, "VmHWM"))
        return {
            "idle": idle,
            "peak": peak,
            "settled": rss_megabytes(serving_pid),
            "seconds": seconds,
            "answers": ",".join(sorted(answers)),
        }
    except Exception:
        print((data_dir / "server.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def migrate_and_create_user(project: Path, environment: dict[str, str]) -> tuple[str, str]:
    """Migrates the site's database and creates a user in it; returns (username, password)."""
    run = dict(cwd=project, env=environment, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input"], **run)
    username, password = f"bench-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    create_user = (
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user(username='{username}', password='{password}')"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", create_user], **run)
    return username, password


def upload(base: str, token: str, gallery: str, content: bytes, image_format: str) -> int:
    boundary = uuid.uuid4().hex
    name = f"{uuid.uuid4().hex}.{image_format.lower()}"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="gallery"\r\n\r\n{gallery}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: image/{image_format.lower()}\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base}/api/photos/",
        data=body,
        headers={"Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        outcome = json.load(response)
    if outcome["results"][0]["outcome"] != "uploaded":
        raise RuntimeError(f"upload not stored: {outcome}")
    return response.status


def post_json(url: str, payload: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})}
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


class Sampler(threading.Thread):
    """The highest VmRSS seen, read every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_megabytes(self.pid))
            time.sleep(0.02)

    def stop(self) -> None:
        self.running = False
        self.join()


def rss_megabytes(pid: int) -> float:
    return status_megabytes(pid, "VmRSS")


def status_megabytes(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def serving_process(pid: int, server: str) -> int:
    """gunicorn answers in its one worker process, a child of the arbiter; runserver in its own."""
    if server == "runserver":
        return pid
    for _ in range(100):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start listening")


if __name__ == "__main__":
    main()
