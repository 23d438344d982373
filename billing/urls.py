"""The Billing pages, under /o/<org_slug>/billing/ (jagcall/urls.py). Owners only."""

from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("", views.BillingOverviewView.as_view(), name="overview"),
    path("checkout/", views.CheckoutView.as_view(), name="checkout"),
    path("checkout/return/", views.CheckoutReturnView.as_view(), name="checkout-return"),
    path("plan/", views.PlanChangeView.as_view(), name="plan-change"),
    path("portal/", views.PortalView.as_view(), name="portal"),
    path("spend-cap/", views.SpendCapView.as_view(), name="spend-cap"),
]
