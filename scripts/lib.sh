# Shared by the scripts: stage timing that a person (and CI's log) can read.
_stage_name=""
_stage_t0=0
stage() { _stage_name=$1; _stage_t0=$(date +%s); printf '\n==> %s\n' "$_stage_name"; }
end_stage() { printf '<== %s: %ss\n' "$_stage_name" "$(( $(date +%s) - _stage_t0 ))"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The virtualenv's top-level requirements; scripts/venv.lock pins them and everything below them.
VENV_REQUIREMENTS=$'-e .[dev]\n-e ./serving-image[all,tensorflow,test]'
# What the lock was resolved from: the requirements, the dependency tables of both pyproject files (not their
# tool settings) and the venv's Python minor version. $1: the venv's python.
venv_lock_inputs() {
  "$1" - "$VENV_REQUIREMENTS" <<'PY' | sha256sum | cut -d' ' -f1
import json, sys, tomllib
def deps(path):
    with open(path, "rb") as f:
        data = tomllib.load(f)
    keys = ("name", "requires-python", "dependencies", "optional-dependencies")
    return {"build-system": data.get("build-system"), **{k: data["project"].get(k) for k in keys}}
python = "python%d.%d" % sys.version_info[:2]
print(json.dumps([sys.argv[1], deps("pyproject.toml"), deps("serving-image/pyproject.toml"), python]))
PY
}
