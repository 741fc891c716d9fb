#!/usr/bin/env bash
# Static checks of ops/grafana without a Grafana: every dashboard is valid JSON with a
# unique uid, a title and a schemaVersion; every panel queries the provisioned
# datasource (uid `prometheus`), has a gridPos and a unique id; every target has an
# `expr` and a `refId`; no template variable other than Grafana's `$__rate_interval` /
# `$__interval` is used (make ops-check cannot substitute others); the provisioning
# YAML parses and names that datasource and the dashboards folder; and every `expr`
# parses as PromQL (`promtool check rules` over a recording rule holding it, with
# `$__rate_interval` and `$__interval` replaced by 1m, as make ops-check does).
# Whether the queries return data is make ops-check's job (scripts/ops-check.sh).
# One line per check; exits non-zero when any fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

# PyYAML: the system python3's, else the one in the schemathesis venv.
python=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
  python="$HOME/.cache/prism/venv/bin/python"
  if ! "$python" -c 'import yaml' 2>/dev/null; then
    echo "FAIL  PyYAML: neither python3 nor $python can import yaml"
    exit 1
  fi
fi
if ! command -v promtool >/dev/null; then
  echo "FAIL  promtool not found (Debian's prometheus package has it: scripts/services.sh installs it)"
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Structure checks; writes one rules file per expression into $work for promtool.
status=0
"$python" - "$work" <<'PY' || status=1
import glob, json, os, re, sys

import yaml

work = sys.argv[1]
failed = False


def check(ok, what):
    global failed
    print(f"{'ok   ' if ok else 'FAIL '} {what}")
    if not ok:
        failed = True
    return ok


# Variables Grafana substitutes and make ops-check replaces; `${1}` (label_replace's
# capture reference) starts with a digit and is no variable.
VARIABLE = re.compile(r"\$\{?([A-Za-z_]\w*)|\[\[(\w+)")
ALLOWED_VARIABLES = {"__rate_interval", "__interval"}
GRID_KEYS = ("h", "w", "x", "y")

paths = sorted(glob.glob("ops/grafana/dashboards/*.json"))
check(bool(paths), f"dashboards found in ops/grafana/dashboards ({len(paths)})")
uids = {}
n_expr = 0
for path in paths:
    name = os.path.basename(path)
    try:
        with open(path) as f:
            board = json.load(f)
    except (OSError, ValueError) as error:
        check(False, f"{name}: valid JSON ({error})")
        continue
    check(isinstance(board, dict), f"{name}: valid JSON")
    if not isinstance(board, dict):
        continue
    uid = board.get("uid")
    check(isinstance(uid, str) and uid != "" and uid not in uids,
          f"{name}: uid {uid!r} present and unique"
          + (f" (also in {uids[uid]})" if uid in uids else ""))
    uids.setdefault(uid, name)
    check(isinstance(board.get("title"), str) and board["title"] != "",
          f"{name}: title {board.get('title')!r}")
    check(isinstance(board.get("schemaVersion"), int) and board["schemaVersion"] >= 36,
          f"{name}: schemaVersion {board.get('schemaVersion')!r}")
    variables = [v.get("name") for v in board.get("templating", {}).get("list", [])
                 if v.get("type") != "datasource"]
    check(not variables, f"{name}: no template variables but a datasource one ({variables or 'none'})")

    # Every panel, including those inside collapsed rows.
    panels = []
    for panel in board.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []) if panel.get("type") == "row" else [])
    check(bool(panels), f"{name}: has panels ({len(panels)})")
    ids = [p.get("id") for p in panels]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    check(all(isinstance(i, int) for i in ids) and not duplicates,
          f"{name}: panel ids present and unique" + (f" (duplicated: {duplicates})" if duplicates else ""))

    problems = []
    for panel in panels:
        label = f"panel {panel.get('id')} {panel.get('title')!r}"
        grid = panel.get("gridPos")
        if not (isinstance(grid, dict) and all(isinstance(grid.get(k), int) for k in GRID_KEYS)
                and grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24):
            problems.append(f"{label}: gridPos missing or outside the 24 columns")
        datasource = panel.get("datasource")
        if not (isinstance(datasource, dict) and datasource.get("uid") == "prometheus"):
            problems.append(f"{label}: datasource is not uid `prometheus` ({datasource!r})")
        targets = panel.get("targets", [])
        if panel.get("type") != "row" and not targets:
            problems.append(f"{label}: no targets")
        refids = [t.get("refId") for t in targets]
        if len(set(refids)) != len(refids):
            problems.append(f"{label}: refIds not unique ({refids})")
        for target in targets:
            ref = target.get("refId")
            if not (isinstance(ref, str) and ref):
                problems.append(f"{label}: a target has no refId")
            target_ds = target.get("datasource")
            if target_ds is not None and not (isinstance(target_ds, dict) and target_ds.get("uid") == "prometheus"):
                problems.append(f"{label} {ref}: target datasource is not uid `prometheus`")
            expr = target.get("expr")
            if not (isinstance(expr, str) and expr.strip()):
                problems.append(f"{label} {ref}: no expr")
                continue
            unknown = {a or b for a, b in VARIABLE.findall(expr)} - ALLOWED_VARIABLES
            if unknown:
                problems.append(f"{label} {ref}: template variables make ops-check cannot substitute: {sorted(unknown)}")
            n_expr += 1
            rule = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
            rules = {"groups": [{"name": "dashboard_check", "rules": [
                {"record": f"check:expr_{n_expr}", "expr": rule}]}]}
            stem = os.path.join(work, f"{n_expr:03d}")
            with open(stem + ".rules.yml", "w") as f:
                json.dump(rules, f)  # JSON is YAML
            with open(stem + ".label", "w") as f:
                f.write(f"{name}: {label} {ref}: {' '.join(expr.split())}")
    check(not problems, f"{name}: every panel has a gridPos and datasource uid `prometheus`, "
                        f"every target an expr and a refId, no foreign template variables")
    for problem in problems:
        print(f"        {problem}")

# Provisioning.
def load(path):
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        check(False, f"{path}: parses as YAML ({error})")
        return None

path = "ops/grafana/provisioning/datasources/prometheus.yml"
doc = load(path)
if doc is not None:
    sources = doc.get("datasources") or [] if isinstance(doc, dict) else []
    prom = [d for d in sources if isinstance(d, dict) and d.get("uid") == "prometheus"]
    check(len(prom) == 1 and prom[0].get("type") == "prometheus" and prom[0].get("name") == "Prometheus"
          and prom[0].get("url") == "http://prometheus:9090" and prom[0].get("isDefault") is True,
          f"{path}: parses; default Prometheus datasource, uid `prometheus`, url http://prometheus:9090")

path = "ops/grafana/provisioning/dashboards/prism.yml"
doc = load(path)
if doc is not None:
    providers = doc.get("providers") or [] if isinstance(doc, dict) else []
    ok = [p for p in providers if isinstance(p, dict) and p.get("type") == "file"
          and (p.get("options") or {}).get("path") == "/var/lib/grafana/dashboards"
          and p.get("folder") == "Prism"]
    check(len(ok) == 1, f"{path}: parses; file provider for /var/lib/grafana/dashboards, folder Prism")

print(f"{n_expr} expressions to parse")
sys.exit(1 if failed else 0)
PY

# PromQL: each expression as a recording rule through promtool.
for rules in "$work"/*.rules.yml; do
  [ -e "$rules" ] || continue
  label=$(cat "${rules%.rules.yml}.label")
  if out=$(promtool check rules "$rules" 2>&1); then
    echo "ok    promql  $label"
  else
    echo "FAIL  promql  $label"
    printf '%s\n' "$out" | grep -v '^Checking' | sed 's/^/        /'
    status=1
  fi
done

if [ "$status" = 0 ]; then echo "dashboards: all checks passed"; else echo "dashboards: checks FAILED"; fi
exit "$status"
