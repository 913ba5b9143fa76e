"""rbp: RNA-protein binding site prediction with DNABERT and a biLSTM, tracked in MLflow."""

import os

# MLflow's usage telemetry stays off unless a user turns it on: rbp runs offline, where its background
# thread, failing to reach its server, takes its session variable out of os.environ while a request
# reads the environment, and that request fails (KeyError '_MLFLOW_TELEMETRY_SESSION_ID').
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__version__ = "0.1.0"
