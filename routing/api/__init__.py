"""REST API for the model catalogue, under /api/v1/catalogue/ (included from portal/api/urls.py)."""
