"""The README keeps its promises: two quick-start commands, CI runs the second, the
examples marked ``<!-- run -->`` run, and its links lead somewhere."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

import arraypickle

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

DEMO_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && "
    ".venv/bin/python -m arraypickle demo"
)
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt && "
    ".venv/bin/python -m pytest -n 2"
)

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
RUN_MARK = re.compile(r"<!-- run(?:: requires (\w+))? -->\n```python\n(.*?)^```", re.S | re.M)


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def commands(text: str) -> list[str]:
    lines = []
    for _, body in FENCE.findall(text):
        lines += [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.startswith("#")]
    return lines


def test_quick_start_is_exactly_two_commands():
    assert commands(section("Quick start")) == [DEMO_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command():
    script = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands(section("Quick start"))[1] in script


def test_requirements_install_the_core_and_name_every_plugin():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    assert "-e ." in lines
    plugin_lines = [ln for ln in lines if "plugins/arraypickle-" in ln]
    assert {ln.rsplit("arraypickle-", 1)[1] for ln in plugin_lines} == {
        "lz4",
        "snappy",
        "blosc",
        "zstd",
    }
    for line in plugin_lines:
        if not line.startswith("#"):  # an enabled plugin must be there to install
            assert (ROOT / line.removeprefix("-e").strip()).is_dir(), line
    assert (ROOT / "requirements-test.txt").exists()


EXAMPLES = [
    pytest.param(code, requires, id=f"line{README[: m.start()].count(chr(10)) + 1}")
    for m in RUN_MARK.finditer(README)
    for requires, code in [m.groups()]
]


def test_examples_are_marked():
    assert len(EXAMPLES) >= 7  # markers lost in an edit would silently stop the checks


@pytest.mark.parametrize(("code", "requires"), EXAMPLES)
def test_example_runs(tmp_path, code, requires):
    if requires and requires not in arraypickle.codecs():
        pytest.skip(f"needs the {requires} codec plugin")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_relative_links_resolve():
    targets = re.findall(r"\]\(([^)]+)\)", README)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t[0] != "#"]
    assert local
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_headline_block_holds_the_comparison():
    start, end = README.index("<!-- headline:start -->"), README.index("<!-- headline:end -->")
    block = README[start:end]
    assert "| case | dump s: arraypickle / pickle-5 / joblib" in block
    for case in ("Face bunch", "Seed example", "Dict of floats", "Random forest"):
        assert f"| {case} |" in block
    assert "](docs/benchmarks.md)" in block
