"""Running compiled models: data, batching, metrics, schedules, checkpoints, progress, plots."""
