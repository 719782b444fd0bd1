from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from rv.urlconv import NameConverter
from rv.views import archive as archive_views
from rv.views import audit as audit_views
from rv.views import banner as banner_views
from rv.views import console as console_views
from rv.views import history as history_views
from rv.views import machine as machine_views
from rv.views import machines as machine_settings
from rv.views import plans as plan_views
from rv.views import prescriptions as rx_views
from rv.views import schedule as schedule_views
from rv.views import tasks as task_views
from rv.views import treat as treat_views
from rv.views import users as user_views
from rv.views import worklist as worklist_views

register_converter(NameConverter, "name")

urlpatterns = [
    path("", console_views.home, name="home"),
    path("console/", console_views.machines, name="rv-console"),
    path("console/<name:machine>/", console_views.day, name="rv-console-day"),
    path("console/<name:machine>/week/", schedule_views.week, name="rv-console-week"),
    path("console/<name:machine>/appointments/<int:pk>/check/", treat_views.check,
         name="rv-console-check"),
    path("console/<name:machine>/appointments/<int:pk>/record/", treat_views.record,
         name="rv-console-record"),
    path("reviews/", treat_views.reviews, name="rv-reviews"),
    path("tasks/", task_views.my_tasks, name="rv-tasks"),
    path("tasks/all/", task_views.overview, name="rv-tasks-overview"),
    path("tasks/<int:pk>/complete/", task_views.complete, name="rv-task-complete"),
    path("tasks/<int:pk>/assign/", task_views.assign, name="rv-task-assign"),
    path("tasks/<int:pk>/cancel/", task_views.cancel, name="rv-task-cancel"),
    path("machines/", machine_settings.machines, name="rv-machines"),
    path("machines/<int:pk>/meterset-policy/", machine_settings.meterset_policy,
         name="rv-machine-meterset"),
    path("machines/<int:pk>/prescription-tolerance/", machine_settings.prescription_tolerance,
         name="rv-machine-rx-tolerance"),
    path("machines/groups/", machine_settings.group_save, name="rv-machine-group"),
    path("machines/<int:pk>/tdw/", machine_settings.tdw_delivery, name="rv-machine-tdw"),
    path("machines/<int:pk>/worklist/", worklist_views.worklist, name="rv-machine-worklist"),
    path("workitems/<int:pk>/review/", worklist_views.review, name="rv-workitem-review"),
    path("workitems/<int:pk>/release/", worklist_views.release, name="rv-workitem-release"),
    path("sessions/<int:pk>/review/", treat_views.review, name="rv-session-review"),
    path("plans/<int:pk>/couch/confirm/", treat_views.couch_confirm, name="rv-couch-confirm"),
    path("plans/<int:pk>/schedule/", console_views.schedule, name="rv-plan-schedule"),
    path("appointments/<int:pk>/", console_views.appointment_change,
         name="rv-appointment-change"),
    path("appointments/swap/", schedule_views.swap, name="rv-appointment-swap"),
    path("appointments/<int:pk>/missed/", schedule_views.missed, name="rv-appointment-missed"),
    path("plans/<int:pk>/book/", schedule_views.book, name="rv-plan-book"),
    path("machines/<int:pk>/hours/", schedule_views.hours, name="rv-machine-hours"),
    path("audit/", audit_views.audit, name="rv-audit"),
    path("users/", user_views.users, name="rv-users"),
    path("history/", history_views.history, name="rv-history"),
    path("history/csv/", history_views.history_csv_download, name="rv-history-csv"),
    path("history/patients/<int:pk>/", history_views.patient_history,
         name="rv-history-patient"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("archive/patients/", archive_views.patients, name="archive-patients"),
    path("archive/patients/<int:pk>/", archive_views.patient_detail, name="archive-patient"),
    path("archive/studies/<int:pk>/", archive_views.study_detail, name="archive-study"),
    path("patients/", plan_views.patients, name="rv-patients"),
    path("patients/<int:pk>/", plan_views.patient_chart, name="rv-patient"),
    path("courses/<int:pk>/prescriptions/new/", rx_views.prescription_new,
         name="rv-prescription-new"),
    path("prescriptions/<int:pk>/", rx_views.prescription_page, name="rv-prescription"),
    path("prescriptions/<int:pk>/amend/", rx_views.prescription_amend_page,
         name="rv-prescription-amend"),
    path("prescriptions/<int:pk>/<slug:action>/", rx_views.prescription_action,
         name="rv-prescription-action"),
    path("patients/<int:pk>/banner/", banner_views.banner_edit, name="rv-patient-banner"),
    path("patients/<int:pk>/photos/<int:photo_pk>/", banner_views.photo,
         name="rv-patient-photo"),
    path("patients/<int:pk>/photos/<int:photo_pk>/thumbnail/", banner_views.photo_thumbnail,
         name="rv-patient-photo-thumbnail"),
    path("courses/<int:pk>/", banner_views.course_page, name="rv-course"),
    path("plans/<int:pk>/", plan_views.plan_page, name="rv-plan"),
    path("plans/<int:pk>/<slug:action>/", plan_views.plan_action, name="rv-plan-action"),
    path("beams/<int:pk>/tolerance-table/", plan_views.beam_assign_tolerance,
         name="rv-beam-tolerance"),
    path("tolerance-tables/", plan_views.tolerance_tables, name="rv-tolerance-tables"),
    path("tolerance-tables/<int:pk>/", plan_views.tolerance_table_edit,
         name="rv-tolerance-table"),
    path("sessions/<int:pk>/", machine_views.session_page, name="rv-session"),
    path("images/<int:pk>/", machine_views.image_page, name="rv-image"),
    path("images/<int:pk>/review/", machine_views.image_review, name="rv-image-review"),
    path("archive/instances/<int:pk>/png/", machine_views.instance_png,
         name="rv-instance-png"),
    path("device-records/", machine_views.device_records, name="rv-device-records"),
    path("device-records/<int:pk>/assign/", machine_views.device_record_assign_view,
         name="rv-device-record-assign"),
    path("device-records/<int:pk>/review/", machine_views.device_record_review_view,
         name="rv-device-record-review"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("rv.api.urls")),
    path("api/v1/", include("dicom_net.api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from drf-spectacular-sidecar; its init script is a separate file (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"),
         name="api-docs"),
]
