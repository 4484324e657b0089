-- reverts 0005_user_settings.up.sql.
drop index users_display_name_pattern_idx;
drop index users_username_pattern_idx;
drop table user_settings;
