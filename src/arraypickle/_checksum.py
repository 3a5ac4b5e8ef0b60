"""Record checksums: xxh3-64.

Measured on the 2-core machine this project targets, over 300 MB in memory:
xxh3-64 16.4 GB/s, xxh64 8.5 GB/s, zlib.crc32 3.2 GB/s, zlib.adler32 2.7 GB/s.
Loading 300 MB from the page cache runs at 5-6 GB/s on one thread and about 8 GB/s
on two (``_splitread``), so crc32 would more than double a load.

Where the hash runs (``_helper.HelperThread``; measurements in docs/integrity.md):

- an uncompressed dump hashes buffers of 4 MiB or more on a helper thread while it
  writes them, and smaller ones in line (compressed dumps hash in line: their cores
  are busy compressing);
- a load reading on one thread hashes buffers of 4 MiB or more on a helper thread
  while it reads the next piece, and smaller ones in line, a 512 KiB piece at a time
  right after reading it, while it is in cache (``_reader``);
- a load reading a large buffer on two threads (``_splitread``) hashes each piece on
  the thread that read it, in order.

Checking the smaller buffers on the helper thread too, while the next records are read,
measured slower: a fitted forest (401 buffers of 1-250 KB) loaded in 1.5-1.6 times
pickle's time instead of 1.3-1.4, the handovers of the GIL costing more than the hashes
they moved.
"""

from __future__ import annotations

import xxhash

digest = xxhash.xxh3_64_intdigest
Hasher = xxhash.xxh3_64
