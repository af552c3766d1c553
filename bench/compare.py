"""Compare commits, not dates: run the quick benchmarks at REF and at HEAD on this machine, one after the
other, and print HEAD/REF for every number. This machine's speed changes from day to day, so a claim that
something got faster (or did not get slower) is only worth this A/B.

Run: make bench-compare REF=<commit>   (or .venv/bin/python bench/compare.py REF)

REF is checked out in a worktree under /tmp, with its embedded PostgreSQL inside it. When its
pyproject.toml is HEAD's, it runs in a venv that borrows this checkout's packages but not its editable
install (which would otherwise import HEAD's code for any module REF lacks); otherwise in a venv of its own.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK = [["bench/annotations.py", "--quick"], ["bench/exports.py", "--quick"]]
NUMBER = re.compile(r"(-?\d[\d,]*\.?\d*)")


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def worktree(ref: str) -> Path:
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    path = Path(f"/tmp/sightline-bench-{commit[:12]}")
    if not path.exists():
        git("worktree", "add", "--detach", str(path), commit)
    venv = path / ".venv"
    if not venv.exists():
        if (path / "pyproject.toml").read_bytes() == (ROOT / "pyproject.toml").read_bytes():
            venv.symlink_to(borrowing_venv())
        else:
            print(f"{ref}: its dependencies differ; building its own venv (a few minutes)", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "-e", ".[test]"], cwd=path, check=True)
    for script, *_ in QUICK:  # a benchmark REF lacks runs in its copy of HEAD's version
        if not (path / script).exists():
            shutil.copy(ROOT / script, path / script)
    return path


def borrowing_venv() -> Path:
    """A venv whose only package path is this checkout's site-packages, added by a .pth line (so the
    .pth files in it, the editable install among them, are not run)."""
    import sysconfig

    venv = Path("/tmp/sightline-bench-venv")
    if not (venv / "bin/python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "sightline-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run(tree: Path) -> dict[tuple[str, str], str]:
    """{(benchmark: case, column): cell} from every table the quick benchmarks print."""
    cells = {}
    for command in QUICK:
        out = subprocess.run([str(tree / ".venv/bin/python"), *command], cwd=tree, capture_output=True, text=True)
        if out.returncode:
            print(f"{tree.name}: {' '.join(command)} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        lines = [line for line in out.stdout.splitlines() if " | " in line]
        if not lines:
            continue
        header = [h.strip() for h in lines[0].split(" | ")]
        for line in lines[1:]:
            row = [c.strip() for c in line.split(" | ")]
            for column, cell in zip(header[1:], row[1:], strict=False):
                cells[(f"{Path(command[0]).stem}: {row[0]}", column)] = cell
    return cells


def value(cell: str) -> float | None:
    found = NUMBER.search(cell or "")
    return float(found.group(1).replace(",", "")) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the commit to compare HEAD with")
    args = parser.parse_args()
    before = run(worktree(args.ref))
    after = run(ROOT)
    rows = []
    for key in after:
        old, new = value(before.get(key, "")), value(after[key])
        ratio = f"{new / old:.2f}x" if old and new is not None else ""
        rows.append([key[0], key[1], before.get(key, "-"), after[key], ratio])
    sys.path.insert(0, str(ROOT / "bench"))
    from harness import machine, table

    print(
        f"machine: {machine()}; REF {git('rev-parse', '--short', args.ref)}, HEAD {git('rev-parse', '--short', 'HEAD')}"
    )
    print(table(["case", "column", "REF", "HEAD", "HEAD/REF"], rows))


if __name__ == "__main__":
    main()
