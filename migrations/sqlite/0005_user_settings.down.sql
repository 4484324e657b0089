-- reverts 0103_user_settings.up.sql.
drop table user_settings;
