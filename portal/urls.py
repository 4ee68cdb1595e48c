from __future__ import annotations

from django.contrib.auth.views import LogoutView
from django.urls import path

from portal.views import auth, catalogue, home, keys, organisation, subscriptions, team, usage

app_name = "portal"
urlpatterns = [
    path("", home.home, name="home"),
    # accounts
    path("signup/", auth.signup, name="signup"),
    path("signup/done/", auth.signup_done, name="signup-done"),
    path("verify/resend/", auth.resend_verification, name="verify-resend"),
    path("verify/<str:token>/", auth.verify, name="verify"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("password/change/", auth.PasswordChangeView.as_view(), name="password-change"),
    path("password/reset/", auth.PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/sent/", auth.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path("password/reset/<uidb64>/<token>/", auth.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("password/reset/done/", auth.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
    # catalogue and subscriptions
    path("catalogue/", catalogue.catalogue, name="catalogue"),
    path("catalogue/<slug:slug>/", catalogue.product, name="product"),
    path("catalogue/<slug:slug>/openapi.json", catalogue.openapi, name="product-openapi"),
    path("catalogue/<slug:slug>/subscribe/", catalogue.subscribe, name="subscribe"),
    path("subscriptions/", subscriptions.subscriptions, name="subscriptions"),
    path("subscriptions/<int:subscription_id>/cancel/", subscriptions.cancel, name="subscription-cancel"),
    # keys and usage
    path("keys/", keys.key_list, name="keys"),
    path("keys/new/", keys.key_create, name="key-create"),
    path("keys/<int:key_id>/", keys.key_detail, name="key"),
    path("keys/<int:key_id>/rotate/", keys.key_rotate, name="key-rotate"),
    path("keys/<int:key_id>/revoke/", keys.key_revoke, name="key-revoke"),
    path("usage/", usage.usage, name="usage"),
    path("usage/export.csv", usage.usage_csv, name="usage-csv"),
    # team and organisation
    path("team/", team.team, name="team"),
    path("team/invite/", team.invite, name="invite"),
    path("team/invitations/<int:invitation_id>/cancel/", team.invitation_cancel, name="invitation-cancel"),
    path("team/members/<int:member_id>/role/", team.member_role, name="member-role"),
    path("team/members/<int:member_id>/remove/", team.member_remove, name="member-remove"),
    path("invitations/<str:token>/", team.invitation_accept, name="invitation-accept"),
    path("organisation/", organisation.organisation, name="organisation"),
    path("organisation/delete/", organisation.organisation_delete, name="organisation-delete"),
]
