"""Datamodules and dataset generators."""
