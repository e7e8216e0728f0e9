"""The test harness: helpers shared by the tests, the benchmarks and scripts/demo.py, imported as `harness`.

net (free_port), poll (wait_for), models (the iris model), cluster (the local control plane), operator (the
operator as a subprocess under the chart's RBAC, kwok faults, the audit log), rollout (real serving pairs and
rollout watchers), serving and probes (modelserve processes, dataset servers), hostile (misbehaving HTTP
clients), chart, argocd and lua (helm, Argo CD, its Lua), realnode and demo_plan (the real node, the demo's
plan), scripts (standalone scripts by path), fixtures (the pytest fixtures built from these).
"""
