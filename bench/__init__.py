"""Benchmark harness: orderstream against the lock and Lua baselines."""
