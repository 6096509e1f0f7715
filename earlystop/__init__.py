"""Early stopping: rules that stop hopeless trials while they run.

``base`` holds the contract, ``medianstop`` the median rule, ``registry`` the names,
``inprocess`` the session the local runner uses and ``service`` the gRPC server. Importing
this package imports no grpc.
"""
