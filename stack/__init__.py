"""The team stack's processes (`make stack`): PostgreSQL, SeaweedFS's S3 and `mlflow server`
on 127.0.0.1. A tool beside the aelab package, so that no logged model ships it."""
