"""Deploy a trial's model: the HTTP endpoint (`automl serve`) and what batch transform shares with it."""
