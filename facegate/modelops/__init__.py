"""Model operations: MLflow tracking of evaluations, calibration versions and the active one."""
