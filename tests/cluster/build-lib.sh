# Helpers shared by build.sh and build-argocd.sh (sourced). The caller sets $work (a scratch folder) and log().

# A build's cache key: its name and the exact inputs of its build (module, version, package, ldflags sans date).
component_key() { printf '%s\n' "$@" | sha256sum | cut -c1-12; }

# A wrapper module that requires MODULE@VERSION (go install refuses modules with replace directives); GO_VERSION
# is the wrapper's go line, at least the module's own. Extra go.mod lines may follow.
wrapper() {
  local dir=$1 module=$2 version=$3 go_version=${4:-1.24.0}
  mkdir -p "$dir"
  printf 'module modeldeploy.local/build\n\ngo %s\n' "$go_version" >"$dir/go.mod"
  (cd "$dir" && go mod edit -require="$module@$version")
}

# The path of MODULE@VERSION's go.mod, or of its source folder (FIELD GoMod or Dir), downloading it if needed.
module_path() {
  local field=$1 module=$2 version=$3
  (cd "$work" && GOFLAGS= go mod download -json "$module@$version" | sed -n "s/.*\"$field\": \"\(.*\)\".*/\1/p")
}

# Copies CRD YAML from a module's folder into DEST (the modules are the pinned sources); GLOB picks the files.
copy_crds() {
  local module=$1 version=$2 sub=$3 dest=$4 glob=${5:-*.yaml} dir
  [ -d "$dest" ] && [ -n "$(ls -A "$dest")" ] && { log "    $(basename "$dest") cached"; return; }
  dir=$(module_path Dir "$module" "$version")
  mkdir -p "$dest"
  # shellcheck disable=SC2086 # the glob expands here, inside the module's folder
  cp "$dir/$sub"/$glob "$dest/"
  chmod -R u+w "$dest"
  log "    $(ls "$dest" | wc -l) CRDs from $module $version"
}
