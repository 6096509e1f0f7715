"""The Experiment model, its defaults and validation. Imports no grpc, kubernetes or sqlalchemy."""
