-- reverts 0002_chat.up.sql: children before parents because of the foreign
-- keys. dropping a table drops its indexes and constraints.
drop table blocks;
drop table reactions;
drop table messages;
drop table invites;
drop table room_bans;
drop table room_members;
drop table rooms;
