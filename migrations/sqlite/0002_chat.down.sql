-- reverts 0002_chat.up.sql: children before parents because of the foreign
-- keys. dropping a table drops its indexes and triggers; the full-text table
-- goes after messages, so the triggers that write to it never lack it.
drop table blocks;
drop table reactions;
drop table messages;
drop table messages_fts;
drop table invites;
drop table room_bans;
drop table room_members;
drop table rooms;
