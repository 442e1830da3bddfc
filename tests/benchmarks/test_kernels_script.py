"""benchmarks/kernels.py runs end to end (CPU, tiny sizes) and writes its section; no timing is asserted."""

import argparse
import math

import torch


def test_script_covers_every_op_and_writes_between_markers(tmp_path, load_benchmark):
    bench = load_benchmark("kernels")
    args = argparse.Namespace(device="cpu", ops=list(bench.CASES), lengths=[32], dtypes=["float32"], repeats=1)
    rows, ceilings = bench.run(args)
    assert {r["op"] for r in rows} == set(bench.CASES)
    assert all(r["failed"] is None and math.isfinite(r["ms"]) and r["ms"] > 0 for r in rows)
    assert {r["mode"] for r in rows} == {"fwd", "fwd+bwd"}
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nkept\n\n<!-- kernels:start -->\nold\n<!-- kernels:end -->\n\nkept too\n")
    bench.replace_section(results, "kernels", bench.render(rows, ceilings, args))
    text = results.read_text()
    assert "old" not in text and text.count("<!-- kernels:start -->") == 1 and "kept too" in text
    assert "| ssd | 32 | float32 | fwd | seqzoo-torch |" in text


def test_a_failing_implementation_becomes_a_row_instead_of_ending_the_run(load_benchmark):
    bench = load_benchmark("kernels")
    case = bench.ssd_case(16, torch.float32, "cpu")

    def broken(inputs):
        raise RuntimeError("peer kernel needs CUDA\nmore detail")

    assert bench._measure(broken, case, "fwd", "cpu", 1) == "RuntimeError: peer kernel needs CUDA"
