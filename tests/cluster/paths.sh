# Paths shared by cluster.sh and node.sh (sourced; needs $here). One place decides where each cluster lives.
# shellcheck source=versions.env
source "$here/versions.env"
name=${MODELDEPLOY_CLUSTER_NAME:-modeldeploy}
default_name=modeldeploy
cache_root=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}
key=$(sha256sum "$here/versions.env" | cut -c1-12)
bin_dir="$cache_root/bin-$key"
data_dir="$cache_root/data-$key"
export KWOK_WORKDIR="$cache_root/kwok"
export KWOK_KUBECTL_BINARY="$bin_dir/kubectl"
cluster_dir="$KWOK_WORKDIR/clusters/$name"
kubeconfig="$cluster_dir/kubeconfig.yaml"
export PATH="$bin_dir:$PATH"
# The real node joins only the default cluster (two kubelets would fight over ports, cni0 and the socket).
real_node_wanted() { [ "$name" = "$default_name" ] && [ "${MODELDEPLOY_REAL_NODE:-1}" != 0 ]; }
