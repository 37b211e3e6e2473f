"""LightningModules wrapping the plain-torch models, their optimizers, schedules and callbacks."""
