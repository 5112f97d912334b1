#!/bin/sh
# Runs the harness of this checkout, the way tools/testing/kunit/kunit.py is
# run from a kernel tree:  ./harness.sh build-and-test
# Its Python environment is the checkout's .venv/, made by ./install-deps.sh
# (./install-deps.sh --python-only for it alone). A symlink to this file, e.g.
# ~/.local/bin/harness, works too. (Not named `harness`: that is the package.)
here=$(dirname "$(readlink -f "$0")")
if [ ! -x "$here/.venv/bin/harness" ]; then
	echo "harness.sh: $here/.venv/ is missing: run $here/install-deps.sh" \
		"(or install-deps.sh --python-only) first" >&2
	exit 1
fi
exec "$here/.venv/bin/harness" "$@"
