"""benchmarks/chromosome.py runs end to end (CPU, tiny lengths) and writes its section; no number is asserted."""

import argparse
import math


def test_chromosome_script_scores_each_length_in_its_own_process_and_writes_between_markers(tmp_path, load_benchmark):
    bench = load_benchmark("chromosome")
    args = argparse.Namespace(
        models=["hyenadna-tiny"], lengths=[1500, 3000], chromosome="chr04", chunk_size=65536, threads=1
    )
    rows = bench.run(args)
    assert [r["L"] for r in rows] == [1500, 3000]
    # hyenadna-tiny streams in chunks of its l_max (1,026 tokens), whatever chunk_size asks for.
    assert all(r["chunk"] == 1026 for r in rows)
    assert all(math.isfinite(r["peak_MB"]) and r["peak_MB"] > 0 and r["seconds"] > 0 for r in rows)
    assert all(0 < r["bits_per_base"] < 8 for r in rows)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- chromosome:start -->\nold\n<!-- chromosome:end -->\n\nkept\n")
    bench.replace_section(results, "chromosome", bench.render(rows, args))
    text = results.read_text()
    assert "old" not in text and "kept" in text and "| 3,000 |" in text and "peak RSS x" in text
