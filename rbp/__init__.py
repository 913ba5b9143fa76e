"""rbp: RNA-protein binding site prediction with DNABERT and a biLSTM, tracked in MLflow."""

__version__ = "0.1.0"
