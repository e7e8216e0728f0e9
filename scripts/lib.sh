# Shared by the scripts: stage timing that a person (and CI's log) can read.
_stage_name=""
_stage_t0=0
stage() { _stage_name=$1; _stage_t0=$(date +%s); printf '\n==> %s\n' "$_stage_name"; }
end_stage() { printf '<== %s: %ss\n' "$_stage_name" "$(( $(date +%s) - _stage_t0 ))"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The virtualenv's top-level requirements; scripts/venv.lock pins them and everything below them.
VENV_REQUIREMENTS=$'-e .[dev]\n-e ./serving-image[all,tensorflow,test]'
# What the lock was resolved from: the requirements, both pyproject files and the venv's Python minor version.
venv_lock_inputs() {
  { printf '%s\n' "$VENV_REQUIREMENTS"; cat pyproject.toml serving-image/pyproject.toml
    "$1" -c 'import sys; print("python%d.%d" % sys.version_info[:2])'; } | sha256sum | cut -d' ' -f1
}
