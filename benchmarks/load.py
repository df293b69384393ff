"""Pages and API lists under load: requests per second and latency at 50 concurrent clients (wrk).

What it does, in one command:
1. fills a PostgreSQL database (DATABASE_URL) with 10,000 captioned photos in galleries of every visibility
   (benchmarks/search.py's filling: 512-d embeddings, one caption each, a French translation for one in five),
   and registers a tiny random captioner whose CLIP embeds queries in 512-d, so search runs both its parts;
2. starts gunicorn with 2 sync workers as the README deploys it (DEBUG off, static files collected and served by
   whitenoise), signs a user in through the login page and the token endpoint;
3. runs wrk against each endpoint for --duration seconds with --connections clients, after a few warm-up
   requests, and against a static file first: the baseline of the same run, on the same machine;
4. prints requests/s, p50, p95, answers that were not 200, and each endpoint's cost as a multiple of the
   static file's (machines differ; the ratio travels better than the figure).

Benchmarks print figures, they never assert. On a busy machine run the code to compare right after, with
--reuse-data (the database is filled once) and --code pointing at the other checkout:

    apt-get install -y wrk
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/clippro_load python benchmarks/load.py   # creates the database
    DATABASE_URL=... python benchmarks/load.py --duration 5 --reuse-data --only gallery api-photos
    DATABASE_URL=... python benchmarks/load.py --duration 5 --reuse-data --code /tmp/clippro-old

API throttling is raised for the run (one user sends thousands of requests a minute); its bookkeeping still runs.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.postgres import ensure_database  # noqa: E402
from benchmarks.search import QUERIES, fill  # noqa: E402  (the same synthetic photos as the search benchmark)

PASSWORD = "load-benchmark-password"
# Collects each wrk thread's count of answers other than 200 and prints the percentiles wrk's own summary
# lacks (p95). Requests rotate through the endpoint's paths.
WRK_SCRIPT = """
local threads = {}
local paths = {%(paths)s}
function setup(thread) table.insert(threads, thread) end
function init(args) not_ok = 0; counter = 0 end
function request()
  counter = counter + 1
  return wrk.format(nil, paths[(counter %% #paths) + 1])
end
function response(status, headers, body) if status ~= 200 then not_ok = not_ok + 1 end end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("not_ok") end
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration, total,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
  io.write(string.format("ERRORS %%d\\n", summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout))
end
"""


@dataclass
class Endpoint:
    key: str
    label: str
    paths: list[str]
    auth: str  # "none", "session" or "token"


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    not_ok: int
    socket_errors: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(data_dir: Path, static_root: Path) -> dict[str, str]:
    """Production settings (DEBUG off, manifest static files), reachable over plain HTTP on 127.0.0.1."""
    environment = dict(os.environ)
    environment.update(
        CLIPPRO_ENV="production",
        SECRET_KEY="load-benchmark-secret-key-not-for-real-use",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        CLIPPRO_DATA_DIR=str(data_dir),
        STATIC_ROOT=str(static_root),
        API_THROTTLE_USER="100000000/minute",
        API_THROTTLE_ANONYMOUS="100000000/minute",
        LOG_LEVEL="WARNING",
        HF_HUB_OFFLINE="1",
        # Two sync workers on two cores: torch's own thread pool would only fight them.
        OMP_NUM_THREADS="1",
        CAPTION_DEVICE="cpu",
    )
    environment.pop("REDIS_URL", None)
    return environment


def setup_django(database_url: str, data_dir: Path, static_root: Path) -> None:
    os.environ.update(server_environment(data_dir, static_root))
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "clippro_site.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_tiny_captioner(directory: Path, dimension: int) -> Path:
    """A random captioner whose CLIP embeds text in `dimension`: search embeds queries with it (once per query
    and process; the answers are meaningless, the work is the same). Built from the tests' tiny models."""
    from mlcore.checkpoint import save_checkpoint
    from mlcore.model import load_tokenizer
    from mlcore.tiny import TinyClipSpec, build_gpt2, create_clip, save_clip, train_tokenizer
    from tests.conftest import CAPTIONS, make_captioner_config, make_random_model

    spec = TinyClipSpec(embed_dim=dimension)
    clip_dir = save_clip(create_clip(spec, seed=1), spec, directory / "clip")
    tokenizer = train_tokenizer(CAPTIONS, directory / "gpt2", vocab_size=320)
    build_gpt2(directory / "gpt2", tokenizer, width=32, layers=2, heads=2)
    config = make_captioner_config(clip_dir, directory / "gpt2", clip_embedding_size=dimension)
    model = make_random_model(config, directory / "gpt2", seed=0)
    return save_checkpoint(model, load_tokenizer(directory / "gpt2"), directory / "checkpoint", config)


def prepare_data(photos: int, reuse: bool, model_dir: Path) -> dict:
    """The benchmark's users, galleries and photos (filled now, or found from an earlier run with --reuse-data)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from captioning.models import Gallery, ModelVersion, Photo

    User = get_user_model()
    me = User.objects.filter(username="user0").first()
    if reuse and me is not None and Photo.objects.count() >= photos:
        print(f"reusing the {Photo.objects.count():,} photos already in the database")
    else:
        call_command("flush", interactive=False, verbosity=0)
        started = time.perf_counter()
        fill(photos, dimension=512, seed=0)
        print(f"filled {photos:,} photos in {time.perf_counter() - started:.0f} s")
        me = User.objects.get(username="user0")
    # Setting it anew (a new salt) would sign out every session of user0, those of another benchmark running now.
    if not me.check_password(PASSWORD):
        me.set_password(PASSWORD)
        me.save(update_fields=["password"])
    checkpoint = model_dir / "checkpoint"
    if not (checkpoint / "config.json").is_file():
        checkpoint = build_tiny_captioner(model_dir, dimension=512)
    model = ModelVersion.objects.get(name="bench")
    model.checkpoint_path = str(checkpoint)
    model.config = {**model.config, "clip_model": f"tiny random CLIP in {checkpoint}"}
    model.save(update_fields=["checkpoint_path", "config"])
    # The signed-in user's own gallery with the most photos, and one of its photos.
    gallery = Gallery.objects.filter(owner=me).order_by("pk").first()
    photo = gallery.photos.order_by("-created_at", "-id").first()
    return {
        "username": me.username,
        "gallery_url": gallery.get_absolute_url(),
        "gallery_photos": gallery.photos.count(),
        "photo_url": photo.get_absolute_url(),
    }


def open_data(work: Path, photos: int, reuse: bool) -> tuple[str, dict]:
    """Django set up on the database DATABASE_URL names (PostgreSQL) with files in `work`, and the benchmark's data
    in it (prepare_data): (that URL, the data)."""
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("set DATABASE_URL=postgres://... (the load test runs on PostgreSQL, as a deployment does)")
    ensure_database(database_url)
    setup_django(database_url, work / "data", work / "static")
    return database_url, prepare_data(photos, reuse, Path(tempfile.gettempdir()) / "clippro-load-model")


def collect_static(static_root: Path, environment: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=environment["CLIPPRO_CODE"],
        env=environment,
        check=True,
    )


def start_server(
    port: int, workers: int, environment: dict[str, str], log_path: Path, threads: int = 1
) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), "clippro_site.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    if threads > 1:
        command += ["--threads", str(threads)]  # gunicorn's gthread workers
    command += ["--timeout", "300", "--chdir", environment["CLIPPRO_CODE"]]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/clippro.css", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
        if server.poll() is not None:
            break
    server.terminate()
    raise SystemExit(f"gunicorn did not start; its log:\n{log_path.read_text()[-3000:]}")


def sign_in(base: str, username: str) -> tuple[str, str]:
    """(Cookie header of a signed-in session, API token), the way a browser and a client get them."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login/").read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": csrf})
    opener.open(urllib.request.Request(f"{base}/login/", data=form.encode(), headers={"Referer": f"{base}/login/"}))
    cookies = {cookie.name: cookie.value for cookie in jar}
    if "sessionid" not in cookies:
        raise SystemExit("signing in through /login/ failed")
    body = f'{{"username": "{username}", "password": "{PASSWORD}"}}'.encode()
    request = urllib.request.Request(
        f"{base}/api/auth/token/", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    token = re.search(r'"token":\s*"([^"]+)"', urllib.request.urlopen(request).read().decode()).group(1)
    return "; ".join(f"{name}={value}" for name, value in cookies.items()), token


def headers_for(endpoint: Endpoint, cookie: str, token: str) -> dict[str, str]:
    if endpoint.auth == "session":
        return {"Cookie": cookie}
    if endpoint.auth == "token":
        return {"Authorization": f"Token {token}"}
    return {}


def warm_up(base: str, endpoint: Endpoint, headers: dict[str, str], workers: int) -> list[str]:
    """A few requests per path from several clients at once, so every worker has loaded what it keeps (the
    search index, the query embeddings) before the clock runs. Returns what went wrong."""
    failures: list[str] = []

    def fetch(path: str) -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=300) as answer:
                answer.read()
        except OSError as error:  # urllib's HTTPError included
            failures.append(f"{path}: {error}")

    for path in endpoint.paths:
        clients = [threading.Thread(target=fetch, args=(path,)) for _ in range(workers * 3)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
    return failures


def run_wrk(base: str, endpoint: Endpoint, headers: dict[str, str], args, script_dir: Path) -> Result:
    script = script_dir / f"{endpoint.key}.lua"
    paths = ", ".join('"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"' for path in endpoint.paths)
    script.write_text(WRK_SCRIPT % {"paths": paths})
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s"]
    command += ["--timeout", "10s", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, base + endpoint.paths[0]], capture_output=True, text=True, check=True).stdout
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", output)
    errors = re.search(r"ERRORS (\d+)", output)
    if not match:
        raise SystemExit(f"wrk said:\n{output}")
    requests, duration_us, not_ok, p50, p95, p99 = (int(value) for value in match.groups())
    return Result(requests / (duration_us / 1e6), p50 / 1000, p95 / 1000, p99 / 1000, not_ok, int(errors.group(1)))


def endpoints(data: dict) -> list[Endpoint]:
    search_paths = [f"/search/?q={urllib.parse.quote_plus(query)}" for query in QUERIES]
    return [
        Endpoint("static", "static file (baseline)", ["/static/clippro.css"], "none"),
        Endpoint("home", "home (anonymous)", ["/"], "none"),
        Endpoint("galleries", "my galleries", ["/galleries/"], "session"),
        Endpoint("gallery", f"gallery page ({data['gallery_photos']} photos)", [data["gallery_url"]], "session"),
        Endpoint("photo", "photo page (its owner)", [data["photo_url"]], "session"),
        Endpoint("explore", "Explore", ["/explore/"], "session"),
        Endpoint("api-photos", "GET /api/photos/?page_size=50", ["/api/photos/?page_size=50"], "token"),
        Endpoint("api-galleries", "GET /api/galleries/", ["/api/galleries/"], "token"),
        Endpoint("search", f"search ({len(QUERIES)} queries in turn)", search_paths, "session"),
    ]


def print_table(rows: list[tuple[Endpoint, Result]], static: Result) -> None:
    print()
    print("| endpoint | requests/s | p50 | p95 | p99 | not 200 | static file / endpoint |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for endpoint, result in rows:
        ratio = static.requests_per_second / result.requests_per_second if result.requests_per_second else float("inf")
        errors = result.not_ok + result.socket_errors
        print(
            f"| {endpoint.label} | {result.requests_per_second:,.0f} | {result.p50_ms:,.0f} ms | "
            f"{result.p95_ms:,.0f} ms | {result.p99_ms:,.0f} ms | {errors} | {ratio:.1f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=30, help="seconds of load per endpoint")
    parser.add_argument("--connections", type=int, default=50, help="concurrent clients")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--server-threads", type=int, default=1, help="threads per gunicorn worker (1: sync)")
    parser.add_argument("--only", nargs="+", help="endpoints to run (the static baseline always runs): %(choices)s")
    parser.add_argument("--reuse-data", action="store_true", help="keep the photos an earlier run filled in")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout gunicorn serves (default: this one)")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS)")

    with tempfile.TemporaryDirectory(prefix="clippro-load-") as work:
        work = Path(work)
        database_url, data = open_data(work, args.photos, args.reuse_data)
        from django.db import connections

        connections.close_all()

        environment = server_environment(work / "data", work / "static")
        environment.update(DATABASE_URL=database_url, CLIPPRO_CODE=str(args.code.resolve()))
        collect_static(work / "static", environment)
        port = free_port()
        server = start_server(port, args.workers, environment, work / "gunicorn.log", args.server_threads)
        base = f"http://127.0.0.1:{port}"
        try:
            cookie, token = sign_in(base, data["username"])
            chosen = [
                item for item in endpoints(data) if item.key == "static" or not args.only or item.key in args.only
            ]
            print(
                f"gunicorn {args.workers} workers x {args.server_threads} threads serving {args.code.resolve()}; "
                f"wrk {args.connections} connections, {args.threads} threads, {args.duration} s per endpoint; {os.cpu_count()} CPU(s) visible"
            )
            rows = []
            for endpoint in chosen:
                headers = headers_for(endpoint, cookie, token)
                failures = warm_up(base, endpoint, headers, args.workers)
                if failures:
                    log = (work / "gunicorn.log").read_text(errors="replace")[-4000:]
                    raise SystemExit(f"{endpoint.label} failed during the warm-up: {failures[0]}\n{log}")
                result = run_wrk(base, endpoint, headers, args, work)
                print(f"  {endpoint.label}: {result.requests_per_second:,.0f} requests/s", flush=True)
                rows.append((endpoint, result))
            print_table(rows, rows[0][1])
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
