"""LightningDataModules: corpora (download, cache, split), tokenizers and batching."""
