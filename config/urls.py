from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from rv.views import archive as archive_views

urlpatterns = [
    path("", archive_views.patients, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("archive/patients/", archive_views.patients, name="archive-patients"),
    path("archive/patients/<int:pk>/", archive_views.patient_detail, name="archive-patient"),
    path("archive/studies/<int:pk>/", archive_views.study_detail, name="archive-study"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("rv.api.urls")),
    path("api/v1/", include("dicom_net.api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
