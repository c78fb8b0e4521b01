"""The search: one Ray Tune experiment over every candidate's conditional sub-space."""
