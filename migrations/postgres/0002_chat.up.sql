-- rooms and what happens in them: members, bans, invites, messages (with a
-- full-text index), reactions, and user blocks.
--
-- same conventions as 0001 and as migrations/sqlite/0002_chat.up.sql: ids are
-- uuid text in the "c" collation, times unix milliseconds in bigints.
-- constraint and index names are spelled out where error mapping reads them.

create table rooms (
    id text collate "C" primary key,
    -- empty for direct rooms: clients show the other member's name
    name text not null,
    topic text,
    visibility text not null check (visibility in ('public', 'private', 'direct')),
    -- kept when the creator's account is deleted, as "nobody"
    created_by text collate "C" references users (id) on delete set null,
    -- "<smaller user id>:<larger user id>" for direct rooms, null otherwise;
    -- unique, so two concurrent "open a dm" calls end up in the same room
    dm_key text collate "C" constraint rooms_dm_key_key unique,
    -- the seq of the newest message; incremented in the transaction that
    -- stores a message (the row lock orders concurrent senders), which is
    -- what makes seqs gapless
    last_seq bigint not null default 0 check (last_seq >= 0),
    created_at bigint not null,
    updated_at bigint not null,
    check ((visibility = 'direct') = (dm_key is not null))
);

-- the public directory, newest first
create index rooms_visibility_id_idx on rooms (visibility, id);
create index rooms_created_by_idx on rooms (created_by);

create table room_members (
    room_id text collate "C" not null references rooms (id) on delete cascade,
    user_id text collate "C" not null references users (id) on delete cascade,
    role text not null check (role in ('owner', 'admin', 'member')),
    joined_at bigint not null,
    -- the highest seq the member has read (0: none)
    last_read_seq bigint not null default 0 check (last_read_seq >= 0),
    primary key (room_id, user_id)
);

-- a user's rooms (and the cascade from users)
create index room_members_user_id_idx on room_members (user_id);

create table room_bans (
    room_id text collate "C" not null references rooms (id) on delete cascade,
    user_id text collate "C" not null references users (id) on delete cascade,
    -- kept when the moderator's account is deleted
    banned_by text collate "C" references users (id) on delete set null,
    created_at bigint not null,
    primary key (room_id, user_id)
);

create index room_bans_user_id_idx on room_bans (user_id);
create index room_bans_banned_by_idx on room_bans (banned_by);

create table invites (
    id text collate "C" primary key,
    room_id text collate "C" not null references rooms (id) on delete cascade,
    inviter_id text collate "C" not null references users (id) on delete cascade,
    invitee_id text collate "C" not null references users (id) on delete cascade,
    status text not null default 'pending' check (status in ('pending', 'accepted', 'declined')),
    created_at bigint not null,
    responded_at bigint
);

-- at most one pending invite per room and invitee; answered ones stay as
-- history. error mapping reads "invitee_id" from the index name.
create unique index invites_room_id_invitee_id_pending_key on invites (room_id, invitee_id)
    where status = 'pending';
-- a user's pending invites, newest first (and the cascade from users)
create index invites_invitee_id_idx on invites (invitee_id, created_at);
create index invites_inviter_id_idx on invites (inviter_id);

create table messages (
    id text collate "C" primary key,
    room_id text collate "C" not null references rooms (id) on delete cascade,
    -- 1, 2, 3 … per room, assigned from rooms.last_seq
    seq bigint not null check (seq > 0),
    -- null once the author's account is deleted ("deleted user")
    author_id text collate "C" references users (id) on delete set null,
    -- empty once deleted
    body text not null,
    reply_to text collate "C" references messages (id) on delete set null,
    -- the sender's idempotency key; null ones never collide
    client_id text,
    created_at bigint not null,
    edited_at bigint,
    deleted boolean not null default false,
    -- the full-text index: the 'simple' configuration (lowercased words, no
    -- stemming or stop words), since messages come in every language
    body_tsv tsvector generated always as (to_tsvector('simple', body)) stored,
    -- history pages and resume go by seq
    constraint messages_room_id_seq_key unique (room_id, seq),
    constraint messages_room_id_author_id_client_id_key unique (room_id, author_id, client_id)
);

-- the set null from users, and replies
create index messages_author_id_idx on messages (author_id);
create index messages_reply_to_idx on messages (reply_to);
create index messages_body_tsv_idx on messages using gin (body_tsv);

create table reactions (
    message_id text collate "C" not null references messages (id) on delete cascade,
    user_id text collate "C" not null references users (id) on delete cascade,
    emoji text not null,
    created_at bigint not null,
    primary key (message_id, user_id, emoji)
);

create index reactions_user_id_idx on reactions (user_id);

create table blocks (
    blocker_id text collate "C" not null references users (id) on delete cascade,
    blocked_id text collate "C" not null references users (id) on delete cascade,
    created_at bigint not null,
    primary key (blocker_id, blocked_id)
);

create index blocks_blocked_id_idx on blocks (blocked_id);
