"""Lightning callbacks: samples after training, throughput and memory (Measure), generation metrics."""
