"""Reports, dashboard and charts: data in, strings out."""
