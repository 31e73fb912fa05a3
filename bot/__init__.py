"""chronops: a GitOps bot that keeps Chronos USD/CLP forecasting configs tuned."""

__version__ = "0.1.0"
