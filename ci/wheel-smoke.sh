#!/usr/bin/env bash
# The wheel, as a user gets it: build the sdist and, from it, the wheel; check that each
# carries exactly what it should (ci/check_dist.py); install the wheel alone into a clean
# venv (Django is its only dependency); `django-admin startproject`, add chatstate to
# INSTALLED_APPS, migrate, then `manage.py check`, `makemigrations --check`, the public API
# and the admin pages (ci/wheel_smoke_api.py), `chatstate_snapshot` / `chatstate_restore` /
# `chatstate_prune`. Then the same project on PostgreSQL with `chatstate[postgres]`: when
# the server is unreachable that part is skipped with a message, and fails under CI=true.
# Then docs/backends.rst's project runs the conformance suite from the wheel
# (tests/docs/backend_walk.py); last, docs/tutorial.rst followed literally
# (tests/docs/tutorial_walk.py --literal).
#
# Runs from a clean clone; leaves nothing behind (a temporary directory, a PostgreSQL
# database it drops); every step is bounded by SMOKE_STEP_TIMEOUT seconds (default 300);
# exits non-zero on the first failure.
#
#   bash ci/wheel-smoke.sh                        # with python3 from PATH
#   SMOKE_PYTHON=python3.13 bash ci/wheel-smoke.sh   # another interpreter (newest Django)
#   CHATSTATE_PG_HOST / _PORT / _USER / _PASSWORD      # the PostgreSQL server, as for tests
#   CHATSTATE_SMOKE_PG_NAME                       # its scratch database (chatstate_wheel_smoke)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${SMOKE_PYTHON:-python3}
STEP_TIMEOUT=${SMOKE_STEP_TIMEOUT:-300}
IN_CI=false
case "${CI:-}" in 1 | true | TRUE | True | yes) IN_CI=true ;; esac
WORK=$(mktemp -d "${TMPDIR:-/tmp}/chatstate-wheel-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

say() { printf '== wheel-smoke [%3ss] %s\n' "$((SECONDS - START))" "$*"; }
run() { timeout --kill-after=10 "$STEP_TIMEOUT" "$@"; }
fail() { echo "wheel-smoke FAILED: $*" >&2; exit 1; }
logged() {  # run a noisy step into $WORK/step.log, shown only when it fails
  run "$@" >"$WORK/step.log" 2>&1 || { tail -n 40 "$WORK/step.log"; fail "$*"; }
}

say "build the sdist and the wheel from it ($("$PYTHON" --version))"
run "$PYTHON" -m venv "$WORK/build-env"
logged "$WORK/build-env/bin/python" -m pip install --disable-pip-version-check build
# `python -m build` makes the sdist, then the wheel from the unpacked sdist: a file missing
# from the sdist fails the wheel's build or shows as missing from the wheel.
logged "$WORK/build-env/bin/python" -m build --outdir "$WORK/dist" "$ROOT"
run "$WORK/build-env/bin/python" "$ROOT/ci/check_dist.py" "$WORK/dist"
WHEEL=$(ls "$WORK"/dist/chatstate-*.whl)

say "install $(basename "$WHEEL") into a clean venv"
run "$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
logged "$PY" -m pip install --disable-pip-version-check "$WHEEL"
echo "installed: $("$PY" -m pip list --format=freeze --disable-pip-version-check | paste -sd' ' -)"

# A fresh project, outside the source tree, whose settings read the database from SMOKE_DB.
mkdir "$WORK/site"
cd "$WORK/site"
run "$WORK/venv/bin/django-admin" startproject smoke .
cat >>smoke/settings.py <<'PY'

# -- added by ci/wheel-smoke.sh --------------------------------------------------------
import os as _os

INSTALLED_APPS += ["chatstate"]
ALLOWED_HOSTS = ["testserver"]
if _os.environ.get("SMOKE_DB") == "postgres":
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": _os.environ.get("CHATSTATE_PG_HOST", "127.0.0.1"),
        "PORT": _os.environ.get("CHATSTATE_PG_PORT", "5432"),
        "USER": _os.environ.get("CHATSTATE_PG_USER", "postgres"),
        "PASSWORD": _os.environ.get("CHATSTATE_PG_PASSWORD", ""),
        "NAME": _os.environ["SMOKE_PG_NAME"],
    }}
PY
unset PYTHONPATH
export DJANGO_SETTINGS_MODULE=smoke.settings

smoke_project() {  # the project on the database named by SMOKE_DB
  local db=$1
  say "$db: migrate"
  run "$PY" manage.py migrate --noinput -v 0
  say "$db: manage.py check, makemigrations --check"
  run "$PY" manage.py check --fail-level WARNING
  run "$PY" manage.py makemigrations chatstate --check --dry-run -v 0 ||
    fail "$db: the models have changes the shipped migrations lack"
  say "$db: public API and admin pages"
  run "$PY" "$ROOT/ci/wheel_smoke_api.py"
  say "$db: chatstate_snapshot, chatstate_restore, chatstate_prune"
  run "$PY" manage.py chatstate_snapshot --output snap.json
  grep -q '"format": *"chatstate.snapshot"' snap.json || fail "$db: chatstate_snapshot wrote no snapshot"
  run "$PY" manage.py chatstate_restore snap.json --namespace restored
  run "$PY" manage.py chatstate_snapshot --namespace restored --output restored.json
  cmp -s snap.json restored.json || fail "$db: a restored namespace snapshots differently"
  run "$PY" manage.py chatstate_prune --dry-run
  say "$db: chatstate_outbox ships (and chatstate.tasks imports without a task framework)"
  run "$PY" manage.py chatstate_outbox --help >/dev/null
  run "$PY" -c "import django; django.setup(); import chatstate.tasks, chatstate.contrib"
}

export SMOKE_DB=sqlite
smoke_project sqlite

PG_HOST=${CHATSTATE_PG_HOST:-127.0.0.1}
PG_PORT=${CHATSTATE_PG_PORT:-5432}
export SMOKE_PG_NAME=${CHATSTATE_SMOKE_PG_NAME:-chatstate_wheel_smoke}
say "install $(basename "$WHEEL")[postgres]"
logged "$PY" -m pip install --disable-pip-version-check "$WHEEL[postgres]"
pg_admin() {  # run one statement on the server's maintenance database
  "$PY" - "$1" <<'PY'
import os, sys
import psycopg
with psycopg.connect(
    host=os.environ.get("CHATSTATE_PG_HOST", "127.0.0.1"),
    port=os.environ.get("CHATSTATE_PG_PORT", "5432"),
    user=os.environ.get("CHATSTATE_PG_USER", "postgres"),
    password=os.environ.get("CHATSTATE_PG_PASSWORD", ""),
    dbname=os.environ.get("CHATSTATE_PG_NAME", "postgres"),
    autocommit=True, connect_timeout=3,
) as conn:
    conn.execute(sys.argv[1])
PY
}
if pg_admin "SELECT 1" 2>/dev/null; then
  pg_admin "DROP DATABASE IF EXISTS \"$SMOKE_PG_NAME\""
  pg_admin "CREATE DATABASE \"$SMOKE_PG_NAME\""
  trap 'pg_admin "DROP DATABASE IF EXISTS \"$SMOKE_PG_NAME\"" || true; rm -rf "$WORK"' EXIT
  export SMOKE_DB=postgres
  rm -f snap.json restored.json
  smoke_project postgres
elif $IN_CI; then
  fail "CI=true and PostgreSQL at $PG_HOST:$PG_PORT is unreachable"
else
  say "SKIPPED the PostgreSQL part: PostgreSQL at $PG_HOST:$PG_PORT is unreachable"
fi

# docs/backends.rst followed as written by a backend's author: a new project whose adapter
# (the memory adapter renamed) runs the conformance suite, chatstate.testing, from the wheel.
say "docs/backends.rst: pytest --pyargs chatstate.testing (tests/docs/backend_walk.py)"
run "$PYTHON" "$ROOT/tests/docs/backend_walk.py" "$WORK/backend" --venv "$WORK/venv" --wheel "$WHEEL"

# docs/tutorial.rst followed as written by a new user: a new venv, the wheel built from this
# clone and installed, a startproject, the webhook through runserver, the admin logged in.
say "docs/tutorial.rst, followed literally (tests/docs/tutorial_walk.py)"
mkdir "$WORK/tutorial"
logged "$PYTHON" "$ROOT/tests/docs/tutorial_walk.py" --literal --python "$PYTHON" "$WORK/tutorial/walk"

say "passed: $(basename "$WHEEL") on $("$PY" -c 'import django; print("Django", django.get_version())')"
