"""Where trials run: local processes (`katib run`, tune()) or Kubernetes workloads."""
