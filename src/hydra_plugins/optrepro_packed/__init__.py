"""optrepro's packing launcher for Hydra (``hydra/launcher=packed``): the jobs of a sweep that differ only in keys
that can vary per member train as one ensemble in one process, each job keeping its own folder and records
(``optrepro.packing``, ``optrepro.packed``; docs/architecture.md "Packed sweeps"). Hydra finds launchers
only under ``hydra_plugins``."""
