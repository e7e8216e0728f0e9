"""The real node real-0 in tests: pods on it, load pods and their logs, start-up probes, our CRDs set
aside."""
