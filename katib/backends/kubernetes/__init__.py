"""The Kubernetes backend: ``katib controller`` (see ``controller``).

Modules: ``client`` (the only place that creates a kubernetes ApiClient; JSON over its
pool), ``controller`` (watches, work queue, experiment reconcile), ``trials`` (one trial's
workload, status and metrics), ``collect`` (pod logs and DB rows), ``render`` (Trial and
workload manifests, the File collector sidecar), ``experiments`` (defaults and validation
without a webhook), ``services`` (suggesters, DB manager), ``main`` (the command).
"""
