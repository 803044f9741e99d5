"""POMDP models: the TRIM model and (see tabular / cassandra) generic discrete POMDPs."""
