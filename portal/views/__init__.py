"""Console pages under /console/, one module per area. Views check role and tenant (portal.roles, via
access.py), call a service for every write and render a template; they hold no business rules."""
