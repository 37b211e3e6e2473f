"""The project's Optuna sweeper for Hydra (docs/sweeps.md: why it is not Hydra's hydra-optuna-sweeper)."""
