"""Benchmark suites, one module per op family; each registers itself with
``dlkernels.bench.core.register_suite`` when imported (all modules here are imported)."""
