"""The results as markdown (``docs/benchmarks.md``), a console headline and a PNG chart."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from cases import CASES
from configs import CONFIGS, LIBRARIES, LIBRARY_TITLES

MB = 1e6
MARK = {"pass": "\N{WHITE HEAVY CHECK MARK}", "fail": "\N{CROSS MARK}", "n/a": "-"}


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.2f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:.1f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _index(results: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["case"], r["config"], r["library"]): r for r in results["rows"]}


def _summary(index: dict, case: str, config: str, library: str) -> dict[str, Any] | None:
    row = index.get((case, config, library))
    return row["summary"] if row and row["status"] == "ok" else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _get(summary: dict[str, Any] | None, key: str) -> float | None:
    return None if summary is None else summary.get(key)


# -- the headline ---------------------------------------------------------------------


def headline(results: dict[str, Any], config: str = "none") -> list[str]:
    """One row per case: dump, load (and mmap) times of the three libraries, ratios."""
    index = _index(results)
    libs = [lib for lib in LIBRARIES if lib in CONFIGS[config].compress]
    titles = " / ".join(LIBRARY_TITLES[lib] for lib in libs)
    header = [
        "case",
        f"dump s: {titles}",
        f"load s: {titles}",
        f"dump peak +MB: {titles}",
        "file MB (ours)",
    ]
    if CONFIGS[config].mmap:
        header.append("mmap load ms: arraypickle / joblib")
    header += ["ours vs pickle-5 (dump, load)", "faster than joblib (dump, load)"]
    rows = []
    for case in results["settings"]["cases"]:
        if config not in _configs_for(results, case):
            continue
        s = {lib: _summary(index, case, config, lib) for lib in LIBRARIES}
        if not any(s.values()):
            continue
        ap, pk, jl = s["arraypickle"], s["pickle5"], s["joblib"]
        row = [
            CASES[case].title,
            " / ".join(_s(_get(s[lib], "dump_s")) for lib in libs),
            " / ".join(_s(_get(s[lib], "load_s")) for lib in libs),
            " / ".join(_mb(_get(s[lib], "dump_peak")) for lib in libs),
            _mb(_get(ap, "file_size")),
        ]
        if CONFIGS[config].mmap:
            mapped = f"{_ms(_get(ap, 'mmap_s'))} / {_ms(_get(jl, 'mmap_s'))}"
            row.append(mapped if CASES[case].arrays else "- (no big arrays)")
        row += [
            ", ".join(_x(_ratio(_get(ap, k), _get(pk, k))) for k in ("dump_s", "load_s")),
            ", ".join(_x(_ratio(_get(jl, k), _get(ap, k))) for k in ("dump_s", "load_s")),
        ]
        rows.append(row)
    return _table(header, rows)


def _configs_for(results: dict[str, Any], case: str) -> list[str]:
    return [
        c
        for c in results["settings"]["configs"]
        if CONFIGS[c].cases is None or case in CONFIGS[c].cases
    ]


# -- per case ---------------------------------------------------------------------------


def case_table(results: dict[str, Any], case: str) -> list[str]:
    """Every configuration and library measured on ``case``, targets marked on our rows."""
    index = _index(results)
    marks = {
        (t["config"], t["cell"]): MARK[t["status"]]
        for t in results["targets"]
        if t["case"] == case and t["cell"] and t["status"] != "n/a"
    }
    header = [
        "configuration",
        "library",
        "dump s (median / min)",
        "load s (median / min)",
        "CPU s (dump / load)",
        "mmap load ms",
        "dump peak +MB",
        "load peak +MB",
        "file MB",
        "time / pickle-5 (dump, load)",
        "joblib time / ours (dump, load)",
    ]
    rows = []
    for config in _configs_for(results, case):
        for lib in LIBRARIES:
            row = index.get((case, config, lib))
            if row is None:
                continue
            title = CONFIGS[config].title
            if row["status"] != "ok":
                rows.append([title, LIBRARY_TITLES[lib], f"*{row['status']}: {row['note']}*"]
                            + [""] * (len(header) - 3))  # fmt: skip
                continue
            s = row["summary"]

            def mark(cell: str, text: str, config: str = config, lib: str = lib) -> str:
                sign = marks.get((config, cell)) if lib == "arraypickle" else None
                return f"**{text}** {sign}" if sign else text

            ratios = ["", ""]
            if lib == "arraypickle":
                pk = _summary(index, case, config, "pickle5")
                jl = _summary(index, case, config, "joblib")
                ratios = [
                    ", ".join(
                        mark(f"pk_{op}", _x(_ratio(s[f"{op}_s"], _get(pk, f"{op}_s"))))
                        for op in ("dump", "load")
                    ),
                    ", ".join(
                        mark(f"jl_{op}", _x(_ratio(_get(jl, f"{op}_s"), s[f"{op}_s"])))
                        for op in ("dump", "load")
                    ),
                ]
            rows.append(
                [
                    title,
                    LIBRARY_TITLES[lib],
                    f"{_s(s['dump_s'])} / {_s(s['dump_min_s'])}",
                    f"{_s(s['load_s'])} / {_s(s['load_min_s'])}",
                    f"{_s(s.get('dump_cpu_s'))} / {_s(s.get('load_cpu_s'))}",
                    # joblib maps each array on a file descriptor of its own: past the
                    # process's limit, its mapped load fails while the rest stands.
                    f"*failed: {row['mmap_error']}*"
                    if row.get("mmap_error")
                    else mark("mmap", _ms(s.get("mmap_s"))),
                    mark("dump_peak", _mb(s["dump_peak"])),
                    mark("load_peak", f"{_mb(s['load_peak'])} ({_mb(s['load_retained'])} kept)"),
                    mark("size", _mb(s["file_size"])),
                    *ratios,
                ]
            )
    return _table(header, rows)


def targets_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for t in results["targets"]:
        measured = "-"
        if t["measured"] is not None:
            unit = t["required"].split()[-1].lstrip("0123456789.")
            measured = f"{t['measured']:.{1 if unit == 'MB' else 2}f}{unit}"
        status = f"{MARK[t['status']]} {t['status']}" + (f" ({t['note']})" if t["note"] else "")
        rows.append(
            [
                f"#{t['issue']}",
                CASES[t["case"]].title,
                CONFIGS[t["config"]].title,
                t["text"],
                measured,
                t["required"],
                status,
            ]
        )
    header = ["issue", "case", "configuration", "target", "measured", "required", "status"]
    return _table(header, rows)


def _count(results: dict[str, Any]) -> str:
    statuses = [t["status"] for t in results["targets"]]
    return ", ".join(f"{statuses.count(s)} {s}" for s in ("pass", "fail", "n/a"))


# -- the document ---------------------------------------------------------------------


def markdown(results: dict[str, Any], chart: str | None) -> str:
    """``docs/benchmarks.md``."""
    m = results["machine"]
    st = results["settings"]
    lines = ["# Benchmarks: arraypickle vs joblib vs pickle protocol 5", ""]
    if st.get("note"):
        lines += [f"> **{st['note']}**", ""]
    if st["quick"]:
        lines += ["> **Quick run on tiny data: the figures say nothing about speed.**", ""]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    lines += [
        f"Measured {m['date']} with `{st['command']}`.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; "
        f"load average {m['load_average_start']} at the start, {m['load_average_end']} at "
        "the end.",
        f"- Python {m['python']}; {versions}.",
        f"- Transparent huge pages: {m.get('transparent_hugepages') or 'unknown'}; numpy's "
        "huge-page advice "
        + ("on (numpy's default)." if st.get("numpy_hugepage", True) else "off (`--no-hugepage`)."),
        f"- {st['repeats']} repeats per measurement{_rounds(st)}; times are medians (and "
        "minima) in seconds; memory is from the first repeat (of the first process), in MB "
        "(10^6 bytes).",
        "",
        "## Headline: uncompressed",
        "",
        *headline(results, "none"),
        "",
    ]
    if "zlib3" in st["configs"]:
        lines += ["## Headline: zlib level 3 (`compress=3`)", "", *headline(results, "zlib3"), ""]
    lines += [
        "Ratios: *time / pickle-5* below 1 means faster than `pickle` protocol 5; "
        "*joblib time / ours* above 1 means faster than joblib.",
        "",
        f"## Targets (issues 2, 3 and 4): {_count(results)}",
        "",
        *targets_table(results),
        "",
        "## Every case",
        "",
        "Our rows mark the figures a target covers: ✅ met, ❌ missed. *load peak +MB* "
        "includes the loaded object itself; *kept* is what it still holds after the load.",
        "",
    ]
    for case in st["cases"]:
        lines += [f"### {CASES[case].title}", "", CASES[case].description + ".", ""]
        lines += [*case_table(results, case), ""]
    if chart:
        lines += ["## Chart", "", f"![dump and load times]({chart})", ""]
    lines += ["## Method", "", *METHOD, ""]
    skipped = sorted({r["note"] for r in results["rows"] if r["status"] == "skipped"})
    if skipped:
        lines += ["## Not measured in this run", "", *[f"- {s}" for s in skipped], ""]
    return "\n".join(lines)


METHOD = [
    "- One command: `python benchmarks/run.py` (`--quick` for a smoke run on tiny data; "
    "`--cases`, `--configs`, `--libraries`, `--repeats`, `--rounds` to choose). It writes "
    "this page, the chart beside it and the raw figures (`benchmarks/results.json`).",
    "- Every case x library x configuration runs in fresh Python processes, which import "
    "only the library they measure and build the case's data from a fixed seed "
    "(the fitted forest is built once per run and loaded from a pickle by each process). "
    "A measurement's repeats are spread over `--rounds` processes (3 by default), and the "
    "libraries take turns, round by round, each round starting with the next library: a "
    "change in the machine's load during a measurement falls on every library alike, "
    "instead of on whichever ran last.",
    "- Each process first writes to three times the memory its case holds and gives it "
    "back, untimed: on the project's VM the first touch of memory costs about 10 us a "
    "page, once, which otherwise lands on whichever repeat or library comes first. It "
    "then dumps and loads a tiny object, untimed, so that one-time work "
    "(lazy imports, plugin discovery) is not counted in the repeats; the JSON keeps its "
    "time as `first_call_s`.",
    "- Each repeat: `gc.collect()`, glibc's `malloc_trim(0)` (so memory freed by the "
    "previous repeat is not silently reused) and `os.sync()`, timed dump to a file on disk, then "
    "the same three steps and a timed load of that file (page cache warm, as it is "
    "right after a dump); for uncompressed files, a timed `load(path, mmap_mode='r')` "
    "(the mapping only: no array data is read). The first load is checked to equal the "
    "original.",
    "- Peak memory: inside the measuring process, the kernel's peak RSS (`VmHWM`) is reset "
    "through `/proc/self/clear_refs` just before the operation and read just after; "
    "reported is the peak minus the RSS before the operation. For a load this includes "
    "the loaded object.",
    "- pickle-5 rows: `pickle.dump(obj, f, protocol=5)` into `open(path, 'wb')`, or, for "
    "compressed configurations, into `gzip.open(path, 'wb', compresslevel=3)` (the same "
    "deflate as zlib) or `lz4.frame.open(path, 'wb', compression_level=3)` (what joblib "
    "uses for `('lz4', 3)`). Codecs joblib lacks (blosc, snappy, zstd) are measured for "
    "arraypickle only.",
    "- Every ratio compares medians of the same run. *CPU s* is the process's user + "
    "system time during the operation (median): on a busy machine wall times include "
    "waiting for a core, CPU seconds do not, so they show what an operation costs when "
    "the wall times are noisy (for a parallel codec they exceed the wall time).",
    "- The face bunch is synthetic (the real dataset is not downloaded): each image is a "
    "random 9x7 field of 8-bit values, blown up 8x, box-blurred and cropped to 62x47, "
    "plus +/-3 noise, then divided by 255 into float32. Like photographs it compresses "
    "(about 3x with zlib 3), which uniform noise would not. As in scikit-learn's bunch, "
    "`data` is a reshaped view of `images`, so pickles hold the pixels twice: "
    "2 x 13,233 x 62 x 47 x 4 bytes = 308.5 MB, plus 0.1 MB of targets and 0.25 MB of "
    "names.",
]


README_START = "<!-- headline:start -->"
README_END = "<!-- headline:end -->"


def _rounds(settings: dict[str, Any]) -> str:
    """How the repeats were run, for the page's and the README's lead (old results: 1)."""
    rounds = settings.get("rounds", 1)
    if rounds == 1:
        return ", in one fresh process per case, library and configuration"
    return f", in {rounds} fresh processes per case, library and configuration, taking turns"


def readme_block(results: dict[str, Any], page: str) -> str:
    """The README's comparison: the headline tables, labelled with where they come from."""
    m = results["machine"]
    note = results["settings"].get("note")
    lines = [
        README_START,
        "### How it compares" + (" (provisional figures)" if note else ""),
        "",
        f"Measured {m['date'][:10]} by `python benchmarks/run.py` on {m['cpu']} "
        f"({m['cores']} cores), Python {m['python']}, joblib {m['versions'].get('joblib')}: "
        f"median seconds of {results['settings']['repeats']} repeats"
        f"{_rounds(results['settings'])}. *ours vs pickle-5* divides times (below 1x: "
        "arraypickle is faster); *faster than joblib* divides joblib's time by ours "
        "(above 1x: arraypickle is faster).",
    ]
    if note:
        lines.append(f"**{note}**")
    lines += ["", "Uncompressed:", "", *headline(results, "none"), ""]
    if "zlib3" in results["settings"]["configs"]:
        lines += ["zlib level 3 (`compress=3`):", "", *headline(results, "zlib3"), ""]
    lines += [
        f"Every codec, the peak memory, the targets and the method: [{page}]({page}).",
        README_END,
    ]
    return "\n".join(lines)


def update_readme(path: str, block: str) -> bool:
    """Replace the README's headline block; False when the README has no such block."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:start] + block + text[end + len(README_END) :])
    return True


def print_headline(results: dict[str, Any]) -> None:
    print()
    print("\n".join(headline(results, "none")))
    print()
    failed = [t for t in results["targets"] if t["status"] == "fail"]
    print(f"Targets: {_count(results)}")
    for t in failed:
        print(f"  FAIL #{t['issue']} {t['case']} {t['config']}: {t['text']} = "
              f"{t['measured']:.3g} (required {t['required']})")  # fmt: skip


# -- the chart --------------------------------------------------------------------------


def chart(results: dict[str, Any], path: str) -> None:
    """Dump and load medians per case, configuration and library (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = _index(results)
    cases = results["settings"]["cases"]
    fig, axes = plt.subplots(len(cases), 2, figsize=(13, 3.2 * len(cases)), squeeze=False)
    colors = {"arraypickle": "#1f77b4", "pickle5": "#7f7f7f", "joblib": "#ff7f0e"}
    width = 0.27
    for row, case in enumerate(cases):
        configs = [
            c
            for c in _configs_for(results, case)
            if any(_summary(index, case, c, lib) for lib in LIBRARIES)
        ]
        for col, op in enumerate(("dump", "load")):
            ax = axes[row][col]
            for k, lib in enumerate(LIBRARIES):
                xs, ys = [], []
                for i, config in enumerate(configs):
                    value = _get(_summary(index, case, config, lib), f"{op}_s")
                    if value:
                        xs.append(i + (k - 1) * width)
                        ys.append(value)
                ax.bar(xs, ys, width, label=LIBRARY_TITLES[lib], color=colors[lib])
            ax.set_yscale("log")
            ax.set_xticks(range(len(configs)))
            ax.set_xticklabels(configs, fontsize=8)
            ax.set_title(f"{CASES[case].title}: {op} (s, median, lower is better)", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
