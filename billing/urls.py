"""Dashboards and the request-log explorer, under /console/."""

from django.urls import path

from billing.views import dashboards, experiments, plotly_js, request_log

app_name = "billing"

urlpatterns = [
    path("dashboards/", dashboards.finance_dashboard, name="finance"),
    path("dashboards/finance/data/", dashboards.finance_data, name="finance-data"),
    path("dashboards/operations/", dashboards.operator_dashboard, name="operator"),
    path("dashboards/operations/data/", dashboards.operator_data, name="operator-data"),
    path("dashboards/chargeback/", dashboards.chargeback_report, name="chargeback"),
    path("dashboards/experiments/<int:alias_id>/", experiments.experiment_comparison, name="experiment"),
    path("dashboards/csv/<slug:table>/", dashboards.table_csv, name="csv"),
    path("dashboards/plotly-<str:version>.min.js", plotly_js.plotly_js, name="plotly-js"),
    path("requests/", request_log.request_list, name="requests"),
    path("requests/<str:request_id>/", request_log.request_detail, name="request"),
]
