#!/usr/bin/env bash
# tests/coverage.sh: branch coverage of the pure modules (see docs/testing.md).
#
#   tests/coverage.sh            run, then print the report ([tool.coverage.*] in pyproject.toml)
#
# The tests are the mutation run's judges ([tool.mutmut] pytest_add_cli_args_test_selection)
# plus the packages' doctests. Outside CI; about two minutes on two cores.
# Needs `pip install -e '.[mutation]'` (coverage). EDDY_COVERAGE_FILE: data file
# (default /tmp/eddy.coverage).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${EDDY_COVERAGE_FILE:-/tmp/eddy.coverage}
.venv/bin/coverage run --data-file="$data" -m pytest -p no:cacheprovider -q \
  tests/unit bandits learners stream/engine features/cache.py features/lsh.py \
  -o "python_files=test_learners_*.py test_bandits_*.py test_vw_*.py test_ope_*.py test_engine*.py test_stream_events.py test_batching.py test_apprentice.py test_features_cache.py"
.venv/bin/coverage report --data-file="$data"
