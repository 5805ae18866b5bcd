"""/api/v1/catalogue/: providers, deployments and aliases (included from portal/api/urls.py)."""

from portal.api.routes import CHANGEABLE_DETAIL, collection
from routing.api import views

urlpatterns = [
    *collection("providers", views.ProviderViewSet, "provider", CHANGEABLE_DETAIL),
    *collection("deployments", views.DeploymentViewSet, "deployment", CHANGEABLE_DETAIL),
    *collection("aliases", views.ModelAliasViewSet, "alias", CHANGEABLE_DETAIL),
]
