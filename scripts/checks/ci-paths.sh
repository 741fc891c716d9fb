#!/usr/bin/env bash
# Checks that backend-ci runs for every change that can change the product: every file
# git tracks must be matched by the `paths:` filter of each event of
# .github/workflows/backend-ci.yml (pull_request and push), unless it lies under one of
# the entries below that feed neither the images nor the tests. A new top-level file
# or folder (a rust-toolchain.toml, a second crate, a config the build reads) therefore
# fails here until it is added to the filters, or to that list with its reason.
# Filters are matched as GitHub matches them (`*` stops at `/`, `**` does not, a
# leading `!` excludes; the last matching pattern decides; `paths-ignore` excludes).
# CI_PATHS_WORKFLOW=<file> checks another workflow file (to see the check fail on a
# copy with a filter removed). One line per event and per uncovered entry; exits
# non-zero when anything is uncovered.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[ci-paths] %s\n' "$*"; }
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
command -v python3 >/dev/null || apt_install python3
python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml

WORKFLOW="${CI_PATHS_WORKFLOW:-.github/workflows/backend-ci.yml}"

# Tracked paths that feed nothing CI builds or tests: a path here (a file, or a folder
# ending in /) may stay outside the filters. Tab-separated: path, reason.
feeds_nothing=$(cat <<'LIST'
README.md	documentation
docs/	documentation (except the files listed as inputs below)
.gitignore	read by git only; the image build reads .dockerignore
.github/dependabot.yml	Dependabot's update schedule
.github/CODEOWNERS	review routing
LIST
)

# Files inside those entries that the tests do read: they must be in the filters.
inputs_inside=$(cat <<'LIST'
docs/ops/monitoring.md	scripts/checks/alerts.sh checks that every alert's runbook_url has its section here
docs/ops/rollback.md	scripts/restore-drill.sh runs the recovery SQL of its transaction-ids section
LIST
)

if ! tracked=$(git ls-files 2>/dev/null) || [ -z "$tracked" ]; then
  log "FAIL  not a git checkout: cannot list the tracked files"
  exit 1
fi

TRACKED="$tracked" FEEDS_NOTHING="$feeds_nothing" INPUTS_INSIDE="$inputs_inside" \
  python3 - "$WORKFLOW" <<'PY'
import os, re, sys
import yaml

workflow = sys.argv[1]
tracked = [p for p in os.environ["TRACKED"].splitlines() if p]
def table(name):
    rows = [line.split("\t", 1) for line in os.environ[name].splitlines() if line.strip()]
    return {path: reason for path, reason in rows}
feeds_nothing, inputs_inside = table("FEEDS_NOTHING"), table("INPUTS_INSIDE")
failed = 0

def say(ok, text):
    global failed
    print(f"[ci-paths] {'ok   ' if ok else 'FAIL '} {text}")
    failed += 0 if ok else 1

def regex(pattern):
    """GitHub's filter pattern syntax as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c in "?+":            # the preceding character: optional / repeated
            out += c
        elif c == "[":
            end = pattern.find("]", i)
            if end == -1:
                out += re.escape(c)
            else:
                out, i = out + pattern[i:end + 1], end + 1
                continue
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)

def selects(patterns, path):
    """Whether an ordered `paths` list selects path: the last matching pattern wins."""
    selected = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if regex(pattern[1:] if negated else pattern).fullmatch(path):
            selected = not negated
    return selected

def allowed(path):
    return any(path == entry or (entry.endswith("/") and path.startswith(entry))
               for entry in feeds_nothing)

try:
    doc = yaml.safe_load(open(workflow))
except (OSError, yaml.YAMLError) as error:
    say(False, f"{workflow}: cannot read it ({error})")
    sys.exit(1)
on = doc.get("on", doc.get(True)) or {}   # YAML 1.1 reads the key `on` as true
if isinstance(on, (str, list)):
    on = {event: None for event in ([on] if isinstance(on, str) else on)}
events = [event for event in ("pull_request", "push") if event in on]
say(bool(events), f"{workflow}: runs on {' and '.join(events) or 'neither pull_request nor push'}")

for entry in sorted(set(feeds_nothing) | set(inputs_inside)):
    exists = any(p == entry or (entry.endswith("/") and p.startswith(entry)) for p in tracked)
    say(exists, f"listed {entry} is tracked")

for event in events:
    spec = on[event] or {}
    include, ignore = spec.get("paths"), spec.get("paths-ignore") or []
    def covered(path):
        if include is not None and not selects(include, path):
            return False
        return not selects(ignore, path)
    if include is None and not ignore:
        say(True, f"{event}: no path filter, every change runs CI")
        continue
    uncovered = {}
    for path in tracked:
        if not covered(path) and not allowed(path):
            uncovered.setdefault(path.split("/", 1)[0] + ("/" if "/" in path else ""), []).append(path)
    for path, reason in inputs_inside.items():
        if not covered(path):
            uncovered.setdefault(path, []).append(f"{path} ({reason})")
    for top, paths in sorted(uncovered.items()):
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        say(False, f"{event}: {top} is outside the paths filter: {shown}")
    if not uncovered:
        say(True, f"{event}: every tracked file is in the paths filter or feeds nothing "
                  f"({len(include or [])} patterns, {len(tracked)} files)")

print(f"[ci-paths] {'all checks passed' if not failed else f'{failed} check(s) failed'}")
sys.exit(1 if failed else 0)
PY
