#!/usr/bin/env bash
# tests/mutation.sh: mutation testing of the pure modules with mutmut (see docs/testing.md).
#
#   tests/mutation.sh                         every mutant of [tool.mutmut] only_mutate
#   tests/mutation.sh 'learners.*'            only the mutants whose names match (fnmatch)
#   tests/mutation.sh 'bandits.ope.*' 'learners.ridge.*'
#
# It runs in a scratch copy of the working tree (tracked and untracked-but-not-ignored
# files), so mutmut's mutants/ folder never lands in the repository and concurrent edits
# cannot change the code under test halfway through. The scratch folder keeps mutmut's
# cache between runs: a rerun only retests functions whose source changed.
# Outside CI: it takes minutes to tens of minutes. Needs `pip install -e '.[mutation]'`.
# Environment: EDDY_MUTATION_DIR (scratch folder, default /tmp/eddy-mutation),
# EDDY_MUTATION_JOBS (parallel mutants, default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
work=${EDDY_MUTATION_DIR:-/tmp/eddy-mutation}
jobs=${EDDY_MUTATION_JOBS:-2}
mutmut=$repo/.venv/bin/mutmut
if [ ! -x "$mutmut" ]; then
  echo "mutation: mutmut is not installed: run .venv/bin/pip install -e '.[mutation]'" >&2
  exit 2
fi

# Refresh the scratch copy, keeping mutants/ (mutmut's cache of mutants and results).
mkdir -p "$work"
find "$work" -mindepth 1 -maxdepth 1 ! -name mutants -exec rm -rf {} +
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$work"

cd "$work"
# mutmut forks one child per mutant from a process that has run the tests; an OpenMP or
# BLAS thread pool started before the fork deadlocks the child on its first parallel op
# (the engine tests run the feature net), which mutmut then reports as a timeout.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
start=$(date +%s)
"$mutmut" run --max-children "$jobs" "$@" || echo "mutation: mutmut run exited with $?" >&2
echo "mutation: ran in $(( $(date +%s) - start )) s in $work"
# One line per mutant that was not killed: survived, timed out, or reached by no test
# (not those left unchecked because the run was limited to some names).
"$mutmut" results | grep -v ': not checked$' || true
"$mutmut" export-cicd-stats >/dev/null && cat mutants/mutmut-cicd-stats.json && echo
