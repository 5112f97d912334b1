"""`harness nightly`: the nightly matrix (kernels x profiles x suites), sharded and merged for CI.

runner       runs the cells of nightly.yaml (or one shard of them), merges shards
matrix       the matrix file: axes, suites, exclusions -> cells; shards
report       summary.md / summary.html, and what changed since a previous nightly
kcidb        the KCIDB JSON document (checkout, builds, tests)
junit_merge  one JUnit XML from the cells' junit.xml files
"""

from harness.nightly.runner import Options, merge, run_matrix

__all__ = ["Options", "merge", "run_matrix"]
