#!/usr/bin/env python3
"""run.py - the mutation suite: plant one deliberate bug at a time in a copy
of the tree and check that the tests named for it fail (the mutant is
"killed"); a mutant that passes them "survived".

    python3 tests/mutation/run.py [--prebuilt BUILD] [--only ID,...] [--list]

For each mutant of tests/mutation/catalogue.py:
  1. once: copy the tree (git ls-files: tracked and untracked-but-not-ignored
     files) to a temporary base directory (models/ and .venv/ are symlinks)
     and build there every binary the catalogue's tests need; then for each
     mutant copy that base (modification times kept), so only what the
     mutation touches is recompiled;
  2. replace the mutant's `find` snippet in its file by `replace`: the
     snippet must occur exactly once, otherwise the run stops with an error
     (a catalogue that no longer matches the code must never be skipped);
  3. build the binaries the mutant's tests need and run those tests in
     order, stopping at the first failure (or timeout): killed by that test.
     The tests see SINKLLM_MODEL and SINKLLM_GEMMA_MODEL (models/) and
     SINKLLM_TINY_DIR: the tiny family models, made once per run by `make
     tiny` into a temporary directory (test_families, test_session).
Before the mutants, every named test runs on the unmutated base and must
pass (--no-baseline skips this): a test that fails anyway kills nothing.
A mutant that needs an instruction set this CPU lacks is reported "not run"
(and counted apart). The summary table (mutant, file, result, killed by)
ends with "N killed, N survived" (+ not run). Exit status 1 when a snippet
did not match or a mutant did not build, or (with --fail-under) when fewer
than that percentage of the run mutants were killed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from catalogue import MUTANTS  # noqa: E402

BUILD = "build-mut"
# the tiny family models (scripts/make_tiny_models.py), made once per run
# outside the copies (they are the same for every mutant): set by main()
TINY_DIR = None


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def copy_tree(dst):
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for f in files:
        src = os.path.join(ROOT, f)
        if not f or not os.path.isfile(src) or f.startswith("models/"):
            continue
        os.makedirs(os.path.dirname(os.path.join(dst, f)) or dst, exist_ok=True)
        shutil.copy2(src, os.path.join(dst, f))
    os.symlink(os.path.join(ROOT, "models"), os.path.join(dst, "models"))
    if os.path.isdir(os.path.join(ROOT, ".venv")):
        os.symlink(os.path.join(ROOT, ".venv"), os.path.join(dst, ".venv"))


def apply(dst, m):
    path = os.path.join(dst, m["file"])
    text = open(path, encoding="utf-8").read()
    n = text.count(m["find"])
    if n != 1:
        raise SystemExit(f"catalogue error: mutant {m['id']}: the snippet occurs {n} times in {m['file']} "
                         f"(must be exactly once):\n{m['find']}")
    open(path, "w", encoding="utf-8").write(text.replace(m["find"], m["replace"]))
    later = time.time() + 2  # newer than every copied object
    os.utime(path, (later, later))


def targets(tests):
    t = set()
    for name in tests:
        if name.startswith("test_"):
            t.add(f"{BUILD}/tests/{name}")
        else:  # cli, pytest: the binary and the examples (make all)
            t.add("all")
            if name.startswith("pytest:"):  # the Python binding's library
                t.add("shared")
    return sorted(t)


def run_test(dst, name, timeout):
    env = dict(os.environ, SINKLLM_MODEL=os.path.join(dst, "models/SmolLM2-135M-Instruct.Q4_1.gguf"),
               SINKLLM_GEMMA_MODEL=os.path.join(dst, "models/gemma-3-270m-Q4_K_M.gguf"))
    if TINY_DIR:
        env["SINKLLM_TINY_DIR"] = TINY_DIR
    if name.startswith("test_"):
        cmd = [f"{BUILD}/tests/{name}"]
    elif name == "cli":
        cmd = ["sh", "tests/test_cli.sh", BUILD]
    elif name.startswith("pytest:"):
        env["SINKLLM_BIN"] = os.path.join(dst, BUILD, "sinkllm")
        env["SINKLLM_LIB"] = os.path.join(dst, BUILD, "libsinkllm.so")
        cmd = [os.path.join(ROOT, ".venv/bin/python"), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
               "tests/integration/test_server.py", "tests/integration/test_hostile.py",
               "tests/integration/test_cluster.py", "tests/integration/test_logprobs.py",
               "tests/integration/test_embeddings.py", "tests/integration/test_tools.py",
               "tests/integration/test_sink_token.py", "tests/integration/test_batching.py",
               "-k", name[len("pytest:"):]]
    else:
        raise SystemExit(f"catalogue error: unknown test '{name}'")
    try:
        r = subprocess.run(cmd, cwd=dst, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout"
    out = (r.stdout + r.stderr).decode(errors="replace")
    if name.startswith("pytest:") and r.returncode == 5:
        raise SystemExit(f"catalogue error: '{name}' selects no test")
    return r.returncode == 0, out[-1500:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per test")
    ap.add_argument("--fail-under", type=float, default=0, help="exit 1 below this %% killed")
    ap.add_argument("--keep", action="store_true", help="keep the temporary trees")
    ap.add_argument("--no-baseline", action="store_true", help="do not run the tests on the unmutated tree first")
    a = ap.parse_args()
    muts = MUTANTS
    ids = [m["id"] for m in muts]
    if len(set(ids)) != len(ids):
        raise SystemExit("catalogue error: duplicate ids")
    if a.only:
        want = a.only.split(",")
        for w in want:
            if w not in ids:
                raise SystemExit(f"no mutant '{w}'")
        muts = [m for m in muts if m["id"] in want]
    if a.list:
        for m in muts:
            print(f"{m['id']:24} {m['file']:32} {', '.join(m['tests'])}\n{'':24} {m['what']}")
        return 0
    flags = cpu_flags()
    for m in muts:  # every snippet exactly once before anything is built
        n = open(os.path.join(ROOT, m["file"]), encoding="utf-8").read().count(m["find"])
        if n != 1:
            raise SystemExit(f"catalogue error: mutant {m['id']}: the snippet occurs {n} times in {m['file']} "
                             f"(must be exactly once):\n{m['find']}")
    base = tempfile.mkdtemp(prefix="sk-mut-base-")
    copy_tree(base)
    need = sorted({t for m in muts for t in targets(m["tests"])})
    b = subprocess.run(["make", f"BUILD={BUILD}", "-j2"] + need, cwd=base, capture_output=True)
    if b.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise SystemExit(f"the unmutated tree does not build:\n{b.stderr.decode()[-3000:]}")
    print(f"base tree built in {base}", flush=True)
    global TINY_DIR
    tiny = tempfile.mkdtemp(prefix="sk-mut-tiny-")
    b = subprocess.run(["make", f"BUILD={BUILD}", f"TINY_DIR={tiny}", "tiny"], cwd=base, capture_output=True)
    if b.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(tiny, ignore_errors=True)
        raise SystemExit(f"the tiny family models were not made (make tiny):\n{b.stderr.decode()[-3000:]}")
    TINY_DIR = tiny
    if not a.no_baseline:
        names = []
        for m in muts:
            if not m.get("isa") or m["isa"] in flags:
                names += [t for t in m["tests"] if t not in names]
        for name in names:
            ok, out = run_test(base, name, a.timeout)
            if not ok:
                shutil.rmtree(base, ignore_errors=True)
                shutil.rmtree(tiny, ignore_errors=True)
                raise SystemExit(f"baseline: {name} fails on the unmutated tree:\n{out}")
        print(f"baseline: {len(names)} tests pass on the unmutated tree", flush=True)
    try:
        rows, errors = run_all(a, muts, base, flags)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(tiny, ignore_errors=True)
    return report(a, rows, errors)


def run_all(a, muts, base, flags):
    """each mutant in a copy of base: (rows, number of build errors)"""
    rows, errors = [], 0
    for m in muts:
        t0 = time.time()
        need = m.get("isa")
        if need and need not in flags:
            rows.append((m, "not run", f"needs {need}", 0))
            print(f"[{m['id']}] not run: this CPU has no {need}", flush=True)
            continue
        dst = tempfile.mkdtemp(prefix="sk-mut-")
        try:
            shutil.rmtree(dst)
            shutil.copytree(base, dst, symlinks=True)
            apply(dst, m)
            b = subprocess.run(["make", f"BUILD={BUILD}", "-j2"] + targets(m["tests"]), cwd=dst,
                               capture_output=True)
            if b.returncode != 0:
                errors += 1
                rows.append((m, "ERROR", "does not build", time.time() - t0))
                print(f"[{m['id']}] ERROR: the mutant does not build:\n{b.stderr.decode()[-1500:]}", flush=True)
                continue
            result, by = "survived", ""
            for name in m["tests"]:
                ok, out = run_test(dst, name, a.timeout)
                if not ok:
                    result, by = "killed", name
                    break
            rows.append((m, result, by, time.time() - t0))
            print(f"[{m['id']}] {result} {('by ' + by) if by else ''} ({time.time() - t0:.0f} s)", flush=True)
        finally:
            if not a.keep:
                shutil.rmtree(dst, ignore_errors=True)
    return rows, errors


def report(a, rows, errors):
    print("\n| mutant | file | what | result | killed by | s |\n| --- | --- | --- | --- | --- | ---: |")
    for m, res, by, dt in rows:
        print(f"| {m['id']} | {m['file']} | {m['what']} | {res} | {by} | {dt:.0f} |")
    k = sum(r[1] == "killed" for r in rows)
    s = sum(r[1] == "survived" for r in rows)
    nr = sum(r[1] == "not run" for r in rows)
    line = f"mutation: {k} killed, {s} survived"
    if nr:
        line += f", {nr} not run on this CPU"
    if errors:
        line += f", {errors} errors"
    print(line + (f" ({100.0 * k / (k + s):.1f}% killed)" if k + s else ""))
    if errors or (a.fail_under and k + s and 100.0 * k / (k + s) < a.fail_under):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
