"""Reconcile core: pure decisions shared by `katib run` and the Kubernetes controller."""
