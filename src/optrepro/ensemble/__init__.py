"""Many seeds in one process (docs/architecture.md "Many seeds at once")."""

from optrepro.ensemble.members import Members, SingleMember, VmappedEnsemble, build_members

__all__ = ["Members", "SingleMember", "VmappedEnsemble", "build_members"]
