"""Glue for the entry points: config resolvers, logger set-up, checkpoint loading, time estimates."""
