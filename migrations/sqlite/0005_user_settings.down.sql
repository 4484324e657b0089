-- reverts 0005_user_settings.up.sql.
drop table user_settings;
