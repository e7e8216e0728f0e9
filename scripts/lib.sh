# Shared by the scripts: stage timing that a person (and CI's log) can read.
_stage_name=""
_stage_t0=0
stage() { _stage_name=$1; _stage_t0=$(date +%s); printf '\n==> %s\n' "$_stage_name"; }
end_stage() { printf '<== %s: %ss\n' "$_stage_name" "$(( $(date +%s) - _stage_t0 ))"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
