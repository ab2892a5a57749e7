"""optrepro's SLURM launcher for Hydra (``hydra/launcher=slurm``): the submitit launcher, with bookings that
follow the trainer, finished sweep points left out, and requeueing that stops a run at its boundary first
(``optrepro.slurm``; docs/architecture.md "Clusters"). Hydra finds launchers only under ``hydra_plugins``."""
