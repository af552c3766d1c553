"""Load benchmark: annotators at work together against `manage.py serve --no-demo` as shipped (gunicorn and a
worker) through the REST API, on a fresh data directory (.data/bench-load-*, its own embedded PostgreSQL).

Setup goes through the API: each user registers and gets a token (the server runs with
SIGHTLINE_AUTH_RATE=1000/minute: these are throttled at 30/minute per address by default); the first creates a
project, three labels and 640x480 PNGs, and shares it with the others as Labelers. Each annotator (a thread) then
loops: read a random image's annotations, think 0.5 to 1.5 times --pause (so that they do not march in step),
save them back at the revision read with one more box, on a 409 re-read and retry once; every fifth round, list
the images and fetch a thumbnail. At the end, every box whose save was answered 200 must still be there.

Prints per operation count, errors (no answer, or not 2xx nor 409), 409s, p50/p95/p99 ms; then requests/s, saves
given up (409 twice), acknowledged saves lost (must be 0) and PostgreSQL backends named 'sightline web' before
the load, at its end and after 10 s idle. Exits 1 on any error or lost save.
Run: .venv/bin/python bench/load.py [--annotators 20] [--seconds 60] [--pause 1.0] [--images 40]
"""

import argparse
import contextlib
import io
import itertools
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg
import requests
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT / "manage.py").exists():  # a copy run from elsewhere: the repository is the working directory
    ROOT = Path.cwd()
sys.path.insert(0, str(ROOT / "bench"))
from harness import free_port, machine, percentile, table  # noqa: E402

OPERATIONS = ["read", "save", "list", "thumbnail"]
READ_ONLY = {"author", "created_at", "updated_at"}  # the server's to set: a shape goes back without them
BOX_NUMBERS = itertools.count()  # shared by all annotators, so that every box added is a different one


def serve_start(data_dir: Path, port: int, log) -> subprocess.Popen:
    """`manage.py serve --no-demo` on its own data directory, its output to `log`."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(SIGHTLINE_DATA_DIR=str(data_dir), SIGHTLINE_AUTH_RATE="1000/minute", PYTHONUNBUFFERED="1")
    command = [sys.executable, str(ROOT / "manage.py"), "serve", "--no-demo", "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def serve_wait(serve: subprocess.Popen, base: str) -> None:
    """Until the web server answers (it migrates a fresh database first)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise RuntimeError(f"serve exited with code {serve.returncode}")
        try:
            if requests.get(f"{base}/accounts/login/", timeout=10).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or its first answer is slow
            pass
        time.sleep(0.5)
    raise RuntimeError("serve did not answer within 180 s")


def serve_stop(serve: subprocess.Popen, data_dir: Path) -> None:
    """Ctrl-C, as a person would; if it has not exited within 60 s, kill it and everything it started."""
    if serve.poll() is None:
        started = psutil.Process(serve.pid).children(recursive=True)
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for process in [*started, psutil.Process(serve.pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            serve.wait()
    pid_file = data_dir / "pg" / "postmaster.pid"
    if pid_file.exists():  # a failed run must not leave its PostgreSQL behind
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
            time.sleep(1)


def web_backends(data_dir: Path) -> int:
    """PostgreSQL connections the web server holds (application_name 'sightline web')."""
    fields = (data_dir / "pg" / "postmaster.pid").read_text().split("\n")
    with psycopg.connect(host=fields[4], port=fields[3], user="postgres", dbname="sightline") as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sightline web'"
        return conn.execute(query).fetchone()[0]


def png(index: int, rng: random.Random) -> bytes:
    """A distinct 640x480 PNG: two gradients and a channel of noise."""
    gradient = PILImage.linear_gradient("L").resize((640, 480)).rotate(index * 37 % 360)
    noise = PILImage.effect_noise((640, 480), 20 + rng.random() * 40)
    out = io.BytesIO()
    PILImage.merge("RGB", [gradient, noise, PILImage.radial_gradient("L").resize((640, 480))]).save(out, "PNG")
    return out.getvalue()


def call(session: requests.Session, method: str, url: str, expect: int, **kwargs) -> dict:
    """One setup request, which must answer `expect`; its JSON body."""
    response = session.request(method, url, timeout=120, **kwargs)
    if response.status_code != expect:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response.json()


def setup(base: str, annotators: int, images: int) -> tuple[list[requests.Session], list[int], list[int], int]:
    """Users with tokens and one project, with labels and images, that all of them may annotate:
    (sessions, image ids, label ids, project id). The first session is the owner's."""
    tag, sessions, emails = secrets.token_hex(3), [], []
    for k in range(annotators):
        session, name, password = requests.Session(), f"load{k}-{tag}", f"Bench-{secrets.token_hex(8)}!"
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        call(session, "POST", f"{base}/api/auth/register/", 201, json=body)
        token = call(session, "POST", f"{base}/api/auth/token/", 200, json={"username": name, "password": password})
        session.headers["Authorization"] = f"Token {token['token']}"
        sessions.append(session)
        emails.append(body["email"])
    owner = sessions[0]
    project = call(owner, "POST", f"{base}/api/projects/", 201, json={"name": f"Load {tag}"})["id"]
    labels = [
        call(owner, "POST", f"{base}/api/projects/{project}/labels/", 201, json={"name": name})["id"]
        for name in ("car", "person", "sign")
    ]
    rng, image_ids = random.Random(7), []
    for start in range(0, images, 10):  # ten files per request
        files = [("files", (f"{i:04}.png", png(i, rng), "image/png")) for i in range(start, min(start + 10, images))]
        stored = call(owner, "POST", f"{base}/api/projects/{project}/images/", 201, files=files)["stored"]
        image_ids += [image["id"] for image in stored]
    for invitee, email in zip(sessions[1:], emails[1:], strict=True):
        share(base, owner, invitee, project, email)
    return sessions, image_ids, labels, project


def share(base: str, owner: requests.Session, invitee: requests.Session, project: int, email: str) -> None:
    """The invitee joins as a Labeler: added at once (201), or invited (202) and accepting the invitation."""
    body = {"email": email, "role": "Labeler"}
    response = owner.post(f"{base}/api/projects/{project}/members/", json=body, timeout=120)
    if response.status_code == 202:
        pending = call(invitee, "GET", f"{base}/api/invitations/", 200)
        invitation = next(i["id"] for i in pending if i["project_id"] == project)
        call(invitee, "POST", f"{base}/api/invitations/{invitation}/accept/", 200)
    elif response.status_code != 201:
        raise RuntimeError(f"POST members: {response.status_code} {response.text[:300]}")


def box_key(geometry: dict) -> tuple:
    """What tells the benchmark's boxes apart: no two have the same corner."""
    return geometry["x"], geometry["y"], geometry["width"], geometry["height"]


def timed_request(session: requests.Session, samples: dict, operation: str, method: str, url: str, **kwargs):
    """One load request, its latency and status recorded under `operation`; None (status 0) if no answer came."""
    start = time.perf_counter()
    try:
        response = session.request(method, url, timeout=60, **kwargs)
    except requests.RequestException:
        response = None
    samples[operation].append(((time.perf_counter() - start) * 1000, 0 if response is None else response.status_code))
    return response


def save_box(base: str, session, samples: dict, image_id: int, shape: dict, stop, think: float) -> str:
    """Read the image's document, think, save it back with `shape` added; on a 409 re-read and retry at once.
    Returns 'saved', 'gave up' (a 409 twice), 'failed' or 'stopped' (the load ended while thinking)."""
    url = f"{base}/api/images/{image_id}/annotations/"
    for attempt in range(2):
        read = timed_request(session, samples, "read", "GET", url)
        if read is None or read.status_code != 200:
            return "failed"
        if attempt == 0 and stop.wait(think):
            return "stopped"
        document = read.json()
        body = {
            "revision": document["revision"],
            "shapes": [*({k: v for k, v in s.items() if k not in READ_ONLY} for s in document["shapes"]), shape],
            "classifications": [{"label": c["label"], "default": c["default"]} for c in document["classifications"]],
        }
        saved = timed_request(session, samples, "save", "PUT", url, json=body)
        if saved is None or saved.status_code != 409:
            return "saved" if saved is not None and saved.status_code == 200 else "failed"
    return "gave up"


def annotator(session, seed: int, base: str, project: int, image_ids, labels, samples, results, stop, pause) -> None:
    """One person until `stop`: a box on a random image per round, and every fifth round the image list and a
    thumbnail. Each save's outcome goes to `results` as (outcome, image id, box key)."""
    rng = random.Random(seed)
    for round_number in itertools.count():
        if stop.is_set():
            return
        image_id, n = rng.choice(image_ids), next(BOX_NUMBERS)
        box = {"x": float(n % 600), "y": float(n // 600 % 440), "width": 10.0 + n % 30, "height": 10.0 + n % 17}
        shape = {"label": rng.choice(labels), "kind": "box", "geometry": box}
        outcome = save_box(base, session, samples, image_id, shape, stop, pause * rng.uniform(0.5, 1.5))
        results.append((outcome, image_id, box_key(box)))
        if round_number % 5 == 4 and not stop.is_set():
            timed_request(session, samples, "list", "GET", f"{base}/api/projects/{project}/images/")
            timed_request(session, samples, "thumbnail", "GET", f"{base}/api/images/{rng.choice(image_ids)}/thumbnail/")


def lost_saves(base: str, session, results: list) -> int:
    """Boxes whose save was answered 200 that are missing from their image's document now."""
    saved = [(image_id, key) for outcome, image_id, key in results if outcome == "saved"]
    present = {}
    for image_id in {image_id for image_id, _ in saved}:
        document = call(session, "GET", f"{base}/api/images/{image_id}/annotations/", 200)
        present[image_id] = {box_key(s["geometry"]) for s in document["shapes"] if s["kind"] == "box"}
    return sum(key not in present[image_id] for image_id, key in saved)


def operation_rows(samples: dict) -> tuple[list[list], int]:
    """The table's rows, one per operation, and the number of errors in all."""
    rows, errors = [], 0
    for operation in OPERATIONS:
        latencies = [ms for ms, _ in samples[operation]]
        failed = sum(not (200 <= status < 300 or status == 409) for _, status in samples[operation])
        conflicts = sum(status == 409 for _, status in samples[operation])
        errors += failed
        quantiles = [f"{percentile(latencies, q):.0f}" if latencies else "-" for q in (50, 95, 99)]
        rows.append([operation, len(latencies), failed, conflicts, *quantiles])
    return rows, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60, help="How long the load lasts.")
    parser.add_argument("--pause", type=float, default=1.0, help="Mean thinking time between a read and its save.")
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args()
    data_dir = ROOT / ".data" / f"bench-load-{secrets.token_hex(4)}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log, stop, serve = tempfile.TemporaryFile(), threading.Event(), None
    samples, results = {operation: [] for operation in OPERATIONS}, []
    try:
        serve = serve_start(data_dir, port, log)
        serve_wait(serve, base)
        sessions, image_ids, labels, project = setup(base, args.annotators, args.images)
        backends = [web_backends(data_dir)]
        shared = (base, project, image_ids, labels, samples, results, stop, args.pause)
        threads = [threading.Thread(target=annotator, args=(s, seed, *shared)) for seed, s in enumerate(sessions)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        backends.append(web_backends(data_dir))  # at the end of the load, the annotators still at work
        stop.set()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
        lost = lost_saves(base, sessions[0], results)
        time.sleep(10)
        backends.append(web_backends(data_dir))
    except BaseException:
        log.seek(0)
        print(f"serve's output:\n{log.read().decode(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        stop.set()
        if serve is not None:
            serve_stop(serve, data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)

    rows, errors = operation_rows(samples)
    total = sum(row[1] for row in rows)
    saved, gave_up = (sum(outcome == name for outcome, _, _ in results) for name in ("saved", "gave up"))
    print(f"machine: {machine()}")
    print(f"{args.annotators} annotators, {args.images} images, {args.seconds:g} s, pause {args.pause:g} s")
    print(table(["operation", "count", "errors", "409s", "p50 ms", "p95 ms", "p99 ms"], rows))
    print(
        f"total {total} requests, {total / seconds:.1f} requests/s; saves acknowledged {saved}, given up after "
        f"two 409s {gave_up}, acknowledged saves lost {lost}; 'sightline web' backends before / at the end of "
        f"the load / after 10 s idle: {backends[0]} / {backends[1]} / {backends[2]}"
    )
    sys.exit(1 if errors or lost else 0)


if __name__ == "__main__":
    main()
