"""Peak memory of a fresh process, for tests that bound it.

``PEAK_SCRIPT`` is the start of a script run with ``python -c``: ``Peak()`` marks a
starting point, ``Peak().extra()`` returns the bytes the process's resident set grew
to beyond it (the kernel's high-water mark, reset through ``/proc/self/clear_refs``,
else sampling every millisecond with psutil).
"""

import json
import subprocess
import sys
import textwrap

PEAK_SCRIPT = textwrap.dedent(
    r"""
    import json, os, sys, threading, time

    def rss():
        import psutil
        return psutil.Process().memory_info().rss

    class Peak:
        # The kernel's high-water mark when it can be reset, else sampling.
        def __init__(self):
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.hwm = True
            except OSError:
                self.hwm = False
            self.base = rss()
            self.peak = self.base
            if not self.hwm:
                self.done = False
                self.thread = threading.Thread(target=self.sample, daemon=True)
                self.thread.start()

        def sample(self):
            while not self.done:
                self.peak = max(self.peak, rss())
                time.sleep(0.001)

        def extra(self):
            if self.hwm:
                with open("/proc/self/status") as f:
                    line = next(l for l in f if l.startswith("VmHWM"))
                self.peak = int(line.split()[1]) * 1024
            else:
                self.done = True
                self.thread.join()
            return self.peak - self.base
    """
)


def run_measured(script: str, *args: str, timeout: float = 300) -> dict:
    """Run ``script`` with ``args`` in a fresh interpreter; the JSON its last line
    prints (the script fails the test if it fails)."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
