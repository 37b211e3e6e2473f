"""Analysis tools: compare finished runs (report) and size a run before it starts (estimate)."""
