"""Benchmark arraypickle against joblib and pickle protocol 5: one command.

    python benchmarks/run.py            # everything; writes docs/benchmarks.{md,png}
    python benchmarks/run.py --quick    # a smoke run on tiny data (seconds)
    python benchmarks/run.py --cases faces,dict --configs none,zlib3 --repeats 3

Every case x library x configuration is measured in fresh processes (``measure.py``),
its repeats spread over ``--rounds`` of them that alternate with the other libraries'
(so a change in the machine's load falls on every library alike); this process only
orchestrates, computes the ratios and targets, and writes the markdown page, the PNG
chart and the raw JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from statistics import median
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import machine  # noqa: E402
import report  # noqa: E402
import targets  # noqa: E402
from cases import CASES  # noqa: E402
from configs import CONFIGS, LIBRARIES, skip_reason  # noqa: E402


def _names(text: str, known: dict[str, Any] | tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny data, 2 repeats: a smoke run")
    p.add_argument("--cases", default=",".join(CASES), help="comma list of: %(default)s")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma list of: %(default)s")
    p.add_argument("--libraries", default=",".join(LIBRARIES), help="comma list of: %(default)s")
    p.add_argument("--repeats", type=int, help="repeats per measurement (default 5; quick 2)")
    p.add_argument(
        "--rounds",
        type=int,
        help="processes each measurement's repeats are spread over, the libraries taking "
        "turns (default 3; quick 1)",
    )
    p.add_argument("--md", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    p.add_argument("--png", default=os.path.join(ROOT, "docs", "benchmarks.png"))
    p.add_argument("--json", default=os.path.join(HERE, "results.json"))
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    p.add_argument(
        "--readme",
        help="README whose headline block gets the new tables (default: the project's "
        "README.md, except with --quick)",
    )
    p.add_argument("--no-readme", action="store_true", help="leave the README alone")
    p.add_argument("--workdir", help="where dumped files go (default: a temporary directory)")
    p.add_argument(
        "--cache-dir",
        default=os.path.join(HERE, "results", "cache"),
        help="where slow-to-build cases are cached (default: %(default)s)",
    )
    p.add_argument("--note", default="", help="a line shown at the top of the page")
    p.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: rewrite the page, chart and README from earlier results",
    )
    p.add_argument(
        "--no-hugepage",
        action="store_true",
        help="stop numpy from madvising huge pages (steadier loads on a busy machine)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds per measuring process")
    args = p.parse_args(argv)
    args.cases = _names(args.cases, CASES, "case")
    args.configs = _names(args.configs, CONFIGS, "configuration")
    args.libraries = _names(args.libraries, LIBRARIES, "library")
    if args.readme is None and not args.quick:
        args.readme = os.path.join(ROOT, "README.md")
    if args.no_readme:
        args.readme = None
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    args.rounds = min(args.rounds, args.repeats)
    return args


def summarize(raw: dict[str, list[float]], file_size: int) -> dict[str, Any]:
    """Medians and minima of times; memory of the first repeat (a fresh process)."""
    out: dict[str, Any] = {"file_size": file_size}
    for key in ("dump_s", "load_s", "mmap_s"):
        values = raw[key]
        out[key] = median(values) if values else None
        out[key.replace("_s", "_min_s")] = min(values) if values else None
    for key in ("dump_cpu_s", "load_cpu_s"):
        out[key] = median(raw[key]) if raw.get(key) else None
    for key in ("dump_peak", "load_peak", "load_retained"):
        out[key] = raw[key][0] if raw[key] else None
    return out


def split_repeats(repeats: int, rounds: int) -> list[int]:
    """``repeats`` spread as evenly as can be over ``rounds`` processes (earlier ones more)."""
    base, extra = divmod(repeats, rounds)
    return [base + (i < extra) for i in range(rounds)]


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the rows of one measurement's processes (rounds), in order.

    A round that did not succeed stands for the whole. Times join into one list each;
    memory stays the first round's first repeat, as in a single process.
    """
    bad = [(i, p) for i, p in enumerate(parts) if p["status"] != "ok"]
    if bad:
        i, row = bad[0]
        return row if len(parts) == 1 else {**row, "note": f"round {i + 1}: {row['note']}"}
    first = parts[0]
    if len(parts) == 1:
        return {**first, "processes": 1}
    raw = {key: [v for p in parts for v in p["raw"][key]] for key in first["raw"]}
    sizes = {p["file_size"] for p in parts}
    if len(sizes) != 1:
        return {**first, "status": "failed", "note": f"file sizes differ between rounds: {sizes}"}
    return {
        **first,
        "wall_s": sum(p["wall_s"] for p in parts),
        "cpu_s": sum(p["cpu_s"] for p in parts),
        "processes": len(parts),
        "raw": raw,
        "summary": summarize(raw, first["file_size"]),
    }


def measure(
    case: str,
    config: str,
    library: str,
    args: argparse.Namespace,
    workdir: str,
    repeats: int,
) -> dict[str, Any]:
    """Run one measuring process of ``repeats`` repeats; its row (status ok, skipped or
    failed)."""
    row: dict[str, Any] = {"case": case, "config": config, "library": library}
    missing = [m for m in CASES[case].needs if not _importable(m)]
    reason = f"needs {', '.join(missing)}" if missing else skip_reason(CONFIGS[config], library)
    if reason:
        return {**row, "status": "skipped", "note": reason}
    spec = {
        "case": case,
        "config": config,
        "library": library,
        "quick": args.quick,
        "repeats": repeats,
        "cache_dir": args.cache_dir,
        "path": os.path.join(workdir, f"{case}-{config}-{library}.bin"),
        "numpy_hugepage": not args.no_hugepage,
    }
    result_path = os.path.join(workdir, "result.json")
    cmd = [sys.executable, os.path.join(HERE, "measure.py"), json.dumps(spec), result_path]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {**row, "status": "failed", "note": f"timed out after {args.timeout:g} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**row, "status": "failed", "note": f"exit {proc.returncode}: {last}"}
    with open(result_path) as f:
        result = json.load(f)
    os.remove(result_path)
    note = "" if result["verified"] is not False else "loaded object differs from the original"
    status = "ok" if not note else "failed"
    if result.get("mmap_error"):
        note = note or f"its mapped load failed: {result['mmap_error']}"
    return {
        **row,
        "status": status,
        "note": note,
        "wall_s": time.perf_counter() - started,
        **result,
        "summary": summarize(result["raw"], result["file_size"]),
    }


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _progress(row: dict[str, Any]) -> str:
    head = f"{row['case']:<7} {row['config']:<9} {row['library']:<12}"
    if row["status"] != "ok":
        return f"{head} {row['status']}: {row['note']}"
    s = row["summary"]
    mmap = f" mmap {s['mmap_s'] * 1e3:7.2f} ms" if s["mmap_s"] is not None else ""
    return (
        f"{head} dump {s['dump_s']:8.3f} s  load {s['load_s']:8.3f} s{mmap}  "
        f"size {s['file_size'] / 1e6:8.1f} MB  peak +{s['dump_peak'] / 1e6:.0f}/"
        f"+{s['load_peak'] / 1e6:.0f} MB"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything asked; the results document (also written to disk)."""
    results: dict[str, Any] = {
        "machine": machine.describe(),
        "settings": {
            "command": "python benchmarks/run.py " + shlex.join(sys.argv[1:]),
            "quick": args.quick,
            "repeats": args.repeats,
            "rounds": args.rounds,
            "cases": args.cases,
            "configs": args.configs,
            "libraries": args.libraries,
            "note": args.note,
            "numpy_hugepage": not args.no_hugepage,
        },
        "cases": {c: CASES[c].description for c in args.cases},
        "rows": [],
    }
    workdir = args.workdir or tempfile.mkdtemp(prefix="arraypickle-bench-")
    os.makedirs(workdir, exist_ok=True)
    try:
        for case in args.cases:
            if CASES[case].cached and all(_importable(m) for m in CASES[case].needs):
                print(f"{case}: building the cached object ...", flush=True)
                _prepare_in_child(case, args)
            for config in args.configs:
                cases_for = CONFIGS[config].cases
                if cases_for is not None and case not in cases_for:
                    continue
                libraries = [lib for lib in args.libraries if lib in CONFIGS[config].compress]
                if not libraries:
                    continue
                parts: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libraries}
                for turn, repeats in enumerate(split_repeats(args.repeats, args.rounds)):
                    # Each round starts with the next library: whoever goes first or
                    # last in a round is not always the same one.
                    shift = turn % len(libraries)
                    for library in libraries[shift:] + libraries[:shift]:
                        done = parts[library]
                        if done and done[-1]["status"] != "ok":
                            continue  # skipped or failed: the row says so already
                        done.append(measure(case, config, library, args, workdir, repeats))
                for library in libraries:
                    row = merge(parts[library])
                    results["rows"].append(row)
                    print(_progress(row), flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_average_end"] = machine.load_average()
    results["targets"] = targets.check_all(results["rows"])
    write(results, args)
    return results


def _prepare_in_child(case: str, args: argparse.Namespace) -> None:
    """Build a cached case in its own process, so this one stays small."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from cases import CASES, prepare; "
        "prepare(CASES[sys.argv[2]], sys.argv[3] == 'quick', sys.argv[4])"
    )
    size = "quick" if args.quick else "full"
    subprocess.run([sys.executable, "-c", code, HERE, case, size, args.cache_dir], check=True)


def write(results: dict[str, Any], args: argparse.Namespace) -> None:
    for path in (args.json, args.md, args.png):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    chart_ref = None
    if not args.no_chart and not _importable("matplotlib"):
        print("matplotlib is not installed: no chart (pip install matplotlib)")
        args.no_chart = True
    if not args.no_chart:
        report.chart(results, args.png)
        chart_ref = os.path.relpath(args.png, os.path.dirname(os.path.abspath(args.md)))
    with open(args.md, "w") as f:
        f.write(report.markdown(results, chart_ref))
    if args.readme:
        page = os.path.relpath(args.md, os.path.dirname(os.path.abspath(args.readme)))
        if not report.update_readme(args.readme, report.readme_block(results, page)):
            print(f"{args.readme} has no headline block: left as it is")


def rewrite(args: argparse.Namespace) -> dict[str, Any]:
    """The outputs again from saved results (targets recomputed, note replaced if given)."""
    with open(args.from_json) as f:
        results = json.load(f)
    if args.note:
        results["settings"]["note"] = args.note
    results["targets"] = targets.check_all(results["rows"])
    if results["settings"]["quick"]:
        args.readme = None  # tiny-data figures never reach the README
    write(results, args)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = rewrite(args) if args.from_json else run(args)
    report.print_headline(results)
    print(f"\nwrote {args.md}, {args.json}" + ("" if args.no_chart else f", {args.png}"))
    failed = [r for r in results["rows"] if r["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
