"""Tests of the benchmark helpers (bench/)."""
