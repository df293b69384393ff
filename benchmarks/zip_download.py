"""A zip download of many photos (POST /api/photos/download/): the serving process's memory while it streams,
the throughput, the time to the first byte, and whether a download slower than the server's timeout survives.

Starts gunicorn as `manage.py serve` runs it (sync workers, `--timeout`), or with `--threads` as a threaded
deployment runs it, on SQLite in a temporary CLIPPRO_DATA_DIR; uploads `--photos` JPEGs of noise (about 3 MB
each) through the API and downloads them as one zip of originals, twice: as fast as it comes, then read slowly
(`--slow-seconds` in all) to see whether the worker is stopped by the timeout mid-download.

    python benchmarks/zip_download.py
    python benchmarks/zip_download.py --photos 60 --threads 4 --timeout 10 --slow-seconds 20
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upload_memory import (  # the benchmarks folder is no package: imported by path
    Sampler,
    free_port,
    migrate_and_create_user,
    post_json,
    rss_megabytes,
    serving_process,
    upload,
    wait_until_listening,
)

PROJECT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--threads", type=int, default=0, help="gunicorn threads (0: sync workers, as serve runs)")
    parser.add_argument("--timeout", type=int, default=10, help="gunicorn's --timeout (serve: WEB_TIMEOUT_SECONDS)")
    parser.add_argument("--slow-seconds", type=float, default=20.0, help="how long the slow download is spread over")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zip-download-") as data_dir:
        run(Path(data_dir), args)


def noise_jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def run(data_dir: Path, args: argparse.Namespace) -> None:
    environment = {
        **os.environ,
        "CLIPPRO_DATA_DIR": str(data_dir),
        "CLIPPRO_ENV": "development",
        "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
        "API_THROTTLE_UPLOADS": "100000/minute",
        "API_THROTTLE_USER": "100000/minute",
    }
    python = sys.executable
    username, password = migrate_and_create_user(PROJECT, environment)
    port = free_port()
    command = [python, "-m", "gunicorn", "clippro_site.wsgi", "--workers", "1", "--timeout", str(args.timeout)]
    command += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    if args.threads:
        command += ["--threads", str(args.threads)]
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 (open for the server's whole life)
    process = subprocess.Popen(command, cwd=PROJECT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_listening(port, process)
        token = post_json(f"{base}/api/auth/token/", {"username": username, "password": password})["token"]
        gallery = post_json(f"{base}/api/galleries/", {"title": "Zip"}, token)["public_id"]
        for seed in range(args.photos):
            upload(base, token, gallery, noise_jpeg(seed), "JPEG")
        photos = photo_ids(base, token, gallery)
        worker = "sync workers" if not args.threads else f"{args.threads} threads"
        print(f"gunicorn, 1 process, {worker}, --timeout {args.timeout}; {len(photos)} photos")

        pid = serving_process(process.pid, "gunicorn")
        idle = rss_megabytes(pid)
        sampler = Sampler(pid)
        sampler.start()
        fast = download(base, token, photos, seconds=0)
        sampler.stop()
        print(
            f"fast: {fast['megabytes']:.0f} MB in {fast['seconds']:.2f} s ({fast['megabytes'] / fast['seconds']:.0f}"
            f" MB/s), first byte after {fast['first_byte'] * 1000:.0f} ms, complete zip: {fast['complete']}; "
            f"worker memory {idle:.0f} MB idle, {sampler.peak:.0f} MB peak while streaming"
        )
        pid = serving_process(process.pid, "gunicorn")
        slow = download(base, token, photos, seconds=args.slow_seconds)
        print(
            f"slow (spread over {args.slow_seconds:.0f} s): {slow['megabytes']:.0f} MB in {slow['seconds']:.1f} s, "
            f"complete zip: {slow['complete']}{'' if slow['complete'] else ' (cut: ' + slow['error'] + ')'}"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def photo_ids(base: str, token: str, gallery: str) -> list[str]:
    request = urllib.request.Request(
        f"{base}/api/photos/?gallery={gallery}&page_size=200", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return [photo["id"] for photo in json.load(response)["results"]]


def download(base: str, token: str, photos: list[str], *, seconds: float) -> dict:
    """Reads the zip in 1 MB pieces, pausing between them so the whole read takes about `seconds`."""
    request = urllib.request.Request(
        f"{base}/api/photos/download/",
        data=json.dumps({"photos": photos}).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    received = bytearray()
    error = ""
    first_byte = None
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            pause = seconds / 100 if seconds else 0  # about 100 pauses over a ~100 MB zip
            while piece := response.read(1024 * 1024):
                first_byte = first_byte if first_byte is not None else time.perf_counter() - started
                received += piece
                if pause:
                    time.sleep(pause)
    except Exception as problem:  # a cut connection shows as an incomplete read
        error = f"{type(problem).__name__}: {problem}"
    elapsed = time.perf_counter() - started
    try:
        complete = zipfile.ZipFile(io.BytesIO(bytes(received))).testzip() is None
    except zipfile.BadZipFile as problem:
        complete, error = False, error or f"BadZipFile: {problem}"
    return {
        "megabytes": len(received) / 2**20,
        "seconds": elapsed,
        "first_byte": first_byte or 0.0,
        "complete": complete,
        "error": error,
    }


if __name__ == "__main__":
    main()
