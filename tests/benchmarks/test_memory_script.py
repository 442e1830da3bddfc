"""benchmarks/memory.py runs end to end (CPU, tiny lengths) and writes its section; no number is asserted."""

import argparse
import math


def test_memory_script_measures_each_length_in_its_own_process_and_writes_between_markers(tmp_path, load_benchmark):
    bench = load_benchmark("memory")
    args = argparse.Namespace(entry="hybridna-small", device="cpu", dtype="float32", batch=1, lengths=[64, 128])
    rows = bench.run(args)
    assert [r["T"] for r in rows] == [64, 128]
    assert all(math.isfinite(r["peak_MB"]) and r["peak_MB"] > 0 and r["seconds"] > 0 for r in rows)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- memory:start -->\nold\n<!-- memory:end -->\n\nkept\n")
    bench.replace_section(results, "memory", bench.render(rows, args))
    text = results.read_text()
    assert "old" not in text and "kept" in text and "| 128 |" in text
