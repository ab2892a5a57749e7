"""Optimizers and step-size schedules."""
