"""The test harness: helpers shared by the tests, the benchmarks and scripts/demo.py, imported as `harness`.

net (free_port), poll (wait_for), models (the iris model), cluster (the local control plane), operator (the
operator as a subprocess under the chart's RBAC, kwok faults, the audit log), rollout (real serving pairs and
rollout watchers), hostile (misbehaving HTTP clients), fixtures (the pytest fixtures built from these).
"""
