"""REST API for automation, under /api/v1/."""

urlpatterns: list = []
