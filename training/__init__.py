"""The run machinery: one training run, multirun jobs, DDP launch, checkpoints, config resolvers."""
