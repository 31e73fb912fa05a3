"""Issuing forecasts and the HTTP service; never imports flow, forges or git."""
