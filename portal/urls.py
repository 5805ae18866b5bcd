"""Console pages, under /console/."""

urlpatterns: list = []
