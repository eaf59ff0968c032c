from django.urls import path

from examples.django_app import views

urlpatterns = [
    path("balance/<str:user_id>", views.balance),
    path("transfer", views.transfer),
]
