"""What `genesis run` shows outside itself while it runs: the Prometheus endpoint."""
