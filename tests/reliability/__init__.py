"""Reliability tests of the embedding path (issue 3): failures, bad input, concurrency, crashes,
model changes and security. A package so that worker processes can import
``reliability.flaky_models`` and ``reliability.worker`` (with ``tests/`` on ``PYTHONPATH``)."""
