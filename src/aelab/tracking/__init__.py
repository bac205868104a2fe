"""MLflow: the workspace as runs, the store they are logged to, the registry's champions.
The only layer besides serving that imports mlflow."""
