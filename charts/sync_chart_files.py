"""Keep the chart's copies identical to their sources, and its README's values table generated.

    python charts/sync_chart_files.py           # write the copies and the table
    python charts/sync_chart_files.py --check   # exit 1 and name each stale file (CI)

Sources: crds/modeldeployments.yaml, dashboards/*.json, alerts/modeldeploy.rules.yaml; the values table
comes from the `# --` comments in charts/modeldeploy/values.yaml (helm-docs convention).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

# The shared write-or-check main lives in scripts/ (these files run as plain scripts, not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from generated_files import write_or_check

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "modeldeploy"
COPIES = {
    REPO / "crds" / "modeldeployments.yaml": CHART / "files" / "crds" / "modeldeployments.yaml",
    REPO / "dashboards" / "modeldeploy.json": CHART / "files" / "dashboards" / "modeldeploy.json",
    REPO / "alerts" / "modeldeploy.rules.yaml": CHART / "files" / "alerts" / "modeldeploy.rules.yaml",
}
TABLE_BEGIN = "<!-- values-table:begin -->"
TABLE_END = "<!-- values-table:end -->"


def documented_values(values_text: str) -> list[tuple[str, str, str]]:
    """(dotted key, default as JSON, description) for every key preceded by a `# --` comment."""
    data = yaml.safe_load(values_text)
    rows, stack, pending = [], [], []
    for line in values_text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
        elif stripped.startswith("#") and pending:
            pending.append(stripped[1:].strip())
        elif stripped and not stripped.startswith("#") and not stripped.startswith("-") and ":" in stripped:
            key = stripped.split(":", 1)[0].strip()
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
            if pending:
                path = [k for _, k in stack]
                value = data
                for part in path:
                    value = value[part]
                rows.append((".".join(path), json.dumps(value), " ".join(pending)))
                pending = []
    return rows


def values_table(values_text: str) -> str:
    lines = ["| Key | Default | Description |", "|-----|---------|-------------|"]
    for key, default, description in documented_values(values_text):
        escaped = description.replace("|", r"\|")
        lines.append(f"| `{key}` | `{default}` | {escaped} |")
    return "\n".join(lines)


def readme_with_table(readme: str, table: str) -> str:
    head, _, rest = readme.partition(TABLE_BEGIN)
    _, _, tail = rest.partition(TABLE_END)
    return f"{head}{TABLE_BEGIN}\n{table}\n{TABLE_END}{tail}"


def expected_files() -> dict[Path, str]:
    files = {target: source.read_text() for source, target in COPIES.items()}
    readme = CHART / "README.md"
    files[readme] = readme_with_table(readme.read_text(), values_table((CHART / "values.yaml").read_text()))
    return files


def main(argv: list[str] | None = None) -> int:
    command = "python charts/sync_chart_files.py"
    return write_or_check(expected_files, __doc__.splitlines()[0], command, argv)


if __name__ == "__main__":
    sys.exit(main())
