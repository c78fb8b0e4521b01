"""Candidate generation: data-processing pipelines plus algorithms, declared in YAML."""
