-- rooms and what happens in them: members, bans, invites, messages (with a
-- full-text index), reactions, and user blocks.
--
-- same conventions as 0001 and as migrations/postgres/0002_chat.up.sql: ids
-- are uuid text, times unix milliseconds, booleans 0/1 integers, tables strict.
-- constraint and index names match postgresql's where error mapping reads
-- them.

create table rooms (
    id text not null primary key,
    -- empty for direct rooms: clients show the other member's name
    name text not null,
    topic text,
    visibility text not null check (visibility in ('public', 'private', 'direct')),
    -- kept when the creator's account is deleted, as "nobody"
    created_by text references users (id) on delete set null,
    -- "<smaller user id>:<larger user id>" for direct rooms, null otherwise;
    -- unique, so two concurrent "open a dm" calls end up in the same room
    dm_key text constraint rooms_dm_key_key unique,
    -- the seq of the newest message; incremented in the transaction that
    -- stores a message, which is what makes seqs gapless
    last_seq integer not null default 0 check (last_seq >= 0),
    created_at integer not null,
    updated_at integer not null,
    check ((visibility = 'direct') = (dm_key is not null))
) strict;

-- the public directory, newest first
create index rooms_visibility_id_idx on rooms (visibility, id);
create index rooms_created_by_idx on rooms (created_by);

create table room_members (
    room_id text not null references rooms (id) on delete cascade,
    user_id text not null references users (id) on delete cascade,
    role text not null check (role in ('owner', 'admin', 'member')),
    joined_at integer not null,
    -- the highest seq the member has read (0: none)
    last_read_seq integer not null default 0 check (last_read_seq >= 0),
    primary key (room_id, user_id)
) strict;

-- a user's rooms (and the cascade from users)
create index room_members_user_id_idx on room_members (user_id);

create table room_bans (
    room_id text not null references rooms (id) on delete cascade,
    user_id text not null references users (id) on delete cascade,
    -- kept when the moderator's account is deleted
    banned_by text references users (id) on delete set null,
    created_at integer not null,
    primary key (room_id, user_id)
) strict;

create index room_bans_user_id_idx on room_bans (user_id);
create index room_bans_banned_by_idx on room_bans (banned_by);

create table invites (
    id text not null primary key,
    room_id text not null references rooms (id) on delete cascade,
    inviter_id text not null references users (id) on delete cascade,
    invitee_id text not null references users (id) on delete cascade,
    status text not null default 'pending' check (status in ('pending', 'accepted', 'declined')),
    created_at integer not null,
    responded_at integer
) strict;

-- at most one pending invite per room and invitee; answered ones stay as
-- history. error mapping reads "invitee_id" from the violation.
create unique index invites_room_id_invitee_id_pending_key on invites (room_id, invitee_id)
    where status = 'pending';
-- a user's pending invites, newest first (and the cascade from users)
create index invites_invitee_id_idx on invites (invitee_id, created_at);
create index invites_inviter_id_idx on invites (inviter_id);

create table messages (
    -- sqlite only: an integer primary key gives the full-text index a rowid
    -- that vacuum cannot renumber (the rowid of a table without one may
    -- change). the rust side never reads it.
    num integer primary key,
    id text not null constraint messages_id_key unique,
    room_id text not null references rooms (id) on delete cascade,
    -- 1, 2, 3 … per room, assigned from rooms.last_seq
    seq integer not null check (seq > 0),
    -- null once the author's account is deleted ("deleted user")
    author_id text references users (id) on delete set null,
    -- empty once deleted
    body text not null,
    reply_to text references messages (id) on delete set null,
    -- the sender's idempotency key; null ones never collide
    client_id text,
    created_at integer not null,
    edited_at integer,
    deleted integer not null default 0 check (deleted in (0, 1)),
    -- history pages and resume go by seq
    constraint messages_room_id_seq_key unique (room_id, seq),
    constraint messages_room_id_author_id_client_id_key unique (room_id, author_id, client_id)
) strict;

-- the set null from users, and replies
create index messages_author_id_idx on messages (author_id);
create index messages_reply_to_idx on messages (reply_to);

-- full-text index over message bodies. external content: the text lives
-- only in messages, and the triggers below keep the index in step with it.
create virtual table messages_fts using fts5 (
    body,
    content = 'messages',
    content_rowid = 'num'
);

create trigger messages_fts_after_insert after insert on messages begin
    insert into messages_fts (rowid, body) values (new.num, new.body);
end;

-- an external-content index removes a row by being told its old text
create trigger messages_fts_after_delete after delete on messages begin
    insert into messages_fts (messages_fts, rowid, body) values ('delete', old.num, old.body);
end;

create trigger messages_fts_after_update after update of body on messages begin
    insert into messages_fts (messages_fts, rowid, body) values ('delete', old.num, old.body);
    insert into messages_fts (rowid, body) values (new.num, new.body);
end;

create table reactions (
    message_id text not null references messages (id) on delete cascade,
    user_id text not null references users (id) on delete cascade,
    emoji text not null,
    created_at integer not null,
    primary key (message_id, user_id, emoji)
) strict;

create index reactions_user_id_idx on reactions (user_id);

create table blocks (
    blocker_id text not null references users (id) on delete cascade,
    blocked_id text not null references users (id) on delete cascade,
    created_at integer not null,
    primary key (blocker_id, blocked_id)
) strict;

create index blocks_blocked_id_idx on blocks (blocked_id);
