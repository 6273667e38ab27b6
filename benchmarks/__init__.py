"""The project's benchmarks: each module runs as `python -m benchmarks.NAME` from the checkout's root."""
