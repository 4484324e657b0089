//! The rooms of a run, made and joined over REST before it and deleted
//! after it.

use std::sync::Arc;

use anyhow::Context;
use parley_actors::domain::RoomId;
use tokio::task::JoinSet;

use crate::client::{LoadUser, Rest};

/// Creates rooms and joins their members over REST. `members[r]` lists
/// user indexes; the first creates the room. Returns the room ids.
pub async fn setup_rooms(
    rest: &Rest,
    users: &[LoadUser],
    members: &[Vec<usize>],
    label: &str,
) -> anyhow::Result<Vec<RoomId>> {
    let stamp = crate::token::unix_nanos() / 1_000_000;
    let mut ids = Vec::with_capacity(members.len());
    // Creation, a few at a time.
    for chunk in members.chunks(32).enumerate() {
        let (c, chunk) = chunk;
        let mut set = JoinSet::new();
        for (j, m) in chunk.iter().enumerate() {
            let owner = users[m[0]].access_token.clone();
            let rest = rest.clone();
            let name = format!("lt-{label}-{stamp}-{}", c * 32 + j);
            set.spawn(async move { (j, rest.create_room(&owner, &name).await) });
        }
        let mut got: Vec<(usize, RoomId)> = Vec::new();
        while let Some(r) = set.join_next().await {
            let (j, id) = r?;
            got.push((j, id.context("creating a load room")?));
        }
        got.sort_by_key(|(j, _)| *j);
        ids.extend(got.into_iter().map(|(_, id)| id));
    }
    // Joins, 64 in flight.
    let joins: Vec<(RoomId, usize)> = members
        .iter()
        .zip(&ids)
        .flat_map(|(m, id)| {
            let mut seen = std::collections::HashSet::new();
            seen.insert(m[0]);
            m.iter()
                .skip(1)
                .filter(|u| seen.insert(**u))
                .map(|u| (*id, *u))
                .collect::<Vec<_>>()
        })
        .collect();
    let total = joins.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = JoinSet::new();
    for (room, user) in joins {
        let permit = Arc::clone(&sem).acquire_owned().await?;
        let rest = rest.clone();
        let token = users[user].access_token.clone();
        set.spawn(async move {
            let r = rest.join_room(&token, room).await;
            drop(permit);
            r
        });
        while let Some(done) = set.try_join_next() {
            done??;
        }
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    if total > 0 {
        eprintln!("joined {total} memberships in {} rooms", ids.len());
    }
    Ok(ids)
}

/// Deletes the load rooms (so reused users do not pile up rooms).
pub async fn delete_rooms(rest: &Rest, users: &[LoadUser], owners: &[usize], ids: &[RoomId]) {
    for (owner, id) in owners.iter().zip(ids) {
        let url = format!("{}/rooms/{id}", rest.base);
        let resp = rest
            .http
            .delete(&url)
            .bearer_auth(&users[*owner].access_token)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => eprintln!("note: deleting room {id}: {}", r.status()),
            Err(e) => eprintln!("note: deleting room {id}: {e}"),
        }
    }
}
